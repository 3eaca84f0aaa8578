package auth

import (
	"context"
	"errors"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
)

// The roles the membership rules name.
const (
	// adminRole is the role a team must always have one member in.
	adminRole = "admin"
	// defaultMemberRole is the role of a member added without one.
	defaultMemberRole = "developer"
	// fallbackRole is what a member falls back to when their role is taken
	// away: every member holds exactly one role.
	fallbackRole = "viewer"
)

func errLastAdmin(team string) error {
	return apierr.Conflict(apierr.ReasonLastAdmin, "this is the last admin of team %q; make another member an admin first", team)
}

func errRoleBuiltin(id string) error {
	return apierr.Conflict(apierr.ReasonRoleBuiltin, "role %q is built in and cannot be changed; create a custom role instead", id)
}

// errRoleExceedsCaller refuses handing out more than the caller holds.
func errRoleExceedsCaller() error {
	return &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonPermissionDenied,
		Message: "a role that grants more than the caller's own cannot be given to members or held by them"}
}

// withinGrant reports whether a role with perms and restr grants nothing
// the caller's grant g lacks: its permissions are among g's, and a caller
// limited to some projects cannot hand out a role reaching beyond them.
func withinGrant(g *authv1.TeamGrant, perms []string, restr Restrictions) bool {
	if !subset(perms, g.GetPermissions()) {
		return false
	}
	if limit := g.GetProjects(); len(limit) > 0 {
		return restr.Enabled && restr.Mode != RestrictNotIn && len(restr.Projects) > 0 && subset(restr.Projects, limit)
	}
	return true
}

// memberID is a member's id in the API and in list cursors: its user id.
func memberID(m TeamMember) string { return m.UserID }

func memberOf(m TeamMember) *authv1.TeamMember {
	return &authv1.TeamMember{
		Id: m.UserID, Name: m.User.Name, RoleId: m.RoleID, JoinedAt: timestamppb.New(m.JoinedAt),
		// Slipway does not verify addresses (yet), so it claims none is.
		Emails: []*authv1.MemberEmail{{Address: m.User.Email}},
	}
}

// teamMember returns a member of team with its user; a user who is not a
// member is a "member not found".
func (s *server) teamMember(ctx context.Context, team, userID string) (TeamMember, error) {
	m, err := s.store.GetMember(ctx, team, userID)
	if err != nil {
		return TeamMember{}, apierr.FromStore(err, "member", userID)
	}
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return TeamMember{}, apierr.FromStore(err, "member", userID)
	}
	return TeamMember{Member: m, User: u}, nil
}

// membersWith returns the members of team holding role.
func (s *server) membersWith(ctx context.Context, team, role string) ([]TeamMember, error) {
	list, err := s.store.ListMembers(ctx, team)
	if err != nil {
		return nil, err
	}
	out := []TeamMember{}
	for _, m := range list {
		if m.RoleID == role {
			out = append(out, m)
		}
	}
	return out, nil
}

// keepsAnAdmin refuses a change that takes m off the admin role when m is
// the team's only admin. The check precedes the write rather than being
// part of it, so two concurrent demotions of the last two admins can both
// pass; an operator can still restore an admin with "slipway admin
// add-member".
func (s *server) keepsAnAdmin(ctx context.Context, m Member) error {
	if m.RoleID != adminRole {
		return nil
	}
	admins, err := s.membersWith(ctx, m.TeamID, adminRole)
	if err != nil {
		return err
	}
	if len(admins) <= 1 {
		return errLastAdmin(m.TeamID)
	}
	return nil
}

// setRole gives member m role r, refusing to take the team's last admin
// off "admin", and returns the member as it is afterwards.
func (s *server) setRole(ctx context.Context, m TeamMember, r Role) (TeamMember, error) {
	if m.RoleID == r.ID {
		return m, nil
	}
	if err := s.keepsAnAdmin(ctx, m.Member); err != nil {
		return TeamMember{}, err
	}
	m.RoleID = r.ID
	ev, err := MemberEvent("updated", m.Member)
	if err != nil {
		return TeamMember{}, err
	}
	if err := s.store.SetMemberRole(ctx, m.TeamID, m.UserID, r.ID, ev); err != nil {
		// Not found: the member left, or the role was deleted, meanwhile.
		return TeamMember{}, apierr.FromStore(err, "member", m.UserID)
	}
	return m, nil
}

// PatchTeam implements AuthService.
func (s *server) PatchTeam(ctx context.Context, req *authv1.PatchTeamRequest) (*authv1.PatchTeamResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	t, err := s.store.GetTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, apierr.FromStore(err, "team", req.GetTeamId())
	}
	if req.Name != nil {
		t.Name = strings.TrimSpace(req.GetName())
	}
	if req.Description != nil {
		t.Description = req.GetDescription()
	}
	if req.Email != nil {
		t.Email = req.GetEmail()
	}
	if err := s.store.UpdateTeam(ctx, t); err != nil {
		return nil, apierr.FromStore(err, "team", t.ID)
	}
	return &authv1.PatchTeamResponse{Team: teamOf(t)}, nil
}

// AddTeamMember implements AuthService: the rules are addMember's, which
// "slipway admin add-member" runs too, bounded here by the caller's grant.
func (s *server) AddTeamMember(ctx context.Context, req *authv1.AddTeamMemberRequest) (*authv1.AddTeamMemberResponse, error) {
	g, err := inTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	roleID, field := req.GetRoleId(), "roleId"
	if roles := req.GetRoles(); len(roles) > 0 {
		if roleID != "" && roleID != roles[0] {
			return nil, apierr.InvalidField("roles", "must agree with roleId; a member holds exactly one role")
		}
		roleID, field = roles[0], "roles[0]"
	}
	if roleID == "" {
		roleID = defaultMemberRole
	}
	m, err := addMember(ctx, s.store, memberRequest{team: g.GetTeamId(), email: req.GetEmail(), role: roleID, roleField: field}, g, s.now())
	if err != nil {
		return nil, err
	}
	return &authv1.AddTeamMemberResponse{Member: memberOf(m)}, nil
}

// RemoveTeamMember implements AuthService.
func (s *server) RemoveTeamMember(ctx context.Context, req *authv1.RemoveTeamMemberRequest) (*authv1.RemoveTeamMemberResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	m, err := s.store.GetMember(ctx, req.GetTeamId(), req.GetMemberId())
	if err != nil {
		return nil, apierr.FromStore(err, "member", req.GetMemberId())
	}
	if err := s.keepsAnAdmin(ctx, m); err != nil {
		return nil, err
	}
	ev, err := MemberEvent("removed", m)
	if err != nil {
		return nil, err
	}
	if err := s.store.RemoveMember(ctx, m.TeamID, m.UserID, ev); err != nil {
		return nil, apierr.FromStore(err, "member", m.UserID)
	}
	return &authv1.RemoveTeamMemberResponse{}, nil
}

// updateRole stores r over the role with its id, announcing the change so
// that cached principals are dropped: one auth.role.updated event for the
// tokens and credentials bound to the role, and an auth.member event for
// every member holding it (their personal tokens are capped by it).
func (s *server) updateRole(ctx context.Context, g *authv1.TeamGrant, r Role) error {
	if !withinGrant(g, r.Permissions, r.Restrictions) {
		return errRoleExceedsCaller()
	}
	holders, err := s.membersWith(ctx, r.TeamID, r.ID)
	if err != nil {
		return err
	}
	roleEv, err := RoleEvent("updated", r)
	if err != nil {
		return err
	}
	evs := append(make([]events.Event, 0, len(holders)+1), roleEv)
	for _, m := range holders {
		ev, err := MemberEvent("updated", m.Member)
		if err != nil {
			return err
		}
		evs = append(evs, ev)
	}
	if err := s.store.UpdateRole(ctx, r, evs...); errors.Is(err, ErrBuiltin) {
		return errRoleBuiltin(r.ID)
	} else if err != nil {
		return apierr.FromStore(err, "role", r.ID)
	}
	return nil
}

// PutTeamRole implements AuthService.
func (s *server) PutTeamRole(ctx context.Context, req *authv1.PutTeamRoleRequest) (*authv1.PutTeamRoleResponse, error) {
	g, err := inTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	at := s.now()
	r, err := newRole(&authv1.CreateTeamRoleRequest{
		TeamId: req.GetTeamId(), Name: req.GetName(), Description: req.GetDescription(),
		Permissions: req.GetPermissions(), Restrictions: req.GetRestrictions(),
	}, at)
	if err != nil {
		return nil, err
	}
	old, err := s.store.GetRole(ctx, r.TeamID, r.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		switch err := s.store.CreateRole(ctx, r); {
		case err == nil:
			return &authv1.PutTeamRoleResponse{Role: roleOf(r)}, nil
		case errors.Is(err, ErrNotFound):
			return nil, apierr.NotFound("team", r.TeamID)
		case !errors.Is(err, ErrAlreadyExists):
			return nil, err
		}
		// Created concurrently: replace it like any existing role.
		if old, err = s.store.GetRole(ctx, r.TeamID, r.ID); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	if old.Builtin {
		return nil, errRoleBuiltin(old.ID)
	}
	r.CreatedAt = old.CreatedAt
	if err := s.updateRole(ctx, g, r); err != nil {
		return nil, err
	}
	return &authv1.PutTeamRoleResponse{Role: roleOf(r)}, nil
}

// PatchTeamRole implements AuthService.
func (s *server) PatchTeamRole(ctx context.Context, req *authv1.PatchTeamRoleRequest) (*authv1.PatchTeamRoleResponse, error) {
	g, err := inTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	old, err := s.store.GetRole(ctx, req.GetTeamId(), req.GetRoleId())
	if err != nil {
		return nil, apierr.FromStore(err, "role", req.GetRoleId())
	}
	if old.Builtin {
		return nil, errRoleBuiltin(old.ID)
	}
	// The merged role goes through CreateTeamRole's validation; the name
	// is the stored one, so the id it derives is the role's own.
	merged := &authv1.CreateTeamRoleRequest{
		TeamId: old.TeamID, Name: old.Name, Description: old.Description,
		Permissions: req.GetPermissions(), Restrictions: req.GetRestrictions(),
	}
	if req.Description != nil {
		merged.Description = req.GetDescription()
	}
	if req.Permissions == nil || req.Restrictions == nil {
		cur := roleOf(old)
		if req.Permissions == nil {
			merged.Permissions = cur.GetPermissions()
		}
		if req.Restrictions == nil {
			merged.Restrictions = cur.GetRestrictions()
		}
	}
	r, err := newRole(merged, s.now())
	if err != nil {
		return nil, err
	}
	r.ID, r.CreatedAt = old.ID, old.CreatedAt
	if err := s.updateRole(ctx, g, r); err != nil {
		return nil, err
	}
	return &authv1.PatchTeamRoleResponse{Role: roleOf(r)}, nil
}

// ListTeamRoleMembers implements AuthService.
func (s *server) ListTeamRoleMembers(ctx context.Context, req *authv1.ListTeamRoleMembersRequest) (*authv1.ListTeamRoleMembersResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	if _, err := s.store.GetRole(ctx, req.GetTeamId(), req.GetRoleId()); err != nil {
		return nil, apierr.FromStore(err, "role", req.GetRoleId())
	}
	all, err := s.membersWith(ctx, req.GetTeamId(), req.GetRoleId())
	if err != nil {
		return nil, err
	}
	if ids := req.GetUserIds(); len(ids) > 0 {
		all = slices.DeleteFunc(all, func(m TeamMember) bool { return !slices.Contains(ids, m.UserID) })
	}
	list, pagination, err := pageOf(s.cursors, "role-members/"+req.GetTeamId()+"/"+req.GetRoleId(), all, memberID, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	resp := &authv1.ListTeamRoleMembersResponse{Members: make([]*authv1.TeamMember, 0, len(list)), Pagination: pagination}
	for _, m := range list {
		resp.Members = append(resp.Members, memberOf(m))
	}
	return resp, nil
}

// AddTeamRoleMember implements AuthService.
func (s *server) AddTeamRoleMember(ctx context.Context, req *authv1.AddTeamRoleMemberRequest) (*authv1.AddTeamRoleMemberResponse, error) {
	g, err := inTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	given := map[string]string{}
	for field, v := range map[string]string{"userId": req.GetUserId(), "memberId": req.GetMemberId(), "email": req.GetEmail()} {
		if v != "" {
			given[field] = v
		}
	}
	if len(given) != 1 {
		msg := "give exactly one of userId, memberId and email"
		fields := map[string][]string{}
		for _, f := range []string{"userId", "memberId", "email"} {
			if len(given) == 0 || given[f] != "" {
				fields[f] = []string{msg}
			}
		}
		return nil, apierr.Invalid("request validation failed", fields)
	}
	r, err := grantableRole(ctx, s.store, g, g.GetTeamId(), "", req.GetRoleId())
	if err != nil {
		return nil, err
	}
	userID := req.GetUserId() + req.GetMemberId()
	if e := req.GetEmail(); e != "" {
		email, err := normalizeEmail(e)
		if err != nil {
			return nil, err
		}
		u, err := s.store.GetUserByEmail(ctx, email)
		if err != nil {
			return nil, apierr.FromStore(err, "member", email)
		}
		userID = u.ID
	}
	m, err := s.teamMember(ctx, g.GetTeamId(), userID)
	if err != nil {
		return nil, err
	}
	if m, err = s.setRole(ctx, m, r); err != nil {
		return nil, err
	}
	return &authv1.AddTeamRoleMemberResponse{Member: memberOf(m)}, nil
}

// RemoveTeamRoleMember implements AuthService.
func (s *server) RemoveTeamRoleMember(ctx context.Context, req *authv1.RemoveTeamRoleMemberRequest) (*authv1.RemoveTeamRoleMemberResponse, error) {
	g, err := inTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	if _, err := s.store.GetRole(ctx, req.GetTeamId(), req.GetRoleId()); err != nil {
		return nil, apierr.FromStore(err, "role", req.GetRoleId())
	}
	m, err := s.teamMember(ctx, g.GetTeamId(), req.GetMemberId())
	if err != nil {
		return nil, err
	}
	if m.RoleID != req.GetRoleId() {
		return nil, apierr.NotFound("member", req.GetMemberId()) // not a member of this role
	}
	if m.RoleID == fallbackRole {
		return nil, apierr.Conflict(apierr.ReasonRoleFallback, "every member holds exactly one role and %q is the one they fall back to; "+
			"give the member another role, or remove them from the team", fallbackRole)
	}
	viewer, err := s.store.GetRole(ctx, g.GetTeamId(), fallbackRole)
	if err != nil {
		return nil, err
	}
	if _, err := s.setRole(ctx, m, viewer); err != nil {
		return nil, err
	}
	return &authv1.RemoveTeamRoleMemberResponse{}, nil
}
