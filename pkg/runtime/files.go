package runtime

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// WriteFiles lays files (by the absolute path a workload sees them at)
// out under the host directory dir, which it empties first, and returns
// the read-only mounts that show them there: one per directory holding
// files, a directory below another one's mounted with it. Files are
// world readable (mode 0644, directories 0755), as a read-only mount's
// files must be (see Mount): dir's own ancestors keep them from the
// host's other users.
//
// A path must be absolute and clean, in a directory other than "/" and
// outside SystemPaths, and no path may be the directory of another
// (errors wrap ErrInvalidSpec).
func WriteFiles(dir string, files map[string][]byte) ([]Mount, error) {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	roots, err := fileRoots(paths)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, nil
	}
	for i, root := range roots {
		host := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(host, 0o755); err != nil {
			return nil, err
		}
		// MkdirAll honours the umask; a read-only mount's tree must be
		// readable by the workload's user whatever it is.
		if err := os.Chmod(host, 0o755); err != nil {
			return nil, err
		}
		for _, p := range paths {
			if !strings.HasPrefix(p, root+"/") {
				continue
			}
			target := filepath.Join(host, filepath.FromSlash(strings.TrimPrefix(p, root+"/")))
			for d := filepath.Dir(target); d != host; d = filepath.Dir(d) {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return nil, err
				}
				if err := os.Chmod(d, 0o755); err != nil {
					return nil, err
				}
			}
			if err := os.WriteFile(target, files[p], 0o644); err != nil {
				return nil, err
			}
			if err := os.Chmod(target, 0o644); err != nil {
				return nil, err
			}
		}
	}
	return FileMounts(dir, paths)
}

// FileMounts returns the mounts WriteFiles(dir, files) returns for files
// at paths, without writing anything: for files WriteFiles already laid
// out in dir.
func FileMounts(dir string, paths []string) ([]Mount, error) {
	roots, err := fileRoots(paths)
	if err != nil || len(roots) == 0 {
		return nil, err
	}
	mounts := make([]Mount, 0, len(roots))
	for i, root := range roots {
		mounts = append(mounts, Mount{Source: filepath.Join(dir, strconv.Itoa(i)), Target: root, ReadOnly: true})
	}
	return mounts, nil
}

// fileRoots checks files' paths and returns the directories to mount,
// sorted: those holding files, less those below another.
func fileRoots(paths []string) ([]string, error) {
	paths = slices.Sorted(slices.Values(paths))
	var roots []string
	for _, p := range paths {
		if !absClean(p) {
			return nil, fmt.Errorf("%w: file %q is not an absolute, clean path", ErrInvalidSpec, p)
		}
		d := path.Dir(p)
		if d == "/" {
			return nil, fmt.Errorf("%w: file %q lies in /, which cannot be mounted", ErrInvalidSpec, p)
		}
		for _, sys := range SystemPaths {
			if d == sys || strings.HasPrefix(d, sys+"/") {
				return nil, fmt.Errorf("%w: file %q lies in the system path %s", ErrInvalidSpec, p, sys)
			}
		}
		for _, q := range paths {
			if strings.HasPrefix(q, p+"/") {
				return nil, fmt.Errorf("%w: file %q is also the directory of %q", ErrInvalidSpec, p, q)
			}
		}
		if !slices.Contains(roots, d) {
			roots = append(roots, d)
		}
	}
	var top []string
	for _, r := range roots {
		if !slices.ContainsFunc(roots, func(o string) bool { return strings.HasPrefix(r, o+"/") }) {
			top = append(top, r)
		}
	}
	return top, nil
}
