package addons_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestLogs: the server's output is stored as the addon's log (range and
// tail); a backup's steps are its log; another addon's backup id is 404.
func TestLogs(t *testing.T) {
	h := newHarness(t)
	h.create(spec("chatty", engine.TypeRedis))
	h.waitStatus("chatty", addons.StatusRunning)
	var lines []*addonsv1.AddonLogLine
	waitFor(t, 30*time.Second, "server log lines", func() bool {
		resp, err := h.client.GetAddonLogs(as(adminCred), &addonsv1.GetAddonLogsRequest{ProjectId: projectID, AddonId: "chatty", Direction: "forward"})
		if err != nil {
			t.Fatal(err)
		}
		lines = resp.GetLines()
		return len(lines) > 0
	})
	if lines[0].GetContainerId() == "" || lines[0].GetTs() == nil {
		t.Fatalf("line %v", lines[0])
	}

	ctx, cancel := context.WithTimeout(as(adminCred), 30*time.Second)
	defer cancel()
	tail, err := h.client.TailAddonLogs(ctx, &addonsv1.TailAddonLogsRequest{ProjectId: projectID, AddonId: "chatty"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := tail.Recv()
	if err != nil || len(first.GetLines()) == 0 {
		t.Fatalf("tail backlog %v %v", first, err)
	}

	b := h.backup("chatty", "dump")
	resp, err := h.client.GetBackupLogs(as(adminCred), &addonsv1.GetBackupLogsRequest{ProjectId: projectID, AddonId: "chatty", BackupId: b.GetId(), Direction: "forward"})
	if err != nil || len(resp.GetLines()) < 3 || resp.GetLines()[0].GetStream() != "slipway" {
		t.Fatalf("backup logs %v %v", resp.GetLines(), err)
	}
	h.create(spec("quiet-one", engine.TypeRedis))
	_, err = h.client.GetBackupLogs(as(adminCred), &addonsv1.GetBackupLogsRequest{ProjectId: projectID, AddonId: "quiet-one", BackupId: b.GetId()})
	wantCode(t, err, codes.NotFound, "")
}
