package rollout

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
)

// sigkillChild is set in the environment of the test binary re-executed
// as a Slipway to be killed: its value is the driver's state directory.
const sigkillChild = "SLIPWAY_ROLLOUT_SIGKILL_CHILD"

// TestSIGKILLedControllerIsAdopted: a process running a controller (as
// Slipway does) deploys a service and is killed with SIGKILL, so nothing
// of its shutdown runs; a new controller on the same driver state keeps
// the very same instances (same workloads, same start times, no
// restart) and serves them through its ingress once probed ready.
func TestSIGKILLedControllerIsAdopted(t *testing.T) {
	if dir := os.Getenv(sigkillChild); dir != "" {
		sigkillChildMain(t, dir)
		return
	}
	e := newEnv(t)
	e.stop() // this test's first controller is the child's
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSIGKILLedControllerIsAdopted$", "-test.v")
	cmd.Env = append(os.Environ(), sigkillChild+"="+e.dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var before []Instance
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "INSTANCES "); ok {
			if err := json.Unmarshal([]byte(line), &before); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	deadline.Stop()
	if len(before) != 2 {
		t.Fatalf("the child reported %d instances", len(before))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	in, err := ingress.New(ingress.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	e.restart(testOptions())
	e.c.Apply(svc("web", webApp("v1", true), 2))
	after := e.waitSettled("web", "v1", 2)
	if !slices.Equal(ids(after), ids(before)) {
		t.Fatalf("instances %v after the kill, want %v", ids(after), ids(before))
	}
	for _, a := range after {
		i := slices.IndexFunc(before, func(b Instance) bool { return b.WorkloadID == a.WorkloadID })
		if a.Name != before[i].Name || !a.CreatedAt.Equal(before[i].CreatedAt) || a.Restarts != 0 {
			t.Fatalf("adopted %+v, was %+v", a, before[i])
		}
	}
	waitServing(t, in, in.Host("demo", "web", "p01"), "v1")
	if got := e.hooks.Outcomes(); len(got) != 0 {
		t.Fatalf("adopting reported %v", got)
	}
	t.Logf("the killed controller's instances %v serve again", ids(after))
}

// sigkillChildMain is the Slipway to be killed: it deploys the service,
// reports its instances once they serve and waits for its end.
func sigkillChildMain(t *testing.T, dir string) {
	d := openDriver(t, dir)
	in, err := ingress.New(ingress.Config{})
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.Driver, opts.Ingress = d, in
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Run(context.Background()) }()
	c.Apply(svc("web", webApp("v1", true), 2))
	eventually(t, 30*time.Second, "two instances serving", func() bool { return settled(c, "web", "v1", 2) })
	waitServing(t, in, in.Host("demo", "web", "p01"), "v1")
	b, _ := json.Marshal(c.Instances("web"))
	os.Stdout.WriteString("INSTANCES " + string(b) + "\n")
	select {} // until SIGKILL
}
