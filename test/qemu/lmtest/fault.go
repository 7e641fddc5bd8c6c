package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	g "github.com/livemigrate/livemigrate/test/qemu/lmtest/guest"
)

// fault is what the fault scenarios (fault-*) share; the host side is
// test/qemu/faults.sh, which judges every fact reported here.
//
// A case NAME runs `livemigrate migrate` in the background with its JSON
// events in /run/NAME.jsonl and its stderr in /run/NAME.err, and reports:
//
//	NAME_rc        exit status (137 when this scenario killed it)
//	NAME_err       stderr, lines joined with " | "
//	NAME_events    event:step sequence, repeated progress samples squeezed
//	NAME_warnings  the warning events' messages, joined with " | "
//	NAME_plan      the plan event's "resume" field (empty for a fresh run)
//	NAME_md        md's members, sync_action, degraded and speed limits
//	NAME_legs      the "slot" lines of `livemigrate status`, joined with " | "
//	NAME_status    `livemigrate status` exit status and its "Live stack" line
//	NAME_shape     live-only | migrated:DEV | other:...  (from sysfs and dm)
//	NAME_records   acked=N and lmtest verify's counts for records 1..N
type fault struct {
	md     string // the root array, /dev/mdN
	writer *g.Proc
	wout   *os.File
	mig    *g.Proc // the current case's migrate
	rc     string  // the last case's exit status, as report prints it
}

func newFault() *fault {
	// No udev in the guest, for dmsetup here and livemigrate's children.
	os.Setenv("DM_DISABLE_UDEV", "1")
	return &fault{md: g.RootDevice(), rc: "?"}
}

// alive says whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	return !procZombie(string(b))
}

// procZombie reads /proc/PID/stat's state field ("PID (comm) S ..."; comm
// may hold spaces and parentheses, so the last ")" ends it).
func procZombie(stat string) bool {
	i := strings.LastIndex(stat, ")")
	if i < 0 {
		return false
	}
	f := strings.Fields(stat[i+1:])
	return len(f) > 0 && f[0] == "Z"
}

func (f *fault) migAlive() bool { return f.mig != nil && alive(f.mig.Process.Pid) }

// mdState is the array as sysfs shows it, on one line.
func (f *fault) mdState() string {
	var b strings.Builder
	b.WriteString("members=")
	for _, m := range g.MDMembers(f.md) {
		fmt.Fprintf(&b, "%s(%s),", strings.TrimPrefix(m, "dev-"), g.Read(g.MDDir(f.md)+"/"+m+"/state"))
	}
	fmt.Fprintf(&b, " sync_action=%s degraded=%s min=%s max=%s", g.MDAttr(f.md, "sync_action"),
		g.MDAttr(f.md, "degraded"), g.MDAttr(f.md, "sync_speed_min"), g.MDAttr(f.md, "sync_speed_max"))
	return b.String()
}

// shape is "live-only" when the only member is live-rw, in sync, nothing
// copying; "migrated:/dev/NAME" when the only member is NAME (not dm), in
// sync, and live-rw no longer exists; else "other: " and mdState.
func (f *fault) shape() string {
	ms := g.MDMembers(f.md)
	if len(ms) == 1 && g.Read(g.MDDir(f.md)+"/"+ms[0]+"/state") == "in_sync" && g.MDAttr(f.md, "sync_action") == "idle" {
		leg := strings.TrimPrefix(ms[0], "dev-")
		if g.Read("/sys/block/"+leg+"/dm/name") == "live-rw" {
			return "live-only"
		}
		if !g.Exists("/sys/block/"+leg+"/dm") && g.DM("info", "live-rw").Run().RC != 0 {
			return "migrated:/dev/" + leg
		}
	}
	return "other: " + f.mdState()
}

// writerStart: lmtest writer appends fsync'ed records to /root/records for
// the whole boot; /run/acked holds the highest acknowledged one.
func (f *fault) writerStart() {
	exe, _ := os.Executable()
	f.wout, _ = os.Create("/run/writer.out")
	p, err := g.Cmd{Args: []string{exe, "writer", "--file", "/root/records", "--acked", "/run/acked", "--interval", "20ms"},
		Stdout: f.wout, Combined: true}.Start()
	if err != nil {
		g.Say("fault: writer: %v", err)
	}
	f.writer = p
	time.Sleep(time.Second)
}

// records: every acknowledged record so far must read back intact from
// the array (page cache dropped first, so the bytes come from the legs).
func (f *fault) records(name string) {
	g.DropCaches()
	a := g.Read("/run/acked")
	w := "dead (" + strings.ReplaceAll(g.Read("/run/writer.out")+"\n", "\n", " ") + ")"
	if f.writer != nil && alive(f.writer.Process.Pid) {
		w = "alive"
	}
	upto := a
	if upto == "" {
		upto = "0"
	}
	g.Fact(name+"_records", "acked="+a+" writer="+w+" "+selfLine("verify", "--file", "/root/records", "--upto", upto))
}

// writerStop stops the writer and checks every record it acknowledged.
func (f *fault) writerStop() {
	rc := 127
	if f.writer != nil {
		_ = f.writer.Process.Signal(syscall.SIGTERM)
		rc = f.writer.Wait().RC
		f.wout.Close()
	}
	g.Fact("writer_rc", strconv.Itoa(rc))
	g.FactFile("writer_out", "/run/writer.out")
	f.records("final")
}

// start starts `livemigrate migrate ARGS...` in the background as case name.
func (f *fault) start(name string, args ...string) {
	_ = os.Remove("/run/" + name + ".err")
	out, _ := os.Create("/run/" + name + ".jsonl")
	errf, _ := os.Create("/run/" + name + ".err")
	p, err := g.Cmd{Args: append([]string{"livemigrate", "migrate"}, args...), Stdout: out, Stderr: errf}.Start()
	out.Close()
	errf.Close()
	if err != nil {
		g.Say("fault: %s: %v", name, err)
		f.mig = nil
		return
	}
	f.mig = p
	g.Fact(name+"_pid", strconv.Itoa(p.Process.Pid))
	g.Fact(name+"_cmd", "livemigrate migrate "+strings.Join(args, " "))
}

// signal sends sig to the current case's migrate.
func (f *fault) signal(sig syscall.Signal) {
	if f.mig != nil {
		_ = f.mig.Process.Signal(sig)
	}
}

func jsonlOf(name string) string { return g.Read("/run/" + name + ".jsonl") }

// untilEv waits until a JSON line of name matches re, for at most secs
// seconds. Fails on timeout, or when the process exited without printing it.
func (f *fault) untilEv(name string, secs int, re string) bool {
	rx := regexp.MustCompile(re)
	for i := 0; i < secs*20; i++ {
		if rx.MatchString(jsonlOf(name)) {
			return true
		}
		if !f.migAlive() {
			return rx.MatchString(jsonlOf(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// signalAtStep sends sig to name's migrate as soon as it reports that step
// starts (waiting at most secs), and says so in the facts NAME_sent and
// NAME_sent_STEP ("INT on step-start STEP"). It reports whether it was
// sent.
func (f *fault) signalAtStep(name, step string, sig syscall.Signal, secs int) bool {
	if !f.untilEv(name, secs, `"event":"step-start","step":"`+regexp.QuoteMeta(step)+`"`) {
		return false
	}
	f.signal(sig)
	what := strings.TrimPrefix(unix.SignalName(sig), "SIG") + " on step-start " + step
	g.Fact(name+"_sent", what)
	g.Fact(name+"_sent_"+step, what)
	return true
}

var percentRE = regexp.MustCompile(`"percent":([0-9]*)`)

// pct is the integer percent of name's last progress event ("" if none).
func pct(name string) string { return lastPercent(jsonlOf(name)) }

func lastPercent(jsonl string) string {
	last := ""
	for _, l := range strings.Split(jsonl, "\n") {
		if strings.Contains(l, `"event":"progress"`) {
			last = l
		}
	}
	m := percentRE.FindAllStringSubmatch(last, -1)
	if m == nil {
		return ""
	}
	return m[len(m)-1][1]
}

// untilPct waits until recovery progress reaches p percent.
func (f *fault) untilPct(name string, secs, p int) bool {
	for i := 0; i < secs*10; i++ {
		if n, err := strconv.Atoi(pct(name)); err == nil && n >= p {
			return true
		}
		if !f.migAlive() {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// wait reaps the current case's migrate and returns its status.
func (f *fault) wait() int {
	if f.mig == nil {
		return 127
	}
	rc := f.mig.Wait().RC
	f.rc = strconv.Itoa(rc)
	return rc
}

// finish waits (bounded, secs) for the migrate of name and reports it.
func (f *fault) finish(name string, secs int) {
	i := 0
	for f.migAlive() && i < secs*10 {
		time.Sleep(100 * time.Millisecond)
		i++
	}
	// A process seen alive once more gets a second look a moment later
	// before it is called hung (exit of a multi-threaded process).
	if f.migAlive() {
		time.Sleep(time.Second)
		if f.migAlive() {
			pid := strconv.Itoa(f.mig.Process.Pid)
			g.Fact(name+"_hung", fmt.Sprintf("still running after %ds (uptime %s): %s; killed", i/10, g.Uptime(), firstChars("/proc/"+pid+"/stat", 40)))
			f.signal(syscall.SIGKILL)
		}
	}
	g.Fact(name+"_rc", strconv.Itoa(f.wait()))
	f.report(name)
}

var (
	eventStepRE = regexp.MustCompile(`^.*"event":"([a-z-]+)"(,"step":"([a-z-]+)")?.*$`)
	messageRE   = regexp.MustCompile(`^.*"message":"(([^"\\]|\\.)*)".*$`)
	resumeRE    = regexp.MustCompile(`^.*"resume":"([^"]*)".*$`)
	spacesRE    = regexp.MustCompile(` +`)
)

// events is the event:step sequence of a JSON event stream, repeats
// squeezed, each followed by a space.
func events(jsonl string) string {
	var out []string
	for _, l := range strings.Split(jsonl, "\n") {
		m := eventStepRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		e := m[1] + ":" + m[3]
		if len(out) == 0 || out[len(out)-1] != e {
			out = append(out, e)
		}
	}
	return spaced(out)
}

// warnings are the warning events' messages, each followed by " | ".
func warnings(jsonl string) string {
	var b strings.Builder
	for _, l := range strings.Split(jsonl, "\n") {
		if !strings.Contains(l, `"event":"warning"`) {
			continue
		}
		if m := messageRE.FindStringSubmatch(l); m != nil {
			b.WriteString(m[1] + " | ")
		}
	}
	return b.String()
}

// planResume is the "resume" field of the first plan event.
func planResume(jsonl string) string {
	for _, l := range strings.Split(jsonl, "\n") {
		if strings.Contains(l, `"event":"plan"`) {
			if m := resumeRE.FindStringSubmatch(l); m != nil {
				return m[1]
			}
			return ""
		}
	}
	return ""
}

// squeezed picks the lines of text matching re, runs of spaces squeezed,
// each followed by sep.
func squeezed(text, re, sep string) string {
	rx := regexp.MustCompile(re)
	var b strings.Builder
	for _, l := range g.Lines([]byte(text)) {
		if rx.MatchString(l) {
			b.WriteString(spacesRE.ReplaceAllString(l, " ") + sep)
		}
	}
	return b.String()
}

// joinedLines is each line of text followed by " | ".
func joinedLines(text []byte) string {
	var b strings.Builder
	for _, l := range g.Lines(text) {
		b.WriteString(l + " | ")
	}
	return b.String()
}

// status runs `livemigrate status` into /run/status.txt.
func status(path string) (string, int) {
	r := g.Cmd{Args: []string{"livemigrate", "status"}, Combined: true}.Run()
	_ = os.WriteFile(path, r.Stdout, 0o644)
	return string(r.Stdout), r.RC
}

// report reports everything about name's run and the state it left.
func (f *fault) report(name string) {
	errb, _ := os.ReadFile("/run/" + name + ".err")
	jsonl := jsonlOf(name)
	g.Fact(name+"_err", joinedLines(errb))
	g.Fact(name+"_events", events(jsonl))
	g.Fact(name+"_warnings", warnings(jsonl))
	g.Fact(name+"_plan", planResume(jsonl))
	g.Fact(name+"_lastpct", lastPercent(jsonl))
	g.Fact(name+"_md", f.mdState())
	g.Fact(name+"_shape", f.shape())
	st, src := status("/run/status.txt")
	g.Fact(name+"_legs", squeezed(st, `^  slot`, " | "))
	g.Fact(name+"_status", "rc="+strconv.Itoa(src)+" "+squeezed(st, `^(Live stack|  COW|  headroom)`, " "))
	f.records(name)
	g.Say("--- case %s: rc=%s", name, f.rc)
	_, _ = g.Console.Write(errb)
	for _, l := range g.Lines([]byte(jsonl)) {
		if !strings.Contains(l, `"event":"progress"`) {
			if len(l) > 300 {
				l = l[:300]
			}
			g.Say("%s", l)
		}
	}
}

// bounded runs `livemigrate ARGS...` for at most secs seconds (124 then),
// stdout and stderr apart.
func bounded(secs int, args ...string) g.Result {
	return g.Cmd{Args: append([]string{"livemigrate"}, args...), Timeout: time.Duration(secs) * time.Second}.Run()
}

// holders lists the holders of disk n and of its partitions, each
// followed by a space.
func holders(n string) string {
	h := g.Glob("/sys/block/" + n + "/holders/*")
	h = append(h, g.Glob("/sys/block/"+n+"/"+n+"*/holders/*")...)
	var names []string
	for _, p := range h {
		names = append(names, p[strings.LastIndex(p, "/")+1:])
	}
	return spaced(names)
}

// copyLinesUntil copies lines from r to w until one contains stop (copied
// too) or r ends.
func copyLinesUntil(r io.Reader, w io.Writer, stop string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		fmt.Fprintln(w, sc.Text())
		if strings.Contains(sc.Text(), stop) {
			return
		}
	}
}
