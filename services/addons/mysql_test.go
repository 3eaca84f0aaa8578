package addons_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// mysql runs SQL in an addon's server as the app user, through the socket.
func (h *harness) mysql(addon, sql string) string {
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, err := h.driver.Exec(ctx, list[0].ID, runtime.ExecSpec{
		Command: []string{"mariadb", "--no-defaults", "--socket=" + engine.RunMount + "/mysqld.sock", "--user=" + a.Credentials.User, "-N", "-B", "shop"},
		Env:     map[string]string{"MYSQL_PWD": a.Credentials.Password}, Stdin: strings.NewReader(sql), Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		h.t.Fatalf("mariadb: exit %d %v: %s", code, err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// TestMySQLRoundTrip: a MySQL (MariaDB) addon with a custom database
// name; a dump backup verified; rows deleted, restored, back.
func TestMySQLRoundTrip(t *testing.T) {
	h := newHarness(t)
	s := spec("orders-db", engine.TypeMySQL)
	s.CustomCredentials = &addonsv1.CustomCredentials{DbName: "shop"}
	h.create(s)
	h.waitStatus("orders-db", addons.StatusRunning)
	creds, err := h.client.GetAddonCredentials(as(adminCred), &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: "orders-db"})
	if err != nil || creds.GetEnvs().AsMap()["DATABASE"] != "shop" {
		t.Fatalf("credentials %v %v", creds.GetEnvs(), err)
	}
	h.mysql("orders-db", "CREATE TABLE orders (id INT PRIMARY KEY, total INT); INSERT INTO orders SELECT seq, seq * 10 FROM seq_1_to_30;")
	b := h.backup("orders-db", "dump")
	if b.GetStatus() != addons.JobCompleted || b.GetVerification().GetStatus() != addons.VerifyVerified {
		t.Fatalf("backup %v", b)
	}
	h.mysql("orders-db", "DELETE FROM orders WHERE id > 5;")
	if r := h.restore("orders-db", b.GetId()); r.GetStatus() != addons.JobCompleted {
		t.Fatalf("restore %v", r)
	}
	if n := h.mysql("orders-db", "SELECT COUNT(*) FROM orders;"); n != "30" {
		t.Fatalf("after restore: %s rows", n)
	}
}
