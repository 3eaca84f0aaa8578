package health

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestChecks(t *testing.T) {
	s := NewServer()
	down := errors.New("connection refused")
	var dbErr error
	s.Add("svc.A", "db", func(context.Context) error { return dbErr })
	s.Add("svc.B", "hung", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	s.Add("", "nats", func(context.Context) error { return nil })
	ctx := context.Background()

	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := s.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	if got := check("svc.A"); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("A = %v", got)
	}
	dbErr = down
	if got := check("svc.A"); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("A with its database down = %v", got)
	}
	start := time.Now()
	if got := check("svc.B"); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("hung check = %v", got)
	}
	if time.Since(start) > 10*Timeout {
		t.Fatal("a hung check was not cut off")
	}
	results, healthy, _ := s.Results(ctx, "")
	if healthy || results["db"] != down.Error() || results["nats"] != "ok" {
		t.Fatalf("overall = %v %v", results, healthy)
	}
	if _, err := s.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc.Unknown"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v", err)
	}
}
