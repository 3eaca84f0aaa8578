package oauth

import (
	"context"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/slipwayhq/slipway/pkg/secret"
)

// tokenStrategy issues access and refresh tokens in Slipway's own token
// format (pkg/secret): slw_oat_… and slw_ort_…, with a checksum, so they
// are recognisable, caught by secret scanners (secret.Pattern), and
// rejected without a database read when mistyped. A token's fosite
// "signature" — its storage key — is secret.Hash(token), the same lookup
// key every other Slipway token uses. Authorization codes keep fosite's
// HMAC strategy (keyed by the global secret).
type tokenStrategy struct {
	codes  *oauth2.HMACSHAStrategyUnPrefixed
	config oauth2.LifespanConfigProvider
}

var _ oauth2.CoreStrategy = (*tokenStrategy)(nil)

func (s *tokenStrategy) AccessTokenSignature(_ context.Context, token string) string {
	return secret.Hash(token)
}

func (s *tokenStrategy) GenerateAccessToken(context.Context, fosite.Requester) (string, string, error) {
	return generate(secret.KindOAuthAccess)
}

func (s *tokenStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if err := validFormat(token, secret.KindOAuthAccess); err != nil {
		return err
	}
	exp := r.GetSession().GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = r.GetRequestedAt().Add(s.config.GetAccessTokenLifespan(ctx))
	}
	if exp.Before(time.Now().UTC()) {
		return fosite.ErrTokenExpired.WithHintf("Access token expired at '%s'.", exp)
	}
	return nil
}

func (s *tokenStrategy) RefreshTokenSignature(_ context.Context, token string) string {
	return secret.Hash(token)
}

func (s *tokenStrategy) GenerateRefreshToken(context.Context, fosite.Requester) (string, string, error) {
	return generate(secret.KindOAuthRefresh)
}

func (s *tokenStrategy) ValidateRefreshToken(_ context.Context, r fosite.Requester, token string) error {
	if err := validFormat(token, secret.KindOAuthRefresh); err != nil {
		return err
	}
	if exp := r.GetSession().GetExpiresAt(fosite.RefreshToken); !exp.IsZero() && exp.Before(time.Now().UTC()) {
		return fosite.ErrTokenExpired.WithHintf("Refresh token expired at '%s'.", exp)
	}
	return nil
}

func (s *tokenStrategy) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return s.codes.AuthorizeCodeSignature(ctx, token)
}

func (s *tokenStrategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	return s.codes.GenerateAuthorizeCode(ctx, r)
}

func (s *tokenStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return s.codes.ValidateAuthorizeCode(ctx, r, token)
}

func generate(kind secret.Kind) (string, string, error) {
	tok, err := secret.New(kind)
	if err != nil {
		return "", "", fosite.ErrServerError.WithWrap(err)
	}
	return tok, secret.Hash(tok), nil
}

func validFormat(token string, kind secret.Kind) error {
	if k, err := secret.Parse(token); err != nil || k != kind {
		return fosite.ErrInvalidTokenFormat
	}
	return nil
}
