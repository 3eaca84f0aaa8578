package builder

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// Podman's build does not stop when its client goes, and this file is the
// one place that deals with it.
//
// Docker cancels a build whose /build connection closes: the running step's
// container is stopped and nothing is committed. Podman (4.3.1 here; the
// handler is the same in Podman 5) hands the request's context to buildah,
// whose RUN step waits for its process whatever the context says: an
// aborted build's step runs on to its end inside the engine, with its
// working container (a buildah container, in no Docker-compatible list).
// There is no API to stop it, and nothing of the request reaches that
// container or its processes but the resource settings: no label, no tag,
// the container named after its base image like every other build's.
//
// So a build on Podman marks its steps' processes with a resource limit
// that no build reaches and no two builds share: RLIMIT_RTTIME (the CPU
// time a real-time scheduled process may use without blocking; ordinary
// processes are never held to it) set to weeks plus a hash of the build's
// id. Every process a step starts inherits it. An aborted build, or one
// found interrupted at start-up, has its marked processes killed when
// the engine runs on this machine (as the docker driver's killExec does
// for an exec session). With its process gone the step fails, and buildah
// removes the working container (forcerm) and commits and tags nothing.
// A remote engine's processes cannot be seen: the step then runs to its
// end (in trials with Podman 4.3.1 the build then failed, committing
// nothing), and the tag is removed at the abort in any case.

// markerBase and markerSpan bound the RLIMIT_RTTIME markers, in
// microseconds: at least 2^42 µs (about 51 days), far beyond any build's
// timeout and Linux's default (unlimited) alike.
const (
	markerBase = uint64(1) << 42
	markerSpan = uint64(1) << 40
)

// stepMarker is the RLIMIT_RTTIME value that marks buildID's processes.
func stepMarker(buildID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("slipway build " + buildID))
	return markerBase + h.Sum64()%markerSpan
}

// podmanUlimit is the marker as a ulimit of Podman's /build.
func podmanUlimit(buildID string) string {
	m := stepMarker(buildID)
	return fmt.Sprintf("rttime=%d:%d", m, m)
}

// stopSteps kills what buildID's steps still run in a Podman engine on this
// machine and waits (up to wait) until none is left. It reports whether
// none is.
func (b *Builder) stopSteps(ctx context.Context, buildID string, wait time.Duration) bool {
	if b.cfg.Docker == nil || !b.podman(ctx) {
		return true
	}
	marker := stepMarker(buildID)
	deadline := time.Now().Add(wait)
	for {
		if killMarked(marker) == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rttimeSoft reads the soft RLIMIT_RTTIME of a /proc/<pid>/limits text.
func rttimeSoft(limits string) (string, bool) {
	for _, l := range strings.Split(limits, "\n") {
		if rest, ok := strings.CutPrefix(l, "Max realtime timeout"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return "", false
			}
			return f[0], true
		}
	}
	return "", false
}
