package addons

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

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
	"github.com/slipwayhq/slipway/services/addons/migrations"
	"github.com/slipwayhq/slipway/services/projects"
	projectmigrations "github.com/slipwayhq/slipway/services/projects/migrations"
)

const (
	stTeam      = "acme"
	stProject   = "web"
	stAdmin     = "Bearer admin"
	stDeveloper = "Bearer developer"
	stViewer    = "Bearer viewer"
	stOther     = "Bearer other-team"
	stInternal  = "internal-key"
)

// secretMemAddons is a small in-memory AddonConnections for these tests: the
// addons server implements the interface for real (the lead wires it),
// and these tests are about the secret groups, not the addons.
type secretMemAddons struct {
	mu    sync.Mutex
	conns map[string]SecretAddonConnection // by team/project/addon
}

func (m *secretMemAddons) Connection(_ context.Context, team, project, addon string) (SecretAddonConnection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.conns[team+"/"+project+"/"+addon]
	if !ok {
		return SecretAddonConnection{}, apierr.ErrNotFound
	}
	c.Values = maps.Clone(c.Values)
	return c, nil
}

func (m *secretMemAddons) set(team, project, addon string, c SecretAddonConnection) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conns[team+"/"+project+"/"+addon] = c
}

func (m *secretMemAddons) drop(team, project, addon string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conns, team+"/"+project+"/"+addon)
}

// secretHarness is the secrets server on the real interceptor chain, next
// to a real projects service holding the project the tests use.
type secretHarness struct {
	t      *testing.T
	db     *sqldb.DB
	srv    *SecretsServer
	addons *secretMemAddons
	client addonsv1.SecretsServiceClient
	outbox func() int
}

func newSecretHarness(t *testing.T, engine sqldb.Dialect) *secretHarness {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	pdb := sqltest.Open(t, sqldb.SQLite, projectmigrations.Set, events.Migrations)
	pstore := projects.NewSQLStore(pdb, nil)
	now := time.Now().UTC()
	for _, team := range []string{stTeam, "other"} {
		if err := pstore.Create(ctx, projects.Project{TeamID: team, ID: stProject, Name: "web", Region: "local", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	projectsClient := projectsv1.NewProjectsServiceClient(rpctest.Serve(t, rpcserver.Options{}, func(s *grpc.Server) {
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(pstore, cat))
	}))

	db := sqltest.Open(t, engine, migrations.Set, events.Migrations)
	box, err := NewSecretBox([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	mem := &secretMemAddons{conns: map[string]SecretAddonConnection{}}
	mem.set(stTeam, stProject, "pg", SecretAddonConnection{Name: "pg", Type: "postgresql", Version: "16", SocketDir: "/var/lib/slipway/addons/x1/run",
		Values: map[string]string{"HOST": "/run/slipway/addons/pg", "PORT": "5432", "USERNAME": "u", "PASSWORD": "s3cret", "DATABASE": "app"}})
	mem.set(stTeam, stProject, "cache", SecretAddonConnection{Name: "cache", Type: "redis", Version: "7", SocketDir: "/var/lib/slipway/addons/x2/run",
		MountTarget: "/run/slipway/addons/x2",
		Values:      map[string]string{"HOST": "/run/slipway/addons/cache", "PASSWORD": "r3dis"}})
	srv := NewSecretsServer(db, nil, box, nil, projectsClient, nil, mem, quiet)
	authorizer := authz.New(authztest.Static{
		stAdmin:     authztest.TeamToken(stTeam, "admin"),
		stDeveloper: authztest.TeamToken(stTeam, "developer"),
		stViewer:    authztest.TeamToken(stTeam, "viewer"),
		stOther:     authztest.TeamToken("other", "admin"),
	}, stInternal)
	client := addonsv1.NewSecretsServiceClient(rpctest.Serve(t, rpcserver.Options{Authorizer: authorizer, Logger: quiet}, func(s *grpc.Server) {
		addonsv1.RegisterSecretsServiceServer(s, srv)
	}))
	return &secretHarness{t: t, db: db, srv: srv, addons: mem, client: client, outbox: sqltest.RowCounter(t, db, "event_outbox")}
}

func secretAs(cred string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", cred)
}

func secretInternalCall() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), authz.InternalKeyHeader, stInternal)
}

// wantCode fails unless err is a gRPC error with code.
func secretWantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

func secretB64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (h *secretHarness) create(spec *addonsv1.SecretSpec) *addonsv1.Secret {
	h.t.Helper()
	resp, err := h.client.CreateSecret(secretAs(stAdmin), &addonsv1.CreateSecretRequest{ProjectId: stProject, Spec: spec})
	if err != nil {
		h.t.Fatalf("create %s: %v", spec.GetName(), err)
	}
	return resp.GetSecret()
}

// outboxTypes lists the types of the events in the outbox, in order.
func (h *secretHarness) outboxTypes() []string {
	h.t.Helper()
	rows, err := h.db.Query(context.Background(), `SELECT payload FROM event_outbox ORDER BY seq`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			h.t.Fatal(err)
		}
		var ev events.Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, ev.Type)
	}
	return out
}

// TestSecretGroupLifecycle walks a group through every endpoint:
// create with values, restrictions and an addon link; get (with the
// linked values under Northflank's names and the aliases), list (no
// values), details (where each value comes from), update, patch, put,
// the link endpoints, delete; and the events each change writes.
func TestSecretGroupLifecycle(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		h := newSecretHarness(t, engine)
		ctx := secretAs(stAdmin)
		g := h.create(&addonsv1.SecretSpec{
			Name: "DB Creds", Description: "database", Tags: []string{"db"}, SecretType: "environment", Priority: 10,
			Restrictions:      &addonsv1.SecretRestrictions{Restricted: true, NfObjects: []*addonsv1.SecretRestrictionObject{{Id: "api", Type: "service"}}},
			AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"PGPASSWORD"}}, {KeyName: "HOST"}}}},
			Secrets: &addonsv1.SecretData{Variables: map[string]string{"MODE": "prod"},
				Files: map[string]*addonsv1.SecretFile{"/secrets/app.conf": {Data: secretB64("x=1"), Encoding: "utf-8"}}},
		})
		if g.GetId() != "db-creds" || g.GetType() != "secret" || g.GetRestrictions().GetTagMatchCondition() != "or" ||
			g.GetAddonDependencies()[0].GetKeys()[1].GetDefaultKey() != "NF_PG_HOST" || g.GetSecrets().GetVariables()["MODE"] != "prod" {
			t.Fatalf("created %v", g)
		}
		got, err := h.client.GetSecret(ctx, &addonsv1.GetSecretRequest{ProjectId: stProject, SecretId: "db-creds"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"MODE": "prod", "NF_PG_PASSWORD": "s3cret", "PGPASSWORD": "s3cret", "NF_PG_HOST": "/run/slipway/addons/pg"}
		if !maps.Equal(got.GetSecret().GetSecrets().GetVariables(), want) || got.GetSecret().GetSecrets().GetFiles()["/secrets/app.conf"].GetData() != secretB64("x=1") {
			t.Fatalf("get = %v", got.GetSecret().GetSecrets())
		}
		own, _ := h.client.GetSecret(ctx, &addonsv1.GetSecretRequest{ProjectId: stProject, SecretId: "db-creds", Show: "this"})
		inherited, _ := h.client.GetSecret(ctx, &addonsv1.GetSecretRequest{ProjectId: stProject, SecretId: "db-creds", Show: "inherited"})
		if !maps.Equal(own.GetSecret().GetSecrets().GetVariables(), map[string]string{"MODE": "prod"}) ||
			len(inherited.GetSecret().GetSecrets().GetVariables()) != 3 || len(inherited.GetSecret().GetSecrets().GetFiles()) != 0 {
			t.Fatalf("show=this %v, show=inherited %v", own.GetSecret().GetSecrets(), inherited.GetSecret().GetSecrets())
		}
		details, err := h.client.GetSecretDetails(ctx, &addonsv1.GetSecretDetailsRequest{ProjectId: stProject, SecretId: "db-creds"})
		if err != nil {
			t.Fatal(err)
		}
		d := details.GetSecret()
		if !maps.Equal(d.GetSecrets().GetVariables(), map[string]string{"MODE": "prod"}) || len(d.GetAddonSecrets()) != 1 ||
			d.GetAddonSecrets()[0].GetAddonType() != "postgresql" || d.GetAddonSecrets()[0].GetVariables()["PGPASSWORD"] != "s3cret" {
			t.Fatalf("details = %v", d)
		}
		list, err := h.client.ListSecrets(ctx, &addonsv1.ListSecretsRequest{ProjectId: stProject})
		if err != nil || len(list.GetSecrets()) != 1 || list.GetSecrets()[0].GetPriority() != 10 || list.GetPagination().GetCount() != 1 {
			t.Fatalf("list = %v, %v", list, err)
		}

		// Update (POST) and patch change what they are given.
		if _, err := h.client.UpdateSecret(ctx, &addonsv1.UpdateSecretRequest{ProjectId: stProject, SecretId: "db-creds",
			Patch: &addonsv1.SecretPatch{Description: secretStr("changed")}}); err != nil {
			t.Fatal(err)
		}
		p := int32(50)
		patched, err := h.client.PatchSecret(ctx, &addonsv1.PatchSecretRequest{ProjectId: stProject, SecretId: "db-creds",
			Patch: &addonsv1.SecretPatch{Priority: &p, Secrets: &addonsv1.SecretData{Variables: map[string]string{"MODE": "dev"}}}})
		if err != nil {
			t.Fatal(err)
		}
		ps := patched.GetSecret()
		if ps.GetDescription() != "changed" || ps.GetPriority() != 50 || ps.GetSecrets().GetVariables()["MODE"] != "dev" ||
			len(ps.GetSecrets().GetFiles()) != 1 || len(ps.GetAddonDependencies()) != 1 {
			t.Fatalf("patched = %v", ps)
		}

		// The link endpoints.
		link, err := h.client.GetSecretLink(ctx, &addonsv1.GetSecretLinkRequest{ProjectId: stProject, SecretId: "db-creds", AddonId: "cache"})
		if err != nil || link.GetLinked() || !slices.Equal(link.GetAvailableKeys(), []string{"HOST", "PASSWORD"}) || link.GetAddonType() != "redis" {
			t.Fatalf("unlinked link = %v, %v", link, err)
		}
		up, err := h.client.UpdateSecretLink(ctx, &addonsv1.UpdateSecretLinkRequest{ProjectId: stProject, SecretId: "db-creds", AddonId: "cache",
			Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"REDIS_PASSWORD"}}}})
		if err != nil || len(up.GetKeys()) != 1 || up.GetKeys()[0].GetDefaultKey() != "NF_CACHE_PASSWORD" {
			t.Fatalf("link = %v, %v", up, err)
		}
		link, err = h.client.GetSecretLink(ctx, &addonsv1.GetSecretLinkRequest{ProjectId: stProject, SecretId: "db-creds", AddonId: "cache"})
		if err != nil || !link.GetLinked() || link.GetLinkedKeys()[0].GetAliases()[0] != "REDIS_PASSWORD" {
			t.Fatalf("linked link = %v, %v", link, err)
		}
		if _, err := h.client.DeleteSecretLink(ctx, &addonsv1.DeleteSecretLinkRequest{ProjectId: stProject, SecretId: "db-creds", AddonId: "cache"}); err != nil {
			t.Fatal(err)
		}
		_, err = h.client.DeleteSecretLink(ctx, &addonsv1.DeleteSecretLinkRequest{ProjectId: stProject, SecretId: "db-creds", AddonId: "cache"})
		secretWantCode(t, "unlinking twice", err, codes.NotFound)

		// Put replaces every setting and keeps the creation time.
		put, err := h.client.PutSecret(ctx, &addonsv1.PutSecretRequest{ProjectId: stProject, Spec: &addonsv1.SecretSpec{
			Name: "DB Creds", SecretType: "environment-arguments", Priority: 1, Secrets: &addonsv1.SecretData{Variables: map[string]string{"ONLY": "1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if s := put.GetSecret(); s.GetPriority() != 1 || len(s.GetAddonDependencies()) != 0 || len(s.GetSecrets().GetFiles()) != 0 ||
			s.GetRestrictions().GetRestricted() || !s.GetCreatedAt().AsTime().Equal(g.GetCreatedAt().AsTime()) {
			t.Fatalf("put = %v", s)
		}
		if _, err := h.client.PutSecret(ctx, &addonsv1.PutSecretRequest{ProjectId: stProject, Spec: &addonsv1.SecretSpec{Name: "new one", SecretType: "environment"}}); err != nil {
			t.Fatalf("put of a new group: %v", err)
		}
		if _, err := h.client.DeleteSecret(ctx, &addonsv1.DeleteSecretRequest{ProjectId: stProject, SecretId: "db-creds"}); err != nil {
			t.Fatal(err)
		}
		_, err = h.client.GetSecret(ctx, &addonsv1.GetSecretRequest{ProjectId: stProject, SecretId: "db-creds"})
		secretWantCode(t, "get after delete", err, codes.NotFound)

		// Each change wrote its event and the project-resource event;
		// the no-op unlinking wrote nothing.
		wantTypes := []string{"created", "updated", "updated", "updated", "updated", "updated", "created", "deleted"}
		var got2 []string
		for _, typ := range h.outboxTypes() {
			if strings.HasPrefix(typ, "slipway.addons.secret.") {
				got2 = append(got2, strings.TrimPrefix(typ, "slipway.addons.secret."))
			}
		}
		if !slices.Equal(got2, wantTypes) || h.outbox() != 2*len(wantTypes) {
			t.Fatalf("events %v (outbox %d), want %v and as many project-resource events", got2, h.outbox(), wantTypes)
		}
	})
}

func secretStr(s string) *string { return &s }

// TestSecretViewerSeesNamesNotValues: a viewer lists groups and global
// secrets and looks at links (names and settings), but every call that
// shows or changes values is refused; another team sees nothing.
func TestSecretViewerSeesNamesNotValues(t *testing.T) {
	h := newSecretHarness(t, sqldb.SQLite)
	h.create(&addonsv1.SecretSpec{Name: "app", SecretType: "environment", Secrets: &addonsv1.SecretData{Variables: map[string]string{"K": "v"}}})
	if _, err := h.client.CreateGlobalSecret(secretAs(stAdmin), &addonsv1.CreateGlobalSecretRequest{Spec: &addonsv1.GlobalSecretSpec{
		Name: "team keys", Type: "secret", Secrets: &addonsv1.GlobalSecretData{Values: map[string]string{"K": "v"}}}}); err != nil {
		t.Fatal(err)
	}
	viewer := secretAs(stViewer)
	list, err := h.client.ListSecrets(viewer, &addonsv1.ListSecretsRequest{ProjectId: stProject})
	if err != nil || len(list.GetSecrets()) != 1 || list.GetSecrets()[0].GetName() != "app" {
		t.Fatalf("viewer's list = %v, %v", list, err)
	}
	if _, err := h.client.GetSecretLink(viewer, &addonsv1.GetSecretLinkRequest{ProjectId: stProject, SecretId: "app", AddonId: "pg"}); err != nil {
		t.Fatalf("viewer's link = %v", err)
	}
	globals, err := h.client.ListGlobalSecrets(viewer, &addonsv1.ListGlobalSecretsRequest{})
	if err != nil || len(globals.GetSecrets()) != 1 {
		t.Fatalf("viewer's global list = %v, %v", globals, err)
	}
	_, err = h.client.GetSecret(viewer, &addonsv1.GetSecretRequest{ProjectId: stProject, SecretId: "app"})
	secretWantCode(t, "viewer's get", err, codes.PermissionDenied)
	_, err = h.client.GetSecretDetails(viewer, &addonsv1.GetSecretDetailsRequest{ProjectId: stProject, SecretId: "app"})
	secretWantCode(t, "viewer's details", err, codes.PermissionDenied)
	_, err = h.client.GetGlobalSecret(viewer, &addonsv1.GetGlobalSecretRequest{SecretId: "team-keys"})
	secretWantCode(t, "viewer's global get", err, codes.PermissionDenied)
	_, err = h.client.CreateSecret(viewer, &addonsv1.CreateSecretRequest{ProjectId: stProject, Spec: &addonsv1.SecretSpec{Name: "x", SecretType: "environment"}})
	secretWantCode(t, "viewer's create", err, codes.PermissionDenied)
	_, err = h.client.DeleteSecret(viewer, &addonsv1.DeleteSecretRequest{ProjectId: stProject, SecretId: "app"})
	secretWantCode(t, "viewer's delete", err, codes.PermissionDenied)
	// A developer reads and changes a project's groups, reads global
	// secrets, and may not create them.
	dev := secretAs(stDeveloper)
	if _, err := h.client.GetSecret(dev, &addonsv1.GetSecretRequest{ProjectId: stProject, SecretId: "app"}); err != nil {
		t.Fatalf("developer's get = %v", err)
	}
	if _, err := h.client.GetGlobalSecret(dev, &addonsv1.GetGlobalSecretRequest{SecretId: "team-keys"}); err != nil {
		t.Fatalf("developer's global get = %v", err)
	}
	_, err = h.client.CreateGlobalSecret(dev, &addonsv1.CreateGlobalSecretRequest{Spec: &addonsv1.GlobalSecretSpec{Name: "x", Type: "secret"}})
	secretWantCode(t, "developer's global create", err, codes.PermissionDenied)
	// Another team: 404, never 403.
	other := secretAs(stOther)
	_, err = h.client.GetSecret(other, &addonsv1.GetSecretRequest{ProjectId: stProject, SecretId: "app"})
	secretWantCode(t, "other team's get", err, codes.NotFound)
	_, err = h.client.GetGlobalSecret(other, &addonsv1.GetGlobalSecretRequest{SecretId: "team-keys"})
	secretWantCode(t, "other team's global get", err, codes.NotFound)
	_, err = h.client.ResolveEnvironment(secretAs(stAdmin), &addonsv1.ResolveEnvironmentRequest{TeamId: stTeam, ProjectId: stProject, Kind: "job", Id: "j"})
	secretWantCode(t, "ResolveEnvironment from outside", err, codes.PermissionDenied)
}

// TestSecretBadInput: every invalid input is a clear 4xx naming what is
// wrong, and nothing is written.
func TestSecretBadInput(t *testing.T) {
	h := newSecretHarness(t, sqldb.SQLite)
	h.create(&addonsv1.SecretSpec{Name: "taken", SecretType: "environment"})
	before := h.outbox()
	big := strings.Repeat("v", 60<<10)
	file := func(p, data string) *addonsv1.SecretData {
		return &addonsv1.SecretData{Files: map[string]*addonsv1.SecretFile{p: {Data: data}}}
	}
	spec := func(mutate func(*addonsv1.SecretSpec)) *addonsv1.SecretSpec {
		s := &addonsv1.SecretSpec{Name: "bad", SecretType: "environment"}
		mutate(s)
		return s
	}
	for name, c := range map[string]struct {
		spec *addonsv1.SecretSpec
		code codes.Code
		want string
	}{
		"relative file":       {spec(func(s *addonsv1.SecretSpec) { s.Secrets = file("secrets/x", secretB64("x")) }), codes.InvalidArgument, "files"},
		"unclean file":        {spec(func(s *addonsv1.SecretSpec) { s.Secrets = file("/secrets/../etc/x", secretB64("x")) }), codes.InvalidArgument, "clean"},
		"file in /etc":        {spec(func(s *addonsv1.SecretSpec) { s.Secrets = file("/etc/passwd", secretB64("x")) }), codes.InvalidArgument, "system path /etc"},
		"file in /usr/lib":    {spec(func(s *addonsv1.SecretSpec) { s.Secrets = file("/usr/lib/x/y", secretB64("x")) }), codes.InvalidArgument, "system path /usr"},
		"file in /":           {spec(func(s *addonsv1.SecretSpec) { s.Secrets = file("/x", secretB64("x")) }), codes.InvalidArgument, "lies in /"},
		"file on addon mount": {spec(func(s *addonsv1.SecretSpec) { s.Secrets = file("/run/slipway/addons/pg/x", secretB64("x")) }), codes.InvalidArgument, "linked addons"},
		"file over /run":      {spec(func(s *addonsv1.SecretSpec) { s.Secrets = file("/run/x", secretB64("x")) }), codes.InvalidArgument, "linked addons"},
		"file not base64":     {spec(func(s *addonsv1.SecretSpec) { s.Secrets = file("/secrets/x", "not base64!") }), codes.InvalidArgument, "base64"},
		"oversized total": {spec(func(s *addonsv1.SecretSpec) {
			s.Secrets = &addonsv1.SecretData{Variables: map[string]string{"A": big, "B": big, "C": big, "D": big, "E": big}}
		}), codes.InvalidArgument, "at most 262144"},
		"oversized value": {spec(func(s *addonsv1.SecretSpec) {
			s.Secrets = &addonsv1.SecretData{Variables: map[string]string{"A": big + big}}
		}), codes.InvalidArgument, "variables"},
		"bad key": {spec(func(s *addonsv1.SecretSpec) {
			s.Secrets = &addonsv1.SecretData{Variables: map[string]string{"A B": "x"}}
		}), codes.InvalidArgument, "variables"},
		"priority 101":     {spec(func(s *addonsv1.SecretSpec) { s.Priority = 101 }), codes.InvalidArgument, "priority"},
		"priority -1":      {spec(func(s *addonsv1.SecretSpec) { s.Priority = -1 }), codes.InvalidArgument, "priority"},
		"unknown type":     {spec(func(s *addonsv1.SecretSpec) { s.SecretType = "runtime" }), codes.InvalidArgument, "secretType"},
		"no name":          {spec(func(s *addonsv1.SecretSpec) { s.Name = "" }), codes.InvalidArgument, "name"},
		"unknown tag rule": {spec(func(s *addonsv1.SecretSpec) { s.Restrictions = &addonsv1.SecretRestrictions{TagMatchCondition: "xor"} }), codes.InvalidArgument, "tagMatchCondition"},
		"unknown addon": {spec(func(s *addonsv1.SecretSpec) {
			s.AddonDependencies = []*addonsv1.SecretAddonDependency{{AddonId: "nope", Keys: []*addonsv1.SecretAddonKey{{KeyName: "HOST"}}}}
		}), codes.InvalidArgument, "no addon nope"},
		"unknown addon key": {spec(func(s *addonsv1.SecretSpec) {
			s.AddonDependencies = []*addonsv1.SecretAddonDependency{{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "SHOE_SIZE"}}}}
		}), codes.InvalidArgument, "no key"},
		"alias clash": {spec(func(s *addonsv1.SecretSpec) {
			s.AddonDependencies = []*addonsv1.SecretAddonDependency{
				{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"PW"}}}},
				{AddonId: "cache", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"PW"}}}}}
		}), codes.InvalidArgument, "names both"},
		"docker secret mounts": {spec(func(s *addonsv1.SecretSpec) {
			s.Secrets = &addonsv1.SecretData{DockerSecretMounts: structpb.NewStringValue("x")}
		}), codes.InvalidArgument, "not supported"},
		"stage id":  {spec(func(s *addonsv1.SecretSpec) { s.StageId = structpb.NewStringValue("x") }), codes.InvalidArgument, "not supported"},
		"duplicate": {spec(func(s *addonsv1.SecretSpec) { s.Name = "Taken" }), codes.AlreadyExists, "taken"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.client.CreateSecret(secretAs(stAdmin), &addonsv1.CreateSecretRequest{ProjectId: stProject, Spec: c.spec})
			if status.Code(err) != c.code || !strings.Contains(strings.ToLower(secretErrorText(err)), strings.ToLower(c.want)) {
				t.Fatalf("create = %v, want %s mentioning %q", err, c.code, c.want)
			}
			if strings.Contains(secretErrorText(err), big[:64]) {
				t.Fatal("the error echoes the value")
			}
		})
	}
	_, err := h.client.CreateSecret(secretAs(stAdmin), &addonsv1.CreateSecretRequest{ProjectId: "nope", Spec: &addonsv1.SecretSpec{Name: "x", SecretType: "environment"}})
	secretWantCode(t, "unknown project", err, codes.NotFound)
	_, err = h.client.UpdateSecretLink(secretAs(stAdmin), &addonsv1.UpdateSecretLinkRequest{ProjectId: stProject, SecretId: "taken", AddonId: "nope"})
	secretWantCode(t, "link of an unknown addon", err, codes.NotFound)
	_, err = h.client.UpdateSecretLink(secretAs(stAdmin), &addonsv1.UpdateSecretLinkRequest{ProjectId: stProject, SecretId: "nope", AddonId: "pg"})
	secretWantCode(t, "link to an unknown group", err, codes.NotFound)
	_, err = h.client.PatchSecret(secretAs(stAdmin), &addonsv1.PatchSecretRequest{ProjectId: stProject, SecretId: "taken",
		Patch: &addonsv1.SecretPatch{Secrets: file("/proc/x", secretB64("x"))}})
	secretWantCode(t, "patch with a file in /proc", err, codes.InvalidArgument)
	_, err = h.client.PatchGlobalSecret(secretAs(stAdmin), &addonsv1.PatchGlobalSecretRequest{SecretId: "nope", Patch: &addonsv1.GlobalSecretPatch{}})
	secretWantCode(t, "patch of an unknown global secret", err, codes.NotFound)
	_, err = h.client.CreateGlobalSecret(secretAs(stAdmin), &addonsv1.CreateGlobalSecretRequest{Spec: &addonsv1.GlobalSecretSpec{Name: "x", Type: "secret",
		Gitops: structpb.NewStringValue("repo")}})
	secretWantCode(t, "global secret with gitops", err, codes.InvalidArgument)
	if h.outbox() != before {
		t.Fatalf("bad input wrote %d events", h.outbox()-before)
	}
}

// errorText is err's message with its details.
func secretErrorText(err error) string {
	st, _ := status.FromError(err)
	text := st.Message()
	for _, d := range st.Details() {
		text += " " + strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(secretToString(d)), "\n", " "), "\\", "")
	}
	return text
}

func secretToString(v any) string {
	if s, ok := v.(interface{ String() string }); ok {
		return s.String()
	}
	return ""
}

// TestSecretResolveEnvironment: the groups that apply to a workload, merged by
// priority (higher wins), each group's own variables over its links', the
// linked addons' values under their default names and aliases, and their
// socket directories to mount.
func TestSecretResolveEnvironment(t *testing.T) {
	h := newSecretHarness(t, sqldb.SQLite)
	h.create(&addonsv1.SecretSpec{Name: "base", SecretType: "environment", Priority: 0,
		Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "base", "BASE": "1"},
			Files: map[string]*addonsv1.SecretFile{"/secrets/a": {Data: secretB64("base")}}}})
	h.create(&addonsv1.SecretSpec{Name: "high", SecretType: "environment-arguments", Priority: 90,
		AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"LEVEL_FROM_LINK"}}}}},
		Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "high", "LEVEL_FROM_LINK": "own wins"},
			Files: map[string]*addonsv1.SecretFile{"/secrets/a": {Data: secretB64("high")}}}})
	h.create(&addonsv1.SecretSpec{Name: "builds only", SecretType: "arguments", Priority: 100,
		Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "arguments"}}})
	h.create(&addonsv1.SecretSpec{Name: "api only", SecretType: "environment", Priority: 50,
		Restrictions: &addonsv1.SecretRestrictions{Restricted: true, NfObjects: []*addonsv1.SecretRestrictionObject{{Id: "api", Type: "service"}}},
		Secrets:      &addonsv1.SecretData{Variables: map[string]string{"API": "1"}}})
	h.create(&addonsv1.SecretSpec{Name: "tagged and", SecretType: "environment", Priority: 60,
		Restrictions:      &addonsv1.SecretRestrictions{Restricted: true, Tags: []string{"db", "prod"}, TagMatchCondition: "and"},
		AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: "cache", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD"}}}},
		Secrets:           &addonsv1.SecretData{Variables: map[string]string{"TAGGED_AND": "1"}}})
	h.create(&addonsv1.SecretSpec{Name: "tagged or", SecretType: "environment", Priority: 60,
		Restrictions: &addonsv1.SecretRestrictions{Restricted: true, Tags: []string{"db", "prod"}},
		Secrets:      &addonsv1.SecretData{Variables: map[string]string{"TAGGED_OR": "1"}}})

	resolve := func(kind, id string, tags ...string) *addonsv1.ResolveEnvironmentResponse {
		t.Helper()
		resp, err := h.client.ResolveEnvironment(secretInternalCall(), &addonsv1.ResolveEnvironmentRequest{TeamId: stTeam, ProjectId: stProject, Kind: kind, Id: id, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	job := resolve("job", "nightly")
	wantVars := map[string]string{"LEVEL": "high", "BASE": "1", "LEVEL_FROM_LINK": "own wins", "NF_PG_PASSWORD": "s3cret"}
	if !maps.Equal(job.GetVariables(), wantVars) || job.GetFiles()["/secrets/a"].GetData() != secretB64("high") ||
		!slices.Equal(job.GetGroups(), []string{"base", "high"}) {
		t.Fatalf("job nightly = %v", job)
	}
	if len(job.GetAddonMounts()) != 1 || job.GetAddonMounts()[0].GetTarget() != "/run/slipway/addons/pg" ||
		job.GetAddonMounts()[0].GetSource() != "/var/lib/slipway/addons/x1/run" {
		t.Fatalf("job mounts = %v", job.GetAddonMounts())
	}
	// The service the restriction names gets its group; a job with the
	// same id does not.
	if api := resolve("service", "api"); api.GetVariables()["API"] != "1" {
		t.Fatalf("service api = %v", api.GetVariables())
	}
	if job := resolve("job", "api"); job.GetVariables()["API"] != "" {
		t.Fatalf("job api got the service's group: %v", job.GetVariables())
	}
	// Tags: "and" needs all, "or" one.
	one := resolve("service", "web", "db")
	both := resolve("service", "web", "prod", "db", "x")
	if one.GetVariables()["TAGGED_OR"] != "1" || one.GetVariables()["TAGGED_AND"] != "" ||
		both.GetVariables()["TAGGED_AND"] != "1" || both.GetVariables()["NF_CACHE_PASSWORD"] != "r3dis" || len(both.GetAddonMounts()) != 2 ||
		both.GetAddonMounts()[0].GetAddonId() != "cache" || both.GetAddonMounts()[0].GetTarget() != "/run/slipway/addons/x2" {
		t.Fatalf("tags db: %v; tags db, prod: %v %v", one.GetVariables(), both.GetVariables(), both.GetAddonMounts())
	}
	// An addon deleted since it was linked gives nothing, and the group
	// still applies.
	h.addons.drop(stTeam, stProject, "pg")
	if job := resolve("job", "nightly"); job.GetVariables()["NF_PG_PASSWORD"] != "" || job.GetVariables()["LEVEL"] != "high" || len(job.GetAddonMounts()) != 0 {
		t.Fatalf("after the addon's deletion: %v %v", job.GetVariables(), job.GetAddonMounts())
	}
	// Another project of the team has none of these.
	other, err := h.client.ResolveEnvironment(secretInternalCall(), &addonsv1.ResolveEnvironmentRequest{TeamId: "other", ProjectId: stProject, Kind: "job", Id: "nightly"})
	if err != nil || len(other.GetVariables()) != 0 {
		t.Fatalf("other team = %v, %v", other, err)
	}
}

// TestGlobalSecretLifecycle: create, get, list, put, patch, delete of the
// team's global secrets (Northflank names their variables "values").
func TestGlobalSecretLifecycle(t *testing.T) {
	h := newSecretHarness(t, sqldb.SQLite)
	ctx := secretAs(stAdmin)
	created, err := h.client.CreateGlobalSecret(ctx, &addonsv1.CreateGlobalSecretRequest{Spec: &addonsv1.GlobalSecretSpec{Name: "Team Keys", Type: "secret",
		Secrets: &addonsv1.GlobalSecretData{Values: map[string]string{"K": "v"}, Files: map[string]*addonsv1.SecretFile{"/keys/k": {Data: secretB64("k")}}}}})
	if err != nil || created.GetSecret().GetId() != "team-keys" || created.GetSecret().GetSecrets().GetValues()["K"] != "v" {
		t.Fatalf("create = %v, %v", created, err)
	}
	_, err = h.client.CreateGlobalSecret(ctx, &addonsv1.CreateGlobalSecretRequest{Spec: &addonsv1.GlobalSecretSpec{Name: "team keys", Type: "secret"}})
	secretWantCode(t, "duplicate", err, codes.AlreadyExists)
	patched, err := h.client.PatchGlobalSecret(ctx, &addonsv1.PatchGlobalSecretRequest{SecretId: "team-keys", Patch: &addonsv1.GlobalSecretPatch{
		Description: secretStr("d"), Secrets: &addonsv1.GlobalSecretData{Values: map[string]string{"K": "w"}}}})
	if err != nil || patched.GetSecret().GetDescription() != "d" || patched.GetSecret().GetSecrets().GetValues()["K"] != "w" ||
		len(patched.GetSecret().GetSecrets().GetFiles()) != 1 {
		t.Fatalf("patch = %v, %v", patched, err)
	}
	put, err := h.client.PutGlobalSecret(ctx, &addonsv1.PutGlobalSecretRequest{Spec: &addonsv1.GlobalSecretSpec{Name: "Team Keys", Type: "config"}})
	if err != nil || put.GetSecret().GetType() != "config" || len(put.GetSecret().GetSecrets().GetValues()) != 0 {
		t.Fatalf("put = %v, %v", put, err)
	}
	got, err := h.client.GetGlobalSecret(ctx, &addonsv1.GetGlobalSecretRequest{SecretId: "team-keys"})
	if err != nil || got.GetSecret().GetType() != "config" {
		t.Fatalf("get = %v, %v", got, err)
	}
	list, err := h.client.ListGlobalSecrets(ctx, &addonsv1.ListGlobalSecretsRequest{PerPage: 1})
	if err != nil || len(list.GetSecrets()) != 1 || list.GetPagination().GetHasNextPage() {
		t.Fatalf("list = %v, %v", list, err)
	}
	if _, err := h.client.DeleteGlobalSecret(ctx, &addonsv1.DeleteGlobalSecretRequest{SecretId: "team-keys"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.DeleteGlobalSecret(ctx, &addonsv1.DeleteGlobalSecretRequest{SecretId: "team-keys"})
	secretWantCode(t, "second delete", err, codes.NotFound)
	types := h.outboxTypes()
	if !slices.Equal(types, []string{"slipway.addons.secret.created", "slipway.addons.secret.updated", "slipway.addons.secret.updated", "slipway.addons.secret.deleted"}) {
		t.Fatalf("events %v", types)
	}
}

// TestSecretPutUnchanged: a put or patch that changes nothing writes
// nothing: no event (so no rollout), the same updatedAt.
func TestSecretPutUnchanged(t *testing.T) {
	h := newSecretHarness(t, sqldb.SQLite)
	spec := &addonsv1.SecretSpec{Name: "same", SecretType: "environment", Priority: 3,
		Restrictions:      &addonsv1.SecretRestrictions{Restricted: true, Tags: []string{"db"}},
		AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "HOST"}}}},
		Secrets:           &addonsv1.SecretData{Variables: map[string]string{"K": "v"}}}
	first := h.create(spec)
	before := h.outbox()
	put, err := h.client.PutSecret(secretAs(stAdmin), &addonsv1.PutSecretRequest{ProjectId: stProject, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	p := int32(3)
	if _, err := h.client.PatchSecret(secretAs(stAdmin), &addonsv1.PatchSecretRequest{ProjectId: stProject, SecretId: "same",
		Patch: &addonsv1.SecretPatch{Priority: &p}}); err != nil {
		t.Fatal(err)
	}
	if h.outbox() != before || !put.GetSecret().GetUpdatedAt().AsTime().Equal(first.GetUpdatedAt().AsTime()) {
		t.Fatalf("an unchanged put wrote %d events, updatedAt %v (was %v)", h.outbox()-before, put.GetSecret().GetUpdatedAt().AsTime(), first.GetUpdatedAt().AsTime())
	}
}

// TestSecretGroupsOfDeletedProject: the project-deleted event removes the
// project's groups (with their events), and a redelivery is harmless.
func TestSecretGroupsOfDeletedProject(t *testing.T) {
	h := newSecretHarness(t, sqldb.SQLite)
	h.create(&addonsv1.SecretSpec{Name: "a", SecretType: "environment"})
	h.create(&addonsv1.SecretSpec{Name: "b", SecretType: "environment"})
	ev, err := events.New("projects", "project", "deleted", stTeam+"/"+stProject, map[string]string{"teamId": stTeam, "id": stProject})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := events.ProjectDeletedHandler(h.srv.DeleteProjectSecrets)(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	list, err := h.srv.store.ProjectSecretGroups(context.Background(), stTeam, stProject)
	if err != nil || len(list) != 0 {
		t.Fatalf("left %v, %v", list, err)
	}
	if n := strings.Count(strings.Join(h.outboxTypes(), " "), "slipway.addons.secret.deleted"); n != 2 {
		t.Fatalf("%d deleted events, want 2", n)
	}
}
