package process

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// httpdScript serves "<what> $PORT $PORT_WEB" over HTTP with busybox httpd on
// the port named by the variable port.
func httpdScript(what, port string) string {
	return `mkdir -p www && echo "` + what + ` $PORT $PORT_WEB" > www/index.html && echo ready && exec busybox httpd -f -p "$` + port + `" -h www`
}

// udpEcho answers each datagram to $PORT_DNS with "echo $PORT_DNS <it>"
// (Perl, which Debian always has: busybox's nc has no UDP).
const udpEcho = `perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => $ENV{PORT_DNS}, Proto => "udp") or die "udp: $!"; while ($s->recv($m, 1024)) { $s->send("echo $ENV{PORT_DNS} $m") }'`

// get fetches http://addr/ until it answers (the workload may still be
// starting its listener) and returns the body.
func get(t *testing.T, addr string) string {
	t.Helper()
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
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
		last = fmt.Errorf("%s: %s %v", addr, resp.Status, err)
	}
	t.Fatalf("GET http://%s/: %v", addr, last)
	return ""
}

// listenAddrs are the local addresses of host sockets in LISTEN (TCP) or
// bound (UDP) state on port, from /proc/net/{tcp,tcp6,udp,udp6}.
func listenAddrs(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		fh, err := os.Open("/proc/net/" + f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 4 {
				continue
			}
			hexAddr, hexPort, ok := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 32); !ok || err != nil || int(p) != port {
				continue
			}
			if strings.HasPrefix(f, "tcp") && fs[3] != "0A" {
				continue // not LISTEN
			}
			out = append(out, f+" "+hexAddr)
		}
		fh.Close()
	}
	return out
}

// assertLoopbackOnly fails unless whatever listens on the host at addr's
// port listens at 127.0.0.1 only.
func assertLoopbackOnly(t *testing.T, addr string) {
	t.Helper()
	host, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	if host != "127.0.0.1" {
		t.Fatalf("address %s is not on 127.0.0.1", addr)
	}
	got := listenAddrs(t, port)
	if len(got) == 0 {
		t.Fatalf("nothing listens on port %d", port)
	}
	for _, a := range got {
		if !strings.HasSuffix(a, " 0100007F") {
			t.Errorf("port %d: a socket at %s, want 127.0.0.1 (0100007F) only", port, a)
		}
	}
}

func newPortDriver(t *testing.T, dir string, o Options) *Driver {
	t.Helper()
	d, err := NewWith(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func stop(t *testing.T, d runtime.Driver, id string) {
	t.Helper()
	if err := d.Stop(runtimetest.Context(t), id, 0); err != nil {
		t.Fatal(err)
	}
	runtimetest.Wait(t, d, id)
}

// TestPortsPrivate: with a private network, the workload listens on its
// Spec's port (PORT and PORT_<NAME> say so) and the host reaches it at
// 127.0.0.1:<host port> only. UDP is refused: slirp4netns would drop the
// answers.
func TestPortsPrivate(t *testing.T) {
	d := newPortDriver(t, t.TempDir(), Options{})
	spec := sh(httpdScript("private", "PORT"))
	spec.Ports = []runtime.Port{{Name: "web", Port: 8080}, {Name: "admin", Port: 9090}}
	id := runtimetest.Start(t, d, spec)
	defer stop(t, d, id)
	st, err := d.Status(runtimetest.Context(t), id)
	if err != nil || len(st.Ports) != 2 || st.Ports["web"] == "" || st.Ports["admin"] == "" || st.Ports["web"] == st.Ports["admin"] {
		t.Fatalf("status %+v, %v; want two ports", st, err)
	}
	if got := get(t, st.Ports["web"]); got != "private 8080 8080" {
		t.Fatalf("got %q, want the Spec's port in PORT and PORT_WEB", got)
	}
	assertLoopbackOnly(t, st.Ports["web"])
	assertLoopbackOnly(t, st.Ports["admin"])

	udp := sh("true")
	udp.Ports = []runtime.Port{{Name: "dns", Port: 53, Protocol: "udp"}}
	if _, err := d.Start(runtimetest.Context(t), udp); !errors.Is(err, runtime.ErrUnsupported) || !strings.Contains(err.Error(), "UDP") {
		t.Fatalf("Start with a UDP port: %v, want ErrUnsupported saying why", err)
	}
}

// udpRoundTrip sends datagrams to addr until one is answered, and returns
// the answer.
func udpRoundTrip(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if _, err := c.Write([]byte("datagram")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n])
		}
	}
	t.Fatalf("no answer to UDP datagrams to %s", addr)
	return ""
}

// TestPortsHostNetwork: sharing the host's network (the driver's, a
// Spec's HostNetwork on a private one, and unsandboxed), the workload
// cannot have its Spec's number: PORT and PORT_<NAME> give it the host
// port, where the host reaches it (UDP too).
func TestPortsHostNetwork(t *testing.T) {
	for name, c := range map[string]struct {
		o       Options
		hostNet bool
	}{"host": {o: Options{Network: NetworkHost}}, "spec": {hostNet: true}, "unsandboxed": {o: Options{Unsandboxed: true}}} {
		t.Run(name, func(t *testing.T) {
			d := newPortDriver(t, t.TempDir(), c.o)
			spec := sh(udpEcho + " & " + httpdScript("host", "PORT_WEB"))
			spec.HostNetwork = c.hostNet
			spec.Ports = []runtime.Port{{Name: "web", Port: 80}, {Name: "dns", Port: 53, Protocol: "udp"}}
			id := runtimetest.Start(t, d, spec)
			defer stop(t, d, id)
			st, err := d.Status(runtimetest.Context(t), id)
			if err != nil {
				t.Fatal(err)
			}
			_, hp, _ := net.SplitHostPort(st.Ports["web"])
			if got := get(t, st.Ports["web"]); got != "host "+hp+" "+hp {
				t.Fatalf("got %q, want the host port %s in PORT and PORT_WEB", got, hp)
			}
			_, up, _ := net.SplitHostPort(st.Ports["dns"])
			if got := udpRoundTrip(t, st.Ports["dns"]); got != "echo "+up+" datagram" {
				t.Fatalf("UDP answer %q, want one from the host port %s", got, up)
			}
		})
	}
}

// TestPortsNoneRefused: without a network there is nothing to reach a
// port by: Start says so and starts nothing.
func TestPortsNoneRefused(t *testing.T) {
	dir := t.TempDir()
	d := newPortDriver(t, dir, Options{Network: NetworkNone})
	spec := sh("true")
	spec.Ports = []runtime.Port{{Name: "web", Port: 80}}
	if _, err := d.Start(runtimetest.Context(t), spec); err == nil || !strings.Contains(err.Error(), "process-network is none") {
		t.Fatalf("Start: %v, want a refusal naming the network", err)
	}
	if ids, _ := d.ids(); len(ids) != 0 {
		t.Fatalf("workloads %v left", ids)
	}
}

// TestPortsInvalid: bad ports are refused with a clear reason.
func TestPortsInvalid(t *testing.T) {
	// The host network, where UDP ports work.
	d := newPortDriver(t, t.TempDir(), Options{Network: NetworkHost})
	for _, c := range []struct {
		ports []runtime.Port
		want  string
	}{
		{[]runtime.Port{{Port: 80}}, "no name"},
		{[]runtime.Port{{Name: "a b", Port: 80}}, "only letters"},
		{[]runtime.Port{{Name: "web", Port: 80}, {Name: "web", Port: 81}}, "used twice"},
		{[]runtime.Port{{Name: "p-1", Port: 80}, {Name: "p_1", Port: 81}}, "PORT_P_1"},
		{[]runtime.Port{{Name: "web", Port: 0}}, "not between 1 and 65535"},
		{[]runtime.Port{{Name: "web", Port: 65536}}, "not between 1 and 65535"},
		{[]runtime.Port{{Name: "web", Port: 80, Protocol: "sctp"}}, "protocol"},
		{[]runtime.Port{{Name: "a", Port: 80}, {Name: "b", Port: 80, Protocol: "tcp"}}, "80/tcp"},
	} {
		spec := sh("true")
		spec.Ports = c.ports
		if _, err := d.Start(runtimetest.Context(t), spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ports %+v: %v, want an error saying %q", c.ports, err, c.want)
		}
	}
	// The same number over TCP and UDP is fine.
	spec := sh("true")
	spec.Ports = []runtime.Port{{Name: "a", Port: 53}, {Name: "b", Port: 53, Protocol: "udp"}}
	runtimetest.Wait(t, d, runtimetest.Start(t, d, spec))
}

// freeRange finds n consecutive ports that 127.0.0.1 can bind now, for a
// test's own narrow range.
func freeRange(t *testing.T, n int) (int, int) {
	t.Helper()
	for first := 40000 + int(time.Now().UnixNano()%1000)*10; first < 60000; first += n {
		ok := true
		for p := first; p < first+n && ok; p++ {
			ok = bindable(p, "tcp")
		}
		if ok {
			return first, first + n - 1
		}
	}
	t.Fatal("no free port range")
	return 0, 0
}

// TestPortLocks: drivers sharing a port lock directory (in one process or
// several) never hand out the same host port; a port is held until its
// workload is removed (not merely finished), then taken again; a port
// something else listens on is skipped.
func TestPortLocks(t *testing.T) {
	first, last := freeRange(t, 3)
	locks := t.TempDir()
	o := Options{PortFirst: first, PortLast: last, PortLockDir: locks}
	d1, d2 := newPortDriver(t, t.TempDir(), o), newPortDriver(t, t.TempDir(), o)
	// Something else listens on the first port of the range.
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(first))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	one := func(name string) runtime.Spec {
		spec := sh("echo ready; sleep 60")
		spec.Ports = []runtime.Port{{Name: name, Port: 80}}
		return spec
	}
	a := runtimetest.Start(t, d1, one("a"))
	b := runtimetest.Start(t, d2, one("b"))
	sa, _ := d1.Status(runtimetest.Context(t), a)
	sb, _ := d2.Status(runtimetest.Context(t), b)
	want := map[string]bool{"127.0.0.1:" + strconv.Itoa(first+1): true, "127.0.0.1:" + strconv.Itoa(first+2): true}
	if sa.Ports["a"] == sb.Ports["b"] || !want[sa.Ports["a"]] || !want[sb.Ports["b"]] {
		t.Fatalf("ports %v and %v, want %v", sa.Ports, sb.Ports, want)
	}
	if _, err := d1.Start(runtimetest.Context(t), one("c")); err == nil || !strings.Contains(err.Error(), "no free host port") {
		t.Fatalf("Start with the range used up: %v", err)
	}
	// Finished but not removed: still held.
	stop(t, d1, a)
	if _, err := d2.Start(runtimetest.Context(t), one("c")); err == nil {
		t.Fatal("a finished workload's port was handed out before Remove")
	}
	if err := d1.Remove(runtimetest.Context(t), a); err != nil {
		t.Fatal(err)
	}
	c := runtimetest.Start(t, d2, one("c"))
	defer stop(t, d2, c)
	defer stop(t, d2, b)
	if sc, _ := d2.Status(runtimetest.Context(t), c); sc.Ports["c"] != sa.Ports["a"] {
		t.Fatalf("port %v, want the removed workload's %s", sc.Ports, sa.Ports["a"])
	}
}

// TestPortsSurviveRestart: a driver restarted on the same state reports
// the same ports, still forwarded, and the ports stay held.
func TestPortsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	old, err := NewWith(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec := sh(httpdScript("kept", "PORT"))
	spec.Ports = []runtime.Port{{Name: "web", Port: 8080}}
	id := runtimetest.Start(t, old, spec)
	before, _ := old.Status(runtimetest.Context(t), id)
	get(t, before.Ports["web"])
	old.Close()

	d := newPortDriver(t, dir, Options{})
	defer stop(t, d, id)
	after, err := d.Status(runtimetest.Context(t), id)
	if err != nil || after.Ports["web"] != before.Ports["web"] {
		t.Fatalf("ports after the restart %v (%v), before %v", after.Ports, err, before.Ports)
	}
	if got := get(t, after.Ports["web"]); got != "kept 8080 8080" {
		t.Fatalf("got %q", got)
	}
}

// TestPortsQuickExit: a workload with ports that exits at once (before, or
// while, its ports are forwarded) has started all the same, and ends with
// its own exit code.
func TestPortsQuickExit(t *testing.T) {
	d := newPortDriver(t, t.TempDir(), Options{})
	var ports []runtime.Port
	for i := 0; i < 40; i++ {
		ports = append(ports, runtime.Port{Name: "p" + strconv.Itoa(i), Port: 8000 + i})
	}
	for i := 0; i < 10; i++ {
		spec := sh("exit 3")
		spec.Ports = ports
		id := runtimetest.Start(t, d, spec)
		if st := runtimetest.Wait(t, d, id); st.ExitCode != 3 {
			t.Fatalf("status %+v", st)
		}
	}
}
