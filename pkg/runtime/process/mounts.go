package process

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Mounts: a sandboxed workload sees each of its Spec's mounts at its
// Target (bubblewrap binds it, read-only if asked, after everything else;
// see sandbox.argv). Before it starts, the driver running as root gives
// every writable mount's tree to the run's host uid (chownTree), so that
// runs one after the other, each with a uid of its own (a clone, then a
// build), can all write it (as a normal user, every run is the server's
// uid on the host: there is nothing to give). Read-only mounts are not
// given away: several runs may use one at a time (a deployment's
// instances), so their files must be world readable.
//
// Unsandboxed there is no mount namespace: a workload sees the host's
// file system as it is, so a mount's files are at their Source (and a
// read-only mount is writable to the server's user). WorkDir and an
// Exec's WorkDir under a mount's Target (or under WorkDir) are taken to
// the corresponding host path (hostPath), which keeps a build that works
// in its WorkDir working; paths in its command or environment are not
// rewritten.

// resolveMounts validates mounts and the working directory, resolves the
// mounts' Sources (a symbolic link in one would otherwise be followed by
// the bind but not by chownTree) and sorts them by Target, a parent before
// its children. A Source holding a hidden path (the data directory, the
// state directory) would show it, and one in the state directory other
// runs' files: both are refused.
func (d *Driver) resolveMounts(mounts []runtime.Mount, workDir string) ([]runtime.Mount, error) {
	if err := runtime.ValidateMounts(mounts, workDir); err != nil {
		return nil, err
	}
	out := make([]runtime.Mount, len(mounts))
	for i, m := range mounts {
		if m.Volume != "" {
			return nil, fmt.Errorf("%w: the process driver has no volumes (mount of %q): mount a host directory", runtime.ErrUnsupported, m.Volume)
		}
		src, err := filepath.EvalSymlinks(m.Source)
		if err != nil {
			return nil, fmt.Errorf("%w: mount source %q: %v", runtime.ErrInvalidSpec, m.Source, err)
		}
		for _, p := range d.protected {
			if within(p, src) || p == d.protected[0] && within(src, p) {
				return nil, fmt.Errorf("%w: mount source %q would show %s, which workloads must not see", runtime.ErrInvalidSpec, m.Source, p)
			}
		}
		out[i] = runtime.Mount{Source: src, Target: m.Target, ReadOnly: m.ReadOnly}
	}
	slices.SortFunc(out, func(a, b runtime.Mount) int { return strings.Compare(a.Target, b.Target) })
	return out, nil
}

// parents are the directories above p, "/" excepted, outermost first.
func parents(p string) []string {
	var out []string
	for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
		out = append(out, d)
	}
	slices.Reverse(out)
	return out
}

// chownTree gives root and everything in it to uid, never following a
// symbolic link (a link is itself given, what it points to is not). The
// tree must not be written meanwhile: the runs that wrote it have ended
// (one run at a time per writable mount).
func chownTree(root string, uid int) error {
	return filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// hostPath is where an unsandboxed workload finds p, a path as a
// sandboxed one would see it: under the mount with the longest Target
// holding it, else under the run's working directory work for p under
// WorkDir; any other path is the host's own.
func hostPath(p string, mounts []runtime.Mount, work string) string {
	best := -1
	for i, m := range mounts {
		if within(p, m.Target) && (best < 0 || len(m.Target) > len(mounts[best].Target)) {
			best = i
		}
	}
	switch {
	case best >= 0:
		return filepath.Join(mounts[best].Source, strings.TrimPrefix(p, mounts[best].Target))
	case within(p, WorkDir):
		return filepath.Join(work, strings.TrimPrefix(p, WorkDir))
	}
	return p
}

// within reports whether p is dir or lies under it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
