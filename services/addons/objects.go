package addons

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/slipwayhq/slipway/pkg/objstore"
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

// Objects adapts a pkg/objstore store (the data directory's
// objstore.Local, or a destination's S3 bucket) to ObjectStore.
type Objects struct{ Store objstore.Store }

// NewLocalObjects stores objects in files under root (objstore.Local:
// written aside and renamed into place, keys kept inside root).
func NewLocalObjects(root string) (*Objects, error) {
	l, err := objstore.NewLocal(root)
	if err != nil {
		return nil, err
	}
	return &Objects{Store: l}, nil
}

// Put implements ObjectStore.
func (o *Objects) Put(ctx context.Context, key string, r io.Reader) error {
	_, _, err := o.Store.Put(ctx, key, ctxReader{ctx, r})
	return err
}

// Get implements ObjectStore.
func (o *Objects) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := o.Store.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, ErrNotFound
	}
	return rc, err
}

// Delete implements ObjectStore.
func (o *Objects) Delete(ctx context.Context, key string) error { return o.Store.Delete(ctx, key) }

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
