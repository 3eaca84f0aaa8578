package process

import (
	"path/filepath"
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// TestConformance runs the suite every driver passes.
func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		New: func(t *testing.T, dir string) runtimetest.Driver {
			d, err := NewWith(dir, Options{MaxProcs: 64})
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		Spec: func(command ...string) runtime.Spec { return runtime.Spec{Command: command} },
		// PATH is DefaultPath unless the spec sets one; PWD is the
		// working directory.
		BaseEnv:      []string{"PATH", "PWD"},
		MaxLineBytes: MaxLineBytes,
		MaxProcs:     64,
		WorkDir:      func(stateDir, id string) string { return filepath.Join(stateDir, id, "work") },
	})
}
