package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/slug"
)

// The use cases both the RPC handlers and "slipway admin" run. Each takes
// the bound of whoever asks as a *authv1.TeamGrant: an RPC caller's grant
// in the team, so that nobody hands out more than they hold, or nil for
// the operator, who holds the database and so is bounded only by the
// rules of the data themselves (a personal token within its user's
// membership, ids that exist). Errors are *apierr.Error, worded for both
// an API client and an operator at a terminal.

// Limits of a token request, as the API documents them.
const (
	// MaxTokenExpiryDays is the longest expiry a token can be given.
	MaxTokenExpiryDays = 3650
	// minTokenName and maxTokenName bound a token's display name, in
	// characters.
	minTokenName, maxTokenName = 3, 64
)

// TokenRequest is a token asked for, before the rules are applied: what
// CreateApiToken and "slipway admin create-token" both take.
type TokenRequest struct {
	// Kind is KindPersonal, KindTeam or KindCredential.
	Kind TokenKind
	// Name is the display name, 3 to 64 characters.
	Name string
	// TeamID is the team the token acts on.
	TeamID string
	// UserID is the user a personal token acts as (required), empty for a
	// team token; a credential may have one.
	UserID string
	// RoleID is a role of TeamID the token is bound to.
	RoleID string
	// Projects, when not empty, restrict the token to these project ids.
	Projects []string
	// ExpiresInDays is the expiry in days from now, 0 (never) to
	// MaxTokenExpiryDays.
	ExpiresInDays int
}

// CreateToken applies the token rules to req and issues the token,
// returning it with its secret (shown once). by bounds the new token (see
// the use cases above): its role's permissions must be among by's, and a
// by restricted to some projects passes its restriction on. A token with
// a user is also capped by that user's current role in the team, which
// would silently cut anything more at every use, so more is refused.
func CreateToken(ctx context.Context, store Store, req TokenRequest, by *authv1.TeamGrant) (Token, string, error) {
	return createToken(ctx, store, req, by, now())
}

// createToken is CreateToken at time at (the server's clock).
func createToken(ctx context.Context, store Store, req TokenRequest, by *authv1.TeamGrant, at time.Time) (Token, string, error) {
	if err := req.validate(); err != nil {
		return Token{}, "", err
	}
	spec := TokenSpec{Kind: req.Kind, Name: req.Name, TeamID: req.TeamID, UserID: req.UserID, RoleID: req.RoleID}
	spec.Projects, _ = projectIDs("projects", req.Projects) // checked by validate
	if req.ExpiresInDays > 0 {
		spec.ExpiresAt = at.AddDate(0, 0, req.ExpiresInDays)
	}
	if _, err := teamByID(ctx, store, req.TeamID); err != nil {
		return Token{}, "", err
	}
	role, err := teamRole(ctx, store, req.TeamID, req.RoleID, "roleId")
	if err != nil {
		return Token{}, "", err
	}
	if by != nil {
		if !subset(role.Permissions, by.GetPermissions()) {
			return Token{}, "", errTokenExceedsRole()
		}
		if limit := by.GetProjects(); len(limit) > 0 {
			if len(spec.Projects) == 0 {
				spec.Projects = limit // inherit the restriction rather than lift it
			} else if !subset(spec.Projects, limit) {
				return Token{}, "", errTokenExceedsRole()
			}
		}
	}
	if req.UserID != "" {
		// For an RPC caller this repeats what its grant already holds,
		// unless the membership changed since the grant was cached.
		if err := withinMembership(ctx, store, req.UserID, role); err != nil {
			return Token{}, "", err
		}
	}
	tok, sec, err := issue(ctx, store, spec, at)
	if errors.Is(err, ErrNotFound) { // the role (or team, or user) went meanwhile
		return Token{}, "", apierr.InvalidField("roleId", "no such role in this team")
	}
	return tok, sec, err
}

// validate checks what needs no database, reporting every invalid field
// at once.
func (r TokenRequest) validate() error {
	fields := map[string][]string{}
	add := func(field, desc string) { fields[field] = append(fields[field], desc) }
	switch r.Kind {
	case KindPersonal:
		if r.UserID == "" {
			add("kind", "a personal token acts as a user and none was given; create a team token instead")
		}
	case KindTeam:
		if r.UserID != "" {
			add("kind", "a team token acts as the team, not as a user")
		}
	case KindCredential:
	default:
		add("kind", `must be "personal", "team" or "credential"`)
	}
	if n := utf8.RuneCountInString(r.Name); n < minTokenName || n > maxTokenName {
		add("name", fmt.Sprintf("must be %d to %d characters", minTokenName, maxTokenName))
	}
	if r.ExpiresInDays < 0 || r.ExpiresInDays > MaxTokenExpiryDays {
		add("expiresInDays", fmt.Sprintf("must be 0 (never expires) to %d", MaxTokenExpiryDays))
	}
	if _, err := projectIDs("projects", r.Projects); err != nil {
		for f, d := range apierr.From(err).Fields {
			fields[f] = append(fields[f], d...)
		}
	}
	if len(fields) > 0 {
		return apierr.Invalid("request validation failed", fields)
	}
	return nil
}

// withinMembership checks that the user is a member of role's team whose
// own role grants at least role's permissions: a token with a user is
// capped by the membership at every use, so anything more would be
// silently lost.
func withinMembership(ctx context.Context, store Store, userID string, role Role) error {
	u, err := store.GetUser(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return apierr.NotFound("user", userID)
	} else if err != nil {
		return err
	}
	m, err := store.GetMember(ctx, role.TeamID, u.ID)
	if errors.Is(err, ErrNotFound) {
		return &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonPermissionDenied, Message: fmt.Sprintf(
			"%s is not a member of team %q, so their token could do nothing there: add them to the team first (\"slipway admin add-member\")",
			u.Email, role.TeamID)}
	} else if err != nil {
		return err
	}
	held, err := store.GetRole(ctx, role.TeamID, m.RoleID)
	if err != nil {
		return err
	}
	if !subset(role.Permissions, held.Permissions) {
		return &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonPermissionDenied, Message: fmt.Sprintf(
			"role %s grants more than %s's role in team %q (%s), which caps their tokens: choose a narrower role or change their membership",
			role.ID, u.Email, role.TeamID, held.ID)}
	}
	return nil
}

// UserByEmail finds a user by address, as typed (any case). An unknown
// address is NotFound, saying how users come to exist.
func UserByEmail(ctx context.Context, store Store, email string) (User, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	u, err := store.GetUserByEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return User{}, &apierr.Error{Code: codes.NotFound, Reason: apierr.ReasonNotFound, Message: fmt.Sprintf(
			"user not found: no user has the email %q (Slipway sends no invitations; create the user with \"slipway admin create-user\")", email)}
	}
	return u, err
}

// teamByID returns a team, or a NotFound that says what team ids look
// like (the operator types them; an RPC caller's team comes from its
// grant).
func teamByID(ctx context.Context, store Store, id string) (Team, error) {
	t, err := store.GetTeam(ctx, id)
	if errors.Is(err, ErrNotFound) {
		e := apierr.NotFound("team", id)
		e.Message += ` (team ids are slugs of the name, e.g. "default")`
		return Team{}, e
	}
	return t, err
}

// teamRole returns a role of team. An unknown role is an invalid field
// (named field) listing the team's roles, or, when field is empty (the
// role is the resource of the request), NotFound.
func teamRole(ctx context.Context, store Store, team, id, field string) (Role, error) {
	r, err := store.GetRole(ctx, team, id)
	if !errors.Is(err, ErrNotFound) {
		return r, err
	}
	if field == "" {
		return Role{}, apierr.NotFound("role", id)
	}
	var ids []string
	if roles, err := store.ListRoles(ctx, team); err == nil {
		for _, r := range roles {
			ids = append(ids, r.ID)
		}
	}
	return Role{}, apierr.InvalidField(field, fmt.Sprintf("team %q has no role %q (its roles: %s)", team, id, strings.Join(ids, ", ")))
}

// grantableRole returns a role of team that by may hand out (see
// teamRole for field); a nil by may hand out any.
func grantableRole(ctx context.Context, store Store, by *authv1.TeamGrant, team, field, id string) (Role, error) {
	r, err := teamRole(ctx, store, team, id, field)
	if err != nil {
		return Role{}, err
	}
	if by != nil && !withinGrant(by, r.Permissions, r.Restrictions) {
		return Role{}, errRoleExceedsCaller()
	}
	return r, nil
}

// AddMember adds the user with email to team with role, for the
// operator: no grant bounds the role. See addMember.
func AddMember(ctx context.Context, store Store, team, email, role string) (TeamMember, error) {
	return addMember(ctx, store, memberRequest{team: team, email: email, role: role, roleField: "roleId"}, nil, now())
}

// memberRequest is a membership asked for; roleField names the role in
// errors, as the request spelled it.
type memberRequest struct {
	team, email, role, roleField string
}

// addMember adds an existing user (by email) to a team with a role by may
// hand out, joined at at.
func addMember(ctx context.Context, store Store, req memberRequest, by *authv1.TeamGrant, at time.Time) (TeamMember, error) {
	email, err := normalizeEmail(req.email)
	if err != nil {
		return TeamMember{}, err
	}
	if _, err := teamByID(ctx, store, req.team); err != nil {
		return TeamMember{}, err
	}
	r, err := grantableRole(ctx, store, by, req.team, req.roleField, req.role)
	if err != nil {
		return TeamMember{}, err
	}
	u, err := UserByEmail(ctx, store, email)
	if err != nil {
		return TeamMember{}, err
	}
	m := TeamMember{Member: Member{TeamID: req.team, UserID: u.ID, RoleID: r.ID, JoinedAt: at}, User: u}
	ev, err := MemberEvent("added", m.Member)
	if err != nil {
		return TeamMember{}, err
	}
	switch err := store.AddMember(ctx, m.Member, ev); {
	case errors.Is(err, ErrAlreadyExists):
		held := ""
		if cur, err := store.GetMember(ctx, req.team, u.ID); err == nil {
			held = fmt.Sprintf(" (role %s)", cur.RoleID)
		}
		return TeamMember{}, apierr.Conflict(apierr.ReasonAlreadyMember,
			"%s is already a member of team %q%s; change their role instead of adding them again", email, req.team, held)
	case errors.Is(err, ErrNotFound): // the role or the user went meanwhile
		return TeamMember{}, apierr.NotFound("role", r.ID)
	case err != nil:
		return TeamMember{}, err
	}
	return m, nil
}

// SetTeamPlan sets a team's plan, which selects its hourly quota, and
// returns the team afterwards and the plan it had. Grants carry the plan,
// so every member's cached principals are dropped: one
// auth.member.updated event each, committed with the change.
func SetTeamPlan(ctx context.Context, store Store, team, plan string) (Team, string, error) {
	if plan == "" || slug.Make(plan) != plan {
		return Team{}, "", apierr.InvalidField("plan", "must be a plan id such as free or pro (lower-case letters, digits and inner hyphens)")
	}
	t, err := teamByID(ctx, store, team)
	if err != nil {
		return Team{}, "", err
	}
	members, err := store.ListMembers(ctx, t.ID)
	if err != nil {
		return Team{}, "", err
	}
	evs := make([]events.Event, 0, len(members))
	for _, m := range members {
		ev, err := MemberEvent("updated", m.Member)
		if err != nil {
			return Team{}, "", err
		}
		evs = append(evs, ev)
	}
	old := t.Plan
	t.Plan = plan
	if err := store.UpdateTeam(ctx, t, evs...); errors.Is(err, ErrNotFound) {
		return Team{}, "", apierr.NotFound("team", t.ID)
	} else if err != nil {
		return Team{}, "", err
	}
	return t, old, nil
}
