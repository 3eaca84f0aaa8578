package builder

import (
	"context"
	"fmt"
	"hash/fnv"
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
// id. Every process a step starts inherits it. A build whose stream was
// cut off (aborted, timed out), or one found interrupted at start-up, has
// its marked processes killed when the engine runs on this machine (as
// the docker driver's killExec does for an exec session). With its
// process gone the step fails; buildah then removes the working container
// (forcerm) and commits and tags nothing, and with its client gone it
// starts no later step. A remote engine's processes cannot be seen: the
// step then runs to its end (in trials with Podman 4.3.1 the build then
// failed, committing nothing), and the tag is removed at the abort in
// any case.

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

// Bounds of stopSteps's watch.
const (
	// stepQuiet is how long no process of the build must be seen: an
	// abort can come after the engine announced a RUN step and before its
	// process starts (runc's set-up). No later step starts: with its
	// client gone, the build fails when the step ends.
	stepQuiet = 3 * time.Second
	// stepWatch bounds the whole watch.
	stepWatch = 15 * time.Second
)

// stopSteps kills what buildID's steps run in a Podman engine on this
// machine, watching until none has been seen for stepQuiet (at most
// stepWatch). It is for a build whose stream was cut off (aborted, timed
// out, broken, or its server killed): one whose stream the engine ended
// runs nothing more.
func (b *Builder) stopSteps(ctx context.Context, buildID string) {
	if b.cfg.Docker == nil || !b.podman(ctx) {
		return
	}
	marker := stepMarker(buildID)
	end := time.Now().Add(stepWatch)
	quietFrom := time.Now()
	for time.Now().Before(end) && ctx.Err() == nil {
		if killMarked(marker) > 0 {
			quietFrom = time.Now()
		} else if time.Since(quietFrom) >= stepQuiet {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
