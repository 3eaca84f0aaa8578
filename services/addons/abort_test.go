package addons_test

import (
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/events/eventstest"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestAbortAndImport: an import from a URL that trickles is in progress
// until aborted, then aborted (its partial file gone); an import of
// something that is not gzip fails saying so; a concluded backup cannot
// be aborted (409) nor deleted while in progress (409); connectionString
// is refused (400). Each import writes backup.started, then
// backup.aborted for the abort (not backup.failed) or backup.failed; a
// restart of Slipway fails an import it interrupted (not aborted) and
// concludes a backup left aborting as aborted.
func TestAbortAndImport(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow.gz":
			zw := gzip.NewWriter(w)
			_, _ = zw.Write([]byte("partial"))
			_ = zw.Flush()
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			_, _ = w.Write([]byte("plain text, no gzip"))
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	h.create(spec("target", engine.TypeRedis))
	h.waitStatus("target", addons.StatusRunning)
	_, err := h.client.ImportBackup(as(adminCred), &addonsv1.ImportBackupRequest{ProjectId: projectID, AddonId: "target", ConnectionString: "redis://x"})
	wantCode(t, err, codes.InvalidArgument, "connectionString")

	slow, err := h.client.ImportBackup(as(adminCred), &addonsv1.ImportBackupRequest{ProjectId: projectID, AddonId: "target", ImportUrl: srv.URL + "/slow.gz"})
	if err != nil {
		t.Fatal(err)
	}
	id := slow.GetBackup().GetId()
	if slow.GetBackup().GetStatus() != addons.JobInProgress || slow.GetBackup().GetConfig().GetSource().GetType() != "externalDump" {
		t.Fatalf("import %v", slow.GetBackup())
	}
	_, err = h.client.DeleteBackup(as(adminCred), &addonsv1.DeleteBackupRequest{ProjectId: projectID, AddonId: "target", BackupId: id})
	wantCode(t, err, codes.FailedPrecondition, "BACKUP_IN_PROGRESS")
	time.Sleep(300 * time.Millisecond)
	if _, err := h.client.AbortBackup(as(adminCred), &addonsv1.AbortBackupRequest{ProjectId: projectID, AddonId: "target", BackupId: id}); err != nil {
		t.Fatal(err)
	}
	aborted := h.waitBackup("target", id, func(b *addonsv1.Backup) bool {
		return b.GetStatus() != addons.JobAborting && b.GetStatus() != addons.JobInProgress
	})
	if aborted.GetStatus() != addons.JobAborted || aborted.GetVerification().GetStatus() != addons.VerifyFailed {
		t.Fatalf("aborted import %v", aborted)
	}
	_, err = h.client.AbortBackup(as(adminCred), &addonsv1.AbortBackupRequest{ProjectId: projectID, AddonId: "target", BackupId: id})
	wantCode(t, err, codes.FailedPrecondition, "BACKUP_CONCLUDED")

	plain, err := h.client.ImportBackup(as(adminCred), &addonsv1.ImportBackupRequest{ProjectId: projectID, AddonId: "target", ImportUrl: srv.URL + "/plain"})
	if err != nil {
		t.Fatal(err)
	}
	failed := h.waitBackup("target", plain.GetBackup().GetId(), func(b *addonsv1.Backup) bool { return b.GetStatus() != addons.JobInProgress })
	if failed.GetStatus() != addons.JobFailed || !strings.Contains(failed.GetStatusMessage(), "not a gzip") {
		t.Fatalf("plain import %v", failed)
	}
	if st := h.get("target").GetStatus(); st != addons.StatusRunning {
		t.Fatalf("the addon after failed imports: %s", st)
	}

	// A restart of Slipway while an import runs, with a backup left
	// aborting (as a SIGKILL right after an abort leaves it).
	cut, err := h.client.ImportBackup(as(adminCred), &addonsv1.ImportBackupRequest{ProjectId: projectID, AddonId: "target", ImportUrl: srv.URL + "/slow.gz"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := h.store.CreateBackup(ctx, addons.Backup{TeamID: teamID, ProjectID: projectID, AddonID: "target", ID: "0aborting", Name: "aborting",
		Type: "dump", Status: addons.JobAborting, Verification: addons.Verification{Status: addons.VerifyPending}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	h.start()
	interrupted := h.waitBackup("target", cut.GetBackup().GetId(), func(b *addonsv1.Backup) bool { return b.GetStatus() != addons.JobInProgress })
	if interrupted.GetStatus() != addons.JobFailed || !strings.Contains(interrupted.GetStatusMessage(), "interrupted") {
		t.Fatalf("import cut by a restart %v", interrupted)
	}
	if b := h.getBackup("target", "0aborting"); b.GetStatus() != addons.JobAborted {
		t.Fatalf("backup left aborting %v", b)
	}

	ids := func(verb string, want int) []string {
		t.Helper()
		var out []string
		for _, ev := range eventstest.Collect(t, h.js, []string{events.SubjectFor("addons", "backup", verb)}, want, time.Second, nil) {
			if eventstest.DataField(ev, "addonId") != "target" {
				t.Fatalf("backup.%s event of another addon: %v", verb, ev)
			}
			out = append(out, eventstest.DataField(ev, "id"))
		}
		slices.Sort(out)
		return out
	}
	sorted := func(list ...string) []string { slices.Sort(list); return list }
	if got, want := ids("started", 3), sorted(id, plain.GetBackup().GetId(), cut.GetBackup().GetId()); !slices.Equal(got, want) {
		t.Fatalf("backup.started events for %v, want %v", got, want)
	}
	if got, want := ids("aborted", 2), sorted(id, "0aborting"); !slices.Equal(got, want) {
		t.Fatalf("backup.aborted events for %v, want %v", got, want)
	}
	if got, want := ids("failed", 2), sorted(plain.GetBackup().GetId(), cut.GetBackup().GetId()); !slices.Equal(got, want) {
		t.Fatalf("backup.failed events for %v, want %v", got, want)
	}
}
