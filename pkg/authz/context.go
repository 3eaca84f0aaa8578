// Package authz authorizes every RPC of every Slipway service: it resolves
// the caller's credentials through the auth service (with a short cache
// that auth.token.revoked events clear), checks the permission the RPC
// declares in its proto, and hands handlers the principal and the team the
// call acts on.
package authz

import (
	"context"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
)

type principalKey struct{}

// NewContext returns ctx carrying the authenticated principal.
func NewContext(ctx context.Context, p *authv1.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal the interceptor authenticated, if any.
func PrincipalFrom(ctx context.Context) (*authv1.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*authv1.Principal)
	return p, ok && p != nil
}

// Grant returns the principal's grant in team, if it has one.
func Grant(p *authv1.Principal, team string) (*authv1.TeamGrant, bool) {
	for _, g := range p.GetGrants() {
		if g.GetTeamId() == team {
			return g, true
		}
	}
	return nil, false
}
