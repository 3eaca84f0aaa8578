package jobs_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/addons"
	addonmigrations "github.com/slipwayhq/slipway/services/addons/migrations"
	"github.com/slipwayhq/slipway/services/jobs"
	"github.com/slipwayhq/slipway/services/projects"
	projectmigrations "github.com/slipwayhq/slipway/services/projects/migrations"
)

// addonConns is a small in-memory addons.AddonConnections: the addons
// server implements it for real; here it stands for one linked addon
// whose socket directory is a real directory the run must see.
type addonConns map[string]addons.SecretAddonConnection

func (a addonConns) Connection(_ context.Context, team, project, addon string) (addons.SecretAddonConnection, error) {
	c, ok := a[team+"/"+project+"/"+addon]
	if !ok {
		return addons.SecretAddonConnection{}, apierr.ErrNotFound
	}
	return c, nil
}

// secretGroups is the real secret groups server of the addons component,
// served with its interceptor chain next to a projects service holding
// the tests' project.
type secretGroups struct {
	client   addonsv1.SecretsServiceClient
	internal func(context.Context) context.Context
	socket   string // the linked addon's socket directory
}

func newSecretGroups(t *testing.T) *secretGroups {
	t.Helper()
	ctx := context.Background()
	pdb := sqltest.Open(t, sqldb.SQLite, projectmigrations.Set, events.Migrations)
	pstore := projects.NewSQLStore(pdb, nil)
	now := time.Now().UTC()
	if err := pstore.Create(ctx, projects.Project{TeamID: teamID, ID: projectID, Name: "web", Region: "local", CreatedAt: now, UpdatedAt: now}); err != nil {
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
	if err := os.WriteFile(filepath.Join(socket, "note"), []byte("addon socket dir\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conns := addonConns{teamID + "/" + projectID + "/pg": {Name: "pg", Type: "postgresql", Version: "16", SocketDir: socket,
		Values: map[string]string{"HOST": "/run/slipway/addons/pg", "PASSWORD": "pg-s3cret"}}}
	db := sqltest.Open(t, sqldb.SQLite, addonmigrations.Set, events.Migrations)
	box, err := secret.NewBox([]byte(strings.Repeat("s", 32)), "addons-secrets")
	if err != nil {
		t.Fatal(err)
	}
	authorizer := authz.New(authztest.Static{adminCred: authztest.TeamToken(teamID, "admin")}, "internal-key")
	srv := addons.NewSecretsServer(db, nil, box, nil, projectsClient, nil, conns, quiet)
	client := addonsv1.NewSecretsServiceClient(rpctest.Serve(t, rpcserver.Options{Authorizer: authorizer, Logger: quiet}, func(s *grpc.Server) {
		addonsv1.RegisterSecretsServiceServer(s, srv)
	}))
	return &secretGroups{client: client, internal: authorizer.Internal, socket: socket}
}

// use makes the jobs service resolve runs' secret groups through g, with
// its secret files under dir.
func (g *secretGroups) use(dir string) func(*jobs.Options) {
	return func(o *jobs.Options) { o.Secrets, o.Internal, o.FilesDir = g.client, g.internal, dir }
}

// TestRunsGetSecretGroups: a run gets the project's secret groups that
// apply to it, merged by priority, under its job's own environment and
// its overrides (which win); the groups' files at their paths; the linked
// addon's values under NF_<ADDON>_<KEY> and the alias, and its socket
// directory mounted read-only. A group changed after a run is seen by the
// next run; a run's files are removed when it ends.
func TestRunsGetSecretGroups(t *testing.T) {
	groups := newSecretGroups(t)
	filesDir := filepath.Join(t.TempDir(), "files")
	h := newHarness(t, groups.use(filesDir))
	admin := as(adminCred)
	mk := func(spec *addonsv1.SecretSpec) {
		t.Helper()
		if _, err := groups.client.CreateSecret(admin, &addonsv1.CreateSecretRequest{ProjectId: projectID, Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	mk(&addonsv1.SecretSpec{Name: "base", SecretType: "environment", Priority: 1,
		Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "base", "FROM_BASE": "yes", "OWN": "base"},
			Files: map[string]*addonsv1.SecretFile{"/secrets/app.conf": {Data: base64.StdEncoding.EncodeToString([]byte("file from a group"))}}}})
	mk(&addonsv1.SecretSpec{Name: "high", SecretType: "environment", Priority: 50,
		AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"DB_PASSWORD"}}}}},
		Secrets:           &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "high", "OWN": "high"}}})
	mk(&addonsv1.SecretSpec{Name: "other job", SecretType: "environment", Priority: 100,
		Restrictions: &addonsv1.SecretRestrictions{Restricted: true, NfObjects: []*addonsv1.SecretRestrictionObject{{Id: "another", Type: "job"}}},
		Secrets:      &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "not for this job"}}})

	h.manual("with-secrets", `echo "LEVEL=$LEVEL FROM_BASE=$FROM_BASE OWN=$OWN PW=$DB_PASSWORD NF=$NF_PG_PASSWORD"; cat /secrets/app.conf; echo; `+
		`cat /run/slipway/addons/pg/note; touch /run/slipway/addons/pg/x 2>/dev/null && echo WRITABLE || echo READONLY`,
		func(s *jobsv1.JobSpec) { s.RuntimeEnvironment = map[string]string{"OWN": "job"} })
	runLines := func(o *jobsv1.RunOverrides) []string {
		t.Helper()
		r := h.run("with-secrets", o)
		r = h.waitRun("with-secrets", r.GetId(), 20*time.Second, concluded)
		lines := h.logs("with-secrets", &jobsv1.GetJobLogsRequest{RunId: r.GetId()})
		if r.GetStatus() != "SUCCESS" {
			t.Fatalf("run = %v, logs %q", r, lines)
		}
		if _, err := os.Stat(filepath.Join(filesDir, teamID, projectID, "with-secrets", r.GetId())); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the ended run's secret files are still on the host: %v", err)
		}
		return lines
	}
	want := []string{"LEVEL=high FROM_BASE=yes OWN=job PW=pg-s3cret NF=pg-s3cret", "file from a group", "addon socket dir", "READONLY"}
	if got := runLines(nil); !slices.Equal(got, want) {
		t.Fatalf("first run's output %q, want %q", got, want)
	}

	// The next run sees a changed group; a run's own overrides still win.
	level := "changed"
	if _, err := groups.client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "high",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": level, "OWN": "high"}}}}); err != nil {
		t.Fatal(err)
	}
	if got := runLines(nil); got[0] != "LEVEL=changed FROM_BASE=yes OWN=job PW=pg-s3cret NF=pg-s3cret" {
		t.Fatalf("run after the change: %q", got)
	}
	if got := runLines(&jobsv1.RunOverrides{RuntimeEnvironment: map[string]string{"LEVEL": "override"}}); !strings.HasPrefix(got[0], "LEVEL=override ") {
		t.Fatalf("run with an override: %q", got)
	}
	// The job's own environment, as the API shows it, holds none of the
	// groups' values.
	env, err := h.client.GetJobRuntimeEnvironment(admin, &jobsv1.GetJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "with-secrets"})
	if err != nil || len(env.GetRuntimeEnvironment()) != 1 {
		t.Fatalf("job environment = %v, %v", env, err)
	}
}

// TestRunRefusedWithoutItsSecretGroups: when the secret groups cannot be
// read, a run is refused with 503 rather than started without them.
func TestRunRefusedWithoutItsSecretGroups(t *testing.T) {
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
	h := newHarness(t, func(o *jobs.Options) {
		o.Secrets, o.FilesDir = addonsv1.NewSecretsServiceClient(conn), t.TempDir()
	})
	h.manual("needs-secrets", "true")
	_, err = h.client.StartJobRun(as(adminCred), &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "needs-secrets"})
	wantCode(t, err, codes.Unavailable, "UNAVAILABLE")
	runs, err := h.client.ListJobRuns(as(adminCred), &jobsv1.ListJobRunsRequest{ProjectId: projectID, JobId: "needs-secrets"})
	if err != nil || len(runs.GetRuns()) != 0 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
}
