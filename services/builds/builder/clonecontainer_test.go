package builder_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

// hostLoopback is the host's 127.0.0.1 as a container on Podman's
// slirp4netns network with allow_host_loopback sees it: the git server
// stays on loopback, and slirp4netns (a process on the host) connects to
// it there.
const hostLoopback = "10.0.2.2"

// recordingDriver hands everything to a real driver and keeps the specs
// started, so that a test can look at what the engine was given.
type recordingDriver struct {
	runtime.Driver
	mu    sync.Mutex
	specs []runtime.Spec
}

func (d *recordingDriver) Start(ctx context.Context, spec runtime.Spec) (string, error) {
	d.mu.Lock()
	d.specs = append(d.specs, spec)
	d.mu.Unlock()
	return d.Driver.Start(ctx, spec)
}

func (d *recordingDriver) started() []runtime.Spec {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]runtime.Spec(nil), d.specs...)
}

// TestCloneInContainer clones with Config.CloneImage: git in a container
// of a clone image on the docker driver (Podman), as docker-compose.yml
// does, with the clone cases of the process driver's tests. HTTP
// repositories are served on the host's loopback and reached through
// slirp4netns's allow_host_loopback.
func TestCloneInContainer(t *testing.T) {
	host := testenv.Podman(t)
	testenv.BuildTestImage(t, host)
	api := testenv.EngineClient(t, host)
	drv, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	drv.NetworkMode = "slirp4netns:allow_host_loopback=true"
	rec := &recordingDriver{Driver: drv}
	cloneImage := testenv.BuildCloneImage(t, host)
	fileRoot := t.TempDir()
	dir := t.TempDir()
	newB := func(image string) *builder.Builder {
		return newBuilder(t, builder.Config{Dir: dir, Process: rec, Docker: api, CloneImage: image,
			AllowHosts: []string{hostLoopback}, FileRoots: []string{fileRoot},
			BaseImages: map[string]string{"static": testenv.TestImage}})
	}
	b := newB(cloneImage)
	ctx := context.Background()
	// viaHost is a URL of the git server as the clone container reaches it.
	viaHost := func(u string) string { return strings.Replace(u, "127.0.0.1", hostLoopback, 1) }

	srv := gitserver.New(t)
	repo := srv.Repo(t, "app")
	first := repo.Commit(t, "main", "first", site("one"))
	second := repo.Commit(t, "main", "second", site("two"))
	for _, c := range []struct {
		name string
		src  builder.Source
		sha  string
	}{
		{"branch", builder.Source{Branch: "main"}, second},
		{"exact SHA", builder.Source{Branch: "main", SHA: first}, first},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			c.src.URL = viaHost(repo.URL)
			res := build(t, b, request(c.src, &l), &l)
			if res.SHA != c.sha || res.Image == "" {
				t.Errorf("result %+v, want SHA %s and an image", res, c.sha)
			}
			if err := b.Remove(ctx, res); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("unknown branch", func(t *testing.T) {
		var l logs
		e := buildErr(t, b, request(builder.Source{URL: viaHost(repo.URL), Branch: "nope"}, &l))
		if e.Kind != builder.KindSource || !strings.Contains(e.Message, `branch "nope" not found`) {
			t.Errorf("error %s %q\nlog:\n%s", e.Kind, e.Message, l.String())
		}
	})

	t.Run("private repository", func(t *testing.T) {
		const user, pass = "alice", "pa55-w0rd-never-shown"
		priv := gitserver.New(t, gitserver.WithBasicAuth(user, pass))
		prepo := priv.Repo(t, "private")
		sha := prepo.Commit(t, "main", "c", site("secret site"))
		url := viaHost(prepo.URL)
		before := len(rec.started())
		var l logs
		res := build(t, b, request(builder.Source{URL: url, Branch: "main", Credentials: builder.Credentials{Username: user, Password: pass}}, &l), &l)
		if res.SHA != sha {
			t.Errorf("SHA %s, want %s", res.SHA, sha)
		}
		_ = b.Remove(ctx, res)
		var wrong logs
		e := buildErr(t, b, request(builder.Source{URL: url, Branch: "main", Credentials: builder.Credentials{Username: user, Password: "wrong-" + pass}}, &wrong))
		if e.Kind != builder.KindSource || !strings.Contains(e.Message, "authentication failed") {
			t.Errorf("wrong password: %s %q\nlog:\n%s", e.Kind, e.Message, wrong.String())
		}
		if l.contains(pass) || wrong.contains(pass) || strings.Contains(e.Error(), pass) {
			t.Errorf("the password is in a log or an error:\n%s\n%s\n%s", l.String(), wrong.String(), e.Error())
		}
		// What the engine was given (and `inspect` shows): no password.
		specs := rec.started()[before:]
		if len(specs) == 0 {
			t.Fatal("no clone container started")
		}
		for _, s := range specs {
			if s.Image != cloneImage || s.User != fmt.Sprintf("%d:%d", testenv.HostImageUID, testenv.HostImageUID) || s.HostNetwork {
				t.Errorf("clone container %s: image %q user %q host network %v", s.Name, s.Image, s.User, s.HostNetwork)
			}
			all := strings.Join(s.Command, " ") + strings.Join(s.Entrypoint, " ")
			for k, v := range s.Env {
				all += " " + k + "=" + v
			}
			if strings.Contains(all, pass) {
				t.Errorf("clone container %s is given the password in its command or environment", s.Name)
			}
		}
	})

	t.Run("file repository", func(t *testing.T) {
		frepo := gitserver.NewFileRepo(t, fileRoot, "shared", 4321)
		sha := frepo.Commit(t, "main", "c", site("from disk"))
		var l logs
		res := build(t, b, request(builder.Source{URL: frepo.URL, Branch: "main"}, &l), &l)
		if res.SHA != sha {
			t.Errorf("SHA %s, want %s", res.SHA, sha)
		}
		_ = b.Remove(ctx, res)
		last := rec.started()[len(rec.started())-1]
		ro := false
		for _, m := range last.Mounts {
			ro = ro || m.Target == "/repository" && m.ReadOnly
		}
		if !ro {
			t.Errorf("the repository is not mounted read-only: %+v", last.Mounts)
		}
	})

	t.Run("ssh with a key and the known host key", func(t *testing.T) {
		sshd := testenv.StartSSHD(t)
		srepo := gitserver.NewFileRepo(t, t.TempDir(), "app", 0)
		sha := srepo.Commit(t, "main", "c", site("over ssh"))
		known := knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("%s:%d", hostLoopback, sshd.Port))}, sshd.HostKey)
		var l logs
		res := build(t, b, request(builder.Source{URL: viaHost(sshd.URL(srepo.Path)), Branch: "main",
			Credentials: builder.Credentials{PrivateKey: sshd.ClientKey, KnownHosts: known}}, &l), &l)
		if res.SHA != sha {
			t.Errorf("SHA %s, want %s", res.SHA, sha)
		}
		_ = b.Remove(ctx, res)
		for _, line := range strings.Split(sshd.ClientKey, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") && l.contains(line) {
				t.Fatalf("the private key is in the log:\n%s", l.String())
			}
		}
	})

	t.Run("refs", func(t *testing.T) {
		refs, err := b.Refs(ctx, builder.Source{URL: viaHost(repo.URL)})
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != 1 || refs[0].Name != "main" || refs[0].SHA != second {
			t.Errorf("refs %+v", refs)
		}
	})

	t.Run("image without a non-root user", func(t *testing.T) {
		rootImage := testenv.BuildHostImage(t, host, "localhost/slipway-git-no-user:latest", "/usr/bin/git", "/usr/lib/git-core")
		var l logs
		e := buildErr(t, newB(rootImage), request(builder.Source{URL: viaHost(repo.URL), Branch: "main"}, &l))
		if e.Kind != builder.KindInternal || !strings.Contains(errorsUnwrap(e), "not a numeric non-root user") {
			t.Errorf("error %s %q (%s)", e.Kind, e.Message, errorsUnwrap(e))
		}
	})

	ents, err := os.ReadDir(filepath.Join(dir, "work"))
	if err != nil || len(ents) != 0 {
		t.Errorf("work directories left: %v %v", ents, err)
	}
	left, err := drv.List(ctx, map[string]string{builder.LabelTeam: "team"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range left {
		t.Errorf("clone container left: %s", w.Name)
	}
}

func errorsUnwrap(e *builder.Error) string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

// TestCloneImagePullFailure: a clone image that is not on the engine and
// cannot be pulled (its registry, on a loopback port, refuses the
// connection) fails the build with the pull's reason for the operator,
// not the "not found" of the inspection after it, and with nothing of it
// in the build's message.
func TestCloneImagePullFailure(t *testing.T) {
	host := testenv.Podman(t)
	api := testenv.EngineClient(t, host)
	drv, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	const missing = "127.0.0.1:1/slipway/no-such-clone-image:latest"
	b := newBuilder(t, builder.Config{Process: drv, Docker: api, CloneImage: missing})
	var l logs
	e := buildErr(t, b, request(builder.Source{URL: "http://127.0.0.1:1/app.git", Branch: "main"}, &l))
	reason := errorsUnwrap(e)
	if e.Kind != builder.KindInternal || !strings.Contains(reason, "pulling it failed") || !strings.Contains(reason, "connection refused") {
		t.Errorf("error %s %q (%s)", e.Kind, e.Message, reason)
	}
	if strings.Contains(e.Message, "127.0.0.1:1") || strings.Contains(l.String(), "connection refused") {
		t.Errorf("the pull's failure reached the build's message or log: %q\n%s", e.Message, l.String())
	}
}
