package auth

import (
	"context"
	"errors"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/paging"

	"github.com/slipwayhq/slipway/pkg/events"
)

// User is a person who can sign in and own personal tokens.
type User struct {
	ID string
	// Email is unique, stored lower-cased so that lookups by address do
	// not depend on how it was typed.
	Email string
	Name  string
	// PasswordHash is an argon2id PHC string from secret.HashPassword, or
	// empty for a user who cannot sign in with a password (the bootstrap
	// admin, unless the operator gave one).
	PasswordHash string
	CreatedAt    time.Time
}

// Team owns projects; every token and role belongs to exactly one.
type Team struct {
	// ID is the slug of the team's name.
	ID          string
	Name        string
	Description string
	// Plan sets the team's hourly quota.
	Plan string
	// Email is the team's billing and contact address, "" when none.
	Email     string
	CreatedAt time.Time
}

// RestrictionMode says how a role's project list applies.
type RestrictionMode string

// The restriction modes of Northflank's role API.
const (
	// RestrictIn limits the role to the listed projects.
	RestrictIn RestrictionMode = "in"
	// RestrictNotIn limits the role to every project but the listed ones.
	RestrictNotIn RestrictionMode = "notIn"
)

// Restrictions limit a role to some projects.
type Restrictions struct {
	Enabled  bool
	Projects []string
	Mode     RestrictionMode
}

// Role is a named set of permissions in one team.
type Role struct {
	TeamID string
	// ID is the slug of the role's name, unique within its team.
	ID          string
	Name        string
	Description string
	// Permissions are strings of the pkg/permissions catalogue.
	Permissions  []string
	Restrictions Restrictions
	// Builtin marks the roles every team starts with (admin, developer,
	// viewer); they cannot be deleted.
	Builtin   bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Member is a user's membership of a team, with the role it holds there.
type Member struct {
	TeamID   string
	UserID   string
	RoleID   string
	JoinedAt time.Time
}

// TeamMember is a membership with the user it belongs to, as team member
// lists show it.
type TeamMember struct {
	Member
	User User
}

// TokenKind says what a stored token stands for.
type TokenKind string

// The kinds of stored tokens.
const (
	// KindPersonal acts as its user, within its role and the user's
	// current role in the team.
	KindPersonal TokenKind = "personal"
	// KindTeam acts as the team, within its role.
	KindTeam TokenKind = "team"
	// KindCredential is an API credential for HTTP Basic auth: its id is
	// the key id, its secret a secret.KindAPISecret token.
	KindCredential TokenKind = "credential"
	// KindBootstrap is the operator's preset first admin token
	// (SLIPWAY_BOOTSTRAP_TOKEN): a personal token of the first admin whose
	// secret is any string rather than a slw_ token.
	KindBootstrap TokenKind = "bootstrap"
)

// Token is an API token or credential. Its secret is never stored, only
// its hash; a zero time means "never" (no expiry, never used, not revoked).
type Token struct {
	ID   string
	Kind TokenKind
	Name string
	// TeamID is the team the token acts on.
	TeamID string
	// UserID is the owner of a personal or bootstrap token, empty for team
	// tokens and credentials.
	UserID string
	RoleID string
	// Projects, when not empty, are the only projects the token may touch.
	Projects []string
	// Prefix is the start of the secret (of the key id for credentials),
	// so that people can tell their tokens apart.
	Prefix string
	// SecretHash is secret.Hash of the secret: the lookup key of Bearer
	// tokens and the comparand of credential secrets.
	SecretHash string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// Install is what the first start of an empty install creates, all at
// once: the first admin, their team with its roles, the membership, and
// the admin's token.
type Install struct {
	User   User
	Team   Team
	Roles  []Role
	Member Member
	Token  Token
}

// Page selects a slice of a list (see pkg/paging).
type Page = paging.Page

// Store errors. Implementations return them (possibly wrapped) so that the
// server can map them without knowing the engine. The first two are the
// store contract every service shares, which apierr.FromStore maps; they
// keep their names here so a store's contract reads on its own.
var (
	// ErrNotFound: the row asked for, or the parent a write needs, does
	// not exist.
	ErrNotFound = apierr.ErrNotFound
	// ErrAlreadyExists: an id (or a user's email) is taken.
	ErrAlreadyExists = apierr.ErrAlreadyExists
	// ErrInstalled refuses a second bootstrap: the install has users, or
	// was bootstrapped before.
	ErrInstalled = errors.New("install already bootstrapped")
	// ErrBuiltin refuses deleting a built-in role.
	ErrBuiltin = errors.New("role is built in")
	// ErrInUse refuses deleting a role a member or an unrevoked token
	// holds.
	ErrInUse = errors.New("role is in use")
)

// Store persists users, teams, roles, memberships and tokens. Every write
// but TouchToken (bookkeeping nobody subscribes to) takes the events
// announcing it and commits them in the same transaction (outbox), so an
// event is published if and only if its change was committed; a write that
// fails or changes nothing enqueues nothing.
// Lists of strings (permissions, projects) come back in the order they
// were stored, and as empty (not nil) slices when empty.
type Store interface {
	// Bootstrap writes in as one transaction. It returns ErrInstalled,
	// writing nothing, when any user exists or a bootstrap already
	// committed (also when a concurrent bootstrap wins the race).
	Bootstrap(ctx context.Context, in Install, evs ...events.Event) error

	// HasUsers reports whether any user exists.
	HasUsers(ctx context.Context) (bool, error)

	// CreateUser inserts u. It returns ErrAlreadyExists when the id or the
	// email is taken.
	CreateUser(ctx context.Context, u User, evs ...events.Event) error

	// GetUser returns the user with the given id or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)

	// GetUserByEmail returns the user with the given (lower-case) email
	// or ErrNotFound.
	GetUserByEmail(ctx context.Context, email string) (User, error)

	// CreateTeam inserts t with its roles and initial members in one
	// transaction. It returns ErrAlreadyExists when the team id is taken,
	// and ErrNotFound when a member's user does not exist or its role is
	// not among roles.
	CreateTeam(ctx context.Context, t Team, roles []Role, members []Member, evs ...events.Event) error

	// GetTeam returns the team with the given id or ErrNotFound.
	GetTeam(ctx context.Context, id string) (Team, error)

	// UpdateTeam writes t's name, description, plan and email over the team with
	// its id (the id and creation time never change), or returns
	// ErrNotFound.
	UpdateTeam(ctx context.Context, t Team, evs ...events.Event) error

	// AddMember inserts m. It returns ErrNotFound when the team, the user
	// or the role (in that team) does not exist, and ErrAlreadyExists when
	// the user is already a member.
	AddMember(ctx context.Context, m Member, evs ...events.Event) error

	// GetMember returns the membership of user in team or ErrNotFound.
	GetMember(ctx context.Context, teamID, userID string) (Member, error)

	// Memberships returns every team membership of a user, ordered by team.
	Memberships(ctx context.Context, userID string) ([]Member, error)

	// ListMembers returns a team's members with their users, ordered by
	// user id; an unknown team has none.
	ListMembers(ctx context.Context, teamID string) ([]TeamMember, error)

	// SetMemberRole changes a member's role. It returns ErrNotFound when
	// the membership or the role does not exist.
	SetMemberRole(ctx context.Context, teamID, userID, roleID string, evs ...events.Event) error

	// RemoveMember ends a membership or returns ErrNotFound.
	RemoveMember(ctx context.Context, teamID, userID string, evs ...events.Event) error

	// CreateRole inserts r. It returns ErrNotFound when its team does not
	// exist and ErrAlreadyExists when the id is taken in the team.
	CreateRole(ctx context.Context, r Role, evs ...events.Event) error

	// UpdateRole writes r's name, description, permissions, restrictions
	// and update time over the role with its team and id (the creation
	// time and the built-in flag never change). It returns ErrNotFound,
	// and ErrBuiltin for a built-in role.
	UpdateRole(ctx context.Context, r Role, evs ...events.Event) error

	// GetRole returns a team's role or ErrNotFound.
	GetRole(ctx context.Context, teamID, id string) (Role, error)

	// ListRoles returns a team's roles ordered by id; an unknown team has
	// none.
	ListRoles(ctx context.Context, teamID string) ([]Role, error)

	// DeleteRole removes a role. It returns ErrNotFound, ErrBuiltin for a
	// built-in role, and ErrInUse while a member or an unrevoked token
	// holds it (revoked tokens keep their role id as history).
	DeleteRole(ctx context.Context, teamID, id string, evs ...events.Event) error

	// CreateToken inserts t. It returns ErrNotFound when its team, its
	// role (in that team) or its user does not exist, and ErrAlreadyExists
	// when the id or the secret hash is taken.
	CreateToken(ctx context.Context, t Token, evs ...events.Event) error

	// GetToken returns the token (or credential, by key id) with the given
	// id or ErrNotFound.
	GetToken(ctx context.Context, id string) (Token, error)

	// GetTokenByHash returns the token whose SecretHash is hash or
	// ErrNotFound.
	GetTokenByHash(ctx context.Context, hash string) (Token, error)

	// ListTokens returns a page of a team's tokens of every kind, revoked
	// ones included, ordered by id, whether more follow, and how many
	// tokens the team has.
	ListTokens(ctx context.Context, teamID string, page Page) ([]Token, bool, int, error)

	// RevokeToken sets the token's revocation time to at unless it is
	// revoked already, and returns the token as stored afterwards and
	// whether this call revoked it. evs are enqueued only when it did, so
	// revoking twice announces once. It returns ErrNotFound for an
	// unknown id.
	RevokeToken(ctx context.Context, id string, at time.Time, evs ...events.Event) (Token, bool, error)

	// TouchToken sets the token's last use to at unless it was last used
	// less than every before at, and reports whether it wrote. The
	// condition is part of the write, so concurrent requests (and
	// replicas) write at most once per interval. An unknown id is a no-op.
	TouchToken(ctx context.Context, id string, at time.Time, every time.Duration) (bool, error)
}
