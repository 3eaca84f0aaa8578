package builder

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
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

// Bounds of the watch for a build's marked processes.
const (
	// stepQuiet is how long no process of the build must be seen after
	// one was killed: the killed step fails and, with its client gone,
	// the build starts no later step.
	stepQuiet = 3 * time.Second
	// stepWatch bounds the watch of a build of which nothing was killed
	// yet: an abort can come after the engine announced a RUN step and
	// before its process starts (runc's set-up, which can take seconds on
	// a loaded machine), or while a step without a process (COPY, ADD)
	// runs before one that has.
	stepWatch = 60 * time.Second
	// stepTick is how often the watch looks.
	stepTick = 100 * time.Millisecond
)

// stopSteps kills what buildID's steps run in a Podman engine on this
// machine. It is for a build whose stream was cut off (aborted, timed
// out, broken, or its server killed): one whose stream the engine ended
// runs nothing more. What runs now is killed before it returns; a step
// that starts later is watched for in the background (b.steps), so that
// an abort, or start-up recovery of many builds, does not wait on it.
func (b *Builder) stopSteps(ctx context.Context, buildID string) {
	if b.cfg.Docker == nil || !b.podman(ctx) {
		return
	}
	marker := stepMarker(buildID)
	b.steps.watch(marker, killMarked(marker) > 0)
}

// stepWatcher watches for the marked processes of the builds stopSteps
// stopped, in one goroutine for them all, while there are any: each
// build's until none has been seen for stepQuiet after one was killed, or
// for stepWatch at most.
type stepWatcher struct {
	mu      sync.Mutex
	builds  map[uint64]*stepWatchState
	running bool
}

// stepWatchState is one build's watch.
type stepWatchState struct {
	until     time.Time // the watch ends then in any case
	killed    bool      // a process of the build was killed
	quietFrom time.Time // when one was last killed
}

// watch adds marker's build to the watch (again: from now on).
func (w *stepWatcher) watch(marker uint64, killed bool) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.builds == nil {
		w.builds = map[uint64]*stepWatchState{}
	}
	w.builds[marker] = &stepWatchState{until: now.Add(stepWatch), killed: killed, quietFrom: now}
	if !w.running {
		w.running = true
		go w.run()
	}
}

// watching reports whether marker's build is still watched.
func (w *stepWatcher) watching(marker uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.builds[marker]
	return ok
}

// run kills the watched builds' processes every stepTick and ends when no
// build is left to watch.
func (w *stepWatcher) run() {
	for {
		time.Sleep(stepTick)
		w.mu.Lock()
		markers := make([]uint64, 0, len(w.builds))
		for m := range w.builds {
			markers = append(markers, m)
		}
		w.mu.Unlock()
		found := map[uint64]bool{}
		for _, m := range markers {
			found[m] = killMarked(m) > 0
		}
		w.mu.Lock()
		now := time.Now()
		for _, m := range markers {
			st := w.builds[m]
			if st == nil {
				continue
			}
			if found[m] {
				st.killed, st.quietFrom = true, now
			} else if st.killed && now.Sub(st.quietFrom) >= stepQuiet || now.After(st.until) {
				delete(w.builds, m)
			}
		}
		if len(w.builds) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}
