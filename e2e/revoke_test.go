package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/authz"
)

// TestRevocationReachesCachesAtOnce: a token used once is cached by the
// gateway and by the projects service; revoking it must reach both caches
// through the auth.token.revoked event, not wait for the cache to expire.
func TestRevocationReachesCachesAtOnce(t *testing.T) {
	inst := startSlipway(t)
	tok := callJSON(t, "POST", inst.URL+"/v1/api-tokens", `{"name":"short-lived","kind":"team","roleId":"developer"}`).data(t)
	id, _ := tok["id"].(string)
	bearer := "Bearer " + tok["token"].(string)
	if r := requestAs(t, bearer, "GET", inst.URL+"/v1/projects", ""); r.Status != http.StatusOK {
		t.Fatalf("the new token: %d %s", r.Status, r.Raw)
	}
	callJSON(t, "DELETE", inst.URL+"/v1/api-tokens/"+id, "").data(t)
	// The event crosses the outbox relay and NATS, so allow it a moment;
	// the bound is far below the cache's TTL, which would otherwise be
	// what ends the token's life.
	deadline := time.Now().Add(authz.CacheTTL / 3)
	for {
		r := requestAs(t, bearer, "GET", inst.URL+"/v1/projects", "")
		if r.Status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked token still works (HTTP %d) %v after revocation", r.Status, authz.CacheTTL/3)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
