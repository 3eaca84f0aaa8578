package authz

import authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"

// PrincipalKind is the kind of caller a principal stands for: the value of
// authv1.Principal.kind, which GET /v1/auth also returns as tokenKind.
// The kinds are declared here, once, so that the auth service that sets
// them and every service that tells them apart (the gateway's quota key,
// the authorizer's cache) agree by construction rather than by matching
// string literals. The values are wire strings and must not change.
//
// It is a Go type over the proto's string field rather than a proto enum
// because protojson would spell an enum's values in upper case
// (PRINCIPAL_KIND_PERSONAL_TOKEN), changing the public JSON.
type PrincipalKind string

// The principal kinds.
const (
	// PrincipalOAuth is an OAuth2 access token issued to a client on a
	// user's behalf.
	PrincipalOAuth PrincipalKind = "oauth"
	// PrincipalPersonalToken is a personal API token: it acts as its user.
	PrincipalPersonalToken PrincipalKind = "personal_token"
	// PrincipalTeamToken is a team API token: it acts as the team.
	PrincipalTeamToken PrincipalKind = "team_token"
	// PrincipalCredential is an API credential used with HTTP Basic auth.
	PrincipalCredential PrincipalKind = "credential"
	// PrincipalBootstrap is the operator's preset first admin token
	// (SLIPWAY_BOOTSTRAP_TOKEN).
	PrincipalBootstrap PrincipalKind = "bootstrap"
)

// KindOf returns the kind of p (empty for a nil principal).
func KindOf(p *authv1.Principal) PrincipalKind { return PrincipalKind(p.GetKind()) }
