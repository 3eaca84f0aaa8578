package engine

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// swapIn unpacks the tar r into a.DataDir/<name>.restore, lets check
// look at it, and only then puts it in place of a.DataDir/<name> (the
// previous one is removed once the new one is in place): a snapshot that
// does not unpack, or fails check, leaves the data as it was. On docker
// the new tree is given to the server's user.
func swapIn(a Addon, name string, r io.Reader, check func(dir string) error) error {
	if err := prepareDirs(a); err != nil {
		return err
	}
	cur := filepath.Join(a.DataDir, name)
	tmp := cur + ".restore"
	old := cur + ".old"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	fail := func(err error) error {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := untar(r, tmp); err != nil {
		return fail(fmt.Errorf("engine: the snapshot cannot be unpacked: %w", err))
	}
	if err := check(tmp); err != nil {
		return fail(err)
	}
	if a.Driver == driverDocker {
		uid, gid := runAs(a)
		if err := chownTree(tmp, uid, gid); err != nil {
			return fail(fmt.Errorf("engine: %w", err))
		}
	}
	if err := os.RemoveAll(old); err != nil {
		return fail(fmt.Errorf("engine: %w", err))
	}
	if err := os.Rename(cur, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(fmt.Errorf("engine: %w", err))
	}
	if err := os.Rename(tmp, cur); err != nil {
		_ = os.Rename(old, cur)
		return fail(fmt.Errorf("engine: %w", err))
	}
	_ = os.RemoveAll(old)
	return nil
}

// untar unpacks regular files, directories and symbolic links of a tar
// stream under dir, refusing any entry that would land outside it (an
// absolute or ".." path, or one under a symbolic link).
func untar(r io.Reader, dir string) error {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	tr := tar.NewReader(r)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return errors.New("empty archive")
			}
			return nil
		}
		if err != nil {
			return err
		}
		n++
		name := filepath.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q lies outside the archive's directory", h.Name)
		}
		target := filepath.Join(dir, name)
		// No entry may go through a symbolic link unpacked before it.
		if parent, err := filepath.EvalSymlinks(filepath.Dir(target)); err != nil || !within(parent, dir) {
			return fmt.Errorf("entry %q lies outside the archive's directory", h.Name)
		}
		mode := os.FileMode(h.Mode) & 0o777
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return err
			}
			if err := os.Chmod(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
