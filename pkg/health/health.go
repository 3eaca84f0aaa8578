// Package health runs readiness checks (database reachable, NATS connected)
// on demand and serves them over the standard gRPC health protocol, so the
// gateway and orchestrators ask every service the same way.
package health

import (
	"context"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Check returns nil when the dependency it probes is usable.
type Check func(ctx context.Context) error

// Timeout bounds one round of checks, so a hung dependency reads as down
// rather than hanging the probe.
const Timeout = 2 * time.Second

type namedCheck struct {
	name  string
	check Check
}

// Server holds named checks per gRPC service name and answers
// grpc.health.v1.Health by running them.
type Server struct {
	healthpb.UnimplementedHealthServer
	mu     sync.RWMutex
	checks map[string][]namedCheck
}

// NewServer returns a Server with no checks.
func NewServer() *Server { return &Server{checks: map[string][]namedCheck{}} }

// Add registers a check for service (a fully qualified gRPC service name).
// The overall status (service "") runs every check.
func (s *Server) Add(service, name string, check Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[service] = append(s.checks[service], namedCheck{name, check})
}

// Results runs the checks of service ("" for all) and returns each check's
// error message, or "ok", by check name.
func (s *Server) Results(ctx context.Context, service string) (map[string]string, bool, bool) {
	s.mu.RLock()
	var run []namedCheck
	known := service == ""
	for svc, cs := range s.checks {
		if service == "" || svc == service {
			known = known || svc == service
			run = append(run, cs...)
		}
	}
	s.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	out := make(map[string]string, len(run))
	healthy := true
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range run {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := "ok"
			if err := c.check(ctx); err != nil {
				msg = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			if msg != "ok" {
				healthy = false
			}
			out[c.name] = msg
		}()
	}
	wg.Wait()
	return out, healthy, known
}

// Names lists the registered service names, sorted.
func (s *Server) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check implements grpc.health.v1.Health.
func (s *Server) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	_, healthy, known := s.Results(ctx, req.GetService())
	if !known {
		return nil, status.Error(codes.NotFound, "unknown service")
	}
	if !healthy {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}
