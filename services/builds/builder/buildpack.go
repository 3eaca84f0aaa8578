package builder

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// The stacks a buildpack build detects.
const (
	StackGo       = "go"
	StackNode     = "node"
	StackPython   = "python"
	StackStatic   = "static"
	StackProcfile = "procfile"
)

// appMount is where a buildpack build (and the artifact, when it runs)
// sees the app tree; cacheMount holds the service's caches.
const (
	appMount   = "/app"
	cacheMount = "/cache"
	pyPackages = appMount + "/.python-packages"
)

// plan is what a detected stack builds and runs.
type plan struct {
	stack string
	// build is the shell code that builds the app in /app ("" none);
	// env its environment.
	build string
	env   map[string]string
	// command starts the app from /app; empty when none was found.
	command []string
	// why says how the start command was chosen, for the log.
	why string
}

var (
	procfileRe = regexp.MustCompile(`^web\s*:\s*(.+)$`)
	argNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// detect finds the stack of the app in dir. docker says the plan is for a
// generated Dockerfile (whose base image has its own tools) rather than
// the host's toolchains.
func (b *Builder) detect(dir string, docker bool) (plan, error) {
	has := func(name string) bool {
		_, err := readWorkFile(dir, name)
		return err == nil
	}
	read := func(name string) string {
		data, _ := readWorkFile(dir, name)
		return string(data)
	}
	var p plan
	switch {
	case has("go.mod"):
		p.stack = StackGo
		p.build = "go build -o bin/app ."
		p.env = map[string]string{"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local",
			"GOCACHE": cacheMount + "/go-build", "GOMODCACHE": cacheMount + "/go-mod", "GOPATH": cacheMount + "/go"}
		p.command, p.why = []string{appMount + "/bin/app"}, "the Go program built from the module's root"
	case has("package.json"):
		p.stack = StackNode
		var pkg struct {
			Main         string            `json:"main"`
			Scripts      map[string]string `json:"scripts"`
			Dependencies map[string]any    `json:"dependencies"`
		}
		if err := json.Unmarshal([]byte(read("package.json")), &pkg); err != nil {
			return plan{}, errorf(KindBuild, "package.json is not valid JSON")
		}
		if len(pkg.Dependencies) > 0 {
			p.build = "npm install --omit=dev"
			if has("package-lock.json") || has("npm-shrinkwrap.json") {
				p.build = "npm ci --omit=dev"
			}
		}
		p.env = map[string]string{"npm_config_cache": cacheMount + "/npm", "npm_config_update_notifier": "false",
			"npm_config_fund": "false", "npm_config_audit": "false", "NODE_ENV": "production"}
		main := strings.TrimPrefix(path.Clean("/"+pkg.Main), "/")
		switch {
		case pkg.Scripts["start"] != "":
			// npm needs a home (for its logs); a workload's user has
			// none unless its environment gives one.
			p.command, p.why = []string{"/bin/sh", "-c", `export HOME="${HOME:-/tmp}"; exec npm start`}, "package.json's start script (npm start)"
		case pkg.Main != "" && has(main):
			p.command, p.why = []string{"node", appMount + "/" + main}, "package.json's main ("+main+")"
		case has("index.js"):
			p.command, p.why = []string{"node", appMount + "/index.js"}, "index.js"
		}
	case has("requirements.txt"):
		p.stack = StackPython
		if strings.TrimSpace(read("requirements.txt")) != "" {
			p.build = "python3 -m pip install --disable-pip-version-check --target " + pyPackages + " -r requirements.txt"
		}
		p.env = map[string]string{"PIP_CACHE_DIR": cacheMount + "/pip", "PYTHONDONTWRITEBYTECODE": "1"}
		for _, f := range []string{"app.py", "main.py"} {
			if has(f) {
				p.command, p.why = []string{"env", "PYTHONPATH=" + pyPackages, "python3", appMount + "/" + f}, f
				break
			}
		}
	case has("index.html"):
		p.stack = StackStatic
		switch {
		case docker:
			p.command, p.why = []string{"/bin/sh", "-c", `exec httpd -f -v -p "${PORT:-8080}" -h ` + appMount}, "a static file server (busybox httpd of the base image)"
		case lookHost("busybox") != "":
			p.command, p.why = []string{"/bin/sh", "-c", `exec busybox httpd -f -v -p "${PORT:-8080}" -h ` + appMount}, "a static file server (busybox httpd)"
		case lookHost("python3") != "":
			p.command, p.why = []string{"/bin/sh", "-c", `exec python3 -m http.server "${PORT:-8080}" --directory ` + appMount}, "a static file server (python3 -m http.server)"
		default:
			return plan{}, errorf(KindBuild, "a static site needs busybox or python3 on the server to serve it, and neither is installed")
		}
	case has("Procfile"):
		p.stack = StackProcfile
	default:
		return plan{}, errorf(KindBuild, "no supported stack found in the build context: expected a Procfile, go.mod, package.json, requirements.txt or index.html")
	}
	if has("Procfile") {
		for _, line := range strings.Split(read("Procfile"), "\n") {
			if m := procfileRe.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				p.command, p.why = []string{"/bin/sh", "-c", strings.TrimSpace(m[1])}, "the Procfile's web process"
				break
			}
		}
	}
	return p, nil
}

// lookHost finds a program among the directories a sandbox sees.
func lookHost(name string) string {
	for _, d := range []string{"/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"} {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return filepath.Join(d, name)
		}
	}
	return ""
}

// buildpackBuild builds the app with its detected stack.
func (r *run) buildpackBuild(sha string, res *Result) error {
	rel, err := repoPath("build context", r.req.Buildpack.Context)
	if err != nil {
		return err
	}
	src := filepath.Join(r.work, "src")
	if err := inTree(src, rel, "build context", true); err != nil {
		return err
	}
	app := filepath.Join(src, rel)
	docker := r.b.cfg.Docker != nil
	p, err := r.b.detect(app, docker)
	if err != nil {
		return err
	}
	res.Stack = p.stack
	r.log.info("detected stack: %s", p.stack)
	if len(p.command) > 0 {
		r.log.info("start command: %s, from %s", strings.Join(p.command, " "), p.why)
	} else {
		r.log.info("no start command found (add a Procfile with a web: process, or give the service a custom command)")
	}
	if docker {
		base := r.b.cfg.BaseImages[p.stack]
		r.log.info("base image: %s", base)
		res.Image, err = r.imageBuild(sha, app, []byte(generateDockerfile(p, base, r.req.Args)), "")
		return err
	}
	if p.build != "" {
		if err := r.processBuild(app, p); err != nil {
			return err
		}
	}
	r.phase(PhaseUploading)
	dst := filepath.Join(r.b.dir, "artifacts", r.req.BuildID)
	if err := os.RemoveAll(dst); err != nil {
		return internal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return internal(err)
	}
	if err := os.Rename(app, filepath.Join(dst, "app")); err != nil {
		return internal(err)
	}
	if err := publish(filepath.Join(dst, "app")); err != nil {
		_ = os.RemoveAll(dst)
		return internal(err)
	}
	res.Path = filepath.Join(dst, "app")
	res.Command = p.command
	return nil
}

// processBuild runs the plan's build in the sandbox: private network, its
// own uid, the app tree and the service's cache writable, the Go
// toolchain read-only.
func (r *run) processBuild(app string, p plan) error {
	cache, err := r.b.cacheDir(r.req.TeamID, r.req.ProjectID, r.req.owner())
	if err != nil {
		return internal(err)
	}
	if err := os.MkdirAll(filepath.Join(cache, "home"), 0o700); err != nil {
		return internal(err)
	}
	// A writable mount is one workload's at a time: builds of one
	// service take turns with its cache.
	unlock, err := r.b.lockCache(r.ctx, cache)
	if err != nil {
		return err
	}
	defer unlock()
	env := map[string]string{}
	for k, v := range r.req.Args {
		if argNameRe.MatchString(k) {
			env[k] = v
		}
	}
	for k, v := range p.env {
		env[k] = v
	}
	env["HOME"] = cacheMount + "/home"
	env["PATH"] = defaultPath
	mounts := []runtime.Mount{{Source: app, Target: appMount}, {Source: cache, Target: cacheMount}}
	if p.stack == StackGo {
		goroot, err := r.b.goRoot()
		if err != nil {
			return err
		}
		if !underSystemDirs(goroot) {
			mounts = append(mounts, runtime.Mount{Source: goroot, Target: goroot, ReadOnly: true})
		}
		env["PATH"] = goroot + "/bin:" + defaultPath
		env["GOROOT"] = goroot
	}
	r.log.info("running: %s", p.build)
	st, _, err := r.workload("build", runtime.Spec{
		Command: []string{"/bin/sh", "-c", "set -e\n" + p.build},
		Env:     env,
		Mounts:  mounts,
		WorkDir: appMount,
	})
	if err != nil {
		return err
	}
	if st.Reason == runtime.ReasonDeadline {
		return errorf(KindTimeout, "the build took too long and was stopped")
	}
	if st.ExitCode != 0 || st.Reason != "" {
		return errorf(KindBuild, "the %s build failed (exit code %d); see the build log", p.stack, st.ExitCode)
	}
	return nil
}

// goRoot is the Go toolchain for Go buildpack builds.
func (b *Builder) goRoot() (string, error) {
	if b.cfg.GoRoot != "" {
		return b.cfg.GoRoot, nil
	}
	bin, err := exec.LookPath("go")
	if err != nil {
		for _, c := range []string{"/usr/local/go/bin/go", "/usr/lib/go/bin/go"} {
			if _, err2 := os.Stat(c); err2 == nil {
				bin, err = c, nil
				break
			}
		}
	}
	if err != nil {
		return "", errorf(KindBuild, "Go apps cannot be built: no Go toolchain is installed on the server")
	}
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return "", internal(err)
	}
	return filepath.Dir(filepath.Dir(real)), nil
}

// underSystemDirs is whether a sandbox sees p already: the system
// directories it binds (all of /usr, /usr/local included).
func underSystemDirs(p string) bool {
	for _, d := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib64"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// publish gives the artifact tree to the server's user and makes it
// readable, never writable, by every workload's user.
func publish(dir string) error {
	uid, gid := os.Getuid(), os.Getgid()
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm()&^0o022 | 0o444
		if d.IsDir() || mode&0o100 != 0 {
			mode |= 0o111
		}
		return os.Chmod(p, mode)
	})
}

// generateDockerfile is the Dockerfile of a buildpack build on the docker
// driver.
func generateDockerfile(p plan, base string, args map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", base)
	names := make([]string, 0, len(args))
	for k := range args {
		if argNameRe.MatchString(k) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "ARG %s\n", k)
	}
	envKeys := make([]string, 0, len(p.env))
	for k := range p.env {
		if strings.HasPrefix(p.env[k], cacheMount) {
			continue // no cache directory in an image build
		}
		envKeys = append(envKeys, k)
	}
	sort.Strings(envKeys)
	for _, k := range envKeys {
		fmt.Fprintf(&b, "ENV %s=%s\n", k, p.env[k])
	}
	fmt.Fprintf(&b, "WORKDIR %s\nCOPY . %s\n", appMount, appMount)
	if p.build != "" {
		fmt.Fprintf(&b, "RUN %s\n", p.build)
	}
	if p.stack == StackPython {
		fmt.Fprintf(&b, "ENV PYTHONPATH=%s\n", pyPackages)
	}
	if len(p.command) > 0 {
		cmd, _ := json.Marshal(p.command)
		fmt.Fprintf(&b, "CMD %s\n", cmd)
	}
	return b.String()
}
