package gateway_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/slipwayhq/slipway/gateway"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/httpserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	jobsservice "github.com/slipwayhq/slipway/services/jobs"
)

// TestLogTailOutlivesServerDeadlines serves the gateway the way slipway
// serve does, with read and write limits far shorter than the tail: the
// tail keeps streaming past both, because it lifts them for its
// connection, while a plain request on the same server is still bound.
func TestLogTailOutlivesServerDeadlines(t *testing.T) {
	const limit = 300 * time.Millisecond
	jobs := &jobsDouble{tail: func(_ *jobsv1.TailJobLogsRequest, s jobsv1.JobsService_TailJobLogsServer) error {
		for _, line := range []string{"one", "two", "three"} {
			if err := s.Send(&jobsv1.TailJobLogsResponse{Lines: []*jobsv1.LogLine{{Log: line}}}); err != nil {
				return err
			}
			time.Sleep(3 * limit) // well past the read and write limits
		}
		<-s.Context().Done()
		return s.Context().Err()
	}}
	conn := rpctest.Serve(t, rpcserver.Options{Logger: quiet}, func(s *grpc.Server) { jobsv1.RegisterJobsServiceServer(s, jobs) })
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(ctx, gateway.Options{Logger: quiet, Registerer: reg, Gatherer: reg,
		Backends: []component.Backend{{Name: "jobs", API: *jobsservice.Component.API, Conn: conn}}})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	limits := httpserver.Limits{ReadHeaderTimeout: time.Second, ReadTimeout: limit, WriteTimeout: limit, IdleTimeout: time.Second, MaxConnections: 8}
	srv := httpserver.New(gw, limits)
	go func() { _ = srv.Serve(httpserver.Limit(lis, limits)) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + lis.Addr().String()

	c := dialTail(t, "ws"+strings.TrimPrefix(base, "http")+"/v1/projects/web/jobs/nightly/logs")
	c.init("")
	c.expectInit("successful")
	start := time.Now()
	for _, want := range []string{"one", "two", "three"} {
		var batch []map[string]any
		c.expect("log-lines", &batch)
		if len(batch) != 1 || batch[0]["log"] != want {
			t.Fatalf("batch %v, want the line %q", batch, want)
		}
	}
	if elapsed := time.Since(start); elapsed < 2*limit {
		t.Fatalf("the lines came within %v: the test did not outlast the %v limits", elapsed, limit)
	}
	// The read side is alive too, past the read limit: a data message
	// after the init is still read, and answered with a policy close.
	c.sendRaw(`{"type":"noise"}`)
	c.expectClose(websocket.StatusPolicyViolation)
}
