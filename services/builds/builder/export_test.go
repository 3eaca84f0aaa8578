package builder

import (
	"context"
	"io"
	"strings"
)

// RunSSH runs the clone's ssh command (sshScript) for src in the clone's
// sandbox, as git runs it, with args (shell words) and returns what it
// printed, stdout and stderr, and a last line "exit N".
func (b *Builder) RunSSH(ctx context.Context, src Source, args string) (string, error) {
	return b.remote(ctx, src, "ssh", "running ssh", `"$GIT_SSH_COMMAND" `+args+` 2>&1; echo "exit $?"`, nil)
}

// StartImageBuild posts req's image build of contextDir with dockerfile as
// Build does, and returns the engine's stream, with nothing to clean up
// after it: closing the stream plays a server killed mid-build.
func StartImageBuild(ctx context.Context, b *Builder, req Request, contextDir string, dockerfile []byte) (io.ReadCloser, error) {
	r := &run{b: b, req: req, ctx: ctx}
	sha := strings.Repeat("0", 40)
	return r.startBuild(contextDir, dockerfile, r.buildQuery(r.imageTag(sha), sha, ""))
}

// IsPodman is whether b takes its engine for Podman.
func IsPodman(ctx context.Context, b *Builder) bool { return b.podman(ctx) }
