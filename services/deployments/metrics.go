package deployments

import (
	"context"
	"slices"
	"sync"
	"time"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/logquery"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Metrics are kept in memory only: every Options.MetricsInterval the
// server samples each instance's usage (the controller's Usage) and each
// service's ingress counters into a ring of Options.MetricsSamples
// samples (an hour at the defaults), per instance and per service. A
// restart of Slipway starts them afresh; an instance's ring is dropped
// once the instance is gone and its newest sample has aged out.

// sample is one point of an instance (cpu, memory) or of a service's
// ingress traffic (the rates).
type sample struct {
	at time.Time
	// cpu is in vCPU (the CPU time used per second since the last
	// sample); memory in MB.
	cpu, memory float64
	// requests, http4xx and http5xx are per second since the last sample.
	requests, http4xx, http5xx float64
}

// ring keeps the newest samples.
type ring struct {
	buf  []sample
	next int
	full bool
}

func (r *ring) add(s sample) {
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// all returns the samples oldest first.
func (r *ring) all() []sample {
	if !r.full {
		return slices.Clone(r.buf[:r.next])
	}
	return append(slices.Clone(r.buf[r.next:]), r.buf[:r.next]...)
}

// tracked is what the sampler knows of a service.
type tracked struct {
	project, service string
	ports            []string // public HTTP ports, for the ingress counters
	instances        map[string]*ring
	last             map[string]runtime.Usage
	traffic          *ring
	lastStats        ingress.Stats
	lastStatsAt      time.Time
}

// metrics is every tracked service's samples.
type metrics struct {
	size     int
	mu       sync.Mutex
	services map[string]*tracked
}

func newMetrics(size int) *metrics {
	return &metrics{size: size, services: map[string]*tracked{}}
}

func (m *metrics) newRing() *ring { return &ring{buf: make([]sample, m.size)} }

// track starts or updates sampling of a service.
func (m *metrics) track(key, project, service string, ports []Port) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.services[key]
	if t == nil {
		t = &tracked{project: project, service: service, instances: map[string]*ring{}, last: map[string]runtime.Usage{}, traffic: m.newRing()}
		m.services[key] = t
	}
	t.ports = t.ports[:0]
	for _, p := range ports {
		if p.Public && (p.Protocol == "HTTP" || p.Protocol == "HTTP/2") {
			t.ports = append(t.ports, p.Name)
		}
	}
}

// forget stops sampling a service and drops its samples.
func (m *metrics) forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.services, key)
}

func (m *metrics) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.services))
	for k := range m.services {
		out = append(out, k)
	}
	return out
}

// sample takes one sample of every tracked service.
func (s *Server) sample(ctx context.Context) {
	m := s.metrics
	retention := time.Duration(m.size) * s.opts.MetricsInterval
	for _, key := range m.keys() {
		usage, err := s.ctl.Usage(ctx, key)
		if err != nil && ctx.Err() == nil {
			s.log.Debug("sampling a service's usage", "service", key, "error", err)
		}
		now := s.opts.Clock()
		m.mu.Lock()
		t := m.services[key]
		if t == nil {
			m.mu.Unlock()
			continue
		}
		for name, u := range usage {
			r := t.instances[name]
			if r == nil {
				r = m.newRing()
				t.instances[name] = r
			}
			at := u.At
			if at.IsZero() {
				at = now
			}
			u.At = at
			smp := sample{at: at, memory: float64(u.MemoryBytes) / (1 << 20)}
			if prev, ok := t.last[name]; ok && at.After(prev.At) && u.CPU >= prev.CPU {
				smp.cpu = (u.CPU - prev.CPU).Seconds() / at.Sub(prev.At).Seconds()
			}
			t.last[name] = u
			r.add(smp)
		}
		for name, r := range t.instances {
			if _, running := usage[name]; running {
				continue
			}
			if all := r.all(); len(all) == 0 || now.Sub(all[len(all)-1].at) > retention {
				delete(t.instances, name)
				delete(t.last, name)
			}
		}
		var total ingress.Stats
		for _, port := range t.ports {
			st := s.opts.Ingress.Stats(t.project, t.service, port)
			total.Requests += st.Requests
			total.HTTP4xx += st.HTTP4xx
			total.HTTP5xx += st.HTTP5xx
		}
		if !t.lastStatsAt.IsZero() {
			secs := now.Sub(t.lastStatsAt).Seconds()
			rate := func(now, before uint64) float64 {
				if now < before || secs <= 0 {
					return 0
				}
				return float64(now-before) / secs
			}
			t.traffic.add(sample{at: now, requests: rate(total.Requests, t.lastStats.Requests),
				http4xx: rate(total.HTTP4xx, t.lastStats.HTTP4xx), http5xx: rate(total.HTTP5xx, t.lastStats.HTTP5xx)})
		}
		t.lastStats, t.lastStatsAt = total, now
		m.mu.Unlock()
	}
}

// metricKinds are the metric types served, with their units and which
// samples carry them.
var metricKinds = []struct {
	id, unit    string
	perInstance bool
	value       func(sample) float64
}{
	{"cpu", "vCPU", true, func(s sample) float64 { return s.cpu }},
	{"memory", "mb", true, func(s sample) float64 { return s.memory }},
	{"requests", "rps", false, func(s sample) float64 { return s.requests }},
	{"http4xxResponses", "rps", false, func(s sample) float64 { return s.http4xx }},
	{"http5xxResponses", "rps", false, func(s sample) float64 { return s.http5xx }},
}

// GetServiceMetrics implements DeploymentsService.
func (s *Server) GetServiceMetrics(ctx context.Context, req *deploymentsv1.GetServiceMetricsRequest) (*deploymentsv1.GetServiceMetricsResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	single := req.GetQueryType() == "single"
	var start, end time.Time
	if single {
		if req.GetTimestamp() != nil {
			end = req.GetTimestamp().AsTime().Add(time.Nanosecond)
		}
	} else if start, end, err = logquery.Range(req, s.opts.Clock()); err != nil {
		return nil, err
	}
	container := req.GetContainerName()
	if container == "all" {
		container = ""
	}
	// Copy what the response needs under the lock.
	type series struct {
		container string
		samples   []sample
	}
	var perInstance []series
	var traffic []sample
	m := s.metrics
	m.mu.Lock()
	if t := m.services[controllerID(sv.TeamID, sv.ProjectID, sv.ID)]; t != nil {
		for name, r := range t.instances {
			if container == "" || container == name {
				perInstance = append(perInstance, series{name, r.all()})
			}
		}
		traffic = t.traffic.all()
	}
	m.mu.Unlock()
	slices.SortFunc(perInstance, func(a, b series) int {
		switch {
		case a.container < b.container:
			return -1
		case a.container > b.container:
			return 1
		}
		return 0
	})
	selectSamples := func(all []sample, value func(sample) float64) []*deploymentsv1.MetricPoint {
		var in []sample
		for _, smp := range all {
			if (!start.IsZero() && smp.at.Before(start)) || (!end.IsZero() && !smp.at.Before(end)) {
				continue
			}
			in = append(in, smp)
		}
		if single && len(in) > 0 {
			in = in[len(in)-1:]
		}
		out := make([]*deploymentsv1.MetricPoint, 0, len(in))
		for _, smp := range in {
			out = append(out, &deploymentsv1.MetricPoint{Value: value(smp), Ts: timestamp(smp.at)})
		}
		return out
	}
	want := req.GetMetricTypes()
	resp := &deploymentsv1.GetServiceMetricsResponse{}
	for _, k := range metricKinds {
		if len(want) > 0 && !slices.Contains(want, k.id) {
			continue
		}
		metric := &deploymentsv1.Metric{
			MetricInfo: &deploymentsv1.MetricInfo{MetricId: k.id, MetricUnit: k.unit, MetricResolution: int32(s.opts.MetricsInterval / time.Second)},
			Values:     []*deploymentsv1.MetricSeries{},
		}
		if k.perInstance {
			for _, ser := range perInstance {
				metric.Values = append(metric.Values, &deploymentsv1.MetricSeries{
					Metadata: &deploymentsv1.MetricMetadata{ContainerId: ser.container}, Data: selectSamples(ser.samples, k.value),
				})
			}
		} else {
			metric.Values = append(metric.Values, &deploymentsv1.MetricSeries{
				Metadata: &deploymentsv1.MetricMetadata{}, Data: selectSamples(traffic, k.value),
			})
		}
		switch k.id {
		case "cpu":
			resp.Cpu = metric
		case "memory":
			resp.Memory = metric
		case "requests":
			resp.Requests = metric
		case "http4xxResponses":
			resp.Http4XxResponses = metric
		case "http5xxResponses":
			resp.Http5XxResponses = metric
		}
	}
	return resp, nil
}
