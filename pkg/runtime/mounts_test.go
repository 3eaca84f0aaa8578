package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestValidateMounts: a Target is refused in a system path or below it,
// not beside it ("/usr" is, "/usr2" and "/library" are not); a Source
// must be an existing directory. The conformance suite (runtimetest)
// checks that both drivers refuse such specs at Start.
func TestValidateMounts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{"/src", "/usr2", "/library", "/work", "/work/src", "/app/a/b", "/temp"} {
		if err := ValidateMounts([]Mount{{Source: dir, Target: ok}}, ok); err != nil {
			t.Errorf("target %s: %v", ok, err)
		}
	}
	for _, bad := range []string{"/", "/usr", "/usr/local/x", "/bin", "/sbin/x", "/lib", "/lib64", "/libx32/a", "/etc", "/proc/1", "/dev", "/tmp", "/tmp/x", "app", "/app/", "/app/../x"} {
		if err := ValidateMounts([]Mount{{Source: dir, Target: bad}}, ""); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("target %s: %v, want ErrInvalidSpec", bad, err)
		}
	}
	for _, bad := range []string{file, filepath.Join(dir, "missing"), "rel", dir + "/"} {
		if err := ValidateMounts([]Mount{{Source: bad, Target: "/src"}}, ""); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("source %s: %v, want ErrInvalidSpec", bad, err)
		}
	}
	if err := ValidateMounts(nil, "work"); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("relative working directory: %v, want ErrInvalidSpec", err)
	}
}
