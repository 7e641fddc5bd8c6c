// Package guest holds what the lmtest scenarios share inside the test VM:
// the facts port, the kernel command line, running commands the way the
// shell scenarios did ($(cmd) and cmd 2>&1), and reading sysfs and /proc.
//
// The facts protocol is the host's contract: one "KEY=VALUE" line per fact on
// the second serial port (ttyS1), each written with its own open, drain and
// close, and echoed to the console as "fact: KEY=VALUE". The drain is ours
// (TCSBRK, retried on EINTR): the wait that closing a tty does is
// interruptible, a Go process gets signals at any time (the runtime's
// preemption), and a close whose wait was cut short drops what the UART
// had not sent yet (a whole fact line went missing that way under load).
package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FactsPort and Console are where facts and people's output go; variables
// so that unit tests can point them elsewhere.
var (
	FactsPort           = "/dev/ttyS1"
	Console   io.Writer = os.Stdout
)

// Fact reports KEY=VALUE.
func Fact(key, value string) {
	line := key + "=" + value + "\n"
	if f, err := os.OpenFile(FactsPort, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
		_, _ = io.WriteString(f, line)
		drain(f)
		_ = f.Close()
	} else {
		fmt.Fprintf(Console, "fact: cannot write %s: %v\n", FactsPort, err)
	}
	fmt.Fprint(Console, "fact: "+line)
}

// drain waits until f, a tty, has sent all it was given (tcdrain); a file
// (the unit tests' port) answers ENOTTY at once.
func drain(f *os.File) {
	for i := 0; i < 1000; i++ {
		err := unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// Factf reports KEY=fmt.Sprintf(format, args...).
func Factf(key, format string, args ...any) { Fact(key, fmt.Sprintf(format, args...)) }

// FactLines reports multi-line text as KEY.1=..., KEY.2=... and KEY.lines=N,
// as the host's vm.Facts.Lines reads them back. A last line without a newline
// counts.
func FactLines(key string, text []byte) {
	n := 0
	for _, l := range Lines(text) {
		n++
		Fact(key+"."+strconv.Itoa(n), l)
	}
	Fact(key+".lines", strconv.Itoa(n))
}

// FactFile reports a file with FactLines; a missing file reports no lines.
func FactFile(key, path string) {
	b, _ := os.ReadFile(path)
	FactLines(key, b)
}

// Lines splits text into lines as `while read -r l || [ -n "$l" ]` does.
func Lines(text []byte) []string {
	var out []string
	s := bufio.NewScanner(bytes.NewReader(text))
	s.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for s.Scan() {
		out = append(out, s.Text())
	}
	return out
}

// Say prints a line on the console.
func Say(format string, args ...any) { fmt.Fprintf(Console, format+"\n", args...) }

// CmdlineExtra holds words added after the kernel's command line: a system
// that boots through its own boot loader (an installed target) gets its
// scenario from there, since the test cannot touch that command line.
const CmdlineExtra = "/etc/lmtest/cmdline"

// Cmdline returns the value of NAME=VALUE on the kernel command line (then
// CmdlineExtra), or def.
func Cmdline(name, def string) string {
	var text []byte
	for _, p := range []string{"/proc/cmdline", CmdlineExtra} {
		b, _ := os.ReadFile(p)
		text = append(append(text, b...), '\n')
	}
	return CmdlineGet(string(text), name, def)
}

// CmdlineGet is Cmdline's parser: the first word NAME=... wins; words are
// split on white space, with no quoting (as the shell's for loop did).
func CmdlineGet(text, name, def string) string {
	for _, w := range strings.Fields(text) {
		if v, ok := strings.CutPrefix(w, name+"="); ok {
			return v
		}
	}
	return def
}

// Result is what a finished command left: its output and exit status
// (127 when it could not start, 128+N when killed by signal N, as a shell
// reports it).
type Result struct {
	Stdout, Stderr []byte
	RC             int
}

// Out is the stdout as $(cmd) gives it: trailing newlines removed.
func (r Result) Out() string { return strings.TrimRight(string(r.Stdout), "\n") }

// FirstErr is the first line of stderr, as `head -n1 ERRFILE` gives it.
func (r Result) FirstErr() string { return FirstLine(r.Stderr) }

// Cmd describes one command to run.
type Cmd struct {
	Args   []string
	Env    []string // added to the environment
	Stdin  io.Reader
	Stdout io.Writer // when set, stdout goes here instead of Result.Stdout
	Stderr io.Writer // likewise; Combined puts both in Stdout
	// Combined sends stderr where stdout goes, as 2>&1 does.
	Combined bool
	Dir      string
	Setsid   bool
	// Timeout, when set, ends the command with SIGTERM after that long and
	// reports 124, as timeout(1) does: a missing check that starts a real
	// migration cannot hang the test.
	Timeout time.Duration
}

// Run runs a command to its end.
func (c Cmd) Run() Result {
	p, err := c.Start()
	if err != nil {
		return Result{Stderr: []byte(err.Error() + "\n"), RC: 127}
	}
	return p.Wait()
}

// Proc is a started command.
type Proc struct {
	*exec.Cmd
	stdout, stderr *bytes.Buffer
	timer          *time.Timer
	timedOut       atomic.Bool
}

// Start starts a command in the background.
func (c Cmd) Start() (*Proc, error) {
	if len(c.Args) == 0 {
		return nil, errors.New("no command")
	}
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	p := &Proc{Cmd: cmd}
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		p.stdout = new(bytes.Buffer)
		cmd.Stdout = p.stdout
	}
	switch {
	case c.Combined:
		cmd.Stderr = cmd.Stdout
	case c.Stderr != nil:
		cmd.Stderr = c.Stderr
	default:
		p.stderr = new(bytes.Buffer)
		cmd.Stderr = p.stderr
	}
	if c.Setsid {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if c.Timeout > 0 {
		p.timer = time.AfterFunc(c.Timeout, func() {
			p.timedOut.Store(true)
			_ = cmd.Process.Signal(syscall.SIGTERM)
		})
	}
	return p, nil
}

// Wait waits for the command and returns what it left.
func (p *Proc) Wait() Result {
	err := p.Cmd.Wait()
	if p.timer != nil {
		p.timer.Stop()
	}
	var r Result
	if p.stdout != nil {
		r.Stdout = p.stdout.Bytes()
	}
	if p.stderr != nil {
		r.Stderr = p.stderr.Bytes()
	}
	r.RC = ExitCode(err)
	if p.timedOut.Load() {
		r.RC = 124
	}
	return r
}

// ExitCode turns a command's error into the status a shell would report.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 127
}

// Sh runs a command with stdout and stderr apart.
func Sh(args ...string) Result { return Cmd{Args: args}.Run() }

// Out runs a command and returns its stdout as $(cmd) would.
func Out(args ...string) string { return Sh(args...).Out() }

// All runs a command and returns stdout and stderr together as
// $(cmd 2>&1) would.
func All(args ...string) string {
	return Cmd{Args: args, Combined: true}.Run().Out()
}

// OneLine is $(cmd 2>&1 | tr '\n' ' '): every newline a space, the trailing
// one included.
func OneLine(args ...string) string {
	return strings.ReplaceAll(string(Cmd{Args: args, Combined: true}.Run().Stdout), "\n", " ")
}

// OnConsole runs a command with its output on the console and returns its
// exit status.
func OnConsole(args ...string) int {
	return Cmd{Args: args, Stdout: Console, Combined: true}.Run().RC
}

// Check runs CMD on the console, reports NAME_rc and returns its status.
func Check(name string, args ...string) int {
	rc := OnConsole(args...)
	Fact(name+"_rc", strconv.Itoa(rc))
	return rc
}

// DM is dmsetup without udev (there is none in the busybox guest).
func DM(args ...string) Cmd {
	return Cmd{Args: append([]string{"dmsetup"}, args...), Env: []string{"DM_DISABLE_UDEV=1"}}
}

// FirstLine is the first line of text (head -n1), without its newline.
func FirstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// CountLines is `wc -l`: the number of newlines.
func CountLines(b []byte) int { return bytes.Count(b, []byte("\n")) }

// Read returns a sysfs or /proc file as $(cat FILE) would (trailing
// newlines removed; "" when unreadable).
func Read(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimRight(string(b), "\n")
}

// ReadInt is Read as a number (0 when not one).
func ReadInt(path string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(Read(path)), 10, 64)
	return n
}

// Exists says whether path exists.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Glob is filepath.Glob without the error (patterns here are constant).
func Glob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

// Uptime is the first field of /proc/uptime, as the shell reported it.
func Uptime() string {
	f := strings.Fields(Read("/proc/uptime"))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// UptimeSeconds is Uptime as a number.
func UptimeSeconds() float64 {
	v, _ := strconv.ParseFloat(Uptime(), 64)
	return v
}

// DropCaches syncs and drops the page cache, so reads come from the disk.
func DropCaches() {
	syscall.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644)
}

// Mount is one line of /proc/mounts.
type Mount struct{ Source, Target, FSType, Options string }

// Mounts parses /proc/mounts.
func Mounts() []Mount { return ParseMounts(Read("/proc/mounts")) }

// ParseMounts parses mounts(5) lines (octal escapes are left as they are,
// as awk saw them).
func ParseMounts(text string) []Mount {
	var out []Mount
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		out = append(out, Mount{f[0], f[1], f[2], f[3]})
	}
	return out
}

// RootMount is the last mount on "/" (the one in effect).
func RootMount() Mount {
	var r Mount
	for _, m := range Mounts() {
		if m.Target == "/" {
			r = m
		}
	}
	return r
}

// RootDevice is RootMount's source, e.g. /dev/md127.
func RootDevice() string { return RootMount().Source }

// MountedUnder lists mount points that start with prefix, each followed by
// a space (awk ... | tr '\n' ' ').
func MountedUnder(prefix string) string {
	var b strings.Builder
	for _, m := range Mounts() {
		if strings.HasPrefix(m.Target, prefix) {
			b.WriteString(m.Target + " ")
		}
	}
	return b.String()
}

// Disk is a virtio disk as its sysfs shows it.
type Disk struct {
	Name, Dev, Serial string
	Bytes             int64
	LBS               string
	RO                string
}

// Disks lists /sys/block/vd* that have a serial, in name order.
func Disks() []Disk {
	var out []Disk
	for _, d := range Glob("/sys/block/vd*") {
		if !Exists(d + "/serial") {
			continue
		}
		n := filepath.Base(d)
		out = append(out, Disk{
			Name: n, Dev: "/dev/" + n, Serial: Read(d + "/serial"),
			Bytes: ReadInt(d+"/size") * 512, LBS: Read(d + "/queue/logical_block_size"), RO: Read(d + "/ro"),
		})
	}
	return out
}

// DiskBySerial is the /dev path of the virtio disk with that serial, or "".
func DiskBySerial(serial string) string {
	for _, d := range Disks() {
		if d.Serial == serial {
			return d.Dev
		}
	}
	return ""
}

// Names lists the entries of a directory as "a b c " (each followed by a
// space), in name order; "" for none.
func Names(dir string) string {
	var b strings.Builder
	for _, e := range Glob(dir + "/*") {
		b.WriteString(filepath.Base(e) + " ")
	}
	return b.String()
}

// DevName is the kernel name of block device MAJ:MIN (through
// /sys/dev/block, no udev needed).
func DevName(majmin string) string {
	p, err := filepath.EvalSymlinks("/sys/dev/block/" + majmin)
	if err != nil {
		return majmin
	}
	return filepath.Base(p)
}

// MDDir is the md sysfs directory of an array given as /dev/mdN.
func MDDir(md string) string { return "/sys/block/" + strings.TrimPrefix(md, "/dev/") + "/md" }

// MDAttr reads one md sysfs attribute of an array given as /dev/mdN.
func MDAttr(md, attr string) string { return Read(MDDir(md) + "/" + attr) }

// MDMembers lists the dev-* entries of an array, in name order.
func MDMembers(md string) []string {
	var out []string
	for _, m := range Glob(MDDir(md) + "/dev-*") {
		out = append(out, filepath.Base(m))
	}
	return out
}

// Recovering says whether md is recovering (sync_action contains "recover").
func Recovering(md string) bool { return strings.Contains(MDAttr(md, "sync_action"), "recover") }
