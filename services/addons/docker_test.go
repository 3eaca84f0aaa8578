package addons_test

import (
	"bytes"
	"context"
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
