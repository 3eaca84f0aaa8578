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

// TestValidateVolumeMounts: a volume's mount names a valid volume and no
// host directory; its Target follows the same rules as a directory's.
func TestValidateVolumeMounts(t *testing.T) {
	if err := ValidateMounts([]Mount{{Volume: "slipway-addon-x_1.data", Target: "/data"}}, "/data"); err != nil {
		t.Fatalf("valid volume mount: %v", err)
	}
	for name, m := range map[string]Mount{
		"both a source and a volume": {Source: t.TempDir(), Volume: "v", Target: "/data"},
		"a volume name with a slash": {Volume: "a/b", Target: "/data"},
		"a volume name starting '-'": {Volume: "-v", Target: "/data"},
		"a volume name of 129":       {Volume: "v" + string(make([]byte, 128)), Target: "/data"},
		"a volume in a system path":  {Volume: "v", Target: "/etc/x"},
	} {
		if err := ValidateMounts([]Mount{m}, ""); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: %v, want ErrInvalidSpec", name, err)
		}
	}
	if err := ValidateMounts([]Mount{{Volume: "v", Target: "/a"}, {Source: t.TempDir(), Target: "/a"}}, ""); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("one target twice: %v", err)
	}
}
