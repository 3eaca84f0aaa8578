package auth

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/authz"
)

// TestClientAddr: the OAuth2 throttle counts by the address a gateway
// forwards only when the gateway proves itself with the internal key;
// anyone else's X-Forwarded-For is ignored.
func TestClientAddr(t *testing.T) {
	key := strings.Repeat("k", 32)
	for name, tc := range map[string]struct {
		configured, sent, forwarded, want string
	}{
		"gateway with the key":        {key, key, "203.0.113.5", "203.0.113.5"},
		"last hop of a chain":         {key, key, "198.51.100.1, 203.0.113.5", "203.0.113.5"},
		"no key sent":                 {key, "", "203.0.113.5", "192.0.2.1"},
		"wrong key":                   {key, strings.Repeat("x", 32), "203.0.113.5", "192.0.2.1"},
		"no key configured (--all)":   {"", "", "203.0.113.5", "192.0.2.1"},
		"key but no forwarded header": {key, key, "", "192.0.2.1"},
		"garbage forwarded":           {key, key, "not-an-ip", "192.0.2.1"},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/oauth2/token", nil)
			r.RemoteAddr = "192.0.2.1:4321"
			if tc.sent != "" {
				r.Header.Set(authz.InternalKeyHeader, tc.sent)
			}
			if tc.forwarded != "" {
				r.Header.Set("X-Forwarded-For", tc.forwarded)
			}
			if got := clientAddr(tc.configured)(r); got != tc.want {
				t.Fatalf("client address %q, want %q", got, tc.want)
			}
		})
	}
}
