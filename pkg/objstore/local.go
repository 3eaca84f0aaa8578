package objstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
)

// errNotDir is what opening "a/b" gives when "a" is a file.
var errNotDir error = syscall.ENOTDIR

// tempPrefix names the local store's in-flight uploads. CheckKey refuses
// keys with a segment starting with it and List skips such files, so a
// partial upload is never visible under any key.
const tempPrefix = ".slipway-upload-"

// Local is a Store in a directory of the local file system: key "a/b"
// is the file <dir>/a/b.
//
// Every access goes through an os.Root, so no key (and no symbolic link
// planted in the directory) reaches a file outside it; CheckKey refuses
// "..", absolute and otherwise odd keys before that.
type Local struct {
	dir  string
	root *os.Root
}

// NewLocal opens (creating it, mode 0700, when missing) the directory dir as
// a store.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("objstore: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: open %s: %w", dir, err)
	}
	return &Local{dir: dir, root: root}, nil
}

// Dir is the store's directory.
func (l *Local) Dir() string { return l.dir }

// Close releases the directory.
func (l *Local) Close() error { return l.root.Close() }

// Put implements Store: the bytes go to a new temporary file beside the
// target, which is synced and then renamed over the key, so a crash or an
// error at any point leaves either the old object or the new one, never a
// part of it.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) (int64, string, error) {
	if err := CheckKey(key); err != nil {
		return 0, "", err
	}
	parent := path.Dir(key)
	if parent != "." {
		if err := l.root.MkdirAll(parent, 0o700); err != nil {
			return 0, "", fmt.Errorf("objstore: put %s: %w", key, err)
		}
	}
	tmp := path.Join(parent, tempPrefix+randomSuffix())
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("objstore: put %s: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = l.root.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx: ctx, r: r})
	if err != nil {
		return 0, "", fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return 0, "", fmt.Errorf("objstore: put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return 0, "", fmt.Errorf("objstore: put %s: close: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, "", fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := l.root.Rename(tmp, key); err != nil {
		return 0, "", fmt.Errorf("objstore: put %s: %w", key, err)
	}
	committed = true
	// The rename is durable once the directory is synced; without it a
	// power cut could forget an object Put reported as stored.
	if d, err := l.root.Open(parent); err == nil {
		err = d.Sync()
		_ = d.Close()
		if err != nil {
			return 0, "", fmt.Errorf("objstore: put %s: sync directory: %w", key, err)
		}
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Get implements Store.
func (l *Local) Get(_ context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	f, err := l.root.Open(key)
	if err != nil {
		return nil, l.fileErr("get", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, ErrNotFound
	}
	return f, nil
}

// Stat implements Store.
func (l *Local) Stat(_ context.Context, key string) (Object, error) {
	if err := CheckKey(key); err != nil {
		return Object{}, err
	}
	st, err := l.root.Stat(key)
	if err != nil {
		return Object{}, l.fileErr("stat", key, err)
	}
	if !st.Mode().IsRegular() {
		return Object{}, ErrNotFound
	}
	return Object{Key: key, Size: st.Size(), ModTime: st.ModTime().UTC()}, nil
}

// Delete implements Store. Directories left empty by the removal are
// removed too, so retention does not leave a tree of empty folders.
func (l *Local) Delete(_ context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	st, err := l.root.Lstat(key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	if st.IsDir() {
		// Not an object (a "folder" of other keys): nothing to delete.
		return nil
	}
	if err := l.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		if l.root.Remove(dir) != nil { // not empty (or raced): stop
			break
		}
	}
	return nil
}

// List implements Store.
func (l *Local) List(_ context.Context, prefix string) ([]Object, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	// Walk only the deepest directory the prefix names in full.
	start := "."
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i]
	}
	var out []Object
	err := fs.WalkDir(l.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		if d.IsDir() {
			// Prune directories that cannot hold a key with the prefix.
			if p != start && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted meanwhile
				return nil
			}
			return err
		}
		out = append(out, Object{Key: p, Size: info.Size(), ModTime: info.ModTime().UTC()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// fileErr maps a missing file (or a path through a file) to ErrNotFound.
func (l *Local) fileErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return ErrNotFound
	}
	return fmt.Errorf("objstore: %s %s: %w", op, key, err)
}

// ContextReader stops a copy from r once ctx is done, so an aborted
// backup stops promptly even when its source keeps producing. Put wraps
// its reader in one already.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx: ctx, r: r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func randomSuffix() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
