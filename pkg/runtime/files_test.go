package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWriteFiles: files are laid out under one host directory per
// directory that holds them (a subdirectory goes with its parent's
// mount), world readable, and shown read-only where the workload expects
// them; a second call replaces what the first wrote.
func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "files")
	mounts, err := WriteFiles(dir, map[string][]byte{
		"/secrets/a":       []byte("A"),
		"/secrets/sub/b":   []byte("B"),
		"/opt/app/conf/c":  []byte("C"),
		"/opt/app/conf/d2": []byte("D"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Source: filepath.Join(dir, "0"), Target: "/opt/app/conf", ReadOnly: true},
		{Source: filepath.Join(dir, "1"), Target: "/secrets", ReadOnly: true},
	}
	if !slices.Equal(mounts, want) {
		t.Fatalf("mounts %+v, want %+v", mounts, want)
	}
	if err := ValidateMounts(mounts, ""); err != nil {
		t.Fatal(err)
	}
	for host, content := range map[string]string{"1/a": "A", "1/sub/b": "B", "0/c": "C", "0/d2": "D"} {
		p := filepath.Join(dir, host)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("%s = %q, %v", host, b, err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v", host, fi.Mode())
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "1", "sub")); fi.Mode().Perm() != 0o755 {
		t.Errorf("a subdirectory has mode %v", fi.Mode())
	}
	if m, err := FileMounts(dir, []string{"/secrets/sub/b", "/opt/app/conf/c", "/secrets/a"}); err != nil || !slices.Equal(m, want) {
		t.Fatalf("FileMounts = %+v, %v; want what WriteFiles returned", m, err)
	}
	again, err := WriteFiles(dir, map[string][]byte{"/x/y": nil})
	if err != nil || len(again) != 1 {
		t.Fatalf("second write = %v, %v", again, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "1", "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the first write's files are still there: %v", err)
	}
	if none, err := WriteFiles(dir, nil); err != nil || none != nil {
		t.Fatalf("no files = %v, %v", none, err)
	}
	for _, bad := range []map[string][]byte{
		{"relative/x": nil}, {"/a/../b/x": nil}, {"/x": nil}, {"/etc/x": nil}, {"/tmp/x/y": nil},
		{"/a/b": nil, "/a/b/c": nil},
	} {
		if _, err := WriteFiles(dir, bad); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("WriteFiles(%v) = %v, want ErrInvalidSpec", bad, err)
		}
	}
}
