package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/secret"
)

// BadCredentialsMessage is the one message of every rejected credential:
// malformed, unknown, revoked and expired all read the same, so a caller
// learns nothing about which tokens exist.
const BadCredentialsMessage = "invalid, expired or revoked credentials"

// LastUsedEvery bounds how often a token's last use is written: at most
// once per interval per token, so authentication stays a read.
const LastUsedEvery = time.Minute

// Principal kinds (authv1.Principal.kind) by stored token kind.
var principalKinds = map[TokenKind]authz.PrincipalKind{
	KindPersonal:   authz.PrincipalPersonalToken,
	KindTeam:       authz.PrincipalTeamToken,
	KindCredential: authz.PrincipalCredential,
	KindBootstrap:  authz.PrincipalBootstrap,
}

// errRejected marks a credential that failed a check; Authenticate turns
// it (and ErrNotFound) into the one generic error, and every other error
// into an internal one, so a database outage is not reported as bad
// credentials.
var errRejected = errors.New("credentials rejected")

// Authenticate implements AuthService: it resolves an Authorization value
// to its principal, or fails with Unauthenticated and BadCredentialsMessage.
func (s *server) Authenticate(ctx context.Context, req *authv1.AuthenticateRequest) (*authv1.AuthenticateResponse, error) {
	p, err := s.authenticate(ctx, req.GetAuthorization())
	if err != nil {
		if errors.Is(err, errRejected) || errors.Is(err, ErrNotFound) {
			return nil, authz.Unauthenticated(BadCredentialsMessage)
		}
		return nil, err
	}
	return &authv1.AuthenticateResponse{Principal: p}, nil
}

func (s *server) authenticate(ctx context.Context, header string) (*authv1.Principal, error) {
	if token, ok := isOAuthAccessToken(header); ok {
		return s.oauthPrincipal(ctx, token)
	}
	tok, err := s.lookup(ctx, header)
	if err != nil {
		return nil, err
	}
	at := s.now()
	if !tok.RevokedAt.IsZero() || (!tok.ExpiresAt.IsZero() && !at.Before(tok.ExpiresAt)) {
		return nil, errRejected
	}
	p, err := s.principal(ctx, tok)
	if err != nil {
		return nil, err
	}
	// Only a successful authentication is a use. The read above already
	// tells whether a write is due; TouchToken's own condition settles
	// races between concurrent requests.
	if tok.LastUsedAt.IsZero() || at.Sub(tok.LastUsedAt) >= LastUsedEvery {
		if _, err := s.store.TouchToken(ctx, tok.ID, at, LastUsedEvery); err != nil {
			// Bookkeeping must not fail the request it describes.
			s.log.WarnContext(ctx, "recording token use", "token_id", tok.ID, "error", err)
		}
	}
	return p, nil
}

// lookup finds the stored token an Authorization value names. Everything
// that can be checked without the database (scheme, shape, checksum) is
// checked first, so garbage and typos never reach it.
func (s *server) lookup(ctx context.Context, header string) (Token, error) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok {
		return Token{}, errRejected
	}
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return s.lookupBearer(ctx, cred)
	case strings.EqualFold(scheme, "Basic"):
		return s.lookupBasic(ctx, cred)
	}
	return Token{}, errRejected
}

// lookupBearer resolves a slw_ token, or an operator's free-form
// bootstrap token.
func (s *server) lookupBearer(ctx context.Context, cred string) (Token, error) {
	// A stored kind a presented token may stand for: the kind is spelled in
	// the token, so a team token cannot pass for a personal one, and a
	// credential secret works only with its key id (Basic).
	var allowed []TokenKind
	if strings.HasPrefix(cred, "slw_") {
		kind, err := secret.Parse(cred)
		if err != nil {
			return Token{}, errRejected
		}
		switch kind {
		case secret.KindPersonal:
			allowed = []TokenKind{KindPersonal, KindBootstrap}
		case secret.KindTeam:
			allowed = []TokenKind{KindTeam}
		default:
			return Token{}, errRejected
		}
	} else {
		if secret.ValidBootstrap(cred) != nil {
			return Token{}, errRejected
		}
		allowed = []TokenKind{KindBootstrap}
	}
	tok, err := s.store.GetTokenByHash(ctx, secret.Hash(cred))
	if err != nil {
		return Token{}, err
	}
	if !slices.Contains(allowed, tok.Kind) {
		return Token{}, errRejected
	}
	return tok, nil
}

// lookupBasic resolves an API credential: base64(keyId:secret).
func (s *server) lookupBasic(ctx context.Context, cred string) (Token, error) {
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		return Token{}, errRejected
	}
	keyID, sec, ok := strings.Cut(string(raw), ":")
	if !ok || !secret.ValidKeyID(keyID) {
		return Token{}, errRejected
	}
	if kind, err := secret.Parse(sec); err != nil || kind != secret.KindAPISecret {
		return Token{}, errRejected
	}
	tok, err := s.store.GetToken(ctx, keyID)
	if err != nil {
		return Token{}, err
	}
	if tok.Kind != KindCredential || !secret.Equal(tok.SecretHash, secret.Hash(sec)) {
		return Token{}, errRejected
	}
	return tok, nil
}

// principal builds what tok may do now. A token whose team or role has
// gone is refused rather than guessed at; a token with a user is capped by
// that user's current membership, so removing a member or lowering their
// role takes effect on their tokens (within authz's cache TTL).
func (s *server) principal(ctx context.Context, tok Token) (*authv1.Principal, error) {
	team, err := s.store.GetTeam(ctx, tok.TeamID)
	if err != nil {
		return nil, err
	}
	role, err := s.store.GetRole(ctx, tok.TeamID, tok.RoleID)
	if err != nil {
		return nil, err
	}
	perms := slices.Clone(role.Permissions)
	scope := allProjects().narrow(tok.Projects).restrict(role.Restrictions)
	if tok.UserID != "" {
		m, err := s.store.GetMember(ctx, tok.TeamID, tok.UserID)
		if err != nil {
			return nil, err
		}
		held, err := s.store.GetRole(ctx, tok.TeamID, m.RoleID)
		if err != nil {
			return nil, err
		}
		perms = intersect(perms, held.Permissions)
		scope = scope.restrict(held.Restrictions)
	}
	perms = scope.permit(perms)
	slices.Sort(perms)
	p := &authv1.Principal{
		Kind:          string(principalKinds[tok.Kind]),
		UserId:        tok.UserID,
		TokenId:       tok.ID,
		DefaultTeamId: tok.TeamID,
		Grants: []*authv1.TeamGrant{{
			TeamId:      tok.TeamID,
			RoleId:      tok.RoleID,
			Permissions: slices.Compact(perms),
			Projects:    scope.list(),
			Plan:        team.Plan,
		}},
	}
	if (tok.Kind == KindPersonal || tok.Kind == KindBootstrap) && len(tok.Projects) == 0 {
		// A personal token acts as its user: in each other team the user
		// belongs to, with that membership's role, capped by the token's
		// role, so the token never holds more than it was given. A token
		// restricted to projects (its own team's) acts nowhere else.
		others, err := s.memberGrants(ctx, tok, role.Permissions)
		if err != nil {
			return nil, err
		}
		p.Grants = append(p.Grants, others...)
	}
	if !tok.ExpiresAt.IsZero() {
		p.ExpiresAt = timestamppb.New(tok.ExpiresAt)
	}
	return p, nil
}

// memberGrants returns the grants of tok's user in the teams other than
// tok's own.
func (s *server) memberGrants(ctx context.Context, tok Token, tokenRole []string) ([]*authv1.TeamGrant, error) {
	members, err := s.store.Memberships(ctx, tok.UserID)
	if err != nil {
		return nil, err
	}
	var out []*authv1.TeamGrant
	for _, m := range members {
		if m.TeamID == tok.TeamID {
			continue
		}
		team, err := s.store.GetTeam(ctx, m.TeamID)
		if err != nil {
			return nil, err
		}
		held, err := s.store.GetRole(ctx, m.TeamID, m.RoleID)
		if err != nil {
			return nil, err
		}
		perms := intersect(held.Permissions, tokenRole)
		scope := allProjects().restrict(held.Restrictions)
		perms = scope.permit(perms)
		out = append(out, &authv1.TeamGrant{TeamId: m.TeamID, RoleId: m.RoleID, Permissions: perms, Projects: scope.list(), Plan: team.Plan})
	}
	return out, nil
}

// projectScope is a project restriction being combined from several
// sources (token, token role, member role): every project, or only some.
type projectScope struct {
	all  bool
	only []string
}

func allProjects() projectScope { return projectScope{all: true} }

// narrow keeps only the listed projects; an empty list restricts nothing.
func (p projectScope) narrow(list []string) projectScope {
	if len(list) == 0 {
		return p
	}
	if p.all {
		return projectScope{only: normalizeList(list)}
	}
	return projectScope{only: intersect(p.only, list)}
}

// restrict applies a role's restriction. TeamGrant can only carry an
// allow-list, so an enabled "notIn" restriction with projects fails closed:
// no project at all rather than the excluded ones too. The API refuses to
// create such roles until the grant can express them.
func (p projectScope) restrict(r Restrictions) projectScope {
	switch {
	case !r.Enabled:
		return p
	case r.Mode == RestrictNotIn:
		if len(r.Projects) == 0 {
			return p
		}
		return projectScope{only: []string{}}
	case len(r.Projects) == 0:
		return projectScope{only: []string{}} // "only these" of nothing
	}
	return p.narrow(r.Projects)
}

// none reports whether no project is reachable.
func (p projectScope) none() bool { return !p.all && len(p.only) == 0 }

// permit returns the permissions a grant with this scope carries. A
// restriction to some projects keeps them all: the grant lists the
// projects, and authz refuses team-level permissions to a grant that
// lists any. A restriction that leaves no project keeps none: TeamGrant
// cannot say "no project" (an empty list means every project), so the
// grant must not hold anything a restricted caller may not use, team
// level included.
func (p projectScope) permit(perms []string) []string {
	if p.none() {
		return []string{}
	}
	return perms
}

// list is the grant's project list: empty for every project.
func (p projectScope) list() []string {
	if p.all {
		return nil
	}
	return p.only
}

// intersect returns the members of a also in b, sorted and unique.
func intersect(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, v := range b {
		in[v] = true
	}
	out := []string{}
	for _, v := range a {
		if in[v] {
			out = append(out, v)
		}
	}
	return normalizeList(out)
}
