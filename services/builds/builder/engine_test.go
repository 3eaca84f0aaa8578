package builder_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/client"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

// TestPodmanAskedUntilItAnswers: an engine that does not answer yet (a
// server starting while Podman is still coming up) is not taken for
// Docker for good: once it answers it is known to be Podman, on which the
// abort of a build depends.
func TestPodmanAskedUntilItAnswers(t *testing.T) {
	host := testenv.Podman(t)
	// The builder's engine is a socket path that does not exist yet, then
	// a link to the Podman service's.
	dir, err := os.MkdirTemp("", "engine")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "engine.sock")
	api, err := client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	b := newBuilder(t, builder.Config{Docker: api})
	ctx := context.Background()
	if builder.IsPodman(ctx, b) {
		t.Fatal("an engine that does not answer taken for Podman")
	}
	if err := os.Symlink(strings.TrimPrefix(host, "unix://"), sock); err != nil {
		t.Fatal(err)
	}
	if !builder.IsPodman(ctx, b) {
		t.Error("the engine is not taken for Podman once it answers")
	}
}
