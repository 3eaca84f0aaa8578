package addons_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestDockerDriver: on the docker driver (Podman), a Redis addon runs
// from the image SLIPWAY_ADDON_IMAGE_REDIS names (here one of this
// machine's binaries: no registry is reachable), as a container with the
// addon's labels; its backup is verified by a throwaway container and
// restores.
func TestDockerDriver(t *testing.T) {
	host := testenv.Podman(t)
	version := "7.0" // the host's redis-server, which the image holds
	image := testenv.BuildHostImage(t, host, "localhost/slipway-addons-redis:"+version,
		"/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/redis-check-rdb")
	h := newHarnessWith(t, func() (runtime.Driver, func()) {
		d, err := docker.New(host)
		if err != nil {
			t.Fatal(err)
		}
		return d, func() { d.Close() }
	}, map[string]string{engine.TypeRedis: image})
	s := spec("docked", engine.TypeRedis)
	s.Version = version
	h.create(s)
	h.waitStatus("docked", addons.StatusRunning)
	a, _ := h.store.GetAddon(context.Background(), teamID, projectID, "docked")
	list, err := h.driver.List(context.Background(), map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer})
	if err != nil || len(list) != 1 || list[0].State != runtime.StateRunning {
		t.Fatalf("containers %v %v", list, err)
	}
	redis := func(cmds string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, err := h.driver.Exec(ctx, list[0].ID, runtime.ExecSpec{Command: []string{"redis-cli", "-s", engine.RunMount + "/redis.sock", "--no-auth-warning"},
			Env: map[string]string{"REDISCLI_AUTH": a.Credentials.Password}, Stdin: strings.NewReader(cmds), Stdout: &out, Stderr: &errOut})
		if err != nil || code != 0 {
			t.Fatalf("redis-cli: %d %v %s", code, err, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	redis("SET a 1\nSET b 2\n")
	b := h.backup("docked", "dump")
	if b.GetStatus() != addons.JobCompleted || b.GetVerification().GetStatus() != addons.VerifyVerified {
		t.Fatalf("backup %v", b)
	}
	redis("FLUSHALL\n")
	if r := h.restore("docked", b.GetId()); r.GetStatus() != addons.JobCompleted {
		t.Fatalf("restore %v", r)
	}
	list, _ = h.driver.List(context.Background(), map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer})
	if len(list) != 1 {
		t.Fatalf("containers after the restore %v", list)
	}
	if n := redis("DBSIZE\n"); n != "2" {
		t.Fatalf("after the restore: %s keys", n)
	}
	if _, err := h.client.DeleteAddon(as(adminCred), &addonsv1.DeleteAddonRequest{ProjectId: projectID, AddonId: "docked"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the containers to go", func() bool {
		l, _ := h.driver.List(context.Background(), map[string]string{engine.LabelAddon: a.InternalID})
		return len(l) == 0
	})
}

// TestDockerDataVolume: on the docker driver (Podman), an addon's data is
// the named volume slipway-addon-<internal id>-data, created through the
// engine API with the addon: it exists (labelled as the addon's) while
// the addon does, nothing of the data is on the host, and it keeps the
// data across a restart, a pause and resume, a restart of Slipway, and a
// snapshot backup verified in a throwaway instance on a volume of its own
// (gone afterwards) and restored; a reset empties it; deleting the addon
// removes it.
func TestDockerDataVolume(t *testing.T) {
	host := testenv.Podman(t)
	version := "7.0" // the host's redis-server, which the image holds
	image := testenv.BuildHostImage(t, host, "localhost/slipway-addons-redis:"+version,
		"/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/redis-check-rdb")
	h := newHarnessWith(t, func() (runtime.Driver, func()) {
		d, err := docker.New(host)
		if err != nil {
			t.Fatal(err)
		}
		return d, func() { d.Close() }
	}, map[string]string{engine.TypeRedis: image})
	ctx := context.Background()
	s := spec("kept", engine.TypeRedis)
	s.Version = version
	h.create(s)
	h.waitStatus("kept", addons.StatusRunning)
	a, _ := h.store.GetAddon(ctx, teamID, projectID, "kept")
	name := engine.ServerVolume(a.InternalID)
	if name != "slipway-addon-"+a.InternalID+"-data" {
		t.Fatalf("volume name %q", name)
	}
	volumes := func() []string {
		t.Helper()
		list, err := h.driver.(runtime.Volumes).ListVolumes(ctx, map[string]string{engine.LabelAddon: a.InternalID})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range list {
			out = append(out, v.Name)
		}
		return out
	}
	v0, err := h.driver.(runtime.Volumes).InspectVolume(ctx, name)
	if err != nil || v0.Labels[engine.LabelAddon] != a.InternalID || v0.Labels[engine.LabelProject] != projectID || v0.Labels[engine.LabelRole] != engine.RoleServer {
		t.Fatalf("the data volume: %+v %v", v0, err)
	}
	if got := volumes(); !slices.Equal(got, []string{name}) {
		t.Fatalf("volumes %v, want the server's", got)
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, a.InternalID, "data")); !os.IsNotExist(err) {
		t.Fatalf("a data directory on the host: %v", err)
	}
	// redis runs commands in the running server as the app user.
	redis := func(cmds string) string {
		t.Helper()
		list, err := h.driver.List(ctx, map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer})
		if err != nil || len(list) != 1 || list[0].State != runtime.StateRunning {
			t.Fatalf("containers %v %v", list, err)
		}
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		code, err := h.driver.Exec(ctx, list[0].ID, runtime.ExecSpec{Command: []string{"redis-cli", "-s", engine.RunMount + "/redis.sock", "--no-auth-warning"},
			Env: map[string]string{"REDISCLI_AUTH": a.Credentials.Password}, Stdin: strings.NewReader(cmds), Stdout: &out, Stderr: &errOut})
		if err != nil || code != 0 {
			t.Fatalf("redis-cli: %d %v %s", code, err, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	// SAVE: what a clean stop would write anyway, so that a kill after
	// the grace period loses nothing either.
	redis("SET a 1\nSET b 2\nSET c 3\nSAVE\n")
	sameVolume := func(when string) {
		t.Helper()
		v, err := h.driver.(runtime.Volumes).InspectVolume(ctx, name)
		if err != nil || !v.CreatedAt.Equal(v0.CreatedAt) {
			t.Fatalf("%s: volume %+v %v, want the one created with the addon", when, v, err)
		}
		if n := redis("DBSIZE\n"); n != "3" {
			t.Fatalf("%s: %s keys, want 3", when, n)
		}
	}

	b := h.backup("kept", "snapshot")
	if b.GetStatus() != addons.JobCompleted || b.GetVerification().GetStatus() != addons.VerifyVerified {
		t.Fatalf("snapshot backup %v", b)
	}
	if got := volumes(); !slices.Equal(got, []string{name}) {
		t.Fatalf("volumes after the verification %v, want the server's only", got)
	}

	before, _ := h.driver.List(ctx, map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer})
	if _, err := h.client.RestartAddon(as(adminCred), &addonsv1.RestartAddonRequest{ProjectId: projectID, AddonId: "kept"}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("kept", addons.StatusRunning) // preDeployment until the new server answers
	if after, _ := h.driver.List(ctx, map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer}); len(before) != 1 || len(after) != 1 || after[0].ID == before[0].ID {
		t.Fatalf("servers before %v and after the restart %v, want a new one", before, after)
	}
	sameVolume("after a restart")

	if _, err := h.client.PauseAddon(as(adminCred), &addonsv1.PauseAddonRequest{ProjectId: projectID, AddonId: "kept"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the server to go", func() bool {
		list, _ := h.driver.List(ctx, map[string]string{engine.LabelAddon: a.InternalID})
		return len(list) == 0
	})
	if got := volumes(); !slices.Equal(got, []string{name}) {
		t.Fatalf("volumes while paused %v", got)
	}
	if _, err := h.client.ResumeAddon(as(adminCred), &addonsv1.ResumeAddonRequest{ProjectId: projectID, AddonId: "kept"}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("kept", addons.StatusRunning)
	sameVolume("after a pause and resume")

	h.start() // a restart of Slipway
	h.waitStatus("kept", addons.StatusRunning)
	sameVolume("after a restart of Slipway")

	redis("FLUSHALL\n")
	if r := h.restore("kept", b.GetId()); r.GetStatus() != addons.JobCompleted {
		t.Fatalf("restore of the snapshot %v", r)
	}
	sameVolume("after restoring the snapshot")

	if _, err := h.client.ResetAddon(as(adminCred), &addonsv1.ResetAddonRequest{ProjectId: projectID, AddonId: "kept"}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("kept", addons.StatusRunning) // resetting until the new server answers
	if n := redis("DBSIZE\n"); n != "0" {
		t.Fatalf("after the reset: %s keys, want none", n)
	}
	if got := volumes(); !slices.Equal(got, []string{name}) {
		t.Fatalf("volumes after the reset %v", got)
	}

	if _, err := h.client.DeleteAddon(as(adminCred), &addonsv1.DeleteAddonRequest{ProjectId: projectID, AddonId: "kept"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the containers and volumes to go", func() bool {
		l, _ := h.driver.List(ctx, map[string]string{engine.LabelAddon: a.InternalID})
		return len(l) == 0 && len(volumes()) == 0
	})
	if _, err := h.driver.(runtime.Volumes).InspectVolume(ctx, name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("the data volume after the delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, a.InternalID)); !os.IsNotExist(err) {
		t.Fatalf("the addon's directory after the delete: %v", err)
	}
}
