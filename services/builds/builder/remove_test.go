package builder_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

// TestRemoveKeepsAnImageInUse: RemoveUnused of a build's image
// (retention) while a container runs it (a release of the build, e.g. after a rollback to
// it) fails and leaves the image and the running container alone;
// Podman's forced removal used to remove the container too, taking the
// service down. Once no container uses it, the image goes.
func TestRemoveKeepsAnImageInUse(t *testing.T) {
	host := testenv.Podman(t)
	testenv.BuildTestImage(t, host)
	api := testenv.EngineClient(t, host)
	ctx := context.Background()
	b := newBuilder(t, builder.Config{Dir: t.TempDir(), Docker: api})
	repo := gitserver.New(t).Repo(t, "inuse")
	repo.Commit(t, "main", "c", map[string]string{"Dockerfile": "FROM " + testenv.TestImage + "\nRUN echo built > /built\n"})
	var l logs
	req := request(builder.Source{URL: repo.URL, Branch: "main"}, &l)
	req.Buildpack, req.Dockerfile = nil, &builder.Dockerfile{}
	res := build(t, b, req, &l)

	c, err := api.ContainerCreate(ctx, &container.Config{Image: res.Image, Cmd: []string{"sleep", "600"}},
		&container.HostConfig{Resources: container.Resources{Ulimits: docker.DefaultUlimits()}}, nil, nil, "inuse-release")
	if err != nil {
		t.Fatal(err)
	}
	if err := api.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveUnused(ctx, res); err == nil {
		t.Error("RemoveUnused of an image a running container uses succeeded")
	}
	if _, err := api.ImageInspect(ctx, res.Image); err != nil {
		t.Errorf("the image in use is gone: %v", err)
	}
	ci, err := api.ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatalf("the container using the image is gone: %v", err)
	}
	if !ci.State.Running {
		t.Fatalf("the container using the image: %+v", ci.State)
	}

	if err := api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveUnused(ctx, res); err != nil {
		t.Fatalf("RemoveUnused once no container uses the image: %v", err)
	}
	noImages(t, api, req.BuildID)
}

// TestRemoveKeepsAnArtifactInUse: on the process driver, RemoveUnused of
// an app tree a running release has mounted (retention after a rollback
// to that build) fails with ErrInUse and removes nothing; once the release
// has stopped, the tree goes.
func TestRemoveKeepsAnArtifactInUse(t *testing.T) {
	ctx := context.Background()
	b := newBuilder(t, builder.Config{Dir: t.TempDir()})
	repo := gitserver.New(t).Repo(t, "inuse-tree")
	repo.Commit(t, "main", "c", map[string]string{"index.html": "in use\n"})
	var l logs
	res := build(t, b, request(builder.Source{URL: repo.URL, Branch: "main"}, &l), &l)
	d := processDriver(t)
	id, err := d.Start(ctx, runtime.Spec{
		Name: "inuse-release", Command: []string{"sleep", "600"},
		Env:    map[string]string{"PATH": "/usr/bin:/bin"},
		Mounts: []runtime.Mount{{Source: res.Path, Target: "/app", ReadOnly: true}}, WorkDir: "/app",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Remove(ctx, id) }()
	// Start returns once the sandbox's process runs, which may be before
	// its mounts are all in place: wait (bounded) until a command run
	// inside it sees the artifact.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, err := d.Exec(ctx, id, runtime.ExecSpec{Command: []string{"/usr/bin/test", "-f", "/app/index.html"}})
		if err == nil && code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the release does not see its artifact: exit %d, %v", code, err)
		}
	}
	if err := b.RemoveUnused(ctx, res); !errors.Is(err, builder.ErrInUse) {
		t.Errorf("RemoveUnused of a mounted artifact: %v, want ErrInUse", err)
	}
	if _, err := os.Stat(res.Path); err != nil {
		t.Fatalf("the artifact in use is gone: %v", err)
	}
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveUnused(ctx, res); err != nil {
		t.Fatalf("RemoveUnused once nothing runs it: %v", err)
	}
	if _, err := os.Stat(res.Path); !os.IsNotExist(err) {
		t.Errorf("the artifact is still there: %v", err)
	}
}
