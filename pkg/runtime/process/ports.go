package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Ports: every port of a Spec gets a host port of its own from a range
// (Options.PortFirst..PortLast), reachable at 127.0.0.1 only:
//
//   - NetworkPrivate: slirp4netns forwards 127.0.0.1:<host port> of the
//     host to the Spec's port of the sandbox (its API socket, add_hostfwd),
//     before Start returns. The workload listens on its Spec port, on any
//     address of the sandbox (0.0.0.0, or 10.0.2.100 where slirp4netns
//     delivers; not 127.0.0.1 of the sandbox, which forwarded connections
//     never reach).
//     TCP only: a UDP datagram would reach the workload, but slirp4netns
//     drops its answer, addressed to the host's loopback, which
//     --disable-host-loopback forbids (libslirp's sotranslate_out); Start
//     refuses UDP ports rather than half forward them.
//   - NetworkHost and unsandboxed runs share the host's network, so the
//     Spec's number cannot be honoured (two instances of a service would
//     collide): the workload is told the host port in PORT and PORT_<NAME>
//     and must listen on it. Nothing stops it listening on every address
//     of the host rather than 127.0.0.1 only: one more reason host is for
//     trusted workloads.
//   - NetworkNone: no network to reach; Start refuses ports.
//
// A host port is held by a file named after its number in the port lock
// directory, shared by every driver of the host (as the user id locks
// are): under its flock, the file names the run directory that holds the
// port, which keeps it until Remove (when the file is emptied) or until
// that directory no longer exists (a state directory deleted by hand, a
// start that died half way). A port is taken only if 127.0.0.1 can bind
// it too, so that ports something else listens on are skipped.

// Defaults of Options' port range.
const (
	DefaultPortFirst = 20000
	DefaultPortLast  = 29999
)

// ParsePortRange parses "first-last" (e.g. "20000-29999"), a range of host
// ports from 1024 to 65535.
func ParsePortRange(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q: want a port range first-last, e.g. %d-%d", s, DefaultPortFirst, DefaultPortLast)
	}
	if first < 1024 || last > 65535 || first > last {
		return 0, 0, fmt.Errorf("%q: want first-last with 1024 <= first <= last <= 65535", s)
	}
	return first, last, nil
}

// portFile is one port of a run, as spec.json records it.
type portFile struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	Host     int    `json:"host"`
}

// portPool hands out host ports of a range.
type portPool struct {
	first, last int
	dir         string
}

func newPortPool(o Options) *portPool {
	p := &portPool{first: o.PortFirst, last: o.PortLast, dir: o.PortLockDir}
	if p.first <= 0 || p.last <= 0 || p.first > p.last {
		p.first, p.last = DefaultPortFirst, DefaultPortLast
	}
	if p.dir == "" {
		p.dir = "/run/slipway-ports"
		if fi, err := os.Stat("/run"); err != nil || !fi.IsDir() || os.Geteuid() != 0 {
			p.dir = filepath.Join(os.TempDir(), "slipway-ports-"+strconv.Itoa(os.Geteuid()))
		}
	}
	return p
}

// holds reports whether the run directory owner (as its lock file names
// it) still exists, under its own name or while Start makes it.
func holds(owner string) bool {
	if owner == "" || !filepath.IsAbs(owner) {
		return false
	}
	for _, p := range []string{owner, filepath.Join(filepath.Dir(owner), newPrefix+filepath.Base(owner))} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// bindable reports whether 127.0.0.1:port can be bound for proto now.
func bindable(port int, proto string) bool {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if proto == runtime.ProtocolUDP {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// alloc takes one host port for each of protos for the run directory
// owner, starting its search at seed.
func (p *portPool) alloc(owner string, protos []string, seed int) ([]int, error) {
	if len(protos) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, fmt.Errorf("port locks: %w", err)
	}
	n := p.last - p.first + 1
	var got []int
	for i := 0; i < n && len(got) < len(protos); i++ {
		port := p.first + (seed+i)%n
		ok, err := p.take(port, owner, protos[len(got)])
		if err != nil {
			p.release(owner, got)
			return nil, err
		}
		if ok {
			got = append(got, port)
		}
	}
	if len(got) < len(protos) {
		p.release(owner, got)
		return nil, fmt.Errorf("no free host port left in %d-%d for %d ports", p.first, p.last, len(protos))
	}
	return got, nil
}

// take makes port owner's if no live run holds it and 127.0.0.1 can bind
// it for proto.
func (p *portPool) take(port int, owner, proto string) (bool, error) {
	f, err := os.OpenFile(filepath.Join(p.dir, strconv.Itoa(port)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("port lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return false, fmt.Errorf("port lock: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return false, fmt.Errorf("port lock: %w", err)
	}
	if holds(string(b)) || !bindable(port, proto) {
		return false, nil
	}
	if err := f.Truncate(0); err != nil {
		return false, fmt.Errorf("port lock: %w", err)
	}
	if _, err := f.WriteAt([]byte(owner), 0); err != nil {
		return false, fmt.Errorf("port lock: %w", err)
	}
	return true, nil
}

// release frees the ports owner holds.
func (p *portPool) release(owner string, ports []int) {
	for _, port := range ports {
		f, err := os.OpenFile(filepath.Join(p.dir, strconv.Itoa(port)), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX) == nil {
			if b, err := io.ReadAll(f); err == nil && string(b) == owner {
				_ = f.Truncate(0)
			}
		}
		f.Close()
	}
}

// portEnv adds PORT and PORT_<NAME> to env (a copy is returned) unless it
// sets them: the number the workload listens on, the Spec's own
// (numbers nil) or the host ports.
func portEnv(env map[string]string, ports []runtime.Port, numbers []int) map[string]string {
	if len(ports) == 0 {
		return env
	}
	out := make(map[string]string, len(env)+len(ports)+1)
	for k, v := range env {
		out[k] = v
	}
	num := func(i int) string {
		if numbers != nil {
			return strconv.Itoa(numbers[i])
		}
		return strconv.Itoa(ports[i].Port)
	}
	if !hasKey(out, "PORT") {
		out["PORT"] = num(0)
	}
	for i, p := range ports {
		if k := runtime.PortEnvName(p.Name); !hasKey(out, k) {
			out[k] = num(i)
		}
	}
	return out
}

// apiSocket is the name of slirp4netns' API socket in a run's directory
// (relative: the shim runs there, and a socket's path is limited to 107
// bytes, which a deep state directory would exceed).
const apiSocket = "net.api"

// forward has the slirp4netns of run directory dir forward each port's
// 127.0.0.1:<host> on the host to its port in the sandbox, once it is ready;
// gone reports the run ended meanwhile.
func forward(dir string, ports []portFile, gone func() bool, deadline time.Time) error {
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "net.ready")); err == nil && len(b) > 0 {
			break
		}
		if _, err := os.Stat(filepath.Join(dir, "net.failed")); err == nil || gone() {
			return errors.New("the sandbox's network could not be set up")
		}
		if time.Now().After(deadline) {
			return errors.New("the sandbox's network was not ready in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The socket's path through the directory's descriptor stays short.
	df, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer df.Close()
	sock := "/proc/self/fd/" + strconv.Itoa(int(df.Fd())) + "/" + apiSocket
	for _, p := range ports {
		req, _ := json.Marshal(map[string]any{"execute": "add_hostfwd", "arguments": map[string]any{
			"proto": p.Protocol, "host_addr": "127.0.0.1", "host_port": p.Host, "guest_port": p.Port,
		}})
		if err := slirpCall(sock, req, deadline); err != nil {
			return fmt.Errorf("forwarding 127.0.0.1:%d to port %d/%s: %w", p.Host, p.Port, p.Protocol, err)
		}
	}
	return nil
}

// slirpCall sends one request to slirp4netns' API and checks its answer.
func slirpCall(sock string, req []byte, deadline time.Time) error {
	c, err := net.DialTimeout("unix", sock, time.Until(deadline))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(req); err != nil {
		return err
	}
	if uc, ok := c.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
		Error  *struct {
			Desc string `json:"desc"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("slirp4netns answered %q", b)
	}
	if resp.Error != nil {
		return fmt.Errorf("slirp4netns: %s", resp.Error.Desc)
	}
	return nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
