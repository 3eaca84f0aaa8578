package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestAddonsTLS: through the REST API of the real binary, external
// access without TLS is 400; a PostgreSQL addon with both runs, its
// credentials carry the install CA's certificate and a verify-full URI
// that connects over the published loopback port, with the operator's
// SLIPWAY_ADDON_TLS_HOSTNAME in the certificate; a restart of Slipway
// keeps the same CA (made once in the data directory).
func TestAddonsTLS(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"SLIPWAY_DATA_DIR=" + dataDir, "SLIPWAY_ADDON_TLS_HOSTNAME=db.slipway.test"}
	s := startSlipway(t, env...)
	callJSON(t, "POST", s.URL+"/v1/projects", `{"name":"TLS Addons"}`).data(t)
	addons := s.URL + "/v1/projects/tls-addons/addons"
	if r := callJSON(t, "POST", addons, `{"name":"plain-db","type":"postgresql","version":"latest","externalAccessEnabled":true,"billing":{"deploymentPlan":"nf-compute-20"}}`); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Raw), "externalAccessEnabled") {
		t.Fatalf("external access without TLS: HTTP %d %s", r.Status, r.Raw)
	}
	callJSON(t, "POST", addons, `{"name":"tls-db","type":"postgresql","version":"latest","tlsEnabled":true,"externalAccessEnabled":true,"billing":{"deploymentPlan":"nf-compute-20"}}`).data(t)
	waitRunning := func(base string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; {
			a := callJSON(t, "GET", base+"/v1/projects/tls-addons/addons/tls-db", "").data(t)
			if a["status"] == "running" {
				if a["tlsEnabled"] != true || a["externalAccessEnabled"] != true {
					t.Fatalf("networking not shown: %v", a)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("addon not running: %v", a)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitRunning(s.URL)
	creds := func(base string) (secrets, envs map[string]any) {
		t.Helper()
		c := callJSON(t, "GET", base+"/v1/projects/tls-addons/addons/tls-db/credentials", "").data(t)
		secrets, _ = c["secrets"].(map[string]any)
		envs, _ = c["envs"].(map[string]any)
		return secrets, envs
	}
	secrets, envs := creds(s.URL)
	caPEM, _ := envs["TLS_CA_CERT"].(string)
	uri, _ := secrets["EXTERNAL_POSTGRES_URI"].(string)
	if !strings.HasPrefix(caPEM, "-----BEGIN CERTIFICATE-----") || !strings.Contains(uri, "sslmode=verify-full") || envs["EXTERNAL_HOST"] != "127.0.0.1" {
		t.Fatalf("credentials: %v %v", envs, secrets)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"127.0.0.1", "db.slipway.test"} {
		cfg, err := pgx.ParseConfig(uri + "&sslrootcert=" + caFile)
		if err != nil {
			t.Fatal(err)
		}
		// An operator forwarding the port under the configured name:
		// the certificate holds it.
		cfg.TLSConfig.ServerName = name
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("verify-full as %s: %v", name, err)
		}
		c.Close(ctx)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "addons", "tls-ca", "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the CA key in the data directory: %v %v", fi, err)
	}

	s.kill()
	s = startSlipway(t, env...)
	waitRunning(s.URL)
	if _, envs := creds(s.URL); envs["TLS_CA_CERT"] != caPEM {
		t.Fatal("a restart of Slipway made another CA")
	}
}
