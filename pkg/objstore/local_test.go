package objstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/objstore"
)

// newLocal is a local store in a temp dir.
func newLocal(t *testing.T) (*objstore.Local, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "addons", "backups")
	st, err := objstore.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, dir
}

func TestLocalContract(t *testing.T) {
	st, _ := newLocal(t)
	testContract(t, st)
}

func TestLocalFailedUploadLeavesNoFile(t *testing.T) {
	st, dir := newLocal(t)
	if _, _, err := st.Put(context.Background(), "a/b/obj", &failingReader{n: 3 << 20}); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	// Not even the temporary file is left behind.
	var files []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("files left after a failed Put: %v", files)
	}
}

func TestLocalInFlightUploadIsInvisible(t *testing.T) {
	st, dir := newLocal(t)
	ctx := context.Background()
	// A temp file as a crashed upload would leave it: never listed.
	if err := os.WriteFile(filepath.Join(dir, ".slipway-upload-deadbeef"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err := st.List(ctx, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestLocalKeysStayInsideTheDirectory(t *testing.T) {
	st, dir := newLocal(t)
	ctx := context.Background()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host file"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symbolic link planted in the store does not lead out of it.
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "link/secret"); err == nil {
		t.Fatal("Get followed a symlink out of the store")
	}
	if _, _, err := st.Put(ctx, "link/written", strings.NewReader("x")); err == nil {
		t.Fatal("Put followed a symlink out of the store")
	}
	if _, err := os.Stat(filepath.Join(outside, "written")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was written outside the store: %v", err)
	}
	if _, _, err := st.Put(ctx, "../escape", strings.NewReader("x")); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("Put(../escape): %v", err)
	}
}

func TestLocalDeleteRemovesEmptyDirectories(t *testing.T) {
	st, dir := newLocal(t)
	ctx := context.Background()
	for _, k := range []string{"p/a/1", "p/b/1"} {
		if _, _, err := st.Put(ctx, k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, "p/a/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p", "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directory kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p", "b", "1")); err != nil {
		t.Fatalf("sibling object gone: %v", err)
	}
}
