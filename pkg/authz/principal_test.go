package authz

import (
	"testing"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
)

// TestPrincipalKindsAreWireStrings pins the kinds' values: they are what
// GET /v1/auth returns as tokenKind, so a rename here is an API change.
func TestPrincipalKindsAreWireStrings(t *testing.T) {
	for kind, wire := range map[PrincipalKind]string{
		PrincipalOAuth:         "oauth",
		PrincipalPersonalToken: "personal_token",
		PrincipalTeamToken:     "team_token",
		PrincipalCredential:    "credential",
		PrincipalBootstrap:     "bootstrap",
	} {
		if string(kind) != wire {
			t.Errorf("%q, want %q", kind, wire)
		}
		if got := KindOf(&authv1.Principal{Kind: wire}); got != kind {
			t.Errorf("KindOf(%q) = %q", wire, got)
		}
	}
	if KindOf(nil) != "" {
		t.Error("KindOf(nil) is not empty")
	}
}
