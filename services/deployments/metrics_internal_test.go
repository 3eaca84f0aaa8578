package deployments

import (
	"context"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/deployments/rollout"
)

// usageOnly is a Controller that only answers Usage, with what the test
// sets: the sampler is tested on its own here, the controller in the
// server tests.
type usageOnly struct {
	Controller
	usage map[string]runtime.Usage
}

func (u *usageOnly) Usage(context.Context, string) (map[string]runtime.Usage, error) {
	return u.usage, nil
}

func (u *usageOnly) Instances(string) []rollout.Instance { return nil }

func TestSamplerRatesAndRing(t *testing.T) {
	in, err := ingress.New(ingress.Config{})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Server{opts: Options{Ingress: in, MetricsInterval: 10 * time.Second, Clock: func() time.Time { return clock }}, metrics: newMetrics(3)}
	ctl := &usageOnly{}
	s.ctl = ctl
	key := controllerID("acme", "web", "api")
	s.metrics.track(key, "web", "api", nil)
	for i := range 5 {
		clock = clock.Add(10 * time.Second)
		// Half a CPU second per 10 s: 0.05 vCPU; 64 MiB.
		ctl.usage = map[string]runtime.Usage{"api-1": {CPU: time.Duration(i) * 500 * time.Millisecond, MemoryBytes: 64 << 20, At: clock}}
		s.sample(context.Background())
	}
	m := s.metrics.services[key]
	all := m.instances["api-1"].all()
	if len(all) != 3 {
		t.Fatalf("the ring keeps %d samples, want its size 3", len(all))
	}
	for i, smp := range all {
		if smp.memory != 64 || smp.cpu < 0.0499 || smp.cpu > 0.0501 {
			t.Errorf("sample %d = %+v, want 64 MB and 0.05 vCPU", i, smp)
		}
		if i > 0 && !smp.at.After(all[i-1].at) {
			t.Errorf("samples out of order: %v", all)
		}
	}
	// The instance goes away: its ring stays until its newest sample ages
	// out of the retention (3 samples of 10 s).
	ctl.usage = map[string]runtime.Usage{}
	clock = clock.Add(10 * time.Second)
	s.sample(context.Background())
	if _, ok := m.instances["api-1"]; !ok {
		t.Fatal("a gone instance's samples were dropped before they aged out")
	}
	clock = clock.Add(time.Minute)
	s.sample(context.Background())
	if _, ok := m.instances["api-1"]; ok {
		t.Fatal("a gone instance's samples outlived the retention")
	}
	s.metrics.forget(key)
	if len(s.metrics.keys()) != 0 {
		t.Fatal("forget kept the service")
	}
}
