package deployments_test

import (
	"context"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
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
	"github.com/slipwayhq/slipway/services/deployments"
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

// use makes the deployments service resolve services' secret groups
// through g, with their secret files under dir.
func (g *secretGroups) use(dir string) func(*deployments.Options) {
	return func(o *deployments.Options) { o.Secrets, o.Internal, o.FilesDir = g.client, g.internal, dir }
}

// secretChanged is the event the secrets server writes when a group of
// the tests' project changes.
func secretChanged(t *testing.T, id string) events.Event {
	t.Helper()
	ev, err := events.New("addons", "secret", "updated", teamID+"/"+projectID+"/"+id,
		map[string]string{"teamId": teamID, "projectId": projectID, "id": id, "name": id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestServicesGetSecretGroupsAndRollOutOnChange: a service's instances
// get the project's secret groups that apply to it, merged by priority,
// under the service's own environment (which wins), with the groups'
// files at their paths and the linked addon's socket directory mounted
// read-only. A change of a group the service gets rolls it out with the
// new values; a change of a group it does not get leaves its instances
// alone.
func TestServicesGetSecretGroupsAndRollOutOnChange(t *testing.T) {
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
	file := func(s string) map[string]*addonsv1.SecretFile {
		return map[string]*addonsv1.SecretFile{"/secrets/motd": {Data: base64.StdEncoding.EncodeToString([]byte(s))}}
	}
	mk(&addonsv1.SecretSpec{Name: "base", SecretType: "environment", Priority: 1,
		Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "base", "OWN": "base"}, Files: file("motd-1")}})
	mk(&addonsv1.SecretSpec{Name: "high", SecretType: "environment-arguments", Priority: 50,
		AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"DB_PASSWORD"}}}}},
		Secrets:           &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "high"}}})
	mk(&addonsv1.SecretSpec{Name: "other", SecretType: "environment", Priority: 100,
		Restrictions: &addonsv1.SecretRestrictions{Restricted: true, NfObjects: []*addonsv1.SecretRestrictionObject{{Id: "other", Type: "service"}}},
		Secrets:      &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "other"}}})

	spec := webApp("Web", "")
	spec.Deployment.Docker.CustomCommand = `mkdir -p www && echo "$LEVEL $OWN $DB_PASSWORD $(cat /secrets/motd) $(cat /run/slipway/addons/pg/note)" > www/index.html && ` +
		`echo ok > www/healthz && busybox httpd -f -p "$PORT" -h www`
	spec.RuntimeEnvironment = map[string]string{"OWN": "svc"}
	h.create(spec)
	h.waitStatus("web", "r000001", "COMPLETED")
	host := "p01--web--web.localhost"
	if code, body := h.get(host, "/"); code != 200 || body != "high svc pg-s3cret motd-1 addon socket dir" {
		t.Fatalf("served %d %q", code, body)
	}
	before := h.ctl.Instances("acme/web/web")

	// A group the service does not get: nothing moves.
	if _, err := groups.client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "other",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "still other"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.SecretHandler()(context.Background(), secretChanged(t, "other")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if now := h.ctl.Instances("acme/web/web"); len(now) != 1 || now[0].WorkloadID != before[0].WorkloadID {
		t.Fatalf("a change of a group the service does not get replaced its instances: %+v, were %+v", now, before)
	}

	// A group it gets: its instances are replaced with the new values,
	// variables and files alike.
	if _, err := groups.client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "high",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "changed"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := groups.client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "base",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Files: file("motd-2")}}}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.SecretHandler()(context.Background(), secretChanged(t, "high")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new values served", func() bool {
		code, body := h.get(host, "/")
		return code == 200 && body == "changed svc pg-s3cret motd-2 addon socket dir"
	})
	eventually(t, "the old instance replaced", func() bool {
		now := h.ctl.Instances("acme/web/web")
		return len(now) == 1 && now[0].WorkloadID != before[0].WorkloadID && now[0].Ready
	})
	// A redelivered event changes nothing more.
	settled := h.ctl.Instances("acme/web/web")
	if err := h.svc.SecretHandler()(context.Background(), secretChanged(t, "high")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if now := h.ctl.Instances("acme/web/web"); len(now) != 1 || now[0].WorkloadID != settled[0].WorkloadID {
		t.Fatalf("a redelivered event replaced the instances again: %+v", now)
	}
	// The release holds none of the groups' values, only the service's
	// own keys.
	rels, err := h.client.ListServiceReleases(admin, &deploymentsv1.ListServiceReleasesRequest{ProjectId: projectID, ServiceId: "web"})
	if err != nil || len(rels.GetReleases()) != 1 || strings.Join(rels.GetReleases()[0].GetRuntimeEnvironmentKeys(), ",") != "OWN" {
		t.Fatalf("releases = %v, %v", rels, err)
	}
	// A restart of Slipway after a change it missed (its consumer down):
	// the service is rolled out with the new values when it is applied.
	if _, err := groups.client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "high",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "while down"}}}}); err != nil {
		t.Fatal(err)
	}
	h.start()
	eventually(t, "the values changed while Slipway was down served", func() bool {
		code, body := h.get(host, "/")
		return code == 200 && strings.HasPrefix(body, "while down svc ")
	})
	// A deleted service's secret files go with it.
	if _, err := h.client.DeleteService(admin, &deploymentsv1.DeleteServiceRequest{ProjectId: projectID, ServiceId: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filesDir, teamID, projectID, "web")); !os.IsNotExist(err) {
		t.Fatalf("a deleted service's secret files are still on the host: %v", err)
	}
}

// TestServiceFailsWithoutItsSecretGroups: a service whose secret groups
// cannot be read is not started without them: its deployment fails and
// says why.
func TestServiceFailsWithoutItsSecretGroups(t *testing.T) {
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
	h := newHarness(t, func(o *deployments.Options) {
		o.Secrets, o.FilesDir = addonsv1.NewSecretsServiceClient(conn), t.TempDir()
	})
	h.create(webApp("Web", "v1"))
	d := h.waitStatus("web", "r000001", "FAILED")
	if !strings.Contains(d.GetStatus().GetMessage(), "secret groups could not be read") {
		t.Fatalf("deployment %v", d)
	}
	if n := len(h.ctl.Instances("acme/web/web")); n != 0 {
		t.Fatalf("%d instances started without their secret groups", n)
	}
}
