package addons_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// redis runs redis-cli commands (one a line) in an addon's server as the
// app user, through the socket.
func (h *harness) redis(addon, commands string) string {
	h.t.Helper()
	a, err := h.store.GetAddon(context.Background(), teamID, projectID, addon)
	if err != nil {
		h.t.Fatal(err)
	}
	list, err := h.driver.List(context.Background(), map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer})
	if err != nil || len(list) != 1 {
		h.t.Fatalf("server workloads %v %v", list, err)
	}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := h.driver.Exec(ctx, list[0].ID, runtime.ExecSpec{
		Command: []string{"redis-cli", "-s", engine.RunMount + "/redis.sock", "--no-auth-warning"},
		Env:     map[string]string{"REDISCLI_AUTH": a.Credentials.Password}, Stdin: strings.NewReader(commands), Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		h.t.Fatalf("redis-cli: exit %d %v: %s", code, err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// TestForkAndProjectDeletion: a new addon with source starts from the
// backup (same team); pausing an addon while it starts keeps it paused;
// deleting the project deletes its addons, their data and backups.
func TestForkAndProjectDeletion(t *testing.T) {
	h := newHarness(t)
	h.create(spec("origin", engine.TypeRedis))
	h.waitStatus("origin", addons.StatusRunning)
	h.redis("origin", "SET a 1\nSET b 2\nSET c 3\n")
	b := h.backup("origin", "dump")
	if b.GetVerification().GetStatus() != addons.VerifyVerified {
		t.Fatalf("backup %v", b)
	}

	fork := spec("copy", engine.TypeRedis)
	fork.Source = &addonsv1.AddonSource{AddonId: "origin", BackupId: b.GetId()}
	created := h.create(fork)
	if created.GetSource().GetBackupId() != b.GetId() {
		t.Fatalf("source %v", created.GetSource())
	}
	h.waitStatus("copy", addons.StatusRunning)
	if got := h.redis("copy", "DBSIZE\n"); got != "3" {
		t.Fatalf("the fork holds %s keys, want 3", got)
	}
	restores, err := h.client.ListAddonRestores(as(adminCred), &addonsv1.ListAddonRestoresRequest{ProjectId: projectID, AddonId: "copy"})
	if err != nil || len(restores.GetRestores()) != 1 || restores.GetRestores()[0].GetStatus() != addons.JobCompleted {
		t.Fatalf("the fork's restore %v %v", restores, err)
	}

	// What secret groups link: values whose HOST is where the socket
	// directory must be mounted.
	link, err := h.svc.Link(context.Background(), teamID, projectID, "copy")
	if err != nil || link.Values["HOST"] != link.MountPath || link.Values["PASSWORD"] == "" || link.Type != engine.TypeRedis ||
		!strings.HasPrefix(link.MountPath, engine.LinkRoot+"/") {
		t.Fatalf("link %+v %v", link.MountPath, err)
	}
	if fi, err := os.Stat(filepath.Join(link.SocketDir, "redis.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket in %s: %v", link.SocketDir, err)
	}
	if _, err := h.svc.Link(context.Background(), "other", projectID, "copy"); err == nil {
		t.Fatal("another team's addon links")
	}

	// Paused right after create: it stays paused, with no server.
	h.create(spec("sleepy", engine.TypeRedis))
	if _, err := h.client.PauseAddon(as(adminCred), &addonsv1.PauseAddonRequest{ProjectId: projectID, AddonId: "sleepy"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	sleepy, _ := h.store.GetAddon(context.Background(), teamID, projectID, "sleepy")
	if sleepy.Status != addons.StatusPaused {
		t.Fatalf("paused while starting, then %s", sleepy.Status)
	}
	if list, _ := h.driver.List(context.Background(), map[string]string{engine.LabelAddon: sleepy.InternalID}); len(list) != 0 {
		t.Fatalf("a paused addon has workloads %v", list)
	}

	// The project is deleted: every addon goes, with its data and backups.
	origin, _ := h.store.GetAddon(context.Background(), teamID, projectID, "origin")
	ev, err := events.New("projects", "project", "deleted", teamID+"/"+projectID, map[string]string{"teamId": teamID, "id": projectID})
	if err != nil {
		t.Fatal(err)
	}
	handle := events.ProjectDeletedHandler(h.svc.DeleteProjectAddons)
	for range 2 { // redelivered: idempotent
		if err := handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"origin", "copy", "sleepy"} {
		if _, err := h.client.GetAddon(as(adminCred), &addonsv1.GetAddonRequest{ProjectId: projectID, AddonId: id}); status.Code(err) != codes.NotFound {
			t.Fatalf("addon %s after its project's deletion: %v", id, err)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, origin.InternalID)); !os.IsNotExist(err) {
		t.Fatalf("the addon's directory is left: %v", err)
	}
	if list, _ := h.driver.List(context.Background(), map[string]string{engine.LabelProject: projectID}); len(list) != 0 {
		t.Fatalf("workloads are left: %v", list)
	}
	entries, _ := os.ReadDir(filepath.Join(h.dataDir, "backups", teamID, projectID, origin.InternalID))
	if len(entries) != 0 {
		t.Fatalf("backup files are left: %v", entries)
	}
}
