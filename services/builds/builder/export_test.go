package builder

import (
	"context"
	"io"
	"strings"
)

// StartImageBuild posts req's image build of contextDir with dockerfile as
// Build does, and returns the engine's stream, with nothing to clean up
// after it: closing the stream plays a server killed mid-build.
func StartImageBuild(ctx context.Context, b *Builder, req Request, contextDir string, dockerfile []byte) (io.ReadCloser, error) {
	r := &run{b: b, req: req, ctx: ctx}
	sha := strings.Repeat("0", 40)
	return r.startBuild(contextDir, dockerfile, r.buildQuery(r.imageTag(sha), sha, ""))
}
