package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Drivers by name.
const (
	driverProcess = "process"
	driverDocker  = "docker"
)

// basePath is the PATH of a server and of the tools run in it; engines
// put their own directories first.
const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var (
	safeID   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)
	safeName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)
	safePass = regexp.MustCompile(`^[A-Za-z0-9_-]{8,128}$`)
	runAsRE  = regexp.MustCompile(`^([0-9]{1,10}):([0-9]{1,10})$`)
)

// validate checks what goes into a server's command lines, configuration
// and SQL unquoted.
func validate(a Addon, db, user bool) error {
	if !safeID.MatchString(a.ID) {
		return fmt.Errorf("engine: addon id %q: only letters, digits, '-' and '_' are allowed", a.ID)
	}
	if db && !safeName.MatchString(a.DBName) {
		return fmt.Errorf("engine: database name %q: a letter or '_', then letters, digits, '-' and '_', at most 63", a.DBName)
	}
	for _, u := range []struct{ what, v string }{{"user", a.User}, {"admin user", a.AdminUser}} {
		if u.what == "user" && !user {
			continue
		}
		if !safeName.MatchString(u.v) {
			return fmt.Errorf("engine: %s name %q: a letter or '_', then letters, digits, '-' and '_', at most 63", u.what, u.v)
		}
	}
	if !safePass.MatchString(a.Password) || !safePass.MatchString(a.AdminPassword) {
		return errors.New("engine: passwords must be 8 to 128 letters, digits, '-' and '_' (see GeneratePassword)")
	}
	if !filepath.IsAbs(a.RunDir) {
		return errors.New("engine: the socket directory must be an absolute path")
	}
	switch a.Driver {
	case driverProcess:
		if !filepath.IsAbs(a.DataDir) {
			return errors.New("engine: the data directory must be an absolute path")
		}
	case driverDocker:
		if !runtime.ValidVolumeName(a.Volume) {
			return fmt.Errorf("engine: the data volume %q is not a valid volume name", a.Volume)
		}
		if !a.Verify && !filepath.IsAbs(a.TLSDir) {
			return errors.New("engine: the TLS directory must be an absolute path")
		}
	default:
		return fmt.Errorf("engine: unknown driver %q", a.Driver)
	}
	if a.RunAs != "" && !runAsRE.MatchString(a.RunAs) {
		return fmt.Errorf("engine: run-as %q is not \"uid:gid\"", a.RunAs)
	}
	return nil
}

// prepareDirs creates the host directories of a when missing: on the
// process driver the data directory (0700); the socket directory (0755,
// so that linked workloads of other users reach the socket in it); the
// TLS files (prepareTLS). On docker the socket and TLS directories are
// given to the server's user (the process driver gives its writable
// mounts to the workload's user itself); the data is the volume's.
func prepareDirs(a Addon) error {
	if a.Driver == driverProcess {
		if err := os.MkdirAll(a.DataDir, 0o700); err != nil {
			return fmt.Errorf("engine: data directory: %w", err)
		}
	}
	if err := os.MkdirAll(a.RunDir, 0o755); err != nil {
		return fmt.Errorf("engine: socket directory: %w", err)
	}
	if err := os.Chmod(a.RunDir, 0o755); err != nil {
		return fmt.Errorf("engine: socket directory: %w", err)
	}
	if err := prepareTLS(a, time.Now()); err != nil {
		return err
	}
	if a.Driver == driverDocker {
		uid, gid := runAs(a)
		dirs := []string{a.RunDir}
		if tlsOn(a) {
			dirs = append(dirs, a.TLSDir)
		}
		for _, dir := range dirs {
			if err := chownTree(dir, uid, gid); err != nil {
				return fmt.Errorf("engine: giving %s to the server's user: %w", dir, err)
			}
		}
	}
	return nil
}

// runAs is the uid and gid of a docker server.
func runAs(a Addon) (int, int) {
	m := runAsRE.FindStringSubmatch(a.RunAs)
	if m == nil {
		m = runAsRE.FindStringSubmatch(DefaultRunAs)
	}
	uid, _ := strconv.Atoi(m[1])
	gid, _ := strconv.Atoi(m[2])
	return uid, gid
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// nssWrapper is the host's libnss_wrapper.so (libnss-wrapper), or "". A
// process-driver workload's user is not in /etc/passwd, and initdb (like
// ssh) refuses to run for a user it cannot look up: the server's script
// gives it an entry of its own through nss_wrapper (see nssPrelude).
var nssWrapper = sync.OnceValue(func() string {
	for _, pattern := range []string{"/usr/lib/*/libnss_wrapper.so", "/usr/lib64/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m[0]
		}
	}
	return ""
})

// nssPrelude is the start of every server script: where the user has no
// name and nss_wrapper is there, the rest of the script and the server
// (and every tool Exec runs in it, which inherit its environment) see a
// passwd entry "addon" for it.
const nssPrelude = `if [ -n "${SLIPWAY_NSS_WRAPPER:-}" ] && ! id -un >/dev/null 2>&1; then
	printf 'addon:x:%s:%s::/tmp:/bin/sh\n' "$(id -u)" "$(id -g)" >/tmp/slipway-passwd
	printf 'addon:x:%s:\n' "$(id -g)" >/tmp/slipway-group
	export NSS_WRAPPER_PASSWD=/tmp/slipway-passwd NSS_WRAPPER_GROUP=/tmp/slipway-group LD_PRELOAD="$SLIPWAY_NSS_WRAPPER"
fi
export HOME=/tmp
`

// baseSpec is what every server's Spec shares.
func baseSpec(a Addon, image string, path string, script string, env map[string]string, ports []runtime.Port) (runtime.Spec, error) {
	if err := prepareDirs(a); err != nil {
		return runtime.Spec{}, err
	}
	env["PATH"] = path
	tlsEnv(a, env)
	if a.Driver == driverProcess {
		if w := nssWrapper(); w != "" {
			env["SLIPWAY_NSS_WRAPPER"] = w
		}
	}
	name := WorkloadName(a)
	if a.Verify {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return runtime.Spec{}, fmt.Errorf("engine: %w", err)
		}
		name += "-" + hex.EncodeToString(b[:])
	}
	spec := runtime.Spec{
		Name: name,
		// The image's entrypoint is not used (official images' would
		// take over the start): the script is the whole command line.
		Entrypoint: []string{"/bin/sh", "-c"},
		Command:    []string{script, "slipway-addon"},
		Env:        env,
		Labels:     Labels(a),
		Resources:  a.Resources,
		Mounts: []runtime.Mount{
			{Source: a.DataDir, Target: DataMount},
			{Source: a.RunDir, Target: RunMount},
		},
		WorkDir: DataMount,
	}
	if a.Driver == driverDocker {
		// The data is the named volume; the socket directory stays a
		// host directory, since linked workloads (and the operator's
		// tools on the host) connect to the socket in it; the TLS files
		// are issued and checked by Slipway on the host at each start
		// (prepareTLS), so they are a host directory too, read-only.
		spec.Mounts[0] = runtime.Mount{Volume: a.Volume, Target: DataMount}
		if tlsOn(a) {
			spec.Mounts = append(spec.Mounts, runtime.Mount{Source: a.TLSDir, Target: DockerTLSMount, ReadOnly: true})
		}
	}
	if !a.Verify {
		spec.Ports = ports
	}
	if a.Driver == driverDocker {
		spec.Image = image
		if a.Image != "" {
			spec.Image = a.Image
		}
		spec.User = a.RunAs
		if spec.User == "" {
			spec.User = DefaultRunAs
		}
	}
	return spec, nil
}

// maxStderr bounds the error output of a tool kept for its error.
const maxStderr = 8 << 10

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

// ToolError is a tool (pg_restore, redis-cli, mariadb) that failed in the
// addon's workload: its exit code and the last lines of its error output,
// with the addon's passwords removed.
type ToolError struct {
	Tool   string
	Code   int
	Stderr string
}

// Error says which tool failed, how, and what it printed last.
func (e *ToolError) Error() string {
	msg := fmt.Sprintf("%s failed (exit status %d)", e.Tool, e.Code)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// redact removes the addon's passwords from s.
func redact(a Addon, s string) string {
	for _, p := range []string{a.Password, a.AdminPassword} {
		if p != "" {
			s = strings.ReplaceAll(s, p, "[redacted]")
		}
	}
	return s
}

// lastLines is the last n non-empty lines of s, joined with "; ".
func lastLines(s string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "; ")
}

// run runs a tool in the workload: the tool's name is command[0] (or
// tool, when given), its output goes to stdout, its input comes from
// stdin. A non-zero exit is a *ToolError.
func run(ctx context.Context, d runtime.Driver, id string, a Addon, env map[string]string, stdin io.Reader, stdout io.Writer, command ...string) error {
	stderr := &tailBuffer{max: maxStderr}
	if stdout == nil {
		stdout = io.Discard
	}
	code, err := d.Exec(ctx, id, runtime.ExecSpec{Command: command, Env: env, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return fmt.Errorf("engine: %s: %w", command[0], err)
	}
	if code != 0 {
		tool := command[0]
		if tool == "/bin/sh" && len(command) > 3 {
			tool = command[3] // scripts name themselves: sh -c script <name>
		}
		return &ToolError{Tool: tool, Code: code, Stderr: redact(a, lastLines(string(stderr.b), 6))}
	}
	return nil
}

// output runs a tool and returns its standard output.
func output(ctx context.Context, d runtime.Driver, id string, a Addon, env map[string]string, command ...string) (string, error) {
	var out bytes.Buffer
	err := run(ctx, d, id, a, env, nil, &out, command...)
	return out.String(), err
}

// WaitReady probes e.Ready every 200ms until it reports nil, the
// workload has ended, or ctx ends (its error then wraps the last probe's).
func WaitReady(ctx context.Context, e Engine, d runtime.Driver, id string, a Addon) error {
	var last error
	for {
		if last = e.Ready(ctx, d, id, a); last == nil {
			return nil
		}
		if st, err := d.Status(ctx, id); err == nil && st.State != runtime.StateRunning {
			return fmt.Errorf("engine: the %s server ended (exit code %d) before it was ready: %w", e.Type(), st.ExitCode, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine: the %s server is not ready: %w (%v)", e.Type(), ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// hostVersion runs a host binary with args (a version flag) and returns
// what re's first group matches in its output, or "".
func hostVersion(bin string, re *regexp.Regexp, args ...string) string {
	path, err := exec.LookPath(bin)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"} {
			if p := filepath.Join(dir, bin); isExecutable(p) {
				path = p
				break
			}
		}
	}
	if path == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		return ""
	}
	if m := re.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// major is a version's first component ("7.0" -> "7").
func major(v string) string {
	m, _, _ := strings.Cut(v, ".")
	return m
}

// majors are the distinct majors of versions, in order.
func majors(versions []string) []string {
	var out []string
	for _, v := range versions {
		if m := major(v); len(out) == 0 || out[len(out)-1] != m {
			out = append(out, m)
		}
	}
	return out
}

// memoryShare is 1/div of a's memory limit in MB, at least least; def
// without a limit.
func memoryShare(a Addon, div, least, def int64) int64 {
	if a.Resources.MemoryMB <= 0 {
		return def
	}
	return max(a.Resources.MemoryMB/div, least)
}

// checkVersion refuses a version the type cannot run on a's driver.
func checkVersion(e Engine, a Addon) error {
	for _, v := range e.Info(a.Driver).Versions {
		if v == a.Version {
			return nil
		}
	}
	return fmt.Errorf("engine: %s version %q cannot run on the %s driver here (available: %s)", e.Type(), a.Version, a.Driver, strings.Join(e.Info(a.Driver).Versions, ", "))
}
