// Package objstore stores backup archives: a local directory (the default,
// <datadir>/addons/backups) or an S3-compatible bucket.
//
// Both stores keep the same contract, written on Store, because the part of
// a backup that users complain about most on other platforms is the upload
// (reference §3.5: uploads that failed silently for weeks, a status that
// said "uploaded" when it was not). So: a Put either leaves the whole object
// readable under its key and returns its size and SHA-256, or returns an
// error and leaves nothing under the key; nothing in this package swallows an
// error or retries one into a success it cannot prove.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound: no object under the key.
var ErrNotFound = errors.New("objstore: object not found")

// ErrInvalidKey: the key is not a relative slash-separated path of
// non-empty segments (no "..", ".", leading "/" or backslash, no NUL, at
// most MaxKeyLen bytes of UTF-8). Keys are made by Slipway, never by a
// client, so this error means a bug or an attack, not a user's mistake.
var ErrInvalidKey = errors.New("objstore: invalid object key")

// MaxKeyLen bounds keys; S3 allows 1024 bytes and the prefix takes some.
const MaxKeyLen = 900

// Object describes a stored object.
type Object struct {
	// Key is the object's key (without the store's prefix).
	Key string
	// Size in bytes.
	Size int64
	// ModTime is when the object was last written.
	ModTime time.Time
}

// Store holds objects under keys. Implementations are safe for concurrent
// use.
type Store interface {
	// Put stores everything r yields under key, replacing an object that
	// was there, and returns the number of bytes and their SHA-256 (hex).
	// The object appears whole or not at all: on any error (r's included)
	// the previous object, if any, is still there and nothing partial is.
	Put(ctx context.Context, key string, r io.Reader) (size int64, sha256hex string, err error)

	// Get opens the object for reading, or returns ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// Stat describes the object, or returns ErrNotFound.
	Stat(ctx context.Context, key string) (Object, error)

	// Delete removes the object; removing a missing object is not an error
	// (retention and retries delete twice).
	Delete(ctx context.Context, key string) error

	// List returns the objects whose keys start with prefix, ordered by
	// key. An empty prefix lists everything.
	List(ctx context.Context, prefix string) ([]Object, error)
}

// CheckKey returns ErrInvalidKey (wrapped, naming the key) unless key is a
// relative, slash-separated path of ordinary segments.
func CheckKey(key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, err)
	}
	return nil
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		return errors.New("not UTF-8")
	case strings.ContainsAny(key, "\x00\\"):
		return errors.New("contains NUL or backslash")
	case strings.HasPrefix(key, "/"):
		return errors.New("absolute")
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return errors.New("empty path segment")
		case seg == "." || seg == "..":
			return errors.New("dot segment")
		case strings.HasPrefix(seg, tempPrefix):
			// The local store's in-flight uploads; a key may not name
			// (and so overwrite or expose) one.
			return errors.New("reserved segment")
		}
		for _, r := range seg {
			if r < 0x20 || r == 0x7f {
				return errors.New("control character")
			}
		}
	}
	return nil
}

// checkPrefix accepts "" or what would be a valid key, optionally ending
// in "/".
func checkPrefix(prefix string) error {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		if prefix != "" {
			return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
		}
		return nil
	}
	// A prefix may end inside a segment ("backups/2024-"), which is a
	// valid key as far as the characters go.
	return CheckKey(p)
}
