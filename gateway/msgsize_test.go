package gateway_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/slipwayhq/slipway/gateway"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/projects"
	"github.com/slipwayhq/slipway/services/projects/migrations"
)

// TestMessageTooLargeIsNotAQuotaError: a response over gRPC's message size
// limit comes back from gRPC as ResourceExhausted; that is an internal
// error (500), not the caller's quota (429, which only the gateway's own
// quota check answers). Large log reads were answered 429 this way.
func TestMessageTooLargeIsNotAQuotaError(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t, sqldb.SQLite, migrations.Set, events.Migrations)
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	store := projects.NewSQLStore(db, nil)
	now := time.Now().UTC()
	if err := store.Create(ctx, projects.Project{TeamID: "acme", ID: "big", Name: "big", Description: strings.Repeat("d", 2000), Region: "local", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	// The gateway's connection accepts messages of 1 KiB: the project
	// list is over it.
	conn := rpctest.Serve(t, rpcserver.Options{Logger: quiet, Authorizer: authz.New(tokens, "internal")}, func(s *grpc.Server) {
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(store, cat))
	}, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<10)))
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(ctx, gateway.Options{Logger: quiet, Registerer: reg, Gatherer: reg, Version: "test",
		Backends: []component.Backend{{Name: "projects", API: *projects.Component.API, Conn: conn}},
		Auth:     authz.New(tokens, "internal"), Quota: quota.NewMemory(time.Hour), Plans: quota.Plans{Default: 1_000_000}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gw)
	defer ts.Close()
	e := errorOf(t, do(t, "GET", ts.URL+"/v1/projects", ""), 500)
	if e["id"] != "INTERNAL" || strings.Contains(e["message"].(string), "larger than max") {
		t.Fatalf("error = %v, want the internal error without internals", e)
	}
}
