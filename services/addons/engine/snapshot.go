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

// swapped is, for each type, the entry of the data directory (DataMount)
// that RestoreSnapshot replaces: the directory swapIn and swapInVolume
// swap, or Redis's RDB file, which a single rename replaces.
var swapped = map[string]string{TypePostgreSQL: "pgdata", TypeMySQL: "mysql", TypeRedis: "dump.rdb"}

// A snapshot's swap (swapIn, swapInVolume) is two renames, <name> to
// <name>.old and <name>.restore to <name>: Slipway (or the helper
// container) killed between them leaves no <name>, and the server's next
// start would initialise a fresh, empty one (initdb,
// mariadb-install-db) in its place, the previous data out of the
// addon's sight in <name>.old. So before every start (PrepareData), and
// before a swap begins, the interrupted swap is settled: with <name>
// missing, <name>.old is moved back (the restore did not complete: the
// addon keeps its previous data, and the addons service fails the
// restore); with both there, the swap completed and <name>.old goes; a
// <name>.restore left over is an unpacking cut short and goes too. Both
// drivers do it with these rules: recoverSwap on the process driver's
// host directory, recoverSwapScript in a helper container on docker.

// recoverSwap settles an interrupted swap of dir/name (see above).
func recoverSwap(dir, name string) error {
	if name == "" {
		return nil
	}
	if !filepath.IsAbs(dir) {
		return errors.New("engine: the data directory must be an absolute path")
	}
	cur := filepath.Join(dir, name)
	old := cur + ".old"
	if _, err := os.Lstat(old); err == nil {
		_, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			err = os.Rename(old, cur)
		case err == nil:
			err = os.RemoveAll(old)
		}
		if err != nil {
			return fmt.Errorf("engine: settling an interrupted snapshot restore: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("engine: settling an interrupted snapshot restore: %w", err)
	}
	if err := os.RemoveAll(cur + ".restore"); err != nil {
		return fmt.Errorf("engine: settling an interrupted snapshot restore: %w", err)
	}
	return nil
}

// recoverSwapScript is recoverSwap as a shell script, for DataMount/name
// in a helper container (see above); "" for no name.
func recoverSwapScript(name string) string {
	if name == "" {
		return ""
	}
	return `cur="` + DataMount + "/" + name + `"
if [ -e "$cur.old" ] || [ -L "$cur.old" ]; then
	if [ -e "$cur" ] || [ -L "$cur" ]; then rm -rf "$cur.old"; else mv "$cur.old" "$cur"; fi
fi
rm -rf "$cur.restore"
`
}

// swapIn unpacks the tar r into a.DataDir/<name>.restore, lets check
// look at it, and only then puts it in place of a.DataDir/<name> (the
// previous one is removed once the new one is in place): a snapshot that
// does not unpack, or fails check, leaves the data as it was. A swap a
// crash interrupted is settled first (recoverSwap), so that nothing here
// removes the only copy of the previous data. On docker the new tree is
// given to the server's user.
func swapIn(a Addon, name string, r io.Reader, check func(dir string) error) error {
	if err := prepareDirs(a); err != nil {
		return err
	}
	if err := recoverSwap(a.DataDir, name); err != nil {
		return err
	}
	cur := filepath.Join(a.DataDir, name)
	tmp := cur + ".restore"
	old := cur + ".old"
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
