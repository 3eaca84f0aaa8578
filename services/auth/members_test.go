package auth_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/events/eventstest"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/auth"
)

func TestMembersAndRoles(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		s := newStack(t, engine)
		t.Run("AddAndRemoveMember", func(t *testing.T) { testAddRemoveMember(t, s) })
		t.Run("PatchTeam", func(t *testing.T) { testPatchTeam(t, s) })
		t.Run("PutAndPatchRole", func(t *testing.T) { testPutPatchRole(t, s) })
		t.Run("RoleMembers", func(t *testing.T) { testRoleMembers(t, s) })
		t.Run("OtherTeamIsNotFound", func(t *testing.T) { testMembersOtherTeam(t, s) })
	})
}

// wantMemberEvents asserts that the auth.member.* events about user carry
// exactly the verbs want, in order. It waits (up to 15s) for as many
// events as want holds and then 300ms more, so that an extra event fails
// the test too; the count to wait for comes from want, so the wait never
// outlasts what the test expects.
func (s *stack) wantMemberEvents(t *testing.T, userID string, want ...string) {
	t.Helper()
	prefix := events.SubjectFor("auth", "member", "")
	var verbs []string
	for _, ev := range eventstest.Collect(t, s.js, []string{prefix + "*"}, len(want), 300*time.Millisecond, func(ev events.Event) bool {
		return eventstest.DataField(ev, "userId") == userID
	}) {
		verbs = append(verbs, strings.TrimPrefix(ev.NATSSubject(), prefix))
	}
	if !slices.Equal(verbs, want) {
		t.Fatalf("events about member %s = %v, want %v", userID, verbs, want)
	}
}

func (s *stack) adminID(t *testing.T) string {
	t.Helper()
	p, err := s.authenticate("Bearer " + s.admin)
	if err != nil {
		t.Fatal(err)
	}
	return p.GetUserId()
}

func testAddRemoveMember(t *testing.T, s *stack) {
	ctx := bearer(s.admin)
	bg := context.Background()
	dora, err := auth.CreateUser(bg, s.store, "dora@example.com", "Dora", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.AddTeamMember(ctx, &authv1.AddTeamMemberRequest{TeamId: "default", Email: "Dora@Example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if m := resp.GetMember(); m.GetId() != dora.ID || m.GetRoleId() != "developer" || m.GetName() != "Dora" ||
		len(m.GetEmails()) != 1 || m.GetEmails()[0].GetAddress() != "dora@example.com" || m.GetJoinedAt() == nil {
		t.Fatalf("added member = %v", m)
	}
	if m, err := s.store.GetMember(bg, "default", dora.ID); err != nil || m.RoleID != "developer" {
		t.Fatalf("stored membership = %+v, %v", m, err)
	}
	_, err = s.client.AddTeamMember(ctx, &authv1.AddTeamMemberRequest{TeamId: "default", Email: "dora@example.com", RoleId: "viewer"})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "ALREADY_MEMBER" {
		t.Fatalf("adding a member twice: %v (%s), want 409 ALREADY_MEMBER", err, reason(err))
	}
	_, err = s.client.AddTeamMember(ctx, &authv1.AddTeamMemberRequest{TeamId: "default", Email: "nobody@example.com"})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message()[:14] != "user not found" {
		t.Fatalf("unknown email: %v, want NotFound \"user not found\"", err)
	}
	// Validation names the field.
	for name, tc := range map[string]struct {
		req   *authv1.AddTeamMemberRequest
		field string
	}{
		"bad email":      {&authv1.AddTeamMemberRequest{TeamId: "default", Email: "not an address"}, "email"},
		"unknown role":   {&authv1.AddTeamMemberRequest{TeamId: "default", Email: "dora@example.com", RoleId: "owner"}, "roleId"},
		"unknown roles":  {&authv1.AddTeamMemberRequest{TeamId: "default", Email: "dora@example.com", Roles: []string{"owner"}}, "roles[0]"},
		"disagreeing":    {&authv1.AddTeamMemberRequest{TeamId: "default", Email: "dora@example.com", RoleId: "viewer", Roles: []string{"admin"}}, "roles"},
		"two roles":      {&authv1.AddTeamMemberRequest{TeamId: "default", Email: "dora@example.com", Roles: []string{"admin", "viewer"}}, "roles"},
		"no email given": {&authv1.AddTeamMemberRequest{TeamId: "default"}, "email"},
	} {
		_, err := s.client.AddTeamMember(ctx, tc.req)
		wantCode(t, name, err, codes.InvalidArgument)
		if _, ok := fieldViolations(err)[tc.field]; !ok {
			t.Errorf("%s: violations %v do not name %s", name, fieldViolations(err), tc.field)
		}
	}
	// Northflank's roles list works like roleId.
	eve, err := auth.CreateUser(bg, s.store, "eve@example.com", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := s.client.AddTeamMember(ctx, &authv1.AddTeamMemberRequest{TeamId: "default", Email: "eve@example.com", Roles: []string{"viewer"}}); err != nil || resp.GetMember().GetRoleId() != "viewer" {
		t.Fatalf("add with roles = %v, %v", resp, err)
	}
	// A developer holding Members > Manage through a custom role cannot
	// hand out admin.
	if _, err := s.client.CreateTeamRole(ctx, &authv1.CreateTeamRoleRequest{TeamId: "default", Name: "Recruiters",
		Permissions: &authv1.RolePermissions{TeamScope: []string{"Account > Admin > Members > Manage"}}}); err != nil {
		t.Fatal(err)
	}
	_, recruiter := s.issue(t, auth.TokenSpec{Kind: auth.KindTeam, TeamID: "default", RoleID: "recruiters"})
	_, err = s.client.AddTeamMember(bearer(recruiter), &authv1.AddTeamMemberRequest{TeamId: "default", Email: "zed@example.com", RoleId: "admin"})
	wantCode(t, "granting more than the caller holds", err, codes.PermissionDenied)

	// Removal.
	if _, err := s.client.RemoveTeamMember(ctx, &authv1.RemoveTeamMemberRequest{TeamId: "default", MemberId: eve.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.GetMember(bg, "default", eve.ID); err == nil {
		t.Fatal("removed member is still a member")
	}
	_, err = s.client.RemoveTeamMember(ctx, &authv1.RemoveTeamMemberRequest{TeamId: "default", MemberId: eve.ID})
	wantCode(t, "removing a non-member", err, codes.NotFound)
	_, err = s.client.RemoveTeamMember(ctx, &authv1.RemoveTeamMemberRequest{TeamId: "default", MemberId: s.adminID(t)})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "LAST_ADMIN" {
		t.Fatalf("removing the last admin: %v (%s), want 409 LAST_ADMIN", err, reason(err))
	}
	// With a second admin, the first can go (here: the second goes).
	if _, err := s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "admin", UserId: dora.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.RemoveTeamMember(ctx, &authv1.RemoveTeamMemberRequest{TeamId: "default", MemberId: dora.ID}); err != nil {
		t.Fatalf("removing one of two admins: %v", err)
	}
	s.wantMemberEvents(t, dora.ID, "added", "updated", "removed")
	s.wantMemberEvents(t, eve.ID, "added", "removed")
}

func testPatchTeam(t *testing.T, s *stack) {
	ctx := bearer(s.admin)
	resp, err := s.client.PatchTeam(ctx, &authv1.PatchTeamRequest{TeamId: "default", Description: proto.String("the first team")})
	if err != nil {
		t.Fatal(err)
	}
	if tm := resp.GetTeam(); tm.GetId() != "default" || tm.GetName() != auth.DefaultTeamName || tm.GetDescription() != "the first team" || tm.GetPlan() != auth.DefaultPlan {
		t.Fatalf("patched team = %v", tm)
	}
	resp, err = s.client.PatchTeam(ctx, &authv1.PatchTeamRequest{TeamId: "default", Name: proto.String("Default Crew")})
	if err != nil || resp.GetTeam().GetName() != "Default Crew" || resp.GetTeam().GetDescription() != "the first team" || resp.GetTeam().GetId() != "default" {
		t.Fatalf("renamed team = %v, %v", resp, err)
	}
	got, err := s.client.GetTeam(ctx, &authv1.GetTeamRequest{TeamId: "default"})
	if err != nil || got.GetTeam().GetName() != "Default Crew" || got.GetTeam().GetDescription() != "the first team" {
		t.Fatalf("GetTeam after patch = %v, %v", got, err)
	}
	_, err = s.client.PatchTeam(ctx, &authv1.PatchTeamRequest{TeamId: "default", Name: proto.String("!!")})
	wantCode(t, "invalid name", err, codes.InvalidArgument)
	if _, ok := fieldViolations(err)["name"]; !ok {
		t.Fatalf("violations %v do not name name", fieldViolations(err))
	}
}

func testPutPatchRole(t *testing.T, s *stack) {
	ctx := bearer(s.admin)
	bg := context.Background()
	put := &authv1.PutTeamRoleRequest{TeamId: "default", Name: "Deployers", Description: "deploy",
		Permissions: &authv1.RolePermissions{ProjectScope: []string{"Project > Jobs > General > Read"}}}
	created, err := s.client.PutTeamRole(ctx, put)
	if err != nil || created.GetRole().GetId() != "deployers" || created.GetRole().GetDescription() != "deploy" {
		t.Fatalf("PutTeamRole (create) = %v, %v", created, err)
	}
	again, err := s.client.PutTeamRole(ctx, put)
	if err != nil || !slices.Equal(again.GetRole().GetPermissions().GetProjectScope(), []string{"Project > Jobs > General > Read"}) ||
		!again.GetRole().GetCreatedAt().AsTime().Equal(created.GetRole().GetCreatedAt().AsTime()) {
		t.Fatalf("PutTeamRole (same again) = %v, %v", again, err)
	}
	holder := s.member(t, "default", "deployer@example.com", "deployers")
	put.Description = "deploys things"
	put.Permissions = &authv1.RolePermissions{TeamScope: []string{"Account > Admin > Roles > Read"}}
	replaced, err := s.client.PutTeamRole(ctx, put)
	if err != nil || replaced.GetRole().GetDescription() != "deploys things" || len(replaced.GetRole().GetPermissions().GetProjectScope()) != 0 ||
		!slices.Equal(replaced.GetRole().GetPermissions().GetTeamScope(), []string{"Account > Admin > Roles > Read"}) {
		t.Fatalf("PutTeamRole (replace) = %v, %v", replaced, err)
	}
	if r, err := s.store.GetRole(bg, "default", "deployers"); err != nil || !slices.Equal(r.Permissions, []string{"Account > Admin > Roles > Read"}) {
		t.Fatalf("stored role = %+v, %v", r, err)
	}
	// Patch: only the fields given change.
	patched, err := s.client.PatchTeamRole(ctx, &authv1.PatchTeamRoleRequest{TeamId: "default", RoleId: "deployers",
		Restrictions: &authv1.RoleRestrictions{Enabled: true, Projects: []string{"web"}}})
	if r := patched.GetRole(); err != nil || r.GetDescription() != "deploys things" || !r.GetRestrictions().GetEnabled() ||
		!slices.Equal(r.GetRestrictions().GetProjects(), []string{"web"}) ||
		!slices.Equal(r.GetPermissions().GetTeamScope(), []string{"Account > Admin > Roles > Read"}) {
		t.Fatalf("PatchTeamRole (restrictions) = %v, %v", patched, err)
	}
	patched, err = s.client.PatchTeamRole(ctx, &authv1.PatchTeamRoleRequest{TeamId: "default", RoleId: "deployers", Description: proto.String("")})
	if err != nil || patched.GetRole().GetDescription() != "" || !patched.GetRole().GetRestrictions().GetEnabled() {
		t.Fatalf("PatchTeamRole (clear description) = %v, %v", patched, err)
	}
	// Each change of the role announced a member update for its holder.
	s.wantMemberEvents(t, holder, "updated", "updated", "updated")
	// Validation, as CreateTeamRole's.
	_, err = s.client.PatchTeamRole(ctx, &authv1.PatchTeamRoleRequest{TeamId: "default", RoleId: "deployers",
		Permissions: &authv1.RolePermissions{TeamScope: []string{"Project > Jobs > General > Read", "Account > Nonsense"}}})
	wantCode(t, "invalid permissions", err, codes.InvalidArgument)
	for _, f := range []string{"permissions.teamScope[0]", "permissions.teamScope[1]"} {
		if _, ok := fieldViolations(err)[f]; !ok {
			t.Errorf("violations %v do not name %s", fieldViolations(err), f)
		}
	}
	_, err = s.client.PutTeamRole(ctx, &authv1.PutTeamRoleRequest{TeamId: "default", Name: "Deployers",
		Restrictions: &authv1.RoleRestrictions{Enabled: true, RestrictionMode: "sideways"}})
	if _, ok := fieldViolations(err)["restrictions.restrictionMode"]; !ok {
		t.Fatalf("PutTeamRole with a bad mode: %v, want a restrictions.restrictionMode violation", err)
	}
	// Built-in roles cannot change.
	for name, call := range map[string]func() error{
		"put admin": func() error {
			_, err := s.client.PutTeamRole(ctx, &authv1.PutTeamRoleRequest{TeamId: "default", Name: "Admin"})
			return err
		},
		"patch viewer": func() error {
			_, err := s.client.PatchTeamRole(ctx, &authv1.PatchTeamRoleRequest{TeamId: "default", RoleId: "viewer", Description: proto.String("x")})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.FailedPrecondition || reason(err) != "ROLE_BUILTIN" {
			t.Errorf("%s: %v (%s), want 409 ROLE_BUILTIN", name, err, reason(err))
		}
	}
	if r, _ := s.store.GetRole(bg, "default", "admin"); !slices.Equal(r.Permissions, builtin("admin")) {
		t.Fatal("a refused put changed the admin role")
	}
	_, err = s.client.PatchTeamRole(ctx, &authv1.PatchTeamRoleRequest{TeamId: "default", RoleId: "no-such-role"})
	wantCode(t, "patch a missing role", err, codes.NotFound)
	// A role editor cannot grow a role beyond their own permissions.
	if _, err := s.client.CreateTeamRole(ctx, &authv1.CreateTeamRoleRequest{TeamId: "default", Name: "Role Editors",
		Permissions: &authv1.RolePermissions{TeamScope: []string{"Account > Admin > Roles > Manage"}}}); err != nil {
		t.Fatal(err)
	}
	_, editor := s.issue(t, auth.TokenSpec{Kind: auth.KindTeam, TeamID: "default", RoleID: "role-editors"})
	_, err = s.client.PatchTeamRole(bearer(editor), &authv1.PatchTeamRoleRequest{TeamId: "default", RoleId: "deployers",
		Permissions: &authv1.RolePermissions{TeamScope: []string{"Account > Admin > Members > Manage"}}})
	wantCode(t, "growing a role beyond the caller", err, codes.PermissionDenied)
}

func testRoleMembers(t *testing.T, s *stack) {
	ctx := bearer(s.admin)
	if _, err := s.client.CreateTeamRole(ctx, &authv1.CreateTeamRoleRequest{TeamId: "default", Name: "Testers",
		Permissions: &authv1.RolePermissions{ProjectScope: []string{"Project > Jobs > General > Read"}}}); err != nil {
		t.Fatal(err)
	}
	fred := s.member(t, "default", "fred@example.com", "developer")
	gina := s.member(t, "default", "gina@example.com", "developer")
	list, err := s.client.ListTeamRoleMembers(ctx, &authv1.ListTeamRoleMembersRequest{TeamId: "default", RoleId: "testers"})
	if err != nil || len(list.GetMembers()) != 0 || list.GetMembers() == nil && list.GetPagination().GetCount() != 0 {
		t.Fatalf("members of an unheld role = %v, %v", list, err)
	}
	if resp, err := s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "testers", UserId: fred}); err != nil ||
		resp.GetMember().GetRoleId() != "testers" {
		t.Fatalf("AddTeamRoleMember(userId) = %v, %v", resp, err)
	}
	if _, err := s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "testers", Email: "GINA@example.com"}); err != nil {
		t.Fatalf("AddTeamRoleMember(email): %v", err)
	}
	list, err = s.client.ListTeamRoleMembers(ctx, &authv1.ListTeamRoleMembersRequest{TeamId: "default", RoleId: "testers"})
	var ids []string
	for _, m := range list.GetMembers() {
		ids = append(ids, m.GetId())
	}
	slices.Sort(ids)
	want := []string{fred, gina}
	slices.Sort(want)
	if err != nil || !slices.Equal(ids, want) || list.GetPagination().GetCount() != 2 {
		t.Fatalf("ListTeamRoleMembers = %v, %v; want %v", list, err, want)
	}
	// Northflank's list options: pages by id, then by cursor, each member
	// once; a cursor that is not one is a 400.
	var paged []string
	page, err := s.client.ListTeamRoleMembers(ctx, &authv1.ListTeamRoleMembersRequest{TeamId: "default", RoleId: "testers", PerPage: 1})
	for err == nil {
		if len(page.GetMembers()) != 1 || page.GetPagination().Total == nil || page.GetPagination().GetTotal() != 2 {
			t.Fatalf("per_page=1 gave %d members, total %v; want 1 of 2", len(page.GetMembers()), page.GetPagination().Total)
		}
		paged = append(paged, page.GetMembers()[0].GetId())
		if !page.GetPagination().GetHasNextPage() {
			break
		}
		page, err = s.client.ListTeamRoleMembers(ctx, &authv1.ListTeamRoleMembersRequest{TeamId: "default", RoleId: "testers", PerPage: 1,
			Cursor: page.GetPagination().GetCursor()})
	}
	if err != nil || !slices.Equal(paged, want) {
		t.Fatalf("role members page by page: %v, %v; want %v", paged, err, want)
	}
	if second, err := s.client.ListTeamMembers(ctx, &authv1.ListTeamMembersRequest{TeamId: "default", PerPage: 1, Page: 2}); err != nil ||
		len(second.GetMembers()) != 1 || !second.GetPagination().GetHasNextPage() {
		t.Fatalf("team members, page 2 of 1 each: %v, %v", second, err)
	}
	roles, err := s.client.ListTeamRoles(ctx, &authv1.ListTeamRolesRequest{TeamId: "default", PerPage: 2})
	if err != nil || len(roles.GetRoles()) != 2 || roles.GetPagination().GetCount() != 2 || roles.GetPagination().GetCursor() == "" {
		t.Fatalf("roles, 2 per page: %v, %v", roles, err)
	}
	rest, err := s.client.ListTeamRoles(ctx, &authv1.ListTeamRolesRequest{TeamId: "default", Cursor: roles.GetPagination().GetCursor()})
	if err != nil || len(rest.GetRoles()) == 0 || rest.GetRoles()[0].GetId() <= roles.GetRoles()[1].GetId() || rest.GetPagination().GetHasNextPage() {
		t.Fatalf("roles after the cursor: %v, %v", rest, err)
	}
	// Both pages count the whole list of roles.
	if all := roles.GetPagination().GetTotal(); all != int32(2+len(rest.GetRoles())) || rest.GetPagination().GetTotal() != all {
		t.Fatalf("roles' totals %d and %d, want %d", all, rest.GetPagination().GetTotal(), 2+len(rest.GetRoles()))
	}
	_, err = s.client.ListTeamRoles(ctx, &authv1.ListTeamRolesRequest{TeamId: "default", Cursor: "!!"})
	wantCode(t, "a bad cursor", err, codes.InvalidArgument)
	teams, err := s.client.ListTeams(ctx, &authv1.ListTeamsRequest{PerPage: 1})
	if err != nil || len(teams.GetTeams()) != 1 {
		t.Fatalf("teams, 1 per page: %v, %v", teams, err)
	}
	// Northflank's userIds filter.
	only, err := s.client.ListTeamRoleMembers(ctx, &authv1.ListTeamRoleMembersRequest{TeamId: "default", RoleId: "testers", UserIds: []string{fred, "nobody"}})
	if err != nil || len(only.GetMembers()) != 1 || only.GetMembers()[0].GetId() != fred || only.GetPagination().GetCount() != 1 || only.GetPagination().GetTotal() != 1 {
		t.Fatalf("ListTeamRoleMembers(userIds %s) = %v, %v; want fred alone", fred, only, err)
	}
	// Validation and lookups.
	_, err = s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "testers"})
	wantCode(t, "no member named", err, codes.InvalidArgument)
	if v := fieldViolations(err); v["userId"] == "" || v["email"] == "" {
		t.Fatalf("violations %v do not name userId and email", v)
	}
	_, err = s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "testers", UserId: fred, Email: "fred@example.com"})
	if v := fieldViolations(err); v["userId"] == "" || v["email"] == "" || v["memberId"] != "" {
		t.Fatalf("two members named: %v; violations %v", err, v)
	}
	_, err = s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "testers", MemberId: "not-a-member"})
	wantCode(t, "unknown member", err, codes.NotFound)
	_, err = s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "no-such-role", MemberId: fred})
	wantCode(t, "unknown role", err, codes.NotFound)
	_, err = s.client.ListTeamRoleMembers(ctx, &authv1.ListTeamRoleMembersRequest{TeamId: "default", RoleId: "no-such-role"})
	wantCode(t, "list an unknown role", err, codes.NotFound)
	// Taking the role away leaves the member a viewer.
	if _, err := s.client.RemoveTeamRoleMember(ctx, &authv1.RemoveTeamRoleMemberRequest{TeamId: "default", RoleId: "testers", MemberId: fred}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.store.GetMember(context.Background(), "default", fred); err != nil || m.RoleID != "viewer" {
		t.Fatalf("membership after RemoveTeamRoleMember = %+v, %v; want viewer", m, err)
	}
	_, err = s.client.RemoveTeamRoleMember(ctx, &authv1.RemoveTeamRoleMemberRequest{TeamId: "default", RoleId: "testers", MemberId: fred})
	wantCode(t, "remove a member not holding the role", err, codes.NotFound)
	_, err = s.client.RemoveTeamRoleMember(ctx, &authv1.RemoveTeamRoleMemberRequest{TeamId: "default", RoleId: "viewer", MemberId: fred})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "ROLE_FALLBACK" {
		t.Fatalf("remove from viewer: %v (%s), want 409 ROLE_FALLBACK", err, reason(err))
	}
	// The last admin stays an admin.
	admin := s.adminID(t)
	_, err = s.client.RemoveTeamRoleMember(ctx, &authv1.RemoveTeamRoleMemberRequest{TeamId: "default", RoleId: "admin", MemberId: admin})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "LAST_ADMIN" {
		t.Fatalf("demote the last admin: %v (%s), want 409 LAST_ADMIN", err, reason(err))
	}
	_, err = s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "testers", UserId: admin})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "LAST_ADMIN" {
		t.Fatalf("move the last admin to another role: %v (%s), want 409 LAST_ADMIN", err, reason(err))
	}
	// Two updates: to testers, then back to viewer. member() added fred
	// through the store, which announces nothing.
	s.wantMemberEvents(t, fred, "updated", "updated")
}

func testMembersOtherTeam(t *testing.T, s *stack) {
	bg := context.Background()
	hal, err := auth.CreateUser(bg, s.store, "hal@example.com", "Hal", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.CreateTeam(bg, s.store, "Members Elsewhere", hal.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.CreateUser(bg, s.store, "ivy@example.com", "", ""); err != nil {
		t.Fatal(err)
	}
	ctx := bearer(s.admin)
	team := other.ID
	notFound := map[string]error{}
	_, notFound["PatchTeam"] = s.client.PatchTeam(ctx, &authv1.PatchTeamRequest{TeamId: team, Description: proto.String("mine now")})
	_, notFound["AddTeamMember"] = s.client.AddTeamMember(ctx, &authv1.AddTeamMemberRequest{TeamId: team, Email: "ivy@example.com"})
	_, notFound["RemoveTeamMember"] = s.client.RemoveTeamMember(ctx, &authv1.RemoveTeamMemberRequest{TeamId: team, MemberId: hal.ID})
	_, notFound["PutTeamRole"] = s.client.PutTeamRole(ctx, &authv1.PutTeamRoleRequest{TeamId: team, Name: "Sneaky"})
	_, notFound["PatchTeamRole"] = s.client.PatchTeamRole(ctx, &authv1.PatchTeamRoleRequest{TeamId: team, RoleId: "developer"})
	_, notFound["ListTeamRoleMembers"] = s.client.ListTeamRoleMembers(ctx, &authv1.ListTeamRoleMembersRequest{TeamId: team, RoleId: "admin"})
	_, notFound["AddTeamRoleMember"] = s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: team, RoleId: "viewer", UserId: hal.ID})
	_, notFound["RemoveTeamRoleMember"] = s.client.RemoveTeamRoleMember(ctx, &authv1.RemoveTeamRoleMemberRequest{TeamId: team, RoleId: "admin", MemberId: hal.ID})
	// A member of another team is not a member here either.
	_, notFound["RemoveTeamMember(foreign user)"] = s.client.RemoveTeamMember(ctx, &authv1.RemoveTeamMemberRequest{TeamId: "default", MemberId: hal.ID})
	_, notFound["AddTeamRoleMember(foreign user)"] = s.client.AddTeamRoleMember(ctx, &authv1.AddTeamRoleMemberRequest{TeamId: "default", RoleId: "viewer", UserId: hal.ID})
	for name, err := range notFound {
		wantCode(t, name, err, codes.NotFound)
	}
	if got, _ := s.store.GetTeam(bg, team); got.Description != "" {
		t.Fatal("a foreign PatchTeam changed the team")
	}
	if m, err := s.store.GetMember(bg, team, hal.ID); err != nil || m.RoleID != "admin" {
		t.Fatalf("foreign calls changed hal's membership: %+v, %v", m, err)
	}
	if _, err := s.store.GetMember(bg, team, "ivy"); err == nil {
		t.Fatal("a foreign AddTeamMember added a member")
	}
}
