package addons

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// ObjectStore keeps backup files by key. The install's data directory is
// the default (LocalObjects); an S3-compatible destination satisfies the
// same interface.
type ObjectStore interface {
	// Put stores what r yields under key, replacing nothing half-written:
	// a failed Put leaves no object.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens the object under key; ErrNotFound when there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes the object under key; a missing one is no error.
	Delete(ctx context.Context, key string) error
}

// LocalObjects is an ObjectStore of files under a directory.
type LocalObjects struct{ root string }

// NewLocalObjects stores objects under root.
func NewLocalObjects(root string) *LocalObjects { return &LocalObjects{root: root} }

// path maps a key to its file, refusing keys that would leave root.
func (l *LocalObjects) path(key string) (string, error) {
	clean := filepath.Clean("/" + key)
	if clean == "/" || strings.Contains(key, "..") {
		return "", fmt.Errorf("addons: invalid object key %q", key)
	}
	return filepath.Join(l.root, clean), nil
}

// Put implements ObjectStore: the file is written aside and renamed into
// place once complete.
func (l *LocalObjects) Put(ctx context.Context, key string, r io.Reader) error {
	path, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".put-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename: nothing
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Get implements ObjectStore.
func (l *LocalObjects) Get(_ context.Context, key string) (io.ReadCloser, error) {
	path, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// Delete implements ObjectStore.
func (l *LocalObjects) Delete(_ context.Context, key string) error {
	path, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ctxReader stops reading once ctx ends (an aborted backup).
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

// HTTPDoer fetches an import's URL (*http.Client).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

var defaultImportClient HTTPDoer = http.DefaultClient
