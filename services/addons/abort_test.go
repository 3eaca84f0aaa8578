package addons_test

import (
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestAbortAndImport: an import from a URL that trickles is in progress
// until aborted, then aborted (its partial file gone); an import of
// something that is not gzip fails saying so; a concluded backup cannot
// be aborted (409) nor deleted while in progress (409); connectionString
// is refused (400).
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
}
