package process

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

func newDriverNet(t *testing.T, dir, network string) *Driver {
	t.Helper()
	d, err := NewWith(dir, Options{Network: network})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if n := d.Notice(); strings.Contains(n, "cannot be sandboxed") {
		t.Fatalf("notice %q", n)
	}
	return d
}

// hostListeners opens TCP listeners on the host's loopback (127.0.0.1,
// and ::1 where the host has it) that count the connections they get.
func hostListeners(t *testing.T) (addrs []string, accepted *atomic.Int32) {
	t.Helper()
	accepted = new(atomic.Int32)
	for _, a := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			if a == "127.0.0.1:0" {
				t.Fatal(err)
			}
			t.Logf("no %s on this host: %v", a, err)
			continue
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, accepted
}

// connectScript tries a TCP connection to each address (bash's /dev/tcp:
// the sandbox has bash, not nc) and prints "reached ADDR" or "refused ADDR".
func connectScript(addrs []string) string {
	var s []string
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		s = append(s, fmt.Sprintf(`if timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%s' 2>/dev/null; then echo "reached %s"; else echo "refused %s"; fi`, host, port, a, a))
	}
	return strings.Join(s, "\n")
}

// TestNetworkNoHostLoopback: with a private network or none, a workload
// cannot reach a service listening on the host's loopback, neither at
// 127.0.0.1/::1 (its own loopback) nor through slirp4netns' gateway
// 10.0.2.2 (which would lead to the host's 127.0.0.1 without
// --disable-host-loopback).
func TestNetworkNoHostLoopback(t *testing.T) {
	addrs, accepted := hostListeners(t)
	for _, mode := range []string{NetworkPrivate, NetworkNone} {
		t.Run(mode, func(t *testing.T) {
			d := newDriverNet(t, t.TempDir(), mode)
			try := slices.Clone(addrs)
			_, port, _ := net.SplitHostPort(addrs[0])
			try = append(try, "10.0.2.2:"+port)
			id := runtimetest.Start(t, d, sh(connectScript(try)))
			if st := runtimetest.Wait(t, d, id); st.ExitCode != 0 {
				t.Fatalf("status %+v", st)
			}
			got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout")
			for _, a := range try {
				if !slices.Contains(got, "refused "+a) {
					t.Errorf("%s: %q, want refused %s", mode, got, a)
				}
			}
			if n := accepted.Load(); n != 0 {
				t.Fatalf("the host's loopback listeners got %d connections from the sandbox", n)
			}
		})
	}
}

// TestNetworkHostOptOut: NetworkHost shares the host's network (the
// workload reaches the host's loopback), and the driver says so.
func TestNetworkHostOptOut(t *testing.T) {
	addrs, accepted := hostListeners(t)
	d := newDriverNet(t, t.TempDir(), NetworkHost)
	if n := d.Notice(); !strings.Contains(n, "share the host's network") {
		t.Fatalf("notice %q", n)
	}
	id := runtimetest.Start(t, d, sh(connectScript(addrs[:1])))
	runtimetest.Wait(t, d, id)
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout"); !slices.Equal(got, []string{"reached " + addrs[0]}) {
		t.Fatalf("got %q", got)
	}
	if accepted.Load() == 0 {
		t.Fatal("the listener got no connection")
	}
}

// routeScript prints, as the command's very first action, the interfaces
// of the sandbox's routes, its network devices, whether its resolv.conf
// names a loopback resolver, whether its own loopback is up (a
// connection to 127.0.0.1 is refused, not unreachable) and how many name
// servers it has.
const routeScript = `while read -r iface dest rest; do echo "route $iface $dest"; done </proc/net/route
while read -r dev rest; do echo "dev ${dev%:}"; done </proc/net/dev
if grep -Eq '^nameserver[[:space:]]+(127\.|::1|0\.0\.0\.0)' /etc/resolv.conf; then echo "loopback resolver"; fi
if bash -c 'exec 3<>/dev/tcp/127.0.0.1/9' 2>&1 | grep -q 'Connection refused'; then echo "lo up"; fi
grep -c '^nameserver' /etc/resolv.conf`

// TestNetworkHostPerWorkload: on a driver with a private network, a Spec
// with HostNetwork reaches the host's loopback, and keeps the rest of its
// sandbox (its own uid, PID namespace and root); the next workload
// without it does not reach the host's loopback.
func TestNetworkHostPerWorkload(t *testing.T) {
	addrs, accepted := hostListeners(t)
	d := newDriverNet(t, t.TempDir(), NetworkPrivate)
	spec := sh(connectScript(addrs[:1]) + "\necho pid $$; id -u; ls /")
	spec.HostNetwork = true
	id := runtimetest.Start(t, d, spec)
	runtimetest.Wait(t, d, id)
	got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout")
	if !slices.Contains(got, "reached "+addrs[0]) || !slices.Contains(got, "pid 1") || !slices.Contains(got, "work") || slices.Contains(got, "root") {
		t.Fatalf("got %q: want the host's loopback reached from the workload's own sandbox", got)
	}
	if os.Geteuid() == 0 && slices.Contains(got, "0") {
		t.Fatalf("got %q: the workload ran as root", got)
	}
	n := accepted.Load()
	if n == 0 {
		t.Fatal("the listener got no connection")
	}
	id = runtimetest.Start(t, d, sh(connectScript(addrs[:1])))
	runtimetest.Wait(t, d, id)
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout"); !slices.Equal(got, []string{"refused " + addrs[0]}) || accepted.Load() != n {
		t.Fatalf("got %q without HostNetwork", got)
	}
	// An exec into a workload with HostNetwork has its network.
	spec = sh("echo ready; sleep 60")
	spec.HostNetwork = true
	id = runtimetest.Start(t, d, spec)
	defer stop(t, d, id)
	waitReady(t, d, id)
	if code, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"sh", "-c", connectScript(addrs[:1])}}); code != 0 || out != "reached "+addrs[0]+"\n" {
		t.Fatalf("exec: %d %q", code, out)
	}
}

// TestNetworkPrivateConfigured: with a private network, tap0 is up with
// a default route before the command starts (its first action sees it, in
// every run), and the sandbox's resolv.conf names no loopback resolver.
func TestNetworkPrivateConfigured(t *testing.T) {
	dir := t.TempDir()
	d := newDriverNet(t, dir, "") // the default
	if !strings.Contains(d.Isolation(), "network: private") {
		t.Fatalf("isolation %q", d.Isolation())
	}
	for i := 0; i < 3; i++ {
		id := runtimetest.Start(t, d, sh(routeScript))
		if st := runtimetest.Wait(t, d, id); st.ExitCode != 0 {
			t.Fatalf("status %+v", st)
		}
		got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout")
		if !slices.Contains(got, "route tap0 00000000") || !slices.Contains(got, "dev tap0") || !slices.Contains(got, "lo up") {
			t.Fatalf("run %d: %q, want a default route through tap0 from the start", i, got)
		}
		if slices.Contains(got, "loopback resolver") || got[len(got)-1] == "0" {
			t.Fatalf("resolv.conf: %q", got)
		}
		assertNoSlirp(t, filepath.Join(dir, id))
	}
}

// TestNetworkNoneLoopbackOnly: NetworkNone leaves the sandbox its own
// loopback and nothing else.
func TestNetworkNoneLoopbackOnly(t *testing.T) {
	d := newDriverNet(t, t.TempDir(), NetworkNone)
	id := runtimetest.Start(t, d, sh(routeScript))
	runtimetest.Wait(t, d, id)
	got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout")
	for _, l := range got {
		if strings.HasPrefix(l, "route ") && l != "route Iface Destination" || strings.HasPrefix(l, "dev ") && !slices.Contains([]string{"dev Inter-|", "dev face", "dev lo"}, l) {
			t.Fatalf("%q: more than a loopback", got)
		}
	}
	if !slices.Contains(got, "lo up") {
		t.Fatalf("%q: no loopback", got)
	}
}

// assertNoSlirp fails if a process still holds the run's net.exit (every
// slirp4netns of the run does: its --exit-fd), or if any slirp4netns
// (not a zombie) of this test's runs is left.
func assertNoSlirp(t *testing.T, runDir string) {
	t.Helper()
	want := filepath.Join(runDir, "net.exit")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		fds, err := os.ReadDir("/proc/" + e.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); l == want {
				comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
				t.Fatalf("process %s (%s) of the finished run is left", e.Name(), strings.TrimSpace(string(comm)))
			}
		}
	}
}

// slirps counts the live slirp4netns processes of the runs of the driver
// with state directory dir (they hold its net.exit FIFOs open): other
// tests' runs, even in other test binaries, may have theirs meanwhile.
func slirps(dir string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "slirp4netns" {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || gone(pid) {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); strings.HasPrefix(l, dir+"/") {
				n++
				break
			}
		}
	}
	return n
}

// TestNetworkSlirpEndsWithRun: slirp4netns runs while the workload does
// and is gone when it ended, stopped or hit its deadline.
func TestNetworkSlirpEndsWithRun(t *testing.T) {
	dir := t.TempDir()
	d := newDriverNet(t, dir, NetworkPrivate)
	before := slirps(dir)
	id := runtimetest.Start(t, d, sh("echo ready; sleep 600"))
	// A failing check must not leave the run behind (cleanups run last
	// first: before the driver's Close).
	t.Cleanup(func() { _ = d.Stop(context.Background(), id, 0) })
	waitReady(t, d, id)
	if n := slirps(dir); n != before+1 {
		t.Fatalf("%d slirp4netns while the run runs, %d before", n, before)
	}
	// Only the shim's network code may hold the sandbox's go-ahead FIFO:
	// a slirp4netns holding it would keep the sandbox waiting forever
	// should that code die.
	for _, h := range fdHolders(filepath.Join(dir, id, "net.block")) {
		if strings.HasSuffix(h, " slirp4netns") {
			t.Fatalf("net.block open in slirp4netns (%s)", h)
		}
	}
	if err := d.Stop(runtimetest.Context(t), id, time.Second); err != nil {
		t.Fatal(err)
	}
	runtimetest.Wait(t, d, id)
	assertNoSlirp(t, filepath.Join(dir, id))
	dl := runtimetest.Start(t, d, runtime.Spec{Command: []string{"sleep", "600"}, Deadline: 500 * time.Millisecond})
	runtimetest.Wait(t, d, dl)
	assertNoSlirp(t, filepath.Join(dir, dl))
	ex := runtimetest.Start(t, d, sh("exit 3"))
	if st := runtimetest.Wait(t, d, ex); st.ExitCode != 3 {
		t.Fatalf("status %+v", st)
	}
	assertNoSlirp(t, filepath.Join(dir, ex))
	if n := slirps(dir); n != 0 {
		t.Fatalf("%d slirp4netns of the runs left", n)
	}
}

// TestNetworkSurvivesRestart: a run with a private network keeps it
// across a driver restart (slirp4netns belongs to the run's shim, not the
// driver), and the new driver reports its outcome.
func TestNetworkSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	d, err := NewWith(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := runtimetest.Start(t, d, sh("echo ready; sleep 1; "+routeScript))
	waitReady(t, d, id)
	_ = d.Close()
	d2 := newDriverNet(t, dir, NetworkPrivate)
	if st := runtimetest.Wait(t, d2, id); st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d2, id, false), "stdout"); !slices.Contains(got, "route tap0 00000000") {
		t.Fatalf("%q: no network after the restart", got)
	}
	assertNoSlirp(t, filepath.Join(dir, id))
}

// TestNetworkNoSlirpFailsRuns: a private network without slirp4netns is
// said at start-up and fails every run with the reason; it never falls
// back to the host's network.
func TestNetworkNoSlirpFailsRuns(t *testing.T) {
	bin := t.TempDir()
	for _, p := range []string{"bwrap", "setpriv", "prlimit", "unshare"} {
		if path, err := exec.LookPath(p); err == nil {
			if err := os.Symlink(path, filepath.Join(bin, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", bin)
	d, err := NewWith(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if n := d.Notice(); !strings.Contains(n, "slirp4netns is not installed") {
		t.Fatalf("notice %q", n)
	}
	if _, err := d.Start(runtimetest.Context(t), sh("true")); err == nil || !strings.Contains(err.Error(), "slirp4netns") {
		t.Fatalf("Start without slirp4netns: %v", err)
	}
	// none needs no slirp4netns.
	dn, err := NewWith(t.TempDir(), Options{Network: NetworkNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dn.Close() })
	if n := dn.Notice(); n != "" && strings.Contains(n, "slirp4netns") {
		t.Fatalf("notice %q", n)
	}
}

// TestNetworkUnknownMode: a mode that does not exist fails runs, never
// falls back to some network.
func TestNetworkUnknownMode(t *testing.T) {
	d, err := NewWith(t.TempDir(), Options{Network: "bridge"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if _, err := d.Start(runtimetest.Context(t), sh("true")); err == nil || !strings.Contains(err.Error(), "unknown network mode") {
		t.Fatalf("Start: %v", err)
	}
}

// TestResolvConf: name servers on the host's loopback are dropped, and
// slirp4netns' forwarder takes their place when none is left.
func TestResolvConf(t *testing.T) {
	for _, c := range []struct{ host, want string }{
		{"nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.org\n", "options edns0 trust-ad\nsearch example.org\nnameserver 10.0.2.3\n"},
		{"nameserver ::1\nnameserver 127.0.0.1\n", "nameserver 10.0.2.3\n"},
		{"", "nameserver 10.0.2.3\n"},
		{"nameserver 192.0.2.1\nnameserver 127.0.0.1\n", "nameserver 192.0.2.1\n"},
		{"nameserver fe80::1%eth0\n", "nameserver fe80::1%eth0\n"},
	} {
		if got := string(resolvConf([]byte(c.host))); got != c.want {
			t.Errorf("resolvConf(%q) = %q, want %q", c.host, got, c.want)
		}
	}
}

// TestNetworkSetupFailureFailsRun: when slirp4netns fails, the command
// never runs (not without its network, nor on the host's), and the run
// ends with 125 and a line saying why.
func TestNetworkSetupFailureFailsRun(t *testing.T) {
	dir := t.TempDir()
	d := newDriverNet(t, dir, NetworkPrivate)
	d.sb.slirp = "/bin/false" // a slirp4netns that fails at once
	id := runtimetest.Start(t, d, sh("echo ran; cat /proc/net/dev"))
	if st := runtimetest.Wait(t, d, id); st.ExitCode != 125 {
		t.Fatalf("status %+v, want 125", st)
	}
	logs := runtimetest.Logs(t, d, id, false)
	if out := runtimetest.Texts(t, logs, "stdout"); len(out) != 0 {
		t.Fatalf("the command ran: %q", out)
	}
	if errs := runtimetest.Texts(t, logs, "stderr"); len(errs) != 1 || !strings.Contains(errs[0], "network could not be set up") {
		t.Fatalf("stderr %q", errs)
	}
	assertNoSlirp(t, filepath.Join(dir, id))
}

// fdHolders are the commands of the processes that have path open.
func fdHolders(path string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); l == path {
				comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
				out = append(out, e.Name()+" "+strings.TrimSpace(string(comm)))
				break
			}
		}
	}
	return out
}
