// Package secretstest serves the real secret groups server of the addons
// component to the tests of the components that resolve secret groups at
// workload start (jobs, deployments): on its interceptor chain, next to a
// real projects service holding the tests' project, with one linked addon
// whose socket directory is a real directory the workloads must see.
package secretstest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/addons"
	addonmigrations "github.com/slipwayhq/slipway/services/addons/migrations"
	"github.com/slipwayhq/slipway/services/projects"
	projectmigrations "github.com/slipwayhq/slipway/services/projects/migrations"
)

// The linked addon every Server offers to the tests' project: a
// PostgreSQL addon "pg" whose connection values are HOST (its mount
// target) and PASSWORD, and whose socket directory holds a file "note"
// reading SocketNote.
const (
	AddonID       = "pg"
	AddonPassword = "pg-s3cret"
	SocketNote    = "addon socket dir"
)

// Server is a running secret groups server.
type Server struct {
	// Client calls it with the caller's credential, as the gateway does.
	Client addonsv1.SecretsServiceClient
	// Internal marks a context as an internal call, which is how the jobs
	// and deployments services resolve a workload's environment.
	Internal func(context.Context) context.Context
}

// New starts a secret groups server for project of team, where the
// credential adminCred is the team's admin, logging to log. Everything it
// starts stops when t ends.
func New(t testing.TB, team, project, adminCred string, log *slog.Logger) *Server {
	t.Helper()
	pdb := sqltest.Open(t, sqldb.SQLite, projectmigrations.Set, events.Migrations)
	pstore := projects.NewSQLStore(pdb, nil)
	now := time.Now().UTC()
	if err := pstore.Create(context.Background(), projects.Project{TeamID: team, ID: project, Name: project, Region: "local", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	projectsClient := projectsv1.NewProjectsServiceClient(rpctest.Serve(t, rpcserver.Options{}, func(s *grpc.Server) {
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(pstore, cat))
	}))
	// The addon's socket directory: world-readable, as the addons
	// component leaves it for linked workloads.
	socket := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(socket, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(socket, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(socket, "note"), []byte(SocketNote+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conns := addonConnections{team + "/" + project + "/" + AddonID: {Name: AddonID, Type: "postgresql", Version: "16", SocketDir: socket,
		Values: map[string]string{"HOST": addons.SecretAddonMountDir + "/" + AddonID, "PASSWORD": AddonPassword}}}
	db := sqltest.Open(t, sqldb.SQLite, addonmigrations.Set, events.Migrations)
	box, err := addons.NewSecretBox([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	authorizer := authz.New(authztest.Static{adminCred: authztest.TeamToken(team, "admin")}, "internal-key")
	srv := addons.NewSecretsServer(db, nil, box, nil, projectsClient, nil, conns, log)
	client := addonsv1.NewSecretsServiceClient(rpctest.Serve(t, rpcserver.Options{Authorizer: authorizer, Logger: log}, func(s *grpc.Server) {
		addonsv1.RegisterSecretsServiceServer(s, srv)
	}))
	return &Server{Client: client, Internal: authorizer.Internal}
}

// Unreachable is a client of a secret groups server that cannot be
// reached (nothing listens on its loopback port), for the tests of what a
// workload does without its secret groups.
func Unreachable(t testing.TB) addonsv1.SecretsServiceClient {
	t.Helper()
	// Nothing listens on the port of a listener that was closed.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return addonsv1.NewSecretsServiceClient(conn)
}

// addonConnections is a small in-memory addons.AddonConnections, keyed by
// team/project/addon: the addons service implements it for real; here it
// stands for the linked addon.
type addonConnections map[string]addons.SecretAddonConnection

func (a addonConnections) Connection(_ context.Context, team, project, addon string) (addons.SecretAddonConnection, error) {
	c, ok := a[team+"/"+project+"/"+addon]
	if !ok {
		return addons.SecretAddonConnection{}, apierr.ErrNotFound
	}
	return c, nil
}
