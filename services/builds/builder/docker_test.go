package builder_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

const multiStage = `FROM ` + testenv.TestImage + ` AS base
ARG GREETING=nobody
RUN echo "greeting=$GREETING"
RUN echo "memory=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
FROM base AS final
RUN echo "stage=final"
COPY app.txt /app.txt
FROM base AS unused
RUN echo "stage=unused"
`

// TestDockerfile runs the Dockerfile builds against one Podman service.
func TestDockerfile(t *testing.T) {
	host := testenv.Podman(t)
	testenv.BuildTestImage(t, host)
	api := testenv.EngineClient(t, host)
	srv := gitserver.New(t)
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir, Docker: api, BaseImages: map[string]string{"static": testenv.TestImage}})
	ctx := context.Background()

	dockerReq := func(repo *gitserver.Repo, l *logs, df builder.Dockerfile) builder.Request {
		req := request(builder.Source{URL: repo.URL, Branch: "main"}, l)
		req.Buildpack = nil
		req.Dockerfile = &df
		return req
	}

	t.Run("args and target", func(t *testing.T) {
		repo := srv.Repo(t, "multi")
		sha := repo.Commit(t, "main", "c", map[string]string{"docker/Dockerfile": multiStage, "ctx/app.txt": "hi"})
		var l logs
		req := dockerReq(repo, &l, builder.Dockerfile{Path: "/docker/Dockerfile", WorkDir: "/ctx", Target: "final"})
		req.Args = map[string]string{"GREETING": "hello"}
		req.Resources = runtime.Resources{MilliCPU: 500, MemoryMB: 256}
		res := build(t, b, req, &l)
		want := "localhost/slipway/proj/svc:" + sha[:12] + "-" + req.BuildID
		if res.Image != want || res.SHA != sha || res.Stack != "dockerfile" {
			t.Errorf("result %+v, want image %s", res, want)
		}
		for _, s := range []string{"greeting=hello", "stage=final", "memory=268435456"} {
			if !l.contains(s) {
				t.Errorf("log lacks %q:\n%s", s, l.String())
			}
		}
		if l.contains("stage=unused") {
			t.Errorf("the stage after the target was built:\n%s", l.String())
		}
		insp, err := api.ImageInspect(ctx, res.Image)
		if err != nil {
			t.Fatal(err)
		}
		if insp.Config.Labels[builder.LabelBuild] != req.BuildID || insp.Config.Labels[builder.LabelService] != "svc" {
			t.Errorf("labels %v", insp.Config.Labels)
		}
		if err := b.Remove(ctx, res); err != nil {
			t.Fatal(err)
		}
		if _, err := api.ImageInspect(ctx, res.Image); err == nil {
			t.Error("image left after Remove")
		}
	})

	t.Run("failing Dockerfile", func(t *testing.T) {
		repo := srv.Repo(t, "failing")
		repo.Commit(t, "main", "c", map[string]string{"Dockerfile": "FROM " + testenv.TestImage + "\nRUN echo about to fail && exit 3\n"})
		var l logs
		req := dockerReq(repo, &l, builder.Dockerfile{})
		e := buildErr(t, b, req)
		if e.Kind != builder.KindBuild || !strings.Contains(e.Message, "image build failed") {
			t.Errorf("error %s %q", e.Kind, e.Message)
		}
		if !l.contains("about to fail") || !l.contains("stderr: ") || !strings.Contains(l.String(), "exit status 3") {
			t.Errorf("the engine's error is not in the log:\n%s", l.String())
		}
		noImages(t, api, req.BuildID)
	})

	// Abort mid-build, when the engine announces the slow step (its
	// process may not run yet) and while it runs.
	for name, at := range map[string]func(line string) bool{
		"abort mid-build at a step's start": func(line string) bool { return strings.Contains(line, "RUN sh -c") },
		"abort mid-build":                   func(line string) bool { return strings.TrimSpace(line) == "started-sleeping" },
	} {
		t.Run(name, func(t *testing.T) {
			// The step runs for five minutes unless stopped; its shell is
			// named after the build, so that it is found by its command
			// line.
			repo := srv.Repo(t, "slow")
			var l logs
			req := dockerReq(repo, &l, builder.Dockerfile{})
			step := "slow-step-" + req.BuildID
			repo.Commit(t, "main", "c", map[string]string{"Dockerfile": "FROM " + testenv.TestImage +
				"\nRUN sh -c 'echo started-sleeping; sleep 300; echo slept' " + step + "\nRUN echo never\n"})
			bctx, cancel := context.WithCancel(ctx)
			req.Log = func(stream, line string) {
				l.add(stream, line)
				if at(line) {
					cancel()
				}
			}
			_, err := b.Build(bctx, req)
			e, ok := err.(*builder.Error)
			if !ok || e.Kind != builder.KindAborted {
				t.Fatalf("error %v, want aborted\n%s", err, l.String())
			}
			// Podman goes on with a build whose client has gone: the
			// step's processes and working container are gone all the
			// same.
			noStep(t, host, step)
			noImages(t, api, req.BuildID)
		})
	}

	t.Run("discard an interrupted build", func(t *testing.T) {
		// A build that Slipway started and then lost (a crash): its
		// /build posted as Build posts it, and its connection closed
		// mid-step with nothing else done. Discard, at start-up, stops
		// what the engine still runs of it.
		var l logs
		req := request(builder.Source{}, &l)
		step := "slow-step-" + req.BuildID
		body, err := builder.StartImageBuild(ctx, b, req, t.TempDir(), []byte("FROM "+testenv.TestImage+
			"\nRUN sh -c 'echo started-sleeping; sleep 300; echo slept' "+step+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		var seen strings.Builder
		for buf := make([]byte, 4096); !strings.Contains(seen.String(), "started-sleeping"); {
			n, err := body.Read(buf)
			seen.Write(buf[:n])
			if err != nil {
				t.Fatalf("the build ended before its step: %v\n%s", err, seen.String())
			}
		}
		body.Close()
		time.Sleep(time.Second)
		if !stepRuns(t, step) {
			t.Fatal("the interrupted build's step does not run on: nothing to discard")
		}
		if err := b.Discard(ctx, req.BuildID); err != nil {
			t.Fatal(err)
		}
		noStep(t, host, step)
		noImages(t, api, req.BuildID)

		// One that the engine finished and tagged after the crash: its
		// image goes.
		done := request(builder.Source{}, &l)
		body, err = builder.StartImageBuild(ctx, b, done, t.TempDir(), []byte("FROM "+testenv.TestImage+"\nRUN echo built\n"))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(body)
		body.Close()
		imgs, err := api.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", builder.LabelBuild+"="+done.BuildID))})
		if err != nil || len(imgs) != 1 || len(imgs[0].RepoTags) != 1 {
			t.Fatalf("the finished build's images: %+v, %v\n%s", imgs, err, out)
		}
		if err := b.Discard(ctx, done.BuildID); err != nil {
			t.Fatal(err)
		}
		noImages(t, api, done.BuildID)
	})

	t.Run("Dockerfile path leaving the repository", func(t *testing.T) {
		repo := srv.Repo(t, "escape")
		repo.Commit(t, "main", "c", map[string]string{"Dockerfile": "FROM scratch\n"})
		for _, df := range []builder.Dockerfile{{Path: "../Dockerfile"}, {Path: "/a/../../Dockerfile"}, {WorkDir: "../"}} {
			var l logs
			e := buildErr(t, b, dockerReq(repo, &l, df))
			if e.Kind != builder.KindInvalid || !strings.Contains(e.Message, "leaves the repository") {
				t.Errorf("%+v: error %s %q", df, e.Kind, e.Message)
			}
			if l.contains("cloning") {
				t.Errorf("%+v: cloned before refusing the path", df)
			}
		}
		// Links in the repository that lead out of it are refused too.
		repo.Symlink(t, "main", "link", "abs", "/etc/passwd")
		repo.Symlink(t, "main", "link", "rel", "../../../../../../etc")
		repo.Symlink(t, "main", "link", "inside", "docker")
		repo.Commit(t, "main", "c", map[string]string{"docker/Dockerfile": "FROM scratch\n"})
		for _, df := range []builder.Dockerfile{{Path: "abs"}, {WorkDir: "rel"}, {Path: "rel/passwd"}, {WorkDir: "inside"}} {
			var l logs
			e := buildErr(t, b, dockerReq(repo, &l, df))
			if e.Kind != builder.KindInvalid || !(strings.Contains(e.Message, "leaves the repository") || strings.Contains(e.Message, "symbolic link")) {
				t.Errorf("%+v: error %s %q", df, e.Kind, e.Message)
			}
		}
	})

	t.Run("buildpack static on the docker driver", func(t *testing.T) {
		repo := srv.Repo(t, "static")
		repo.Commit(t, "main", "c", map[string]string{"index.html": "hello"})
		var l logs
		res := build(t, b, request(builder.Source{URL: repo.URL, Branch: "main"}, &l), &l)
		if res.Stack != builder.StackStatic || res.Image == "" || res.Path != "" {
			t.Fatalf("result %+v", res)
		}
		insp, err := api.ImageInspect(ctx, res.Image)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(insp.Config.Cmd, " "); !strings.Contains(got, "httpd -f") {
			t.Errorf("CMD %q", got)
		}
		// The image runs and serves the site on its port.
		d, err := docker.New(host)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		id, err := d.Start(ctx, runtime.Spec{Name: "serve-" + strings.ReplaceAll(res.Image[strings.LastIndex(res.Image, ":")+1:], ".", "-"), Image: res.Image, Ports: []runtime.Port{{Name: "p01", Port: 8080}}})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Remove(ctx, id)
		defer d.Stop(ctx, id, time.Second)
		if got := httpGet(t, func() string {
			st, err := d.Status(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return st.Ports["p01"]
		}); got != "hello" {
			t.Errorf("GET / = %q", got)
		}
	})
	noWorkDirs(t, dir)
}

// noImages checks that no image of the build is left, tagged or not.
func noImages(t *testing.T, api client.APIClient, buildID string) {
	t.Helper()
	imgs, err := api.ImageList(context.Background(), image.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", builder.LabelBuild+"="+buildID))})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		t.Errorf("image left: %s %v", img.ID, img.RepoTags)
	}
	all, _ := api.ImageList(context.Background(), image.ListOptions{})
	for _, img := range all {
		for _, tag := range img.RepoTags {
			if strings.HasSuffix(tag, "-"+buildID) {
				t.Errorf("tag left: %s", tag)
			}
		}
	}
}

// httpGet polls GET / at the address addr returns until it answers 200.
func httpGet(t *testing.T, addr func() string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if a := addr(); a != "" {
			resp, err := http.Get("http://" + a + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return string(b)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no answer within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stepRuns is whether a process whose command line holds step runs.
func stepRuns(t *testing.T, step string) bool {
	t.Helper()
	return len(testenv.Processes(t, step)) > 0
}

// noStep checks, for a few seconds, that the step named step no longer
// runs and that the engine has no working container of a build left (no
// other build runs meanwhile).
func noStep(t *testing.T, host, step string) {
	t.Helper()
	if left := testenv.AwaitBuildGone(t, host, step, 5*time.Second); left != "" {
		t.Fatalf("5s after the build ended: %s", left)
	}
}
