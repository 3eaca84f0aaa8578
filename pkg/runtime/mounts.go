package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mount is a host directory (or a named volume of the driver, see
// Volume) a workload sees at Target.
//
// A writable mount is the workload's to write while it runs: the process
// driver gives Source (recursively) to the workload's host user before it
// starts, so workloads run one after the other, each its own user, can all
// write it; two must not use one writable mount at once. A read-only
// mount is not given away: its files must be readable by any user (world
// readable, as a build leaves its tree with the usual umask).
type Mount struct {
	// Source is the host directory: an absolute, clean path that exists
	// (for the docker driver, on the engine's host too). Empty when
	// Volume is set.
	Source string
	// Volume, when set, names a volume the driver keeps (see Volumes),
	// mounted at Target instead of a host directory: it must exist (the
	// driver does not create one on the fly) and Source must be empty.
	// Drivers without volumes refuse such a mount (ErrUnsupported).
	Volume string
	// Target is where the workload sees it: an absolute, clean path, not
	// "/" nor in one of SystemPaths.
	Target string
	// ReadOnly refuses the workload's writes to it.
	ReadOnly bool
}

// SystemPaths are what a sandbox provides itself (the system's programs
// and libraries, a few files of /etc, its own /proc, /dev and /tmp): a
// mount there or below would replace them, so no Target may lie there.
var SystemPaths = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc", "/dev", "/tmp"}

// ValidateMounts checks a Spec's mounts and working directory the way
// every driver does at Start (errors wrap ErrInvalidSpec): absolute, clean
// paths; each Target once, not "/" and not in SystemPaths; each Source an
// existing directory, or for a volume's mount no Source and a valid
// volume name (ValidVolumeName). Whether the driver has volumes at all is
// its own check.
func ValidateMounts(mounts []Mount, workDir string) error {
	if workDir != "" && !absClean(workDir) {
		return fmt.Errorf("%w: working directory %q is not an absolute, clean path", ErrInvalidSpec, workDir)
	}
	targets := map[string]bool{}
	for _, m := range mounts {
		if m.Volume != "" {
			if m.Source != "" {
				return fmt.Errorf("%w: mount of volume %q has a source directory too", ErrInvalidSpec, m.Volume)
			}
			if !ValidVolumeName(m.Volume) {
				return fmt.Errorf("%w: %q is not a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128)", ErrInvalidSpec, m.Volume)
			}
		} else if !absClean(m.Source) {
			return fmt.Errorf("%w: mount source %q is not an absolute, clean path", ErrInvalidSpec, m.Source)
		}
		if !absClean(m.Target) {
			return fmt.Errorf("%w: mount target %q is not an absolute, clean path", ErrInvalidSpec, m.Target)
		}
		if m.Target == "/" {
			return fmt.Errorf("%w: mount target %q would replace the whole file system", ErrInvalidSpec, m.Target)
		}
		for _, p := range SystemPaths {
			if m.Target == p || strings.HasPrefix(m.Target, p+"/") {
				return fmt.Errorf("%w: mount target %q lies in the system path %s", ErrInvalidSpec, m.Target, p)
			}
		}
		if targets[m.Target] {
			return fmt.Errorf("%w: mount target %q is used twice", ErrInvalidSpec, m.Target)
		}
		targets[m.Target] = true
		if m.Volume != "" {
			continue
		}
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("%w: mount source %q: %v", ErrInvalidSpec, m.Source, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: mount source %q is not a directory", ErrInvalidSpec, m.Source)
		}
	}
	return nil
}

func absClean(p string) bool { return filepath.IsAbs(p) && filepath.Clean(p) == p }

// ValidVolumeName reports whether s is a volume name every engine
// accepts: a letter or digit, then letters, digits, '_', '.' and '-', at
// most 128 in all.
func ValidVolumeName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '_' || r == '.' || r == '-')
		if !ok {
			return false
		}
	}
	return true
}
