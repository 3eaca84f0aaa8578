package runtimetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// The cases of long-running services: ports the server reaches on
// 127.0.0.1, commands run inside a running workload (exec) and what it
// uses. Their workloads use busybox's applets by name (httpd, stty), which
// the process driver finds on the host's PATH and the docker driver in the
// test image.

// httpGet fetches http://addr/ until it answers with 200 (the workload may
// still be starting its listener) and returns the body, trimmed.
func httpGet(t *testing.T, addr string) string {
	t.Helper()
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
		if err != nil {
			last = err
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return strings.TrimSpace(string(b))
		}
		last = errors.New(resp.Status)
	}
	t.Fatalf("GET http://%s/: %v", addr, last)
	return ""
}

// serveScript serves, with busybox httpd, "<PORT> <PORT_WEB>" on $PORT and
// "admin <PORT_ADMIN_API>" on $PORT_ADMIN_API.
const serveScript = `mkdir -p /tmp/web /tmp/admin &&
echo "$PORT $PORT_WEB" > /tmp/web/index.html &&
echo "admin $PORT_ADMIN_API" > /tmp/admin/index.html &&
busybox httpd -p "$PORT_ADMIN_API" -h /tmp/admin &&
exec busybox httpd -f -p "$PORT" -h /tmp/web`

// testPorts: every port of a Spec is reachable from the server at the
// loopback address Status.Ports gives; the workload learns its numbers
// from PORT and PORT_<NAME>; another driver on the same state reports the
// same addresses; a PORT the Spec's Env sets is kept.
func testPorts(t *testing.T, s *suite) {
	dir := t.TempDir()
	d, _ := s.open(t, dir)
	spec := s.sh(serveScript)
	spec.Name = s.name("ports")
	spec.Ports = []runtime.Port{{Name: "web", Port: 8080, Protocol: "tcp"}, {Name: "admin-api", Port: 9090}}
	id := Start(t, d, spec)
	defer stopAndWait(t, d, id)
	st, err := d.Status(Context(t), id)
	if err != nil || st.State != runtime.StateRunning || len(st.Ports) != 2 {
		t.Fatalf("status %+v, %v; want running with two ports", st, err)
	}
	for name, addr := range st.Ports {
		host, port, err := net.SplitHostPort(addr)
		if n, _ := strconv.Atoi(port); err != nil || host != "127.0.0.1" || n < 1 || n > 65535 {
			t.Fatalf("port %s at %q, want 127.0.0.1:<port>", name, addr)
		}
	}
	if st.Ports["web"] == st.Ports["admin-api"] {
		t.Fatalf("both ports at %s", st.Ports["web"])
	}
	// PORT is the first port's number and PORT_WEB the same: the Spec's,
	// or, where the workload shares the host's network, the host port.
	_, hostWeb, _ := net.SplitHostPort(st.Ports["web"])
	got := httpGet(t, st.Ports["web"])
	if got != "8080 8080" && got != hostWeb+" "+hostWeb {
		t.Errorf("web says %q, want PORT and PORT_WEB 8080 (or %s, the host port)", got, hostWeb)
	}
	_, hostAdmin, _ := net.SplitHostPort(st.Ports["admin-api"])
	if got := httpGet(t, st.Ports["admin-api"]); got != "admin 9090" && got != "admin "+hostAdmin {
		t.Errorf("admin-api says %q, want PORT_ADMIN_API 9090 (or %s)", got, hostAdmin)
	}
	// A second driver on the same state (a restarted server) sees the
	// same addresses.
	other, _ := s.open(t, dir)
	if again, err := other.Status(Context(t), id); err != nil || len(again.Ports) != 2 ||
		again.Ports["web"] != st.Ports["web"] || again.Ports["admin-api"] != st.Ports["admin-api"] {
		t.Errorf("another driver reports %v (%v), want %v", again.Ports, err, st.Ports)
	}

	// Variables the Spec sets win.
	own := s.sh(`echo "$PORT $PORT_WEB"`)
	own.Env = map[string]string{"PORT": "7"}
	own.Ports = []runtime.Port{{Name: "web", Port: 8080}}
	oid := Start(t, d, own)
	Wait(t, d, oid)
	if got := Texts(t, Logs(t, d, oid, false), "stdout"); len(got) != 1 || !strings.HasPrefix(got[0], "7 ") || got[0] == "7 " {
		t.Errorf("PORT and PORT_WEB %q, want the Env's 7 and a number", got)
	}
}

// testPortsInvalid: ports that cannot be are refused, and nothing starts.
func testPortsInvalid(t *testing.T, s *suite) {
	d := s.driver(t)
	for _, ports := range [][]runtime.Port{
		{{Name: "web", Port: 80}, {Name: "web", Port: 81}},
		{{Name: "web", Port: 0}},
		{{Name: "web", Port: 70000}},
		{{Name: "web", Port: 80, Protocol: "sctp"}},
		{{Name: "a", Port: 80}, {Name: "b", Port: 80}},
	} {
		spec := s.h.Spec("true")
		spec.Labels = s.labels("case", "ports-invalid")
		spec.Ports = ports
		if id, err := d.Start(Context(t), spec); err == nil {
			t.Errorf("Start with ports %+v: started %s", ports, id)
		}
	}
	if l, err := d.List(Context(t), s.labels("case", "ports-invalid")); err != nil || len(l) != 0 {
		t.Errorf("List = %+v, %v; want nothing", l, err)
	}
}

func stopAndWait(t *testing.T, d runtime.Driver, id string) {
	t.Helper()
	if err := d.Stop(Context(t), id, 0); err != nil {
		t.Errorf("Stop: %v", err)
	}
	Wait(t, d, id)
}

// running starts a workload that says ready and then sleeps, with env,
// and returns once it runs.
func (s *suite) running(t *testing.T, d runtime.Driver, env map[string]string) string {
	t.Helper()
	spec := s.sh("echo here > /tmp/from-workload; echo ready; sleep 120")
	spec.Env = env
	id := Start(t, d, spec)
	waitFor(t, d, id, "ready")
	return id
}

// execOut runs spec in id and returns its exit code, stdout and stderr.
func execOut(t *testing.T, d runtime.Driver, id string, spec runtime.ExecSpec) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &errb
	code, err := d.Exec(Context(t), id, spec)
	if err != nil {
		t.Fatalf("Exec(%q): %v", spec.Command, err)
	}
	return code, out.String(), errb.String()
}

// testExec: a command runs inside a running workload with its
// environment (plus the exec's), input, output and exit code, as the
// workload's user.
func testExec(t *testing.T, s *suite) {
	d := s.driver(t)
	id := s.running(t, d, map[string]string{"WORKLOAD_VAR": "from-workload", "SHARED": "workload"})
	defer stopAndWait(t, d, id)

	code, out, errs := execOut(t, d, id, runtime.ExecSpec{
		Command: []string{"/bin/sh", "-c", `echo out; echo err >&2; echo "$WORKLOAD_VAR $EXEC_VAR $SHARED"; exit 3`},
		Env:     map[string]string{"EXEC_VAR": "from exec", "SHARED": "exec"},
	})
	if code != 3 || out != "out\nfrom-workload from exec exec\n" || errs != "err\n" {
		t.Errorf("exec: code %d, stdout %q, stderr %q; want 3, the workload's and the exec's variables (the exec's winning), err", code, out, errs)
	}
	// Input until EOF; no shell is implied.
	code, out, _ = execOut(t, d, id, runtime.ExecSpec{Command: []string{"cat"}, Stdin: strings.NewReader("line one\nno newline")})
	if code != 0 || out != "line one\nno newline" {
		t.Errorf("cat: code %d, stdout %q", code, out)
	}
	code, out, _ = execOut(t, d, id, runtime.ExecSpec{Command: []string{"echo", "$HOME", "a  b"}})
	if code != 0 || out != "$HOME a  b\n" {
		t.Errorf("echo: code %d, stdout %q", code, out)
	}
	// WorkDir.
	if _, out, _ = execOut(t, d, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", "pwd"}, WorkDir: "/tmp"}); out != "/tmp\n" {
		t.Errorf("pwd in /tmp: %q", out)
	}
	// The workload's file system: what it wrote to its /tmp.
	if _, out, _ = execOut(t, d, id, runtime.ExecSpec{Command: []string{"cat", "/tmp/from-workload"}}); out != "here\n" {
		t.Errorf("the workload's /tmp/from-workload: %q", out)
	}
	// Output nobody reads is discarded (nil writers).
	if code, err := d.Exec(Context(t), id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", "echo x; echo y >&2; exit 5"}}); err != nil || code != 5 {
		t.Errorf("nil writers: %d, %v", code, err)
	}
	// A command that does not exist fails, as a code or an error.
	if code, err := d.Exec(Context(t), id, runtime.ExecSpec{Command: []string{"/no/such/program"}}); err == nil && code == 0 {
		t.Error("a missing program ran")
	}
	if _, err := d.Exec(Context(t), id, runtime.ExecSpec{}); err == nil {
		t.Error("Exec without a command: no error")
	}
}

// testExecUser: the exec'd command is the workload's user.
func testExecUser(t *testing.T, s *suite) {
	d := s.driver(t)
	spec := s.sh(`echo "uid $(id -u) gid $(id -g)"; echo ready; sleep 120`)
	id := Start(t, d, spec)
	defer stopAndWait(t, d, id)
	waitFor(t, d, id, "ready")
	var want string
	for _, l := range Texts(t, Logs(t, d, id, false), "stdout") {
		if strings.HasPrefix(l, "uid ") {
			want = l
		}
	}
	_, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", `echo "uid $(id -u) gid $(id -g)"`}})
	if strings.TrimSpace(out) != want {
		t.Errorf("exec runs as %q, the workload as %q", out, want)
	}
}

// testExecEndlessInput: an input that never ends (a client's open
// connection) does not keep Exec from returning once the command exits.
func testExecEndlessInput(t *testing.T, s *suite) {
	d := s.driver(t)
	id := s.running(t, d, nil)
	defer stopAndWait(t, d, id)
	in, _ := io.Pipe() // never written, never closed
	ctx, cancel := context.WithTimeout(Context(t), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	code, err := d.Exec(ctx, id, runtime.ExecSpec{Command: []string{"echo", "done"}, Stdin: in, Stdout: &out})
	if err != nil || code != 0 || out.String() != "done\n" {
		t.Fatalf("Exec: %d, %v, %q; want it back once echo exited", code, err, out.String())
	}
}

// testExecCancel: cancelling the context ends the command, and what it
// started, and Exec returns.
func testExecCancel(t *testing.T, s *suite) {
	d := s.driver(t)
	id := s.running(t, d, nil)
	defer stopAndWait(t, d, id)
	ctx, cancel := context.WithCancel(Context(t))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := d.Exec(ctx, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", "sleep 100 & echo started; sleep 101; wait"}, Stdout: pw})
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() || sc.Text() != "started" {
		t.Fatalf("first line %q", sc.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Exec did not return after its context was cancelled")
	}
	// Neither sleep is left in the workload.
	_, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", `for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline 2>/dev/null; echo; done`}})
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "sleep 100") || strings.HasPrefix(l, "sleep 101") {
			t.Errorf("left running after the cancel: %q", l)
		}
	}
}

// testExecNotRunning: no exec into a finished workload or an unknown one.
func testExecNotRunning(t *testing.T, s *suite) {
	d := s.driver(t)
	id := Start(t, d, s.h.Spec("true"))
	Wait(t, d, id)
	if _, err := d.Exec(Context(t), id, runtime.ExecSpec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotRunning) {
		t.Errorf("Exec into a finished workload: %v, want ErrNotRunning", err)
	}
	if _, err := d.Usage(Context(t), id); !errors.Is(err, runtime.ErrNotRunning) {
		t.Errorf("Usage of a finished workload: %v, want ErrNotRunning", err)
	}
	if err := d.Remove(Context(t), id); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{id, "no-such-workload", strings.Repeat("ab", 12)} {
		if _, err := d.Exec(Context(t), id, runtime.ExecSpec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Exec(%s): %v, want ErrNotFound", id, err)
		}
		if _, err := d.Usage(Context(t), id); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Usage(%s): %v, want ErrNotFound", id, err)
		}
	}
}

var sizeLine = regexp.MustCompile(`^\d+ \d+$`)

// testExecTTY: with TTY the command has a terminal of the given size,
// resized on request, its output all on stdout.
func testExecTTY(t *testing.T, s *suite) {
	d := s.driver(t)
	id := s.running(t, d, nil)
	defer stopAndWait(t, d, id)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	resize := make(chan runtime.TermSize, 1)
	var errb bytes.Buffer
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := d.Exec(Context(t), id, runtime.ExecSpec{
			Command: []string{"/bin/sh", "-c", `[ -t 0 ] && [ -t 1 ] && echo tty; busybox stty size; echo err >&2; read x; busybox stty size; exit 4`},
			Stdin:   inR, Stdout: outW, Stderr: &errb,
			TTY: true, Size: runtime.TermSize{Rows: 24, Cols: 80}, Resize: resize,
		})
		outW.Close()
		done <- result{code, err}
	}()
	sc := bufio.NewScanner(outR)
	var lines []string
	next := func() string {
		t.Helper()
		for sc.Scan() {
			l := strings.TrimRight(sc.Text(), "\r")
			lines = append(lines, l)
			if l == "tty" || l == "err" || sizeLine.MatchString(l) {
				return l
			}
		}
		t.Fatalf("output ended: %q", lines)
		return ""
	}
	if l := next(); l != "tty" {
		t.Fatalf("got %q, want a terminal", lines)
	}
	if l := next(); l != "24 80" {
		t.Fatalf("got %q, want size 24 80", lines)
	}
	if l := next(); l != "err" {
		t.Fatalf("got %q, want stderr on the terminal too", lines)
	}
	resize <- runtime.TermSize{Rows: 30, Cols: 100}
	// The resize is delivered before the input that asks for the size
	// again, or the command would race it: give it a moment.
	time.Sleep(500 * time.Millisecond)
	if _, err := inW.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	if l := next(); l != "30 100" {
		t.Fatalf("got %q, want size 30 100 after the resize", lines)
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	r := <-done
	inW.Close()
	if r.err != nil || r.code != 4 {
		t.Errorf("Exec: %d, %v; want exit 4", r.code, r.err)
	}
	if errb.Len() != 0 {
		t.Errorf("stderr %q with a terminal, want all on stdout", errb.String())
	}
}

// testUsage: a running workload uses memory and, having worked, CPU.
func testUsage(t *testing.T, s *suite) {
	d := s.driver(t)
	id := Start(t, d, s.sh(`i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo ready; sleep 120`))
	defer stopAndWait(t, d, id)
	waitFor(t, d, id, "ready")
	before := time.Now()
	u, err := d.Usage(Context(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if u.MemoryBytes <= 0 || u.CPU <= 0 || u.At.Before(before.Add(-time.Minute)) || u.At.After(time.Now().Add(time.Minute)) {
		t.Errorf("usage %+v, want memory, CPU time and the time of the sample", u)
	}
	// CPU time only grows.
	u2, err := d.Usage(Context(t), id)
	if err != nil || u2.CPU < u.CPU {
		t.Errorf("second sample %+v (%v) after %+v", u2, err, u)
	}
}
