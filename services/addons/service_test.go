package addons_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
	"github.com/slipwayhq/slipway/services/addons/migrations"
	"github.com/slipwayhq/slipway/services/projects"
	projectmigrations "github.com/slipwayhq/slipway/services/projects/migrations"
)

const (
	teamID     = "acme"
	projectID  = "web"
	adminCred  = "Bearer admin"
	viewerCred = "Bearer viewer"
	otherCred  = "Bearer other-team"
)

var quiet = slog.New(slog.DiscardHandler)

// logBuffer collects what the service logs, for tests that check what it
// must never log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// clock is a settable clock (schedules and retention).
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// harness is the addons service on the process driver, served over gRPC
// with the real interceptor chain, next to a real projects service.
type harness struct {
	t        *testing.T
	store    addons.Store
	dataDir  string
	stateDir string
	nc       *nats.Conn
	js       jetstream.JetStream
	projects projectsv1.ProjectsServiceClient
	catalog  *catalog.Catalog
	client   addonsv1.AddonsServiceClient
	driver   runtime.Driver
	clock    *clock
	svc      *addons.Service
	conn     grpc.ClientConnInterface
	stop     func()
	// newDriver opens the runtime driver on every start (the process
	// driver on stateDir when nil); images are the docker driver's.
	newDriver func() (runtime.Driver, func())
	images    map[string]string
	// logs is everything the service logged, at every level.
	logs *logBuffer
	// destinations, when set, opens the teams' backup destinations
	// (UseDestinations) on every start.
	destinations addons.DestinationOpener
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil, nil)
}

// newHarnessWith is newHarness on the driver newDriver opens, with the
// docker driver's images.
func newHarnessWith(t *testing.T, newDriver func() (runtime.Driver, func()), images map[string]string) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db := sqltest.Open(t, sqldb.SQLite, migrations.Set, events.Migrations)
	n := testenv.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relay := events.NewRelay(db, js, events.WithLogger(quiet))
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(relayCtx) }()
	t.Cleanup(func() { stopRelay(); <-relayDone })

	pdb := sqltest.Open(t, sqldb.SQLite, projectmigrations.Set, events.Migrations)
	pstore := projects.NewSQLStore(pdb, nil)
	now := time.Now().UTC()
	for _, p := range []projects.Project{
		{TeamID: teamID, ID: projectID, Name: "web", Region: "local", CreatedAt: now, UpdatedAt: now},
		{TeamID: "other", ID: projectID, Name: "web", Region: "local", CreatedAt: now, UpdatedAt: now},
	} {
		if err := pstore.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: addons.NewSQLStore(db, newBox(t), relay.Notify), dataDir: filepath.Join(dir, "addons"),
		stateDir: filepath.Join(dir, "runtime"), nc: nc, js: js, catalog: cat, clock: &clock{}, newDriver: newDriver, images: images,
		logs: &logBuffer{}}
	h.projects = projectsv1.NewProjectsServiceClient(rpctest.Serve(t, rpcserver.Options{}, func(s *grpc.Server) {
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(pstore, cat))
	}))
	h.start()
	return h
}

// start (re)starts the service on the same store, data and runtime state:
// what a restart of Slipway does (the servers keep running).
func (h *harness) start() {
	h.t.Helper()
	if h.stop != nil {
		h.stop()
	}
	var driver runtime.Driver
	var closeDriver func()
	if h.newDriver != nil {
		driver, closeDriver = h.newDriver()
	} else {
		d, err := process.New(h.stateDir)
		if err != nil {
			h.t.Fatal(err)
		}
		driver, closeDriver = d, func() { _ = d.Close() }
	}
	h.driver = driver
	svc, err := addons.New(addons.Options{
		Images: h.images,
		Store:  h.store, Driver: driver, Projects: h.projects, Catalog: h.catalog, NATS: h.nc, DataDir: h.dataDir,
		DownloadKey: []byte(strings.Repeat("d", 32)), PublicURL: "http://slipway.test",
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:  h.clock.now, Tick: 100 * time.Millisecond, ReadyTimeout: 90 * time.Second,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.svc = svc
	if h.destinations != nil {
		svc.UseDestinations(h.destinations)
	}
	authorizer := authz.New(authztest.Static{
		adminCred:  authztest.TeamToken(teamID, "admin"),
		viewerCred: authztest.TeamToken(teamID, "viewer"),
		otherCred:  authztest.TeamToken("other", "admin"),
	}, "internal-key")
	var srv *grpc.Server
	h.conn = rpctest.Serve(h.t, rpcserver.Options{Authorizer: authorizer, Logger: quiet}, func(s *grpc.Server) {
		srv = s
		addonsv1.RegisterAddonsServiceServer(s, svc)
	})
	h.client = addonsv1.NewAddonsServiceClient(h.conn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			srv.Stop()
			closeDriver()
		})
	}
	h.t.Cleanup(func() {
		// Servers outlive the service on purpose; the test's end removes
		// them.
		h.stop()
		var d runtime.Driver
		if h.newDriver != nil {
			dd, closeD := h.newDriver()
			defer closeD()
			d = dd
		} else {
			pd, err := process.New(h.stateDir)
			if err != nil {
				return
			}
			defer pd.Close()
			d = pd
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		list, _ := d.List(ctx, map[string]string{engine.LabelProject: projectID})
		for _, w := range list {
			_ = d.Stop(ctx, w.ID, 10*time.Second)
			_, _ = d.Wait(ctx, w.ID)
			_ = d.Remove(ctx, w.ID)
		}
	})
}

func as(cred string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", cred)
}

func wantCode(t *testing.T, err error, code codes.Code, detail string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("err = %v, want %v", err, code)
	}
	if d := fmt.Sprint(status.Convert(err).Details()) + status.Convert(err).Message(); detail != "" && !strings.Contains(d, detail) {
		t.Fatalf("err = %v (%s), want it to mention %q", err, d, detail)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func spec(name, typ string) *addonsv1.AddonSpec {
	return &addonsv1.AddonSpec{Name: name, Type: typ, Version: "latest", Billing: &addonsv1.AddonBilling{DeploymentPlan: "nf-compute-20"}}
}

func (h *harness) create(s *addonsv1.AddonSpec) *addonsv1.Addon {
	h.t.Helper()
	resp, err := h.client.CreateAddon(as(adminCred), &addonsv1.CreateAddonRequest{ProjectId: projectID, Spec: s})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetAddon()
}

func (h *harness) get(id string) *addonsv1.Addon {
	h.t.Helper()
	resp, err := h.client.GetAddon(as(adminCred), &addonsv1.GetAddonRequest{ProjectId: projectID, AddonId: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetAddon()
}

func (h *harness) waitStatus(id, want string) *addonsv1.Addon {
	h.t.Helper()
	var a *addonsv1.Addon
	waitFor(h.t, 120*time.Second, id+" "+want, func() bool {
		a = h.get(id)
		if a.GetStatus() == addons.StatusFailed && want != addons.StatusFailed {
			h.t.Fatalf("addon failed: %s", a.GetStatusMessage())
		}
		return a.GetStatus() == want
	})
	return a
}

func (h *harness) backup(addon string, typ string) *addonsv1.Backup {
	h.t.Helper()
	resp, err := h.client.CreateBackup(as(adminCred), &addonsv1.CreateBackupRequest{ProjectId: projectID, AddonId: addon, BackupType: typ})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.waitBackup(addon, resp.GetBackup().GetId(), func(b *addonsv1.Backup) bool {
		return b.GetStatus() != addons.JobInProgress && b.GetVerification().GetStatus() != addons.VerifyPending
	})
}

func (h *harness) getBackup(addon, id string) *addonsv1.Backup {
	h.t.Helper()
	resp, err := h.client.GetBackup(as(adminCred), &addonsv1.GetBackupRequest{ProjectId: projectID, AddonId: addon, BackupId: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetBackup()
}

func (h *harness) waitBackup(addon, id string, ok func(*addonsv1.Backup) bool) *addonsv1.Backup {
	h.t.Helper()
	var b *addonsv1.Backup
	waitFor(h.t, 120*time.Second, "backup "+id, func() bool { b = h.getBackup(addon, id); return ok(b) })
	return b
}

func (h *harness) restore(addon, backup string) *addonsv1.Restore {
	h.t.Helper()
	resp, err := h.client.RestoreBackup(as(adminCred), &addonsv1.RestoreBackupRequest{ProjectId: projectID, AddonId: addon, BackupId: backup})
	if err != nil {
		h.t.Fatal(err)
	}
	var r *addonsv1.Restore
	waitFor(h.t, 120*time.Second, "restore", func() bool {
		list, err := h.client.ListAddonRestores(as(adminCred), &addonsv1.ListAddonRestoresRequest{ProjectId: projectID, AddonId: addon})
		if err != nil {
			h.t.Fatal(err)
		}
		for _, x := range list.GetRestores() {
			if x.GetId() == resp.GetRestoreId() && x.GetStatus() != addons.JobInProgress {
				r = x
				return true
			}
		}
		return false
	})
	h.waitStatus(addon, addons.StatusRunning)
	return r
}

// server is the running server workload of an addon and what the engine
// needs to run SQL in it as the app user.
func (h *harness) psql(addon, sql string) string {
	h.t.Helper()
	a, err := h.store.GetAddon(context.Background(), teamID, projectID, addon)
	if err != nil {
		h.t.Fatal(err)
	}
	list, err := h.driver.List(context.Background(), map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer})
	if err != nil || len(list) != 1 {
		h.t.Fatalf("server workloads %v %v", list, err)
	}
	creds, err := h.client.GetAddonCredentials(as(adminCred), &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: addon})
	if err != nil {
		h.t.Fatal(err)
	}
	env := map[string]string{"PGHOST": engine.RunMount, "PGUSER": creds.GetEnvs().AsMap()["USERNAME"].(string),
		"PGPASSWORD": creds.GetSecrets().AsMap()["PASSWORD"].(string), "PGDATABASE": creds.GetEnvs().AsMap()["DATABASE"].(string)}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, err := h.driver.Exec(ctx, list[0].ID, runtime.ExecSpec{Command: []string{"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"},
		Env: env, Stdin: strings.NewReader(sql), Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		h.t.Fatalf("psql: exit %d %v: %s", code, err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// TestBadInput: every refused input is a clear 4xx naming what is wrong,
// and nothing is created.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	create := func(mutate func(*addonsv1.AddonSpec)) error {
		s := spec("bad-one", engine.TypePostgreSQL)
		mutate(s)
		_, err := h.client.CreateAddon(as(adminCred), &addonsv1.CreateAddonRequest{ProjectId: projectID, Spec: s})
		return err
	}
	hourly := func(hour, day []int32) *addonsv1.BackupScheduleSpec {
		return &addonsv1.BackupScheduleSpec{Scheduling: &addonsv1.Scheduling{Interval: "hourly", Minute: []int32{5}, Hour: hour, Day: day}, BackupType: "dump", RetentionTime: 1}
	}
	cases := []struct {
		name   string
		mutate func(*addonsv1.AddonSpec)
		code   codes.Code
		detail string
	}{
		{"unknown type", func(s *addonsv1.AddonSpec) { s.Type = "mongodb" }, codes.InvalidArgument, "unknown addon type"},
		{"unknown version", func(s *addonsv1.AddonSpec) { s.Version = "9.6" }, codes.InvalidArgument, `field:"version"`},
		{"unknown plan", func(s *addonsv1.AddonSpec) { s.Billing.DeploymentPlan = "nf-huge" }, codes.InvalidArgument, "billing.deploymentPlan"},
		{"storage outside the plan", func(s *addonsv1.AddonSpec) { s.Billing.Storage = 999 }, codes.InvalidArgument, "billing.storage"},
		{"replicas outside the plan", func(s *addonsv1.AddonSpec) { s.Billing.Replicas = 3 }, codes.InvalidArgument, "billing.replicas"},
		{"external access without tls", func(s *addonsv1.AddonSpec) { s.ExternalAccessEnabled = true }, codes.InvalidArgument, "externalAccessEnabled"},
		{"ip policies", func(s *addonsv1.AddonSpec) {
			s.IpPolicies = []*addonsv1.IPPolicy{{Addresses: []string{"1.2.3.4"}, Action: "DENY"}}
		}, codes.InvalidArgument, "ipPolicies"},
		{"hour on hourly", func(s *addonsv1.AddonSpec) {
			s.BackupSchedules = []*addonsv1.BackupScheduleSpec{hourly([]int32{3}, nil)}
		}, codes.InvalidArgument, "backupSchedules[0].scheduling.hour"},
		{"day out of range", func(s *addonsv1.AddonSpec) {
			s.BackupSchedules = []*addonsv1.BackupScheduleSpec{{Scheduling: &addonsv1.Scheduling{Interval: "weekly", Minute: []int32{0}, Hour: []int32{1}, Day: []int32{7}}, BackupType: "dump", RetentionTime: 1}}
		}, codes.InvalidArgument, "day"},
		{"weekly without day", func(s *addonsv1.AddonSpec) {
			s.BackupSchedules = []*addonsv1.BackupScheduleSpec{{Scheduling: &addonsv1.Scheduling{Interval: "weekly", Minute: []int32{0}, Hour: []int32{1}}, BackupType: "dump", RetentionTime: 1}}
		}, codes.InvalidArgument, "backupSchedules[0].scheduling.day"},
		{"two hourly dump schedules", func(s *addonsv1.AddonSpec) {
			s.BackupSchedules = []*addonsv1.BackupScheduleSpec{hourly(nil, nil), hourly(nil, nil)}
		}, codes.InvalidArgument, "only one hourly dump schedule"},
		{"bad db name", func(s *addonsv1.AddonSpec) { s.CustomCredentials = &addonsv1.CustomCredentials{DbName: "x; drop"} }, codes.InvalidArgument, "dbName"},
		{"missing project", func(s *addonsv1.AddonSpec) {}, codes.NotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.name == "missing project" {
				_, err = h.client.CreateAddon(as(adminCred), &addonsv1.CreateAddonRequest{ProjectId: "nope", Spec: spec("bad-one", engine.TypePostgreSQL)})
			} else {
				err = create(c.mutate)
			}
			wantCode(t, err, c.code, c.detail)
		})
	}
	// Another team's backup: its addon and backup exist, under team
	// "other"; forking or restoring it from acme is 404.
	ctx := context.Background()
	other := addons.Addon{TeamID: "other", ProjectID: projectID, ID: "theirs", InternalID: "atheirs", Name: "theirs", Type: engine.TypePostgreSQL,
		Status: addons.StatusPaused, Settings: addons.Settings{Version: "15", Plan: "nf-compute-20", StorageMB: 1024, Replicas: 1}}
	if err := h.store.CreateAddon(ctx, other, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.store.CreateBackup(ctx, addons.Backup{TeamID: "other", ProjectID: projectID, AddonID: "theirs", ID: "b1", Status: addons.JobCompleted, Type: "dump"}); err != nil {
		t.Fatal(err)
	}
	err := create(func(s *addonsv1.AddonSpec) {
		s.Source = &addonsv1.AddonSource{ProjectId: projectID, AddonId: "theirs", BackupId: "b1"}
	})
	wantCode(t, err, codes.NotFound, "")
	_, err = h.client.GetBackup(as(adminCred), &addonsv1.GetBackupRequest{ProjectId: projectID, AddonId: "theirs", BackupId: "b1"})
	wantCode(t, err, codes.NotFound, "")
	// A viewer reads but does not create.
	_, err = h.client.CreateAddon(as(viewerCred), &addonsv1.CreateAddonRequest{ProjectId: projectID, Spec: spec("viewer-one", engine.TypePostgreSQL)})
	wantCode(t, err, codes.PermissionDenied, "")
	list, err := h.client.ListAddons(as(adminCred), &addonsv1.ListAddonsRequest{ProjectId: projectID})
	if err != nil || len(list.GetAddons()) != 0 {
		t.Fatalf("refused creates left addons: %v %v", list, err)
	}
}

// TestPostgresLifecycle drives a PostgreSQL addon on the process driver
// through its life: running, credentials, a dump backup verified by a
// throwaway instance, a restore that brings dropped rows back, a corrupted
// backup caught by its checksum with the addon's data kept, a snapshot,
// a download, pause and resume, a restart of Slipway mid-backup, and
// deletion.
func TestPostgresLifecycle(t *testing.T) {
	h := newHarness(t)
	created := h.create(spec("Main DB", engine.TypePostgreSQL))
	if created.GetId() != "main-db" || created.GetStatus() != addons.StatusPreDeployment {
		t.Fatalf("created %+v", created)
	}
	h.waitStatus("main-db", addons.StatusRunning)

	// Credentials: only from the credentials call, never in the addon.
	creds, err := h.client.GetAddonCredentials(as(adminCred), &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: "main-db"})
	if err != nil {
		t.Fatal(err)
	}
	pw := creds.GetSecrets().AsMap()["PASSWORD"].(string)
	if len(pw) < 20 || !strings.HasPrefix(creds.GetEnvs().AsMap()["HOST"].(string), engine.LinkRoot) {
		t.Fatalf("credentials %v", creds)
	}
	if got := fmt.Sprint(h.get("main-db")); strings.Contains(got, pw) {
		t.Fatal("GetAddon shows the password")
	}

	h.psql("main-db", "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 40) g;")
	dump := h.backup("main-db", "dump")
	if dump.GetStatus() != addons.JobCompleted || dump.GetVerification().GetStatus() != addons.VerifyVerified {
		t.Fatalf("dump backup %v", dump)
	}
	if dump.GetConfig().GetSize() == "0" || len(dump.GetConfig().GetChecksum()) != 64 || dump.GetConfig().GetCompressionType() != "gz" {
		t.Fatalf("dump config %v", dump.GetConfig())
	}
	if counts := dump.GetVerification().GetResult().AsMap()["counts"].(map[string]any); counts["public.items"] != float64(40) {
		t.Fatalf("verification result %v", dump.GetVerification().GetResult())
	}

	// Lose rows, restore: they are back.
	h.psql("main-db", "DELETE FROM items WHERE id > 10;")
	r := h.restore("main-db", dump.GetId())
	if r.GetStatus() != addons.JobCompleted {
		t.Fatalf("restore %v", r)
	}
	if n := h.psql("main-db", "SELECT count(*) FROM items;"); n != "40" {
		t.Fatalf("after restore: %s rows", n)
	}
	if got := h.getBackup("main-db", dump.GetId()).GetLastRestore(); got.GetStatus() != addons.JobCompleted {
		t.Fatalf("lastRestore %v", got)
	}
	lines, err := h.client.GetRestoreLogs(as(adminCred), &addonsv1.GetRestoreLogsRequest{ProjectId: projectID, AddonId: "main-db", BackupId: dump.GetId(), RestoreId: r.GetId()})
	if err != nil || len(lines.GetLines()) == 0 {
		t.Fatalf("restore logs %v %v", lines, err)
	}

	// A corrupted backup file: the restore fails before touching the
	// data, says why, and the addon keeps its rows.
	h.psql("main-db", "INSERT INTO items VALUES (41, 'after');")
	a, _ := h.store.GetAddon(context.Background(), teamID, projectID, "main-db")
	b, _ := h.store.GetBackup(context.Background(), teamID, projectID, "main-db", dump.GetId())
	file := filepath.Join(h.dataDir, "backups", b.Key)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := h.restore("main-db", dump.GetId())
	if bad.GetStatus() != addons.JobFailed || !strings.Contains(bad.GetStatusMessage(), "checksum") || !strings.Contains(bad.GetStatusMessage(), "kept the data") {
		t.Fatalf("restore of a corrupted backup %v", bad)
	}
	if n := h.psql("main-db", "SELECT count(*) FROM items;"); n != "41" {
		t.Fatalf("after a failed restore: %s rows", n)
	}
	_ = a

	// A snapshot backup, verified; its download link serves the file.
	snap := h.backup("main-db", "snapshot")
	if snap.GetStatus() != addons.JobCompleted || snap.GetVerification().GetStatus() != addons.VerifyVerified {
		t.Fatalf("snapshot %v", snap)
	}
	link, err := h.client.GetBackupDownloadLink(as(adminCred), &addonsv1.GetBackupDownloadLinkRequest{ProjectId: projectID, AddonId: "main-db", BackupId: snap.GetId()})
	if err != nil || !strings.HasPrefix(link.GetDownloadLink(), "http://slipway.test/v1/addon-backup-downloads/") {
		t.Fatalf("link %v %v", link, err)
	}
	token := link.GetDownloadLink()[strings.LastIndex(link.GetDownloadLink(), "/")+1:]
	stream, err := h.client.DownloadBackup(context.Background(), &apiv1.DownloadRequest{Params: map[string]string{"token": token}})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got.Write(c.GetData())
	}
	if fmt.Sprint(got.Len()) != snap.GetConfig().GetSize() {
		t.Fatalf("downloaded %d bytes, want %s", got.Len(), snap.GetConfig().GetSize())
	}
	forged, _ := h.client.DownloadBackup(context.Background(), &apiv1.DownloadRequest{Params: map[string]string{"token": token[:len(token)-2] + "xx"}})
	if _, err := forged.Recv(); status.Code(err) != codes.NotFound {
		t.Fatalf("forged token: %v", err)
	}

	// Pause stops the server and keeps the data; resume brings it back.
	if _, err := h.client.PauseAddon(as(adminCred), &addonsv1.PauseAddonRequest{ProjectId: projectID, AddonId: "main-db"}); err != nil {
		t.Fatal(err)
	}
	if st := h.get("main-db").GetStatus(); st != addons.StatusPaused {
		t.Fatalf("status %s", st)
	}
	if list, _ := h.driver.List(context.Background(), map[string]string{engine.LabelAddon: a.InternalID}); len(list) != 0 {
		t.Fatalf("a paused addon has workloads: %v", list)
	}
	_, err = h.client.CreateBackup(as(adminCred), &addonsv1.CreateBackupRequest{ProjectId: projectID, AddonId: "main-db", BackupType: "dump"})
	wantCode(t, err, codes.FailedPrecondition, "ADDON_BUSY")
	if _, err := h.client.ResumeAddon(as(adminCred), &addonsv1.ResumeAddonRequest{ProjectId: projectID, AddonId: "main-db"}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("main-db", addons.StatusRunning)
	if n := h.psql("main-db", "SELECT count(*) FROM items;"); n != "41" {
		t.Fatalf("after resume: %s rows", n)
	}

	// A restart of Slipway with a backup and a restore in progress (as a
	// SIGKILL leaves them): both end failed, the addon running.
	ctx := context.Background()
	if _, err := h.store.UpdateAddon(ctx, teamID, projectID, "main-db", func(cur *addons.Addon) ([]events.Event, error) {
		cur.Status = addons.StatusBackup
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	stuck := addons.Backup{TeamID: teamID, ProjectID: projectID, AddonID: "main-db", ID: "0stuck", Name: "stuck", Type: "dump", Status: addons.JobInProgress,
		Verification: addons.Verification{Status: addons.VerifyPending}, CreatedAt: time.Now()}
	if err := h.store.CreateBackup(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	if err := h.store.CreateRestore(ctx, addons.Restore{TeamID: teamID, ProjectID: projectID, AddonID: "main-db", ID: "0stuck-r",
		BackupProjectID: projectID, BackupAddonID: "main-db", BackupID: dump.GetId(), Status: addons.JobInProgress}); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.waitStatus("main-db", addons.StatusRunning)
	if b := h.getBackup("main-db", "0stuck"); b.GetStatus() != addons.JobFailed || !strings.Contains(b.GetStatusMessage(), "interrupted") {
		t.Fatalf("interrupted backup %v", b)
	}
	if r, _ := h.store.GetRestore(ctx, teamID, projectID, "main-db", "0stuck-r"); r.Status != addons.JobFailed || !strings.Contains(r.StatusMessage, "interrupted") || !strings.Contains(r.StatusMessage, "never a mix") {
		t.Fatalf("interrupted restore %+v", r)
	}
	if n := h.psql("main-db", "SELECT count(*) FROM items;"); n != "41" {
		t.Fatalf("after a restart: %s rows", n)
	}

	// Delete: the server, its data and its backups go.
	if _, err := h.client.DeleteAddon(as(adminCred), &addonsv1.DeleteAddonRequest{ProjectId: projectID, AddonId: "main-db"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "deletion", func() bool {
		_, err := h.client.GetAddon(as(adminCred), &addonsv1.GetAddonRequest{ProjectId: projectID, AddonId: "main-db"})
		return status.Code(err) == codes.NotFound
	})
	if _, err := os.Stat(filepath.Join(h.dataDir, a.InternalID)); !os.IsNotExist(err) {
		t.Fatalf("the addon's directory is left: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a backup file is left: %v", err)
	}
	// Failures were logged (the corrupted restore), never a password.
	logged := h.logs.String()
	if !strings.Contains(logged, "restore failed") {
		t.Fatalf("the failed restore was not logged: %.500s", logged)
	}
	for _, secret := range []string{pw, a.Credentials.AdminPassword} {
		if strings.Contains(logged, secret) {
			t.Fatal("the service logged a password")
		}
	}
}
