package process

import (
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// TestConformance runs the suite every driver passes.
func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		New: func(t *testing.T, dir string) runtimetest.Driver {
			d, err := New(dir)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		Spec: func(command ...string) runtime.Spec { return runtime.Spec{Command: command} },
		// PATH is DefaultPath unless the spec sets one; the shim's shell
		// exports PWD (the run's work directory).
		BaseEnv:      []string{"PATH", "PWD"},
		MaxLineBytes: MaxLineBytes,
	})
}
