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
		t.Errorf("kind %s (%q)", e.Kind, e.Reason)
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
	if e.Kind != builder.KindBuild || !strings.Contains(e.Reason, "no supported stack") {
		t.Errorf("error %s %q", e.Kind, e.Reason)
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
	if e.Kind != builder.KindTimeout || !strings.Contains(e.Reason, "longer than 2s") {
		t.Errorf("error %s %q\n%s", e.Kind, e.Reason, l.String())
	}
	noWorkDirs(t, dir)
}
