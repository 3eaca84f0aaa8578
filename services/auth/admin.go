package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/permissions"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/slug"
)

// Defaults of a fresh install and of new teams.
const (
	// DefaultPlan is the plan new teams get; pkg/quota knows it.
	DefaultPlan = "default"
	// DefaultAdminEmail is the first admin's address unless the operator
	// gives one.
	DefaultAdminEmail = "admin@slipway.local"
	// DefaultAdminName is the first admin's display name unless given.
	DefaultAdminName = "Admin"
	// DefaultTeamName is the first team's name unless given; its id is
	// "default".
	DefaultTeamName = "Default"
)

// Event coordinates: subjects are slipway.auth.token.<verb>; authz's
// revocation watcher listens to the revoked verb.
const (
	eventService       = "auth"
	eventTokenResource = "token"
)

// prefixLen is how much of a slw_ token (or credential key id) is kept to
// recognise it: "slw_pat_" plus four random characters, 24 bits of 240,
// which tells tokens apart without weakening them.
const prefixLen = 12

// freeformPrefixLen is how much of an operator-chosen bootstrap token is
// kept. Such a string may be as short as 32 characters and not uniformly
// random, so only a sliver of it is recorded.
const freeformPrefixLen = 4

// now is the clock, at the millisecond precision of Northflank's
// timestamps (and within what both databases store exactly).
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// newID returns a resource id for users and tokens. UUIDv7 sorts by
// creation time, so keyset pages of tokens come out oldest first.
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("auth: id: %w", err)
	}
	return id.String(), nil
}

// TokenSpec describes a token or credential to issue.
type TokenSpec struct {
	// Kind is KindPersonal, KindTeam or KindCredential; bootstrap tokens
	// come from Bootstrap only.
	Kind TokenKind
	Name string
	// TeamID is the team the token acts on.
	TeamID string
	// UserID is required for personal tokens and empty for team tokens; a
	// credential may have one, and is then capped by that user's
	// membership like a personal token.
	UserID string
	// RoleID is a role of TeamID.
	RoleID string
	// Projects, when not empty, restrict the token to these projects.
	Projects []string
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
}

// IssueToken mints a token (or credential) for spec, stores its hash and
// announces it, and returns it with its secret. The secret exists nowhere
// else: show it once. For a credential, the token id is the key id (the
// HTTP Basic username) and the secret is the password. It returns
// ErrNotFound (wrapped) when the team, role or user does not exist.
func IssueToken(ctx context.Context, store Store, spec TokenSpec) (Token, string, error) {
	tok, sec, err := issue(ctx, store, spec, now())
	if err != nil {
		return Token{}, "", fmt.Errorf("auth: issue token: %w", err)
	}
	return tok, sec, nil
}

// issue mints, stores and announces a token created at at.
func issue(ctx context.Context, store Store, spec TokenSpec, at time.Time) (Token, string, error) {
	tok, sec, err := mint(spec, at)
	if err != nil {
		return Token{}, "", err
	}
	ev, err := tokenEvent("created", tok)
	if err != nil {
		return Token{}, "", err
	}
	if err := store.CreateToken(ctx, tok, ev); err != nil {
		return Token{}, "", err
	}
	return tok, sec, nil
}

// mint builds the token record and its secret without storing anything.
func mint(spec TokenSpec, at time.Time) (Token, string, error) {
	kind := secret.KindPersonal
	switch spec.Kind {
	case KindPersonal:
		if spec.UserID == "" {
			return Token{}, "", errors.New("auth: a personal token needs a user")
		}
	case KindTeam:
		if spec.UserID != "" {
			return Token{}, "", errors.New("auth: a team token has no user")
		}
		kind = secret.KindTeam
	case KindCredential:
		kind = secret.KindAPISecret
	default:
		return Token{}, "", fmt.Errorf("auth: cannot issue a %q token", spec.Kind)
	}
	sec, err := secret.New(kind)
	if err != nil {
		return Token{}, "", err
	}
	tok := Token{
		Kind: spec.Kind, Name: spec.Name, TeamID: spec.TeamID, UserID: spec.UserID, RoleID: spec.RoleID,
		Projects: normalizeList(spec.Projects), Prefix: prefixOf(sec), SecretHash: secret.Hash(sec),
		CreatedAt: at, ExpiresAt: spec.ExpiresAt,
	}
	if spec.Kind == KindCredential {
		// The key id is public (it is the Basic username), so it is both
		// the id and what people recognise the credential by.
		if tok.ID, err = secret.NewKeyID(); err != nil {
			return Token{}, "", err
		}
		tok.Prefix = tok.ID[:prefixLen]
	} else if tok.ID, err = newID(); err != nil {
		return Token{}, "", err
	}
	return tok, sec, nil
}

// prefixOf is the recognisable start of a secret.
func prefixOf(sec string) string {
	if _, err := secret.Parse(sec); err == nil {
		return sec[:prefixLen]
	}
	return sec[:min(freeformPrefixLen, len(sec))]
}

// tokenEventData is the payload of auth.token.* events: enough for a
// cache to drop the token, nothing secret.
type tokenEventData struct {
	ID     string `json:"id"`
	TeamID string `json:"teamId"`
}

func tokenEvent(verb string, t Token) (events.Event, error) {
	return events.New(eventService, eventTokenResource, verb, t.ID, tokenEventData{ID: t.ID, TeamID: t.TeamID})
}

// memberEventData is the payload of auth.member.* events: whose standing
// changed, so authorization caches drop that user's principals.
type memberEventData struct {
	UserID string `json:"userId"`
	TeamID string `json:"teamId"`
	RoleID string `json:"roleId,omitempty"`
}

// MemberEvent announces a membership change (verb "added", "updated" or
// "removed"); every write of a membership carries one.
func MemberEvent(verb string, m Member) (events.Event, error) {
	return events.New(eventService, "member", verb, m.UserID, memberEventData{UserID: m.UserID, TeamID: m.TeamID, RoleID: m.RoleID})
}

// RoleEvent announces a change of a role's permissions or restrictions:
// principals holding it in its team must be resolved afresh.
func RoleEvent(verb string, r Role) (events.Event, error) {
	return events.New(eventService, "role", verb, r.TeamID+"/"+r.ID, struct {
		TeamID string `json:"teamId"`
		RoleID string `json:"roleId"`
	}{r.TeamID, r.ID})
}

// normalizeList sorts and de-duplicates, so stored lists compare equal
// whatever order they were given in.
func normalizeList(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}

// builtinRoles are the roles every team starts with.
func builtinRoles(teamID string, at time.Time) []Role {
	var out []Role
	for _, b := range permissions.Builtin() {
		out = append(out, Role{
			TeamID: teamID, ID: b.ID, Name: b.Name, Description: b.Description, Permissions: normalizeList(b.Permissions),
			Restrictions: Restrictions{Mode: RestrictIn, Projects: []string{}}, Builtin: true, CreatedAt: at, UpdatedAt: at,
		})
	}
	return out
}

// normalizeEmail lower-cases and checks an address: a bare address, no
// display name, so that one person cannot register twice by spelling.
func normalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "", apierr.InvalidField("email", "must be an email address such as ada@example.com")
	}
	return email, nil
}

// newUser validates and builds a user, hashing the password when given.
func newUser(email, name, password string, at time.Time) (User, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	u := User{Email: email, Name: name, CreatedAt: at}
	if password != "" {
		if u.PasswordHash, err = secret.HashPassword(password); err != nil {
			if errors.Is(err, secret.ErrPasswordTooLong) {
				return User{}, apierr.InvalidField("password", fmt.Sprintf("must be at most %d bytes", secret.MaxPasswordLen))
			}
			return User{}, err
		}
	}
	if u.ID, err = newID(); err != nil {
		return User{}, err
	}
	return u, nil
}

// CreateUser creates a user, for admin commands. The password is hashed
// with argon2id; an empty one means the user cannot sign in with a
// password. Invalid input and a taken email are *apierr.Error.
func CreateUser(ctx context.Context, store Store, email, name, password string) (User, error) {
	u, err := newUser(email, name, password, now())
	if err != nil {
		return User{}, err
	}
	if err := store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, ErrAlreadyExists) {
			return User{}, apierr.AlreadyExists("user", u.Email)
		}
		return User{}, err
	}
	return u, nil
}

// newTeam validates a team name and builds the team with its built-in
// roles.
func newTeam(name string, at time.Time) (Team, []Role, error) {
	name = strings.TrimSpace(name)
	id := slug.Make(name)
	if len(id) < 3 || len(id) > 64 {
		return Team{}, nil, apierr.InvalidField("name", "must contain 3 to 64 letters or digits")
	}
	return Team{ID: id, Name: name, Plan: DefaultPlan, CreatedAt: at}, builtinRoles(id, at), nil
}

// CreateTeam creates a team named name (its id is the slug of the name)
// with the built-in roles, and makes ownerUserID its admin, for admin
// commands. Invalid input, a taken id and an unknown owner are
// *apierr.Error.
func CreateTeam(ctx context.Context, store Store, name, ownerUserID string) (Team, error) {
	if ownerUserID == "" {
		return Team{}, apierr.InvalidField("owner", "a team needs an owner")
	}
	t, err := createTeam(ctx, store, Team{Name: name}, ownerUserID, now())
	if errors.Is(err, ErrNotFound) {
		return Team{}, apierr.NotFound("user", ownerUserID)
	}
	return t, err
}

// createTeam creates a team with the built-in roles and its owner as its
// admin, created at at, from spec's name, description and email: what
// CreateTeam and the CreateTeam RPC both do.
// An unknown owner is ErrNotFound, which each caller words for its asker.
func createTeam(ctx context.Context, store Store, spec Team, ownerUserID string, at time.Time) (Team, error) {
	t, roles, err := newTeam(spec.Name, at)
	if err != nil {
		return Team{}, err
	}
	t.Description, t.Email = spec.Description, spec.Email
	owner := Member{TeamID: t.ID, UserID: ownerUserID, RoleID: adminRole, JoinedAt: at}
	ev, err := MemberEvent("added", owner)
	if err != nil {
		return Team{}, err
	}
	if err := store.CreateTeam(ctx, t, roles, []Member{owner}, ev); errors.Is(err, ErrAlreadyExists) {
		return Team{}, apierr.AlreadyExists("team", t.ID)
	} else if err != nil {
		return Team{}, err
	}
	return t, nil
}

// BootstrapOptions configure the first start of an empty install; every
// field is optional.
type BootstrapOptions struct {
	// Email of the first admin; DefaultAdminEmail when empty.
	Email string
	// Name of the first admin; DefaultAdminName when empty.
	Name string
	// Password of the first admin; empty means none (the token is the way
	// in).
	Password string
	// TeamName of the first team; DefaultTeamName when empty.
	TeamName string
	// Token presets the first admin token (SLIPWAY_BOOTSTRAP_TOKEN) for
	// automated installs: any string secret.ValidBootstrap accepts, or a
	// well-formed slw_pat_ token. Empty means a fresh personal token is
	// generated.
	Token string
}

// BootstrapResult says what Bootstrap did.
type BootstrapResult struct {
	// Token is the generated admin token, to print once. It is empty when
	// the operator preset the token (they know it, and it must not reach
	// logs) and when nothing was created.
	Token string
	// Created is false when the install already had users: a restart
	// prints and mints nothing.
	Created bool
}

// Bootstrap makes an empty install usable: the first admin user, the
// first team (id "default", plan DefaultPlan) with the built-in roles, the
// admin's membership, and an admin personal token, in one transaction.
// When the install already has users it does nothing (and ignores
// opts.Token, even an invalid one, since the setting no longer applies).
func Bootstrap(ctx context.Context, store Store, opts BootstrapOptions) (BootstrapResult, error) {
	if has, err := store.HasUsers(ctx); err != nil || has {
		return BootstrapResult{}, err
	}
	at := now()
	u, err := newUser(cmp.Or(opts.Email, DefaultAdminEmail), cmp.Or(opts.Name, DefaultAdminName), opts.Password, at)
	if err != nil {
		return BootstrapResult{}, fmt.Errorf("auth: bootstrap admin: %w", err)
	}
	team, roles, err := newTeam(cmp.Or(opts.TeamName, DefaultTeamName), at)
	if err != nil {
		return BootstrapResult{}, fmt.Errorf("auth: bootstrap team: %w", err)
	}
	spec := TokenSpec{Kind: KindPersonal, Name: "bootstrap", TeamID: team.ID, UserID: u.ID, RoleID: "admin"}
	tok, generated, err := mint(spec, at)
	if err != nil {
		return BootstrapResult{}, err
	}
	if opts.Token != "" {
		if err := validPreset(opts.Token); err != nil {
			return BootstrapResult{}, err
		}
		tok.Kind, tok.SecretHash, tok.Prefix = KindBootstrap, secret.Hash(opts.Token), prefixOf(opts.Token)
		generated = ""
	}
	ev, err := tokenEvent("created", tok)
	if err != nil {
		return BootstrapResult{}, err
	}
	in := Install{User: u, Team: team, Roles: roles, Member: Member{TeamID: team.ID, UserID: u.ID, RoleID: "admin", JoinedAt: at}, Token: tok}
	if err := store.Bootstrap(ctx, in, ev); err != nil {
		if errors.Is(err, ErrInstalled) {
			return BootstrapResult{}, nil // another replica won the race
		}
		return BootstrapResult{}, err
	}
	return BootstrapResult{Token: generated, Created: true}, nil
}

// validPreset checks SLIPWAY_BOOTSTRAP_TOKEN. A value that looks like a
// Slipway token must be a well-formed personal one: Authenticate rejects
// malformed slw_ strings before any lookup, so such a preset would
// otherwise be stored and never work.
func validPreset(tok string) error {
	if err := secret.ValidBootstrap(tok); err != nil {
		return fmt.Errorf("auth: SLIPWAY_BOOTSTRAP_TOKEN: %w", err)
	}
	if strings.HasPrefix(tok, "slw_") {
		if kind, err := secret.Parse(tok); err != nil || kind != secret.KindPersonal {
			return errors.New("auth: SLIPWAY_BOOTSTRAP_TOKEN: starts with slw_ but is not a well-formed slw_pat_ token")
		}
	}
	return nil
}
