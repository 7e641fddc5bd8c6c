package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/livemigrate/livemigrate/internal/engine"
	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// failTargetFirst is the running system's kernel, except that just before
// the engine's first Fail (the live leg's, once the target is in sync) it
// fails the target leg for real through sysfs, the way a disk error at
// that moment would. The live leg is then the array's last working leg,
// and the kernel side of livemigrate (mdraid) must refuse to fail it.
type failTargetFirst struct {
	engine.Kernel
	did string // what was done to the target, for the facts
}

func (k *failTargetFirst) Fail(md string, major, minor uint32) error {
	if k.did == "" {
		k.did = "nothing: no other in-sync leg"
		if a, err := k.ReadArray(md); err == nil {
			for _, m := range a.Members {
				if (m.Major != major || m.Minor != minor) && m.InSync() {
					state := g.MDDir(md) + "/dev-" + m.Name + "/state"
					err := os.WriteFile(state, []byte("faulty"), 0)
					k.did = fmt.Sprintf("%s failed by hand (write faulty: %v), now %s", m.Name, err, g.Read(state))
					break
				}
			}
		}
	}
	return k.Kernel.Fail(md, major, minor)
}

// scenarioFaultRefused: the target fails between the engine's in-sync check
// and its failing of the live leg (item 3's refused fail). The migration
// runs in this process through engine.Session, as the CLI runs it, with
// failTargetFirst wrapping the kernel; its events go to /run/refused.jsonl
// and its error to /run/refused.err as the CLI would print them. The case
// must abort (exit 20) with the live session intact: the live leg alone in
// the array and writable, md's limits as they were, every record intact.
// A rerun of the same command afterwards must then migrate.
func scenarioFaultRefused() int {
	f := newFault()
	main := g.DiskBySerial("fa-main")
	g.Fact("disks", "main="+main)
	if main == "" {
		return 1
	}
	f.writerStart()
	g.Fact("pre_md", f.mdState())
	f.records("pre")

	k := &failTargetFirst{}
	s := engine.Session{Eject: true, WrapKernel: func(sys engine.Kernel) engine.Kernel { k.Kernel = sys; return k }}
	out, _ := os.Create("/run/refused.jsonl")
	enc := json.NewEncoder(out)
	err := runEngine(s, engine.Request{Target: main, Speed: engine.SpeedFast, NoFinalize: true}, enc)
	out.Close()
	code := engine.ExitCode(err)
	msg := ""
	if err != nil {
		msg = "livemigrate migrate: " + err.Error() + "\n"
		ev := engine.Event{Time: time.Now(), Type: engine.EvError, Code: code, Message: err.Error()}
		var re *engine.RunError
		if errors.As(err, &re) {
			ev.Left = re.Left
		}
		if o, e := os.OpenFile("/run/refused.jsonl", os.O_WRONLY|os.O_APPEND, 0); e == nil {
			_ = json.NewEncoder(o).Encode(ev)
			o.Close()
		}
	}
	_ = os.WriteFile("/run/refused.err", []byte(msg), 0o644)
	f.rc = strconv.Itoa(code)
	g.Fact("refused_target", k.did)
	g.Fact("refused_rc", f.rc)
	f.report("refused")
	// The live session must still take writes: MD_BROKEN, which the kernel
	// sets when asked to fail an array's last working leg, would make md
	// refuse every write from then on.
	g.Fact("refused_write", writeSync("/root/after-refused"))
	g.Fact("refused_dmesg", dmesgTail(`md/raid1|md:`, 6))

	f.start("again", withArgs("--target", main)...)
	f.finish("again", 240)
	f.writerStop()
	return 0
}

// runEngine is the CLI's `migrate --yes --json` path: check, begin under
// the lock, plan event, run.
func runEngine(s engine.Session, req engine.Request, enc *json.Encoder) error {
	if _, err := s.Check(req); err != nil {
		return err
	}
	m, err := s.Begin(req, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	_ = enc.Encode(engine.Event{Time: time.Now(), Type: engine.EvPlan, Plan: m.Plan})
	res, err := m.Run(context.Background(), func(e engine.Event) { _ = enc.Encode(e) })
	if err == nil {
		_ = enc.Encode(engine.Event{Time: time.Now(), Type: engine.EvResult, Result: res})
	}
	return err
}

// writeSync writes a small file and fsyncs it: "ok" or the error.
func writeSync(path string) string {
	fh, err := os.Create(path)
	if err == nil {
		_, err = fh.WriteString(strings.Repeat("x", 4096))
		if err == nil {
			err = fh.Sync()
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}
