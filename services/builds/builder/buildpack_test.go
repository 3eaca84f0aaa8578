package builder_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

const goApp = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from go "+os.Getenv("GREETING")) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

const nodeApp = `const http = require('http');
http.createServer((req, res) => res.end('hello from node')).listen(process.env.PORT);
`

const pythonApp = `import http.server, os

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from python")

http.server.HTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
`

func TestBuildpackProcess(t *testing.T) {
	srv := gitserver.New(t)
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir})
	for _, c := range []struct {
		name    string
		files   map[string]string
		context string
		stack   string
		command []string
		body    string
	}{
		{"go", map[string]string{"go.mod": "module example.com/app\n\ngo 1.22\n", "main.go": goApp}, "", builder.StackGo, []string{"/app/bin/app"}, "hello from go "},
		{"node start script", map[string]string{"package.json": `{"name":"app","scripts":{"start":"node server.js"}}`, "server.js": nodeApp}, "", builder.StackNode, []string{"/bin/sh", "-c", `export HOME="${HOME:-/tmp}"; exec npm start`}, "hello from node"},
		{"node index.js in a sub-directory", map[string]string{"web/package.json": `{"name":"app"}`, "web/index.js": nodeApp, "README": "x"}, "/web", builder.StackNode, []string{"node", "/app/index.js"}, "hello from node"},
		{"procfile wins", map[string]string{"Procfile": "release: true\nweb: exec busybox httpd -f -p $PORT -h /app/public\n", "public/index.html": "from procfile", "index.html": "not this"},
			"", builder.StackStatic, []string{"/bin/sh", "-c", "exec busybox httpd -f -p $PORT -h /app/public"}, "from procfile"},
		{"procfile only", map[string]string{"Procfile": "web: exec busybox httpd -f -p $PORT -h /app/www\n", "www/index.html": "procfile only"},
			"", builder.StackProcfile, nil, "procfile only"},
		{"static", map[string]string{"index.html": "static site"}, "", builder.StackStatic, nil, "static site"},
		{"python", map[string]string{"requirements.txt": "", "app.py": pythonApp}, "", builder.StackPython,
			[]string{"env", "PYTHONPATH=/app/.python-packages", "python3", "/app/app.py"}, "hello from python"},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := srv.Repo(t, strings.ReplaceAll(c.name, " ", "-"))
			repo.Commit(t, "main", "app", c.files)
			var l logs
			req := request(builder.Source{URL: repo.URL, Branch: "main"}, &l)
			req.Buildpack.Context = c.context
			res := build(t, b, req, &l)
			if res.Stack != c.stack {
				t.Errorf("stack %q, want %q", res.Stack, c.stack)
			}
			if c.command != nil && !slices.Equal(res.Command, c.command) {
				t.Errorf("command %q, want %q", res.Command, c.command)
			}
			if len(res.Command) == 0 {
				t.Fatalf("no start command\n%s", l.String())
			}
			if got := serveArtifact(t, res, "/"); !strings.Contains(got, c.body) {
				t.Errorf("GET / = %q, want %q", got, c.body)
			}
		})
	}
	noWorkDirs(t, dir)

	// The Go build filled the service's cache; ResetCache empties it.
	cache := filepath.Join(dir, "cache", "team", "proj", "svc")
	if _, err := os.Stat(filepath.Join(cache, "go-build")); err != nil {
		t.Fatalf("no Go build cache: %v", err)
	}
	if err := b.ResetCache(context.Background(), "team", "proj", "svc"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Errorf("cache left after ResetCache: %v", err)
	}
}

func TestBuildpackGoCompileError(t *testing.T) {
	srv := gitserver.New(t)
	repo := srv.Repo(t, "broken")
	repo.Commit(t, "main", "broken", map[string]string{"go.mod": "module example.com/app\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() {\n\tthis is not go\n}\n"})
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir})
	var l logs
	e := buildErr(t, b, request(builder.Source{URL: repo.URL, Branch: "main"}, &l))
	if e.Kind != builder.KindBuild {
		t.Errorf("kind %s (%q)", e.Kind, e.Message)
	}
	if !l.contains("main.go:4") || !l.contains("syntax error") {
		t.Errorf("no compiler message in the log:\n%s", l.String())
	}
	noWorkDirs(t, dir)
}

func TestBuildpackNothingDetected(t *testing.T) {
	srv := gitserver.New(t)
	repo := srv.Repo(t, "empty")
	repo.Commit(t, "main", "c", map[string]string{"README.md": "nothing to run"})
	var l logs
	e := buildErr(t, newBuilder(t, builder.Config{}), request(builder.Source{URL: repo.URL, Branch: "main"}, &l))
	if e.Kind != builder.KindBuild || !strings.Contains(e.Message, "no supported stack") {
		t.Errorf("error %s %q", e.Kind, e.Message)
	}
}

func TestBuildpackAbort(t *testing.T) {
	srv := gitserver.New(t)
	repo := srv.Repo(t, "app")
	repo.Commit(t, "main", "c", map[string]string{"go.mod": "module example.com/app\n\ngo 1.22\n", "main.go": goApp})
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir})
	var l logs
	req := request(builder.Source{URL: repo.URL, Branch: "main"}, &l)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req.Log = func(stream, line string) {
		l.add(stream, line)
		if strings.HasPrefix(line, "slipway: running: go build") {
			cancel()
		}
	}
	_, err := b.Build(ctx, req)
	var e *builder.Error
	if !errors.As(err, &e) || e.Kind != builder.KindAborted {
		t.Fatalf("error %v, want aborted\n%s", err, l.String())
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "artifacts")); len(ents) != 0 {
		t.Errorf("artifacts left: %v", ents)
	}
	noWorkDirs(t, dir)
}

func TestBuildpackTimeout(t *testing.T) {
	srv := gitserver.New(t)
	repo := srv.Repo(t, "app")
	repo.Commit(t, "main", "c", map[string]string{"go.mod": "module example.com/app\n\ngo 1.22\n", "main.go": goApp})
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir})
	var l logs
	req := request(builder.Source{URL: repo.URL, Branch: "main"}, &l)
	req.Timeout = 2 * time.Second
	e := buildErr(t, b, req)
	if e.Kind != builder.KindTimeout || !strings.Contains(e.Message, "longer than 2s") {
		t.Errorf("error %s %q\n%s", e.Kind, e.Message, l.String())
	}
	noWorkDirs(t, dir)
}

func TestRemoveOnlyArtifacts(t *testing.T) {
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir})
	victim := t.TempDir()
	for _, p := range []string{victim, filepath.Join(dir, "artifacts"), filepath.Join(dir, "artifacts", "x", "app", "..", "..", "..", "work"), filepath.Join(dir, "cache", "x", "app")} {
		if err := b.Remove(context.Background(), builder.Result{Path: p}); err == nil {
			t.Errorf("Remove(%s) succeeded", p)
		}
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("Remove deleted a directory not its own: %v", err)
	}
}

// TestBuildpackSandbox: a build's own code (an npm lifecycle script) runs
// as a user of its own, not root, and cannot reach the host's loopback
// (where the git server it was cloned from listens).
func TestBuildpackSandbox(t *testing.T) {
	srv := gitserver.New(t)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	repo := srv.Repo(t, "app")
	repo.Commit(t, "main", "c", map[string]string{
		"package.json":     `{"name":"app","dependencies":{"lib":"file:./lib"},"scripts":{"postinstall":"id -u > uid.txt && node probe.js"}}`,
		"lib/package.json": `{"name":"lib","version":"1.0.0"}`,
		"probe.js": `require('net').connect(` + port + `, '127.0.0.1')
	.on('connect', () => { require('fs').writeFileSync('net.txt', 'reached'); process.exit(0) })
	.on('error', e => { require('fs').writeFileSync('net.txt', e.code) })`,
		"index.js": nodeApp,
	})
	var l logs
	req := request(builder.Source{URL: repo.URL, Branch: "main"}, &l)
	req.Resources = runtime.Resources{MilliCPU: 500, MemoryMB: 512}
	res := build(t, newBuilder(t, builder.Config{}), req, &l)
	if uid := strings.TrimSpace(readFile(t, filepath.Join(res.Path, "uid.txt"))); uid == "0" || uid == "" {
		t.Errorf("the build ran as uid %q", uid)
	}
	if got := readFile(t, filepath.Join(res.Path, "net.txt")); got == "reached" {
		t.Errorf("the build reached the host's loopback")
	}
	if !l.contains("npm") {
		t.Errorf("no npm output:\n%s", l.String())
	}
}
