package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// The sandbox: every workload runs under bubblewrap (bwrap), Debian's
// package of the sandboxing tool Flatpak is built on, in its own PID, mount,
// IPC and UTS namespaces, with a root file system holding only the
// read-only system directories (systemDirs, etcEntries), its own working
// directory at WorkDir, a private /tmp, /proc of its own PID namespace and
// a minimal /dev. Its command runs as PID 1 of that namespace (--as-pid-1),
// so when it exits the kernel kills everything it left running, setsid
// children included; and bwrap dies with its parent (--die-with-parent).
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
}

func newSandbox(o Options) *sandbox {
	s := &sandbox{off: o.Unsandboxed, uidBase: o.UIDBase, uidN: o.UIDCount, procs: o.MaxProcs, lockDir: o.LockDir, root: os.Geteuid() == 0}
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
	argv := s.argv(uid, 3, -1, nil, []string{"true"})
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

// argv is the command that runs command sandboxed as host uid (when root),
// with the working directory open as fd workFD and the sandbox's info
// (its PID 1's host pid) written to infoFD (none when negative).
func (s *sandbox) argv(uid, workFD, infoFD int, env map[string]string, command []string) []string {
	var a []string
	if s.root {
		// RLIMIT_NPROC counts the processes of the run's own uid: a
		// process cap even without cgroups.
		n := strconv.Itoa(s.procs)
		a = append(a, s.prlimit, "--nproc="+n+":"+n, "--", s.bwrap)
	} else {
		id := strconv.Itoa(SandboxUID)
		a = append(a, s.bwrap, "--unshare-user", "--uid", id, "--gid", id)
	}
	a = append(a, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--as-pid-1", "--die-with-parent", "--hostname", "sandbox")
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
		a = append(a, "--ro-bind-try", "/etc/"+e, "/etc/"+e)
	}
	for _, h := range s.hide {
		a = append(a, "--tmpfs", h)
	}
	a = append(a, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
		"--bind-fd", strconv.Itoa(workFD), WorkDir, "--chdir", WorkDir)
	if infoFD >= 0 {
		a = append(a, "--info-fd", strconv.Itoa(infoFD))
	}
	// The shim's shell exported its own working directory; inside, it is
	// WorkDir (the environment itself reaches bwrap, and the workload,
	// through the process's environment, never its visible arguments).
	if _, ok := env["PWD"]; !ok {
		a = append(a, "--setenv", "PWD", WorkDir)
	}
	a = append(a, "--")
	if s.root {
		// bwrap ran as root to build the sandbox (it reads the working
		// directory through the server's private state directory); the
		// workload itself is the run's uid, with no capabilities and no
		// way to gain any.
		u := strconv.Itoa(uid)
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
	return fmt.Sprintf("bubblewrap sandbox: %s; %d processes each; %s", who, s.procs, lim)
}

// notice is what an operator must know, or "" when workloads are fully
// isolated and limited.
func (s *sandbox) notice() string {
	switch {
	case s.off:
		return "workloads run UNSANDBOXED as the server's user (process-unsandboxed is set): they can read the data directory, the encryption key and each other's secrets"
	case s.err != nil:
		return "workloads cannot be sandboxed, so none will start: " + s.err.Error()
	case s.cg == nil:
		return "CPU, memory and process-count limits are not enforced: " + s.cgWhy
	}
	return ""
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
