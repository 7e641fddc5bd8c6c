package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

var accelOnce struct {
	sync.Mutex
	verdict []string
}

// accelArgs are the accelerator arguments: "-accel kvm -cpu host" if a KVM
// guest really boots here, else "-accel tcg". /dev/kvm existing proves
// nothing on this machine kind (KVM guests hang or abort), so the initramfs
// boots in probe mode for at most 20 s and must report probe=ok. The
// verdict is cached per host boot ($LM_CACHE/accel.BOOT_ID, shared with the
// shell harness); LM_ACCEL=kvm|tcg overrides.
func accelArgs(m *Machine) []string {
	switch os.Getenv("LM_ACCEL") {
	case "kvm":
		return []string{"-accel", "kvm", "-cpu", "host"}
	case "tcg":
		return []string{"-accel", "tcg"}
	}
	accelOnce.Lock()
	defer accelOnce.Unlock()
	if accelOnce.verdict != nil {
		return accelOnce.verdict
	}
	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	cache := filepath.Join(Cache(), "accel."+strings.TrimSpace(string(bootID)))
	if b, err := os.ReadFile(cache); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		accelOnce.verdict = strings.Fields(string(b))
		return accelOnce.verdict
	}
	if m.FirmwareBoot {
		return []string{"-accel", "tcg"} // nothing to probe with; decide on a direct boot
	}
	verdict := "-accel tcg"
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		tmp, err := os.MkdirTemp("", "lm-kvm")
		if err == nil {
			Logf("probing KVM with a 20 s smoke boot")
			cmd := exec.Command(m.Qemu, "-nodefaults", "-display", "none", "-monitor", "none",
				"-no-reboot", "-machine", "pc", "-accel", "kvm", "-cpu", "host", "-m", "256",
				"-kernel", m.Kernel, "-initrd", m.Initrd,
				"-append", "console=ttyS0 panic=1 lm.probe=1",
				"-serial", "file:"+filepath.Join(tmp, "console.log"),
				"-serial", "file:"+filepath.Join(tmp, "facts.txt"))
			if cmd.Start() == nil {
				t := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
				_ = cmd.Wait()
				t.Stop()
			}
			if ReadFacts(filepath.Join(tmp, "facts.txt")).Get("probe") == "ok" {
				verdict = "-accel kvm -cpu host"
			}
			os.RemoveAll(tmp)
		}
	}
	Logf("accelerator: %s", verdict)
	if os.MkdirAll(Cache(), 0o755) == nil {
		_ = os.WriteFile(cache, []byte(verdict+"\n"), 0o644)
	}
	accelOnce.verdict = strings.Fields(verdict)
	return accelOnce.verdict
}
