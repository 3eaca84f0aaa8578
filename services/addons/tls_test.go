package addons_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestNetworkSettingsTLS: through the service, POST network-settings
// turns TLS on (the server restarts with it): the credentials carry the
// CA's certificate and, with external access, a verify-full URI that a
// client connects with over the published loopback port, where
// plaintext is refused; external access without TLS is 400, also when
// turning TLS off under it; turning both off restarts the server with
// plaintext TCP.
func TestNetworkSettingsTLS(t *testing.T) {
	h := newHarness(t)
	h.create(spec("tls-db", engine.TypePostgreSQL))
	h.waitStatus("tls-db", addons.StatusRunning)
	ctx := as(adminCred)
	network := func(tls, external bool) error {
		_, err := h.client.UpdateAddonNetworkSettings(ctx, &addonsv1.UpdateAddonNetworkSettingsRequest{ProjectId: projectID, AddonId: "tls-db", TlsEnabled: &tls, ExternalAccessEnabled: &external})
		return err
	}
	creds := func() (secrets, envs map[string]any) {
		t.Helper()
		c, err := h.client.GetAddonCredentials(ctx, &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: "tls-db"})
		if err != nil {
			t.Fatal(err)
		}
		return c.GetSecrets().AsMap(), c.GetEnvs().AsMap()
	}
	// port is the server's published TCP port, from the driver.
	port := func() string {
		t.Helper()
		a, err := h.store.GetAddon(context.Background(), teamID, projectID, "tls-db")
		if err != nil {
			t.Fatal(err)
		}
		list, err := h.driver.List(context.Background(), map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer})
		if err != nil || len(list) != 1 || list[0].State != runtime.StateRunning {
			t.Fatalf("server workloads %v %v", list, err)
		}
		_, p, err := net.SplitHostPort(list[0].Ports["db"])
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, _ := h.store.GetAddon(context.Background(), teamID, projectID, "tls-db")
	plain := func(p string) string {
		return "postgres://" + a.Credentials.User + ":" + a.Credentials.Password + "@127.0.0.1:" + p + "/app?sslmode=disable"
	}
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if c, err := pgx.Connect(cctx, plain(port())); err != nil {
		t.Fatalf("plaintext with TLS off: %v", err)
	} else {
		c.Close(cctx)
	}

	types, err := h.client.ListAddonTypes(ctx, &addonsv1.ListAddonTypesRequest{})
	if err != nil || len(types.GetAddonTypes()) != 3 {
		t.Fatalf("addon types %v %v", types, err)
	}
	for _, typ := range types.GetAddonTypes() {
		if !typ.GetFeatures().GetTls() || !typ.GetFeatures().GetExternalAccess() {
			t.Errorf("%s: features %v", typ.GetType(), typ.GetFeatures())
		}
	}

	wantCode(t, network(false, true), codes.InvalidArgument, "externalAccessEnabled")
	if err := network(true, true); err != nil {
		t.Fatal(err)
	}
	got := h.waitStatus("tls-db", addons.StatusRunning)
	if !got.GetTlsEnabled() || !got.GetSpec().GetConfig().GetNetworking().GetTlsEnabled() {
		t.Fatalf("tlsEnabled not shown: %v", got)
	}
	secrets, envs := creds()
	caPEM, _ := envs["TLS_CA_CERT"].(string)
	uri, _ := secrets["EXTERNAL_POSTGRES_URI"].(string)
	if caPEM == "" || uri == "" || envs["EXTERNAL_HOST"] != "127.0.0.1" || envs["EXTERNAL_PORT"] != port() {
		t.Fatalf("credentials with TLS and external access: %v %v", envs, secrets)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(cctx, uri+"&sslrootcert="+caFile)
	if err != nil {
		t.Fatalf("EXTERNAL_POSTGRES_URI with TLS_CA_CERT: %v", err)
	}
	var ssl bool
	if err := c.QueryRow(cctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("ssl %v %v", ssl, err)
	}
	c.Close(cctx)
	if c, err := pgx.Connect(cctx, plain(port())); err == nil {
		c.Close(cctx)
		t.Fatal("a plaintext TCP connection was accepted with TLS on")
	}
	// Backups go through the socket, which stays plain.
	if b := h.backup("tls-db", "dump"); b.GetStatus() != addons.JobCompleted || b.GetVerification().GetStatus() != addons.VerifyVerified {
		t.Fatalf("backup with TLS on: %v", b)
	}

	// TLS off under external access is refused and changes nothing.
	wantCode(t, network(false, true), codes.InvalidArgument, "externalAccessEnabled")
	if !h.get("tls-db").GetTlsEnabled() {
		t.Fatal("a refused change turned TLS off")
	}
	// A TLS change while the addon is busy (a backup) is refused (it
	// would need a restart) and stored nowhere.
	setStatus := func(st string) {
		t.Helper()
		if _, err := h.store.UpdateAddon(context.Background(), teamID, projectID, "tls-db", func(a *addons.Addon) ([]events.Event, error) {
			a.Status = st
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(addons.StatusBackup)
	wantCode(t, network(false, false), codes.FailedPrecondition, "ADDON_BUSY")
	if got := h.get("tls-db"); !got.GetTlsEnabled() || !got.GetExternalAccessEnabled() {
		t.Fatalf("a refused change was stored: %v", got)
	}
	setStatus(addons.StatusRunning)

	if err := network(false, false); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("tls-db", addons.StatusRunning)
	if _, envs := creds(); envs["TLS_CA_CERT"] != nil || envs["EXTERNAL_HOST"] != nil {
		t.Fatalf("credentials with TLS off: %v", envs)
	}
	if c, err := pgx.Connect(cctx, plain(port())); err != nil {
		t.Fatalf("plaintext after TLS was turned off: %v", err)
	} else {
		c.Close(cctx)
	}
}

// TestExternalWithoutTLSStored: an addon stored with external access but
// no TLS (before the rule) still takes changes that leave networking
// alone, and the same network settings again.
func TestExternalWithoutTLSStored(t *testing.T) {
	h := newHarness(t)
	h.create(spec("old-db", engine.TypeRedis))
	h.waitStatus("old-db", addons.StatusRunning)
	if _, err := h.store.UpdateAddon(context.Background(), teamID, projectID, "old-db", func(a *addons.Addon) ([]events.Event, error) {
		a.Settings.External = true
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	desc := "kept"
	if _, err := h.client.PatchAddon(as(adminCred), &addonsv1.PatchAddonRequest{ProjectId: projectID, AddonId: "old-db",
		Spec: &addonsv1.AddonPatch{Description: &desc}}); err != nil {
		t.Fatalf("a patch of the description: %v", err)
	}
	external := true
	_, err := h.client.UpdateAddonNetworkSettings(as(adminCred), &addonsv1.UpdateAddonNetworkSettingsRequest{ProjectId: projectID, AddonId: "old-db", ExternalAccessEnabled: &external})
	if err != nil {
		t.Fatalf("setting what is stored again: %v", err)
	}
}

// TestTLSHostnameSetting: SLIPWAY_ADDON_TLS_HOSTNAME takes a DNS name or
// an IP address (or nothing) and refuses what a certificate cannot hold.
func TestTLSHostnameSetting(t *testing.T) {
	var check func(string) error
	for _, s := range addons.Component.Settings {
		if s.Env == "SLIPWAY_ADDON_TLS_HOSTNAME" {
			check = s.Check
		}
	}
	if check == nil {
		t.Fatal("no SLIPWAY_ADDON_TLS_HOSTNAME setting with a check")
	}
	for _, ok := range []string{"", "db.example.com", "localhost", "10.0.0.7", "fd00::1", "Host-1.Example.ORG"} {
		if err := check(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"db example", "-db.example.com", "db..example", "https://db.example.com", "db.example.com:5432", "*.example.com"} {
		if check(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
