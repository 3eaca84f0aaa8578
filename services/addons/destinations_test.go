package addons

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/objstore"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/addons/migrations"
)

const (
	dtTeam      = "acme"
	dtAdmin     = "Bearer admin"
	dtDeveloper = "Bearer developer"
	dtViewer    = "Bearer viewer"
	dtOther     = "Bearer other-team"
)

// memDestinationBackups is a small in-memory DestinationBackups: the
// addons server implements the interface for real (the lead wires it);
// these tests are about the destinations, so they hold a fixed list.
type memDestinationBackups struct {
	mu      sync.Mutex
	backups map[string][]*addonsv1.DestinationBackup // by team/destination, ordered by id
	// schedules are the addons (project/addon) whose schedule uses a
	// destination, by team/destination.
	schedules map[string]string
}

func (m *memDestinationBackups) DestinationSchedule(_ context.Context, team, destination string) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	project, addon, _ := strings.Cut(m.schedules[team+"/"+destination], "/")
	return project, addon, nil
}

func (m *memDestinationBackups) DestinationBackups(_ context.Context, team, destination string, page paging.Page) ([]*addonsv1.DestinationBackup, bool, string, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rest []*addonsv1.DestinationBackup
	all := m.backups[team+"/"+destination]
	for i, b := range all {
		if (page.After != "" && b.GetId() > page.After) || (page.After == "" && i >= page.Offset) {
			rest = append(rest, b)
		}
	}
	more := len(rest) > page.Limit
	if more {
		rest = rest[:page.Limit]
	}
	last := ""
	if len(rest) > 0 {
		last = rest[len(rest)-1].GetId()
	}
	return rest, more, last, len(all), nil
}

func (m *memDestinationBackups) set(team, destination string, ids ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var list []*addonsv1.DestinationBackup
	for _, id := range ids {
		list = append(list, &addonsv1.DestinationBackup{Id: id, Name: id, Status: "completed",
			Addon:  &addonsv1.DestinationBackupRef{Id: "pg", Name: "pg"},
			Config: &addonsv1.DestinationBackupConfig{AddonType: "postgresql", Size: "1234"}})
	}
	m.backups[team+"/"+destination] = list
}

// destinationHarness is the destinations server on the real interceptor
// chain, with a real S3 server (versitygw) to check destinations against.
type destinationHarness struct {
	t       *testing.T
	db      *sqldb.DB
	srv     *destinationsServer
	s3      *testenv.S3Server
	backups *memDestinationBackups
	client  addonsv1.BackupDestinationsServiceClient
	logs    *bytes.Buffer
	outbox  func() int
}

func newDestinationHarness(t *testing.T, engine sqldb.Dialect) *destinationHarness {
	t.Helper()
	// The S3 server is on loopback, which the operator must allow.
	return newDestinationHarnessAllowing(t, engine, "127.0.0.1")
}

func newDestinationHarnessAllowing(t *testing.T, engine sqldb.Dialect, allow ...string) *destinationHarness {
	t.Helper()
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(&destLockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := sqltest.Open(t, engine, migrations.Set, events.Migrations)
	box, err := DestinationBox([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	mem := &memDestinationBackups{backups: map[string][]*addonsv1.DestinationBackup{}, schedules: map[string]string{}}
	srv, err := newDestinationsServer(db, nil, box, nil, mem, allow)
	if err != nil {
		t.Fatal(err)
	}
	authorizer := authz.New(authztest.Static{
		dtAdmin:     authztest.TeamToken(dtTeam, "admin"),
		dtDeveloper: authztest.TeamToken(dtTeam, "developer"),
		dtViewer:    authztest.TeamToken(dtTeam, "viewer"),
		dtOther:     authztest.TeamToken("other", "admin"),
	}, "internal-key")
	client := addonsv1.NewBackupDestinationsServiceClient(rpctest.Serve(t, rpcserver.Options{Authorizer: authorizer, Logger: logger}, func(s *grpc.Server) {
		addonsv1.RegisterBackupDestinationsServiceServer(s, srv)
	}))
	return &destinationHarness{t: t, db: db, srv: srv, s3: testenv.S3(t), backups: mem, client: client, logs: logs,
		outbox: sqltest.RowCounter(t, db, "event_outbox")}
}

type destLockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *destLockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func destAs(cred string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", cred)
}

// creds are the harness's S3 server's credentials in a request's shape.
func (h *destinationHarness) creds() *addonsv1.BackupDestinationCredentialsInput {
	return &addonsv1.BackupDestinationCredentialsInput{
		AccessKey: h.s3.AccessKey, SecretKey: h.s3.SecretKey, BucketName: h.s3.Bucket, Region: h.s3.Region, Endpoint: h.s3.Endpoint,
	}
}

func (h *destinationHarness) add(name, prefix string, creds *addonsv1.BackupDestinationCredentialsInput) (*addonsv1.BackupDestination, error) {
	resp, err := h.client.AddBackupDestination(destAs(dtAdmin), &addonsv1.AddBackupDestinationRequest{
		Name: name, Description: "where backups go", Type: "s3", Prefix: prefix, Credentials: creds,
	})
	return resp.GetBackupDestination(), err
}

// destWantCheckFailed fails unless err is the 400 of a failed check naming field.
func destWantCheckFailed(t *testing.T, what string, err error, field string) {
	t.Helper()
	destWantInvalid(t, what, err, apierr.ReasonBackupDestinationCheckFailed, field)
}

// destWantInvalid fails unless err is a 400 with reason naming field alone.
func destWantInvalid(t *testing.T, what string, err error, want apierr.Reason, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("%s: %v, want InvalidArgument", what, err)
	}
	var reason string
	var fields []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if reason != string(want) || len(fields) != 1 || fields[0] != field {
		t.Fatalf("%s: reason %q fields %v (%v), want %s on %s", what, reason, fields, err, want, field)
	}
}

// TestBackupDestinationLifecycle walks a destination through every
// endpoint against a real S3 server, on both engines.
func TestBackupDestinationLifecycle(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		h := newDestinationHarness(t, engine)
		d, err := h.add("Main S3", "/slipway/backups/", h.creds())
		if err != nil {
			t.Fatal(err)
		}
		if d.GetId() != "main-s3" || d.GetType() != "s3" || d.GetPrefix() != "slipway/backups" || d.GetCredentials().GetSecretKey() != h.s3.SecretKey ||
			d.GetCredentials().GetBucketName() != h.s3.Bucket || d.GetCreatedAt() == nil {
			t.Fatalf("added %v", d)
		}
		// The check's test object is gone again.
		if files := destFilesUnder(t, filepath.Join(h.s3.Dir, h.s3.Bucket)); len(files) != 0 {
			t.Fatalf("the check left objects in the bucket: %v", files)
		}
		if _, err := h.add("Main S3", "", h.creds()); status.Code(err) != codes.AlreadyExists {
			t.Fatalf("second add: %v, want AlreadyExists", err)
		}

		// Get: the secret key for those who may update it, not for viewers.
		for cred, reveal := range map[string]bool{dtAdmin: true, dtViewer: false} {
			got, err := h.client.GetBackupDestination(destAs(cred), &addonsv1.GetBackupDestinationRequest{BackupDestinationId: "main-s3"})
			if err != nil {
				t.Fatalf("get as %s: %v", cred, err)
			}
			if (got.GetBackupDestination().GetCredentials().SecretKey != nil) != reveal || got.GetBackupDestination().GetCredentials().GetAccessKey() != h.s3.AccessKey {
				t.Fatalf("get as %s: %v (reveal %v)", cred, got, reveal)
			}
		}
		if _, err := h.client.GetBackupDestination(destAs(dtOther), &addonsv1.GetBackupDestinationRequest{BackupDestinationId: "main-s3"}); status.Code(err) != codes.NotFound {
			t.Fatalf("get by another team: %v", err)
		}
		if _, err := h.client.GetBackupDestination(destAs(dtAdmin), &addonsv1.GetBackupDestinationRequest{BackupDestinationId: "main-s3", TeamId: "other"}); status.Code(err) != codes.NotFound {
			t.Fatalf("get in a team the caller is not in: %v", err)
		}

		// List: never the secret key, paginated.
		if _, err := h.add("Second S3", "other", h.creds()); err != nil {
			t.Fatal(err)
		}
		page, err := h.client.ListBackupDestinations(destAs(dtAdmin), &addonsv1.ListBackupDestinationsRequest{PerPage: 1})
		if err != nil || len(page.GetBackupDestinations()) != 1 || !page.GetPagination().GetHasNextPage() {
			t.Fatalf("list page 1: %v, %v", page, err)
		}
		if page.GetBackupDestinations()[0].GetCredentials().SecretKey != nil {
			t.Fatal("the list shows a secret key")
		}
		page2, err := h.client.ListBackupDestinations(destAs(dtAdmin), &addonsv1.ListBackupDestinationsRequest{PerPage: 1, Cursor: page.GetPagination().GetCursor()})
		if err != nil || len(page2.GetBackupDestinations()) != 1 || page2.GetBackupDestinations()[0].GetId() != "second-s3" || page2.GetPagination().GetHasNextPage() {
			t.Fatalf("list page 2: %v, %v", page2, err)
		}
		if other, err := h.client.ListBackupDestinations(destAs(dtOther), &addonsv1.ListBackupDestinationsRequest{}); err != nil || len(other.GetBackupDestinations()) != 0 {
			t.Fatalf("another team's list: %v, %v", other, err)
		}

		// Patch: name and description; then credentials, checked first.
		patched, err := h.client.PatchBackupDestination(destAs(dtAdmin), &addonsv1.PatchBackupDestinationRequest{
			BackupDestinationId: "main-s3", Name: destPtr("Primary S3"), Description: destPtr("renamed"),
		})
		if err != nil || patched.GetBackupDestination().GetName() != "Primary S3" || patched.GetBackupDestination().GetId() != "main-s3" {
			t.Fatalf("patch: %v, %v", patched, err)
		}
		wrong := h.creds()
		wrong.SecretKey = "not-the-secret"
		_, err = h.client.PatchBackupDestination(destAs(dtAdmin), &addonsv1.PatchBackupDestinationRequest{BackupDestinationId: "main-s3", Credentials: wrong, Name: destPtr("Broken")})
		destWantCheckFailed(t, "patch with a wrong secret", err, "credentials")
		got, _ := h.client.GetBackupDestination(destAs(dtAdmin), &addonsv1.GetBackupDestinationRequest{BackupDestinationId: "main-s3"})
		if got.GetBackupDestination().GetCredentials().GetSecretKey() != h.s3.SecretKey || got.GetBackupDestination().GetName() != "Primary S3" {
			t.Fatalf("a refused patch changed the destination: %v", got)
		}

		// The opened store writes where the destination says.
		st, err := h.srv.destinationObjectStore(context.Background(), dtTeam, "main-s3")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Put(context.Background(), "p/pg/b1.dump", strings.NewReader("dump")); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(h.s3.Dir, h.s3.Bucket, "slipway", "backups", "p", "pg", "b1.dump")); err != nil || string(b) != "dump" {
			t.Fatalf("object on the S3 server's disk: %q, %v", b, err)
		}
		if _, err := h.srv.destinationObjectStore(context.Background(), "other", "main-s3"); status.Code(err) != codes.NotFound {
			t.Fatalf("another team's destination opened: %v", err)
		}

		// Backups: listed through DestinationBackups, paginated.
		h.backups.set(dtTeam, "main-s3", "b1", "b2", "b3")
		bl, err := h.client.ListBackupDestinationBackups(destAs(dtViewer), &addonsv1.ListBackupDestinationBackupsRequest{BackupDestinationId: "main-s3", PerPage: 2})
		if err != nil || len(bl.GetBackups()) != 2 || !bl.GetPagination().GetHasNextPage() {
			t.Fatalf("backups page 1: %v, %v", bl, err)
		}
		bl2, err := h.client.ListBackupDestinationBackups(destAs(dtViewer), &addonsv1.ListBackupDestinationBackupsRequest{BackupDestinationId: "main-s3", PerPage: 2, Cursor: bl.GetPagination().GetCursor()})
		if err != nil || len(bl2.GetBackups()) != 1 || bl2.GetBackups()[0].GetId() != "b3" {
			t.Fatalf("backups page 2: %v, %v", bl2, err)
		}
		if _, err := h.client.ListBackupDestinationBackups(destAs(dtOther), &addonsv1.ListBackupDestinationBackupsRequest{BackupDestinationId: "main-s3"}); status.Code(err) != codes.NotFound {
			t.Fatalf("another team's destination's backups: %v", err)
		}
		// A cursor of one destination's list does not page another's.
		if _, err := h.client.ListBackupDestinationBackups(destAs(dtAdmin), &addonsv1.ListBackupDestinationBackupsRequest{BackupDestinationId: "second-s3", Cursor: bl.GetPagination().GetCursor()}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("foreign cursor: %v", err)
		}

		// Delete: refused while it holds backups, then done.
		if _, err := h.client.DeleteBackupDestination(destAs(dtAdmin), &addonsv1.DeleteBackupDestinationRequest{BackupDestinationId: "main-s3"}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("delete with backups: %v", err)
		}
		h.backups.set(dtTeam, "main-s3")
		// Refused while an addon's backup schedule uses it, naming the addon.
		h.backups.mu.Lock()
		h.backups.schedules[dtTeam+"/main-s3"] = "web/pg"
		h.backups.mu.Unlock()
		_, err = h.client.DeleteBackupDestination(destAs(dtAdmin), &addonsv1.DeleteBackupDestinationRequest{BackupDestinationId: "main-s3"})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), `addon "pg"`) {
			t.Fatalf("delete used by a schedule: %v", err)
		}
		h.backups.mu.Lock()
		delete(h.backups.schedules, dtTeam+"/main-s3")
		h.backups.mu.Unlock()
		if _, err := h.client.DeleteBackupDestination(destAs(dtAdmin), &addonsv1.DeleteBackupDestinationRequest{BackupDestinationId: "main-s3"}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.GetBackupDestination(destAs(dtAdmin), &addonsv1.GetBackupDestinationRequest{BackupDestinationId: "main-s3"}); status.Code(err) != codes.NotFound {
			t.Fatalf("get after delete: %v", err)
		}
		if _, err := h.client.DeleteBackupDestination(destAs(dtAdmin), &addonsv1.DeleteBackupDestinationRequest{BackupDestinationId: "main-s3"}); status.Code(err) != codes.NotFound {
			t.Fatalf("second delete: %v", err)
		}

		// created ×2, updated ×1 (the refused patch wrote nothing), deleted.
		if n := h.outbox(); n != 4 {
			t.Fatalf("outbox holds %d events, want 4", n)
		}
		h.noSecretsLogged()
	})
}

// TestBackupDestinationCheck: every way a destination can be wrong is a
// 400 naming the field at add time, and nothing is stored.
func TestBackupDestinationCheck(t *testing.T) {
	h := newDestinationHarness(t, sqldb.SQLite)
	free := testenv.FreePort(t)
	cases := map[string]struct {
		mutate func(*addonsv1.BackupDestinationCredentialsInput)
		field  string
		reason apierr.Reason // BACKUP_DESTINATION_CHECK_FAILED when empty
	}{
		"wrong secret key":   {func(c *addonsv1.BackupDestinationCredentialsInput) { c.SecretKey = "wrong-" + c.SecretKey }, "credentials", ""},
		"unknown access key": {func(c *addonsv1.BackupDestinationCredentialsInput) { c.AccessKey = "AKNOSUCHKEY" }, "credentials", ""},
		"missing bucket":     {func(c *addonsv1.BackupDestinationCredentialsInput) { c.BucketName = "no-such-bucket" }, "credentials.bucketName", ""},
		"nothing listening": {func(c *addonsv1.BackupDestinationCredentialsInput) {
			c.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", free)
		}, "credentials.endpoint", ""},
		"endpoint with path": {func(c *addonsv1.BackupDestinationCredentialsInput) { c.Endpoint += "/bucket" }, "credentials.endpoint", apierr.ReasonValidationFailed},
		"endpoint scheme":    {func(c *addonsv1.BackupDestinationCredentialsInput) { c.Endpoint = "ftp://127.0.0.1:21" }, "credentials.endpoint", apierr.ReasonValidationFailed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := h.creds()
			tc.mutate(c)
			_, err := h.add("Bad "+strings.ReplaceAll(name, " ", "-"), "", c)
			reason := tc.reason
			if reason == "" {
				reason = apierr.ReasonBackupDestinationCheckFailed
			}
			destWantInvalid(t, name, err, reason, tc.field)
		})
	}
	t.Run("bad prefix", func(t *testing.T) {
		_, err := h.add("Bad Prefix", "a/../b", h.creds())
		destWantInvalid(t, "bad prefix", err, apierr.ReasonValidationFailed, "prefix")
	})
	t.Run("input validation", func(t *testing.T) {
		for name, req := range map[string]*addonsv1.AddBackupDestinationRequest{
			"type":          {Name: "Some Dest", Type: "gcs", Credentials: h.creds()},
			"no creds":      {Name: "Some Dest", Type: "s3"},
			"short name":    {Name: "--", Type: "s3", Credentials: h.creds()},
			"bucket syntax": {Name: "Some Dest", Type: "s3", Credentials: &addonsv1.BackupDestinationCredentialsInput{AccessKey: "a", SecretKey: "s", BucketName: "b/../c", Endpoint: "x"}},
			"region syntax": {Name: "Some Dest", Type: "s3", Credentials: &addonsv1.BackupDestinationCredentialsInput{AccessKey: "a", SecretKey: "s", BucketName: "bucket", Region: "eu west", Endpoint: "x"}},
		} {
			if _, err := h.client.AddBackupDestination(destAs(dtAdmin), req); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
	})
	t.Run("permissions", func(t *testing.T) {
		req := &addonsv1.AddBackupDestinationRequest{Name: "Viewer Dest", Type: "s3", Credentials: h.creds()}
		for _, cred := range []string{dtViewer, dtDeveloper} {
			if _, err := h.client.AddBackupDestination(destAs(cred), req); status.Code(err) != codes.PermissionDenied {
				t.Errorf("add as %s: %v, want PermissionDenied", cred, err)
			}
		}
		if _, err := h.client.AddBackupDestination(context.Background(), req); status.Code(err) != codes.Unauthenticated {
			t.Errorf("add without credentials: %v", err)
		}
	})
	list, err := h.client.ListBackupDestinations(destAs(dtAdmin), &addonsv1.ListBackupDestinationsRequest{})
	if err != nil || len(list.GetBackupDestinations()) != 0 || h.outbox() != 0 {
		t.Fatalf("refused adds stored something: %v, %v, outbox %d", list, err, h.outbox())
	}
	h.noSecretsLogged()
}

// TestBackupDestinationsWithoutBackups: until the addons server is wired
// in, listing backups and deleting answer 503 rather than guess.
func TestBackupDestinationsWithoutBackups(t *testing.T) {
	h := newDestinationHarness(t, sqldb.SQLite)
	if _, err := h.add("Main S3", "", h.creds()); err != nil {
		t.Fatal(err)
	}
	h.srv.backups = nil
	if _, err := h.client.ListBackupDestinationBackups(destAs(dtAdmin), &addonsv1.ListBackupDestinationBackupsRequest{BackupDestinationId: "main-s3"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("list backups: %v", err)
	}
	if _, err := h.client.DeleteBackupDestination(destAs(dtAdmin), &addonsv1.DeleteBackupDestinationRequest{BackupDestinationId: "main-s3"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("delete: %v", err)
	}
}

// TestBackupDestinationPrivateAddresses: an endpoint on a loopback,
// private or link-local address is refused (at connect time, before any
// packet is sent) unless the operator allows its host by name, address or
// CIDR, so a team cannot make the server probe its own network.
func TestBackupDestinationPrivateAddresses(t *testing.T) {
	for name, tc := range map[string]struct {
		allow    []string
		endpoint func(h *destinationHarness) string
		ok       bool
	}{
		"loopback refused":        {nil, func(h *destinationHarness) string { return h.s3.Endpoint }, false},
		"metadata address":        {nil, func(*destinationHarness) string { return "http://169.254.169.254" }, false},
		"private address":         {[]string{"127.0.0.1"}, func(*destinationHarness) string { return "http://10.0.0.1:9000" }, false},
		"localhost by name":       {nil, func(h *destinationHarness) string { return strings.Replace(h.s3.Endpoint, "127.0.0.1", "localhost", 1) }, false},
		"allowed by address":      {[]string{"127.0.0.1"}, func(h *destinationHarness) string { return h.s3.Endpoint }, true},
		"allowed by CIDR":         {[]string{"127.0.0.0/8"}, func(h *destinationHarness) string { return h.s3.Endpoint }, true},
		"allowed by name":         {[]string{"localhost"}, func(h *destinationHarness) string { return strings.Replace(h.s3.Endpoint, "127.0.0.1", "localhost", 1) }, true},
		"other name not allowing": {[]string{"minio.internal"}, func(h *destinationHarness) string { return h.s3.Endpoint }, false},
	} {
		t.Run(name, func(t *testing.T) {
			h := newDestinationHarnessAllowing(t, sqldb.SQLite, tc.allow...)
			c := h.creds()
			c.Endpoint = tc.endpoint(h)
			_, err := h.add("Private Check", "", c)
			if tc.ok {
				if err != nil {
					t.Fatalf("allowed endpoint %s: %v", c.Endpoint, err)
				}
				return
			}
			destWantCheckFailed(t, name, err, "credentials.endpoint")
			if !strings.Contains(status.Convert(err).Message(), "SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS") {
				t.Fatalf("%s: the refusal does not say how to allow it: %v", name, err)
			}
		})
	}
	if err := DestinationAllowHostsSetting.Check("127.0.0.1, minio.internal,10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	if err := DestinationAllowHostsSetting.Check("10.0.0.0/99"); err == nil {
		t.Fatal("a bad CIDR was accepted")
	}
}

// noSecretsLogged fails if the server's log holds the S3 secret key.
func (h *destinationHarness) noSecretsLogged() {
	h.t.Helper()
	if strings.Contains(h.logs.String(), h.s3.SecretKey) {
		h.t.Fatalf("the secret key was logged:\n%s", h.logs.String())
	}
}

func destFilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func destPtr[T any](v T) *T { return &v }

var _ objstore.Store = (*objstore.S3)(nil)
