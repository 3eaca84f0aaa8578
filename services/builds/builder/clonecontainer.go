package builder

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
)

// With Config.CloneImage, git runs as a container of that image on the
// docker driver rather than in the process driver's sandbox: for a server
// that runs in a container itself (docker-compose.yml), where there is no
// git, bubblewrap or user namespace. The scripts, the work directory's
// layout (/build, /build/.slipway, /build/src), the read-only file://
// mount and the checks of the URL before it (netguard, the pinned address)
// are the same; what differs is:
//
//   - the image must be on the engine, or be pulled (as the docker driver
//     pulls images) before the first clone;
//   - the container runs as a non-root user with the engine's isolation
//     (namespaces, its default capabilities, which a non-root user does
//     not hold, seccomp) and the docker driver's limits, on the engine's
//     network (the docker driver's Network), never the host's: a git
//     server on the host's loopback is out of its reach;
//   - bind-mount sources are resolved by the engine on its host, so the
//     builds data directory (and every file root) must be at the same path
//     on that host as the server sees it;
//   - the user must be able to write the work directory, and the server to
//     read and remove what git wrote: a server that is not root runs git
//     as its own uid and gid (on a rootful engine they are the host's), a
//     server that is root runs git as the image's USER (numeric, not 0)
//     and hands the work directory over to it (chown) before each run.
//
// Credentials stay where they are on the process driver: in files of the
// work directory (0600, removed after the clone), never in the command or
// the environment, which `docker inspect` shows.

// inContainer turns the process-driver spec of a git workload into one of
// a clone container, when Config.CloneImage is set.
func (r *run) inContainer(spec *runtime.Spec) {
	if r.b.cfg.CloneImage == "" {
		return
	}
	spec.Image = r.b.cfg.CloneImage
	spec.User = r.cloneUser
	spec.HostNetwork = false
	// A host path, meaningless in the image (whose user has a passwd
	// entry for ssh).
	delete(spec.Env, "SLIPWAY_NSS_WRAPPER")
}

// handOver readies the work directory for a clone container: it finds the
// container's user and, when the server is root, makes that user the
// owner of the work directory and of everything in it.
func (r *run) handOver() error {
	if r.b.cfg.CloneImage == "" {
		return nil
	}
	if os.Geteuid() != 0 {
		r.cloneUser = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
		return nil
	}
	uid, gid, err := r.b.imageUser(r.ctx)
	if err != nil {
		return err
	}
	r.cloneUser = fmt.Sprintf("%d:%d", uid, gid)
	r.cloneUID, r.cloneGID = uid, gid
	err = filepath.WalkDir(r.work, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return internal(fmt.Errorf("handing the work directory to the clone user: %w", err))
	}
	return nil
}

// imageUser is the clone image's USER as uid and gid (the gid is the uid
// when the USER names none). It must be numeric, so that no passwd file
// of the image is trusted to name it, and not root.
func (b *Builder) imageUser(ctx context.Context) (int, int, error) {
	// Pulled as the docker driver pulls on Start. Why a pull failed goes
	// to the server's log (an internal error), never to the build's
	// message.
	if err := docker.EnsureImage(ctx, b.cfg.Docker, b.cfg.CloneImage); err != nil {
		return 0, 0, internal(fmt.Errorf("clone image %s: %w", b.cfg.CloneImage, err))
	}
	insp, err := b.cfg.Docker.ImageInspect(ctx, b.cfg.CloneImage)
	if err != nil {
		return 0, 0, internal(fmt.Errorf("clone image %s: %w", b.cfg.CloneImage, err))
	}
	user := ""
	if insp.Config != nil {
		user = insp.Config.User
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	gid := uid
	if err == nil && hasGroup {
		gid, err = strconv.Atoi(g)
	}
	if err != nil || uid <= 0 || gid < 0 {
		return 0, 0, internal(fmt.Errorf("clone image %s: its USER %q is not a numeric non-root user (uid[:gid])", b.cfg.CloneImage, user))
	}
	return uid, gid, nil
}
