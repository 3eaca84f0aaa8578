package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
)

// BenchmarkRollout measures, on the sandboxed process driver with the
// controller's default options (MinReady 1s included), behind a real
// ingress:
//
//   - deploy: Apply of a new service (one busybox httpd instance) until
//     the ingress answers with it;
//   - rollout-1, rollout-3: Apply of a new release to a service of 1 or
//     3 ready instances until the rollout is COMPLETED (every old
//     instance drained, stopped and removed).
//
// Run it with: go test -run '^$' -bench BenchmarkRollout -benchtime 3x ./services/deployments/rollout/
func BenchmarkRollout(b *testing.B) {
	dir := b.TempDir()
	drv, err := process.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer drv.Close()
	in, err := ingress.New(ingress.Config{})
	if err != nil {
		b.Fatal(err)
	}
	hooks := newRecorder()
	c, err := New(Options{Driver: drv, Ingress: in, Hooks: hooks, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		cleanup(dir)
	}()

	answers := func(host, body string) bool {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		in.ServeHTTP(rec, req)
		return rec.Code == http.StatusOK && strings.TrimSpace(rec.Body.String()) == body
	}
	waitUntil := func(what string, cond func() bool) {
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				b.Fatalf("not within 2m: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	completed := func(release string) func() bool {
		return func() bool {
			o, ok := hooks.last(release)
			return ok && o.Status == RolloutCompleted
		}
	}

	// Every name is new: the testing package calls each sub-benchmark
	// more than once, and outcomes are looked up by release.
	seq := 0
	next := func(prefix string) string {
		seq++
		return fmt.Sprintf("%s%d", prefix, seq)
	}
	b.Run("deploy", func(b *testing.B) {
		var total time.Duration
		for range b.N {
			id := next("deploy")
			t0 := time.Now()
			c.Apply(svc(id, webApp("v1", true), 1))
			waitUntil("first answer", func() bool { return answers(in.Host("demo", id, "p01"), "v1") })
			total += time.Since(t0)
			c.Delete(id)
			waitUntil("deleted", func() bool { return c.Instances(id) == nil })
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/first-ready")
	})
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("rollout-%d", n), func(b *testing.B) {
			id, first := next("roll"), next("r")
			c.Apply(svc(id, webApp(first, true), n))
			waitUntil(first+" COMPLETED", completed(first))
			var total time.Duration
			for range b.N {
				rel := next("r")
				t0 := time.Now()
				c.Apply(svc(id, webApp(rel, true), n))
				waitUntil(rel+" COMPLETED", completed(rel))
				total += time.Since(t0)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/rollout")
			c.Delete(id)
			waitUntil("deleted", func() bool { return c.Instances(id) == nil })
		})
	}
}

// cleanup stops and removes what a benchmark left on the driver's state.
func cleanup(dir string) {
	d, err := process.New(dir)
	if err != nil {
		return
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, _ := d.List(ctx, nil)
	for _, w := range list {
		_ = d.Stop(ctx, w.ID, 0)
		_, _ = d.Wait(ctx, w.ID)
		_ = d.Remove(ctx, w.ID)
	}
}
