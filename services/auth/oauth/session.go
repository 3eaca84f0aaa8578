package oauth

import (
	"maps"
	"time"

	"github.com/ory/fosite"
)

// Session is what fosite keeps with every code and token of a grant: who
// the grant acts for. It is stored as JSON inside oauth_sessions.request.
type Session struct {
	// Subject is the RFC 7662 "sub": the user's id for grants a user made
	// (authorization code, password), the client's id for client
	// credentials.
	Subject string `json:"sub"`
	// UserID is the user whose role caps the token: the signed-in user, or
	// for client credentials the client's owner.
	UserID string `json:"user_id,omitempty"`
	// TeamID is the team the token acts on: the client's team.
	TeamID string `json:"team_id,omitempty"`
	// GrantType is the grant that started the chain.
	GrantType string                         `json:"grant_type,omitempty"`
	ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
}

var _ fosite.Session = (*Session)(nil)
var _ fosite.ExtraClaimsSession = (*Session)(nil)

// NewSession returns an empty session.
func NewSession() *Session {
	return &Session{ExpiresAt: map[fosite.TokenType]time.Time{}}
}

// SetExpiresAt implements fosite.Session.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	s.ExpiresAt[key] = exp
}

// GetExpiresAt implements fosite.Session.
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time {
	if s.ExpiresAt == nil {
		return time.Time{}
	}
	return s.ExpiresAt[key]
}

// GetUsername implements fosite.Session.
func (s *Session) GetUsername() string { return "" }

// GetSubject implements fosite.Session.
func (s *Session) GetSubject() string { return s.Subject }

// SetSubject is how fosite's password grant names the user.
func (s *Session) SetSubject(sub string) { s.Subject = sub }

// Clone implements fosite.Session.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.ExpiresAt = maps.Clone(s.ExpiresAt)
	return &c
}

// GetExtraClaims adds the Slipway fields to introspection responses.
func (s *Session) GetExtraClaims() map[string]any {
	m := map[string]any{}
	if s.UserID != "" {
		m["user_id"] = s.UserID
	}
	if s.TeamID != "" {
		m["team_id"] = s.TeamID
	}
	return m
}
