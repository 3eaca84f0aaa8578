package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// TestExecProcessDriver runs exec sessions through the gateway into a
// workload of the real process driver (sandboxed as on a default
// install): a command, standard input, and an interactive shell on a
// terminal that is resized.
func TestExecProcessDriver(t *testing.T) {
	d, err := process.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	id := runtimetest.Start(t, d, runtime.Spec{Command: []string{"/bin/sh", "-c", "echo ready; exec sleep 300"}})
	t.Cleanup(func() { _ = d.Stop(context.Background(), id, time.Second) })
	for l, err := range d.Logs(runtimetest.Context(t), id, true) {
		if err != nil {
			t.Fatal(err)
		}
		if l.Text == "ready" {
			break
		}
	}
	env := newExecEnvWith(t, map[string]func(context.Context, runtime.ExecSpec) (int, error){
		"proc": func(ctx context.Context, spec runtime.ExecSpec) (int, error) { return d.Exec(ctx, id, spec) },
	})
	url := env.ws + "/v1/command-exec/projects/web/services/proc"

	t.Run("command", func(t *testing.T) {
		c := dialExec(t, url, "test-token", `{"command":"sh -c 'echo in the sandbox; exit 4'","shell":"none"}`)
		c.started()
		if out, _, done := c.rest(); out != "in the sandbox\n" || done.ExitCode != 4 || done.Status != "Failure" {
			t.Fatalf("stdout %q completion %+v", out, done)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		c := dialExec(t, url, "test-token", `{"command":["tr","a-z","A-Z"],"shell":"none"}`)
		c.started()
		c.payload("shout\n")
		c.frame(`{"type":"stdInEnd"}`)
		if out, _, done := c.rest(); out != "SHOUT\n" || done.ExitCode != 0 {
			t.Fatalf("stdout %q completion %+v", out, done)
		}
	})

	t.Run("interactive terminal", func(t *testing.T) {
		c := dialExec(t, url, "test-token", `{"ttyColumns":80,"ttyRows":24}`)
		c.started()
		c.payload("stty size\n")
		var out strings.Builder
		readUntil := func(want string) {
			t.Helper()
			for !strings.Contains(out.String(), want) {
				var s string
				c.expect("stdOut", &s)
				out.WriteString(s)
			}
		}
		readUntil("24 80")
		c.frame(`{"type":"resize","data":{"ttyRows":50,"ttyColumns":200}}`)
		c.payload("stty size; exit 7\n")
		rest, _, done := c.rest()
		out.WriteString(rest)
		if !strings.Contains(out.String(), "50 200") || done.ExitCode != 7 || done.Status != "Failure" {
			t.Fatalf("terminal output %q completion %+v", out.String(), done)
		}
	})
}
