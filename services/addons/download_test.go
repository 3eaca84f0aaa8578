package addons_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipwayhq/slipway/gateway"
	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestDownloadThroughGateway: a backup's download link is served by the
// gateway without API credentials (its signature is the credential), as
// the stored bytes with their checksum; a forged link is 404, an expired
// one 409 DOWNLOAD_LINK_EXPIRED, and the API routes still need a token.
func TestDownloadThroughGateway(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewRegistry()
	auth := authz.New(authztest.Static{adminCred: authztest.TeamToken(teamID, "admin")}, "internal-key")
	gw, err := gateway.New(context.Background(), gateway.Options{Logger: quiet, Registerer: reg, Gatherer: reg, Version: "test",
		Backends: []component.Backend{{Name: "addons", API: *addons.Component.API, Conn: h.conn}}, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)

	h.create(spec("kv-store", engine.TypeRedis))
	h.waitStatus("kv-store", addons.StatusRunning)
	h.redis("kv-store", "SET k v\n")
	b := h.backup("kv-store", "dump")
	link, err := h.client.GetBackupDownloadLink(as(adminCred), &addonsv1.GetBackupDownloadLinkRequest{ProjectId: projectID, AddonId: "kv-store", BackupId: b.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(link.GetDownloadLink(), "http://slipway.test")
	get := func(p string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, body := get(path)
	sum := sha256.Sum256(body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		hex.EncodeToString(sum[:]) != b.GetConfig().GetChecksum() || resp.Header.Get("X-Checksum-Sha256") != b.GetConfig().GetChecksum() ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "kv-store-") {
		t.Fatalf("download: HTTP %d %v, %d bytes: %.200s", resp.StatusCode, resp.Header, len(body), body)
	}
	if resp, body := get(path[:len(path)-3] + "abc"); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("forged link: HTTP %d %s", resp.StatusCode, body)
	}
	if resp, _ := get("/v1/projects/" + projectID + "/addons/kv-store"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an API route without a token: HTTP %d", resp.StatusCode)
	}
	h.clock.advance(16 * time.Minute)
	if resp, body := get(path); resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "DOWNLOAD_LINK_EXPIRED") {
		t.Fatalf("expired link: HTTP %d %s", resp.StatusCode, body)
	}
}
