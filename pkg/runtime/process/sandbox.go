package process

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// The sandbox: every workload runs under bubblewrap (bwrap), Debian's
// package of the sandboxing tool Flatpak is built on, in its own PID, mount,
// IPC and UTS namespaces, with a root file system holding only the
// read-only system directories (systemDirs, etcEntries), its own working
// directory at WorkDir, a private /tmp, /proc of its own PID namespace, a
// minimal /dev and its Spec's mounts (see mounts.go). Its command runs as
// PID 1 of that namespace (--as-pid-1), so when it exits the kernel kills
// everything it left running, setsid children included; and bwrap dies
// with its parent (--die-with-parent).
//
// Running as root, bwrap builds the sandbox as root (it reads the working
// directory through the server's private state directory) and the workload
// runs, through setpriv, as a host user id of its own for the run
// (UIDBase...UIDBase+UIDCount-1, allocated by a lock file held by the run's
// shim), with no capabilities, an empty bounding set and no_new_privs:
// never root, never the server's user. Running as a normal user, bwrap
// also unshares the user namespace and maps that user to SandboxUID (an
// unprivileged user cannot take other ids).
//
// Network: by default (NetworkPrivate) a sandbox has a network namespace
// of its own, connected to the outside by slirp4netns, the user-mode
// network stack rootless Podman uses, with --disable-host-loopback: the
// workload reaches the internet and other hosts, but not 127.0.0.0/8 or
// ::1 of the host, where the server's databases, Redis, NATS and its own
// ports listen. util-linux unshare makes the network namespace, and
// bubblewrap runs in it (see argv); the run's shim starts slirp4netns once
// bubblewrap has reported the sandbox (whose PID 1 waits on --block-fd
// meanwhile) and lets the command run only when tap0 is configured
// (netScript); slirp4netns ends when the shim does (--exit-fd).
// NetworkNone gives bubblewrap's own network namespace without
// slirp4netns (only its loopback); NetworkHost shares the host's (unsafe
// for tenants). A Spec with HostNetwork shares the host's whatever the
// driver's Network (for the server's trusted programs only).
//
// Signals: Stop and deadlines send SIGTERM to the processes in the
// sandbox's PID namespace (see signalSandbox), never to bwrap, which would
// die of it and take the sandbox down with SIGKILL.

// Defaults of Options.
const (
	DefaultUIDBase  = 100000
	DefaultUIDCount = 65536
	DefaultMaxProcs = 1024
	DefaultCgroup   = "slipway"
)

// SandboxUID is the user (and group) id a workload has inside its sandbox
// when the server does not run as root.
const SandboxUID = 1000

// WorkDir is where a sandboxed workload finds its working directory.
const WorkDir = "/work"

// The values of Options.Network.
const (
	// NetworkPrivate: a network namespace of its own with outbound network
	// through slirp4netns, the host's loopback unreachable. The default.
	NetworkPrivate = "private"
	// NetworkNone: a network namespace with nothing but its own loopback.
	NetworkNone = "none"
	// NetworkHost: the host's network, its loopback services included.
	NetworkHost = "host"
)

// slirpDNS is the address of slirp4netns' DNS forwarder in a sandbox.
const slirpDNS = "10.0.2.3"

// Options configure how the driver isolates its workloads.
type Options struct {
	// Unsandboxed runs workloads as plain processes of the server's own
	// user, with no namespaces, cgroups or private root: every workload can
	// read the server's files and the other workloads' secrets. Only for an
	// operator who opts out explicitly; the driver warns at start-up and
	// in its Notice.
	Unsandboxed bool
	// UIDBase and UIDCount are the host user ids workloads run as when the
	// server runs as root, one of them for each running workload. Zero
	// means DefaultUIDBase and DefaultUIDCount.
	UIDBase, UIDCount int
	// MaxProcs caps the processes and threads of one workload (pids
	// cgroup, and RLIMIT_NPROC of its user when the server runs as root).
	// Zero means DefaultMaxProcs.
	MaxProcs int
	// Cgroup is the parent of the workloads' cgroups, relative to the root
	// of each cgroup hierarchy (e.g. "slipway", or a cgroup delegated to
	// the server's user). Empty means DefaultCgroup.
	Cgroup string
	// Hide are host paths that must not exist in a sandbox even when they
	// lie in a directory it sees (a data directory under /usr, say): they
	// are covered with an empty file system. The driver's state directory
	// is always hidden so.
	Hide []string
	// LockDir holds the lock files that allocate host user ids; empty
	// means /run/slipway-uids (or, without /run, under the temporary
	// directory). Drivers sharing one host share it.
	LockDir string
	// Network is what network a sandbox has: NetworkPrivate (also when
	// empty), NetworkNone or NetworkHost.
	Network string
	// PortFirst and PortLast are the range of host ports that workloads'
	// ports get, one each (see ports.go); zero means DefaultPortFirst and
	// DefaultPortLast.
	PortFirst, PortLast int
	// PortLockDir holds the lock files that allocate host ports; empty
	// means /run/slipway-ports as root, else a directory of the server's
	// user under the temporary directory. Drivers sharing one host share
	// it.
	PortLockDir string
}

// systemDirs are bound read-only into every sandbox when they exist (a
// symbolic link, like /bin on a merged-/usr system, is recreated as one).
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcEntries are the parts of /etc bound read-only: what programs need to
// run, resolve names and check certificates, and nothing of the server's.
var etcEntries = []string{
	"alternatives", "ca-certificates", "ca-certificates.conf", "debian_version", "gai.conf", "group",
	"host.conf", "hostname", "hosts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types",
	"nsswitch.conf", "os-release", "passwd", "protocols", "resolv.conf", "services", "ssl", "timezone",
}

// sandbox is how the driver isolates workloads, decided once by New.
type sandbox struct {
	off     bool  // Options.Unsandboxed
	err     error // why workloads cannot be sandboxed here; Start fails with it
	bwrap   string
	setpriv string
	prlimit string
	root    bool // the server runs as root: workloads get host uids of their own
	uidBase int
	uidN    int
	lockDir string
	procs   int
	hide    []string // covered with an empty tmpfs
	cg      *cgroups // nil when no cgroup hierarchy can be used
	cgWhy   string   // why cg is nil
	net     string   // NetworkPrivate, NetworkNone or NetworkHost
	slirp   string   // slirp4netns (NetworkPrivate)
	unshare string   // unshare (util-linux): NetworkPrivate
}

func newSandbox(o Options) *sandbox {
	s := &sandbox{off: o.Unsandboxed, uidBase: o.UIDBase, uidN: o.UIDCount, procs: o.MaxProcs, lockDir: o.LockDir, root: os.Geteuid() == 0, net: o.Network}
	if s.net == "" {
		s.net = NetworkPrivate
	}
	if s.uidBase <= 0 {
		s.uidBase = DefaultUIDBase
	}
	if s.uidN <= 0 {
		s.uidN = DefaultUIDCount
	}
	if s.procs <= 0 {
		s.procs = DefaultMaxProcs
	}
	if s.lockDir == "" {
		s.lockDir = "/run/slipway-uids"
		if fi, err := os.Stat("/run"); err != nil || !fi.IsDir() {
			s.lockDir = filepath.Join(os.TempDir(), "slipway-uids")
		}
	}
	if s.off {
		return s
	}
	s.hide = hidden(o.Hide)
	cgParent := o.Cgroup
	if cgParent == "" {
		cgParent = DefaultCgroup
	}
	s.cg, s.cgWhy = detectCgroups(cgParent)
	if s.cg != nil {
		s.cg.sweep()
	}
	var err error
	if s.bwrap, err = exec.LookPath("bwrap"); err != nil {
		s.err = errors.New("bubblewrap (bwrap) is not installed; install the bubblewrap package")
		return s
	}
	if s.root {
		if s.setpriv, err = exec.LookPath("setpriv"); err != nil {
			s.err = errors.New("setpriv (util-linux) is not installed")
			return s
		}
		if s.prlimit, err = exec.LookPath("prlimit"); err != nil {
			s.err = errors.New("prlimit (util-linux) is not installed")
			return s
		}
		if err := os.MkdirAll(s.lockDir, 0o700); err != nil {
			s.err = fmt.Errorf("user id locks: %w", err)
			return s
		}
	}
	switch s.net {
	case NetworkPrivate:
		if s.slirp, err = exec.LookPath("slirp4netns"); err != nil {
			s.err = errors.New("slirp4netns is not installed, so workloads get no private network; install the slirp4netns package (or set process-network to none for no network at all)")
			return s
		}
		// unshare makes the network namespace (see argv).
		if s.unshare, err = exec.LookPath("unshare"); err != nil {
			s.err = errors.New("unshare (util-linux) is not installed")
			return s
		}
		if !s.root {
			tun, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
			if err != nil {
				s.err = fmt.Errorf("slirp4netns cannot open /dev/net/tun (%v), so workloads get no private network; make it usable by the server's user (mode 0666, as Debian has it) or set process-network to none", err)
				return s
			}
			tun.Close()
		}
	case NetworkNone, NetworkHost:
	default:
		s.err = fmt.Errorf("unknown network mode %q: valid are %q, %q and %q", s.net, NetworkPrivate, NetworkNone, NetworkHost)
		return s
	}
	s.err = s.probe()
	return s
}

// probe runs `true` in a sandbox, so a host where namespaces are not
// allowed is found at start-up and not at the first run.
func (s *sandbox) probe() error {
	dir, err := os.MkdirTemp("", "slipway-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	work, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer work.Close()
	uid := s.uidBase
	argv := s.argv(sandboxRun{uid: uid, workFD: 3, infoFD: -1, blockFD: -1}, []string{"true"})
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = []*os.File{work}
	cmd.Env = []string{"PATH=" + DefaultPath}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bubblewrap cannot create the sandbox here (%v: %s); user namespaces may be disabled (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// sandboxRun is what one run's sandbox is made of.
type sandboxRun struct {
	uid    int // the workload's host uid (when root)
	workFD int // the run's working directory, open
	// infoFD gets the sandbox's info (its PID 1's host pid) and the
	// command is held until blockFD is readable; either none when
	// negative.
	infoFD, blockFD int
	resolv          string // when not empty, the sandbox's /etc/resolv.conf
	env             map[string]string
	mounts          []runtime.Mount // Sources resolved (see resolveMounts)
	workDir         string          // where the command starts; "" is WorkDir
	hostNet         bool            // Spec.HostNetwork
}

// netOf is the network a run gets: the driver's, or the host's for a
// Spec asking for it.
func (s *sandbox) netOf(hostNet bool) string {
	if hostNet {
		return NetworkHost
	}
	return s.net
}

// argv is the command that runs command in the sandbox r describes.
func (s *sandbox) argv(r sandboxRun, command []string) []string {
	var a []string
	// A private network's namespace is made by unshare, before
	// bubblewrap, whose process outside the sandbox (the parent of its
	// PID 1) is then in it for slirp4netns to join: bubblewrap's own
	// would get its loopback configured by bubblewrap while slirp4netns
	// configures it too (a race that fails runs: "loopback: Failed
	// RTM_NEWADDR"), and unprivileged, bubblewrap's sandbox ends up in a
	// user namespace nested in the one owning that network namespace,
	// which slirp4netns could not enter. Unprivileged, unshare makes the
	// user namespace owning it too (mapping the server's user to
	// SandboxUID already, for bubblewrap's to nest in). slirp4netns brings
	// its loopback up.
	network := s.netOf(r.hostNet)
	private := network == NetworkPrivate
	var ns []string
	if private {
		ns = []string{s.unshare, "--net", "--"}
		if !s.root {
			id := strconv.Itoa(SandboxUID)
			ns = []string{s.unshare, "--user", "--map-user=" + id, "--map-group=" + id, "--net", "--"}
		}
	}
	if s.root {
		// RLIMIT_NPROC counts the processes of the run's own uid: a
		// process cap even without cgroups.
		n := strconv.Itoa(s.procs)
		a = append(a, s.prlimit, "--nproc="+n+":"+n, "--")
		a = append(append(a, ns...), s.bwrap)
	} else {
		id := strconv.Itoa(SandboxUID)
		a = append(append(a, ns...), s.bwrap, "--unshare-user", "--uid", id, "--gid", id)
	}
	a = append(a, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--as-pid-1", "--die-with-parent", "--hostname", "sandbox")
	if network == NetworkNone {
		a = append(a, "--unshare-net")
	}
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				a = append(a, "--symlink", target, d)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", d, d)
		}
	}
	// bwrap makes a mount point's missing parents 0700: /etc must be made
	// first, readable, or the workload's user could reach nothing in it.
	a = append(a, "--perms", "0755", "--dir", "/etc")
	for _, e := range etcEntries {
		if e == "resolv.conf" && r.resolv != "" {
			a = append(a, "--ro-bind", r.resolv, "/etc/resolv.conf")
			continue
		}
		a = append(a, "--ro-bind-try", "/etc/"+e, "/etc/"+e)
	}
	for _, h := range s.hide {
		a = append(a, "--tmpfs", h)
	}
	// /tmp is the workload's to write in (bubblewrap's default 0755,
	// root's, would leave it read-only to the workload's user).
	a = append(a, "--proc", "/proc", "--dev", "/dev", "--perms", "01777", "--tmpfs", "/tmp",
		"--bind-fd", strconv.Itoa(r.workFD), WorkDir)
	// Mounts come last, after the hidden paths' empty file systems and
	// the working directory, so that nothing covers them, a parent before
	// its children (resolveMounts sorts them). bwrap finds their Sources
	// in the host's file system, whatever the sandbox hides.
	for _, m := range r.mounts {
		// Missing parents readable (bwrap would make them 0700).
		for _, p := range parents(m.Target) {
			a = append(a, "--perms", "0755", "--dir", p)
		}
		op := "--bind"
		if m.ReadOnly {
			op = "--ro-bind"
		}
		a = append(a, op, m.Source, m.Target)
	}
	workDir := cmp.Or(r.workDir, WorkDir)
	a = append(a, "--chdir", workDir)
	if r.infoFD >= 0 {
		a = append(a, "--info-fd", strconv.Itoa(r.infoFD))
	}
	if r.blockFD >= 0 {
		a = append(a, "--block-fd", strconv.Itoa(r.blockFD))
	}
	// The shim's shell exported its own working directory; inside, it is
	// workDir (the environment itself reaches bwrap, and the workload,
	// through the process's environment, never its visible arguments).
	if _, ok := r.env["PWD"]; !ok {
		a = append(a, "--setenv", "PWD", workDir)
	}
	a = append(a, "--")
	if s.root {
		// bwrap ran as root to build the sandbox (it reads the working
		// directory through the server's private state directory); the
		// workload itself is the run's uid, with no capabilities and no
		// way to gain any.
		u := strconv.Itoa(r.uid)
		a = append(a, s.setpriv, "--reuid="+u, "--regid="+u, "--clear-groups",
			"--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--")
	}
	return append(a, command...)
}

// allocUID takes a host user id of the range for one run: the returned
// file holds its lock until closed (the run's shim keeps it open).
func (s *sandbox) allocUID(seed int) (int, *os.File, error) {
	for i := 0; i < s.uidN; i++ {
		uid := s.uidBase + (seed+i)%s.uidN
		f, ok, err := tryLock(filepath.Join(s.lockDir, strconv.Itoa(uid)))
		if err != nil {
			return 0, nil, fmt.Errorf("user id lock: %w", err)
		}
		if ok {
			return uid, f, nil
		}
	}
	return 0, nil, fmt.Errorf("all %d workload user ids from %d are taken", s.uidN, s.uidBase)
}

// describe says, in one line, how workloads are isolated.
func (s *sandbox) describe() string {
	if s.off {
		return "UNSANDBOXED: workloads run as the server's own user and can read its data (process-unsandboxed is set)"
	}
	if s.err != nil {
		return "workloads cannot run: " + s.err.Error()
	}
	who := fmt.Sprintf("PID, mount, IPC and UTS namespaces; host uids %d-%d", s.uidBase, s.uidBase+s.uidN-1)
	if !s.root {
		who = fmt.Sprintf("user, PID, mount, IPC and UTS namespaces; the server's uid %d outside (not root: no other ids to map)", os.Getuid())
	}
	lim := "no cgroup limits: " + s.cgWhy
	if s.cg != nil {
		lim = s.cg.describe()
	}
	return fmt.Sprintf("bubblewrap sandbox: %s; %d processes each; %s; %s", who, s.procs, lim, s.describeNet())
}

// describeNet says what network a sandbox has.
func (s *sandbox) describeNet() string {
	switch s.net {
	case NetworkNone:
		return "network: none (a namespace with only its own loopback)"
	case NetworkHost:
		return "network: the HOST's, loopback services included (process-network=host)"
	}
	return "network: private (own namespace, outbound through slirp4netns, no host loopback)"
}

// notice is what an operator must know, or "" when workloads are fully
// isolated and limited.
func (s *sandbox) notice() string {
	switch {
	case s.off:
		return "workloads run UNSANDBOXED as the server's user (process-unsandboxed is set): they can read the data directory, the encryption key and each other's secrets"
	case s.err != nil:
		return "workloads cannot be sandboxed, so none will start: " + s.err.Error()
	}
	var n []string
	if s.cg == nil {
		n = append(n, "CPU, memory and process-count limits are not enforced: "+s.cgWhy)
	}
	if s.net == NetworkHost {
		n = append(n, "workloads share the host's network (process-network=host): they reach every service listening on the host's loopback, the server's databases, Redis, NATS and ports included")
	}
	return strings.Join(n, "; ")
}

// resolvConf is the /etc/resolv.conf of a sandbox with a private network:
// the host's, without name servers on the host's loopback (unreachable
// from the sandbox; systemd-resolved's 127.0.0.53, say), and with
// slirp4netns' DNS forwarder (which asks the host's resolvers) when no
// other name server remains.
func resolvConf(host []byte) []byte {
	var out bytes.Buffer
	servers := 0
	for _, line := range strings.Split(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			ip := net.ParseIP(strings.SplitN(f[1], "%", 2)[0])
			if ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
				continue
			}
			servers++
		}
		if strings.TrimSpace(line) != "" {
			out.WriteString(line + "\n")
		}
	}
	if servers == 0 {
		out.WriteString("nameserver " + slirpDNS + "\n")
	}
	return out.Bytes()
}

// netScript is the shell code, run in the background by a run's shim
// before bubblewrap, that gives the sandbox its network: it waits for
// bubblewrap's info (the host pid of the sandbox's PID 1), starts
// slirp4netns on the sandbox's network namespace, waits until it has
// configured tap0, and only then writes to the FIFO block, which the
// sandbox's PID 1 reads (--block-fd) before it runs the command. If that
// fails, the sandbox is killed before the FIFO is closed (bubblewrap
// would take its end for the go-ahead), and the file failed says why the
// run ended. Only this code holds the FIFO's write end (not slirp4netns,
// which would keep the sandbox waiting forever were this code killed). slirp4netns ends when the shim's write end of the FIFO exit
// closes (--exit-fd), i.e. with the shim, which holds it as fd 9. The
// shim creates the file done once the sandbox has ended, and then waits
// for this (see netEndScript).
//
// With api, slirp4netns listens on its API socket (apiSocket, in the
// shim's working directory, the run's), through which Start forwards the
// run's ports.
func (s *sandbox) netScript(info, block, exit, ready, logf, failed, done, stderr string, api bool) string {
	q := shellQuote
	// slirp4netns enters the network namespace unshare made, where
	// bubblewrap's process outside the sandbox ($pp, the parent of the
	// sandbox's PID 1) is (see argv); unprivileged, it first enters the
	// user namespace owning it. Not --enable-sandbox: as root, its mount
	// namespace's unmounts propagated to the host's shared mounts (the
	// network namespaces Podman keeps under /run/netns were unmounted).
	slirp := q(s.slirp) + " --configure --mtu=65520 --disable-host-loopback --enable-seccomp --ready-fd=8 --exit-fd=9 "
	if api {
		slirp += "--api-socket " + apiSocket + " "
	}
	if s.root {
		slirp += `--netns-type=path /proc/"$pp"/ns/net tap0`
	} else {
		slirp += `--userns-path=/proc/"$pp"/ns/user --netns-type=path /proc/"$pp"/ns/net tap0`
	}
	return `{
PATH=` + DefaultPath + `
exec 3>&- 9>&- 7>` + q(block) + `
fail() {
	[ -n "$s" ] && kill -KILL "$s" 2>/dev/null
	# Regular built-ins: a failed redirection (the run's directory
	# deleted) must not end this shell before it killed the sandbox.
	{ echo "slipway: the sandbox's network could not be set up ($1); the command did not run" >>` + q(stderr) + `; true >` + q(failed) + `; } 2>/dev/null
	# Never let the sandbox go on: wait for it if it is not there yet
	# (the shim's end, or a minute, ends this too).
	n=0
	while [ -z "$pid" ] && ! childpid && [ ! -e ` + q(done) + ` ] && [ $n -lt 600 ]; do n=$((n+1)); sleep 0.1; done
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	exit 1
}
childpid() {
	pid=$(sed -n 's/^ *"child-pid": *\([0-9][0-9]*\).*/\1/p' ` + q(info) + ` 2>/dev/null) && [ -n "$pid" ]
}
pid= s= n=0
until childpid; do
	[ -e ` + q(done) + ` ] && exit 1
	n=$((n+1)); [ $n -lt 3000 ] || fail "no sandbox"; sleep 0.01
done
pp=$(sed -n 's/.*) . \([0-9][0-9]*\) .*/\1/p' /proc/"$pid"/stat)
` + slirp + ` </dev/null >>` + q(logf) + ` 2>&1 7>&- 8>` + q(ready) + ` 9<` + q(exit) + ` &
s=$! n=0
until [ -s ` + q(ready) + ` ]; do
	case $(sed -n 's/.*) \(.\) .*/\1/p' /proc/"$s"/stat 2>/dev/null) in ''|Z) fail "slirp4netns failed" ;; esac
	n=$((n+1)); [ $n -lt 3000 ] || fail "slirp4netns did not get ready"; sleep 0.01
done
printf 1 >&7
exec 7>&-
wait "$s"
} &
`
}

// chownWork gives the run's working directory to its user.
func (s *sandbox) chownWork(dir string, uid int) error {
	if !s.root {
		return nil
	}
	return os.Chown(dir, uid, uid)
}

// hidden are the paths of hide that lie in a directory bound into the
// sandbox, resolved as the sandbox would see them.
func hidden(hide []string) []string {
	var out []string
	for _, h := range hide {
		real, err := filepath.EvalSymlinks(h)
		if err != nil {
			continue
		}
		for _, d := range systemDirs {
			dr, err := filepath.EvalSymlinks(d)
			if err == nil && (real == dr || strings.HasPrefix(real, dr+"/")) {
				out = append(out, real)
				break
			}
		}
	}
	// A path inside another is hidden with it (its own mount point would
	// show in the other's empty file system).
	var top []string
	for _, h := range out {
		inner := false
		for _, o := range out {
			if o != h && strings.HasPrefix(h, o+"/") {
				inner = true
			}
		}
		if !inner && !contains(top, h) {
			top = append(top, h)
		}
	}
	return top
}

// netEndScript is what the shim runs once the sandbox has ended: it lets
// netScript's code go on if it was waiting for a sandbox that never came
// (open of the FIFO block, the file done), ends slirp4netns (closing the
// shim's write end of the FIFO exit) and waits for both, so that nothing
// of the run is left when the shim leaves its cgroups.
func netEndScript(block, done string) string {
	return ": >" + shellQuote(done) + "\nexec 6<>" + shellQuote(block) + " 9>&-\nuntil wait; do :; done\nexec 6>&-\n"
}
