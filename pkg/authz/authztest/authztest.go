// Package authztest resolves fixed credentials to fixed principals, so a
// service's tests can run its real authorization interceptor without an
// auth service. (The auth service's own resolution is tested in
// services/auth, and end to end in e2e.)
package authztest

import (
	"context"

	"google.golang.org/grpc"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/permissions"
)

// Static maps Authorization header values to principals.
type Static map[string]*authv1.Principal

// Authenticate implements authz.Authenticator.
func (s Static) Authenticate(_ context.Context, req *authv1.AuthenticateRequest, _ ...grpc.CallOption) (*authv1.AuthenticateResponse, error) {
	p, ok := s[req.GetAuthorization()]
	if !ok {
		return nil, authz.Unauthenticated("invalid, expired or revoked credentials")
	}
	return &authv1.AuthenticateResponse{Principal: p}, nil
}

// TeamToken is a team token principal holding a built-in role ("admin",
// "developer", "viewer") in team, optionally restricted to projects.
func TeamToken(team, role string, projects ...string) *authv1.Principal {
	var perms []string
	for _, r := range permissions.Builtin() {
		if r.ID == role {
			perms = r.Permissions
		}
	}
	return &authv1.Principal{
		Kind: string(authz.PrincipalTeamToken), TokenId: team + "-" + role, DefaultTeamId: team,
		Grants: []*authv1.TeamGrant{{TeamId: team, RoleId: role, Permissions: perms, Projects: projects}},
	}
}
