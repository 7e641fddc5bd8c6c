package vm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmpCommand connects to QEMU's QMP socket, negotiates capabilities and runs
// one command, returning the raw answer line (events before it skipped).
func qmpCommand(sock, command string, args map[string]any) (string, error) {
	c, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(c)
	if _, err := rd.ReadString('\n'); err != nil { // the greeting
		return "", fmt.Errorf("qmp greeting: %w", err)
	}
	send := func(cmd string, a map[string]any) (string, error) {
		req := map[string]any{"execute": cmd}
		if a != nil {
			req["arguments"] = a
		}
		b, _ := json.Marshal(req)
		if _, err := c.Write(append(b, '\n')); err != nil {
			return "", err
		}
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return "", err
			}
			var msg map[string]json.RawMessage
			if json.Unmarshal([]byte(line), &msg) != nil {
				continue
			}
			if _, ev := msg["event"]; ev {
				continue
			}
			if e, bad := msg["error"]; bad {
				return line, fmt.Errorf("qmp %s: %s", cmd, e)
			}
			return line, nil
		}
	}
	if _, err := send("qmp_capabilities", nil); err != nil {
		return "", err
	}
	return send(command, args)
}
