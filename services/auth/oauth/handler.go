package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ory/fosite"

	"github.com/slipwayhq/slipway/pkg/permissions"
)

// Endpoint paths, relative to the issuer.
const (
	PathAuthorize  = "/oauth2/authorize"
	PathToken      = "/oauth2/token"
	PathIntrospect = "/oauth2/introspect"
	PathRevoke     = "/oauth2/revoke"
	PathMetadata   = "/.well-known/oauth-authorization-server"
)

// Handler serves the authorization server's endpoints and pages at the
// paths above; mount it at the issuer's root.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathMetadata, p.metadata)
	mux.HandleFunc("GET "+PathAuthorize, p.authorize)
	mux.HandleFunc("POST "+PathAuthorize, p.authorize)
	// The endpoints that take form parameters also take them as JSON
	// (jsonForm); a bad JSON body gets each endpoint's own error format.
	mux.HandleFunc("POST "+PathToken, jsonForm(p.token, func(w http.ResponseWriter, r *http.Request, err error) {
		p.oauth.WriteAccessError(r.Context(), w, nil, err)
	}))
	mux.HandleFunc("POST "+PathIntrospect, jsonForm(p.introspect, func(w http.ResponseWriter, r *http.Request, err error) {
		p.oauth.WriteIntrospectionError(r.Context(), w, err)
	}))
	mux.HandleFunc("POST "+PathRevoke, jsonForm(p.revoke, func(w http.ResponseWriter, r *http.Request, err error) {
		p.oauth.WriteRevocationResponse(r.Context(), w, err)
	}))
	p.handleRoutingErrors(mux)
	return securityHeaders(mux)
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// Metadata is the RFC 8414 authorization server metadata document.
type Metadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// Metadata returns the RFC 8414 document.
func (p *Provider) Metadata() Metadata {
	return Metadata{
		Issuer:                                    p.issuer,
		AuthorizationEndpoint:                     p.issuer + PathAuthorize,
		TokenEndpoint:                             p.issuer + PathToken,
		IntrospectionEndpoint:                     p.issuer + PathIntrospect,
		RevocationEndpoint:                        p.issuer + PathRevoke,
		ResponseTypesSupported:                    []string{"code"},
		ResponseModesSupported:                    []string{"query"},
		GrantTypesSupported:                       slices.Clone(SupportedGrants),
		CodeChallengeMethodsSupported:             []string{"S256"},
		ScopesSupported:                           permissions.Scopes(),
		TokenEndpointAuthMethodsSupported:         []string{"client_secret_basic", "client_secret_post", "none"},
		IntrospectionEndpointAuthMethodsSupported: []string{"client_secret_basic"},
		RevocationEndpointAuthMethodsSupported:    []string{"client_secret_basic", "client_secret_post", "none"},
	}
}

func (p *Provider) metadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(p.Metadata())
}

// token is the token endpoint: fosite runs the grant; this only fills the
// session of grants that do not start from a stored one.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_ = r.ParseForm() // fosite parses it again, and reports errors
	caller, _ := clientAccount(r)
	var user account // the password grant's user
	if r.PostForm.Get("grant_type") == GrantPassword {
		user = userAccount(r.PostForm.Get("username"))
	}
	if wait := p.throttle.admit(ctx, r, caller, user); wait > 0 {
		tooManyJSON(w, wait)
		return
	}
	ar, err := p.oauth.NewAccessRequest(ctx, r, NewSession())
	if err != nil {
		switch {
		case clientFailure(err):
			p.throttle.failed(ctx, r, caller)
		case user.id != "" && errors.Is(err, fosite.ErrInvalidGrant): // wrong password
			p.throttle.failed(ctx, r, user)
		}
		p.oauth.WriteAccessError(ctx, w, ar, err)
		return
	}
	p.throttle.succeeded(ctx, r, caller)
	p.throttle.succeeded(ctx, r, user)
	client, ok := ar.GetClient().(*Client)
	sess, ok2 := ar.GetSession().(*Session)
	if !ok || !ok2 {
		p.oauth.WriteAccessError(ctx, w, ar, fosite.ErrServerError.WithDebug("unexpected client or session type"))
		return
	}
	switch {
	case ar.GetGrantTypes().ExactOne(GrantClientCredentials):
		sess.Subject = client.GetID()
		sess.UserID = client.OwnerID
		sess.TeamID = client.TeamID
		sess.GrantType = GrantClientCredentials
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
	case ar.GetGrantTypes().ExactOne(GrantPassword):
		sess.UserID = sess.Subject
		sess.TeamID = client.TeamID
		sess.GrantType = GrantPassword
		if err := p.checkMember(r, client, sess.UserID); err != nil {
			p.oauth.WriteAccessError(ctx, w, ar, err)
			return
		}
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
	}
	resp, err := p.oauth.NewAccessResponse(ctx, ar)
	if err != nil {
		p.oauth.WriteAccessError(ctx, w, ar, err)
		return
	}
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// checkMember refuses a user who is not a member of the client's team,
// when Config.IsMember is set.
func (p *Provider) checkMember(r *http.Request, client *Client, userID string) error {
	if p.isMember == nil {
		return nil
	}
	ok, err := p.isMember(r.Context(), client.TeamID, userID)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	if !ok {
		return fosite.ErrAccessDenied.WithHint("The user is not a member of the client's team.")
	}
	return nil
}

// introspect is RFC 7662. Callers authenticate as a confidential client
// with HTTP Basic; fosite would also take any bearer access token, which
// would let every token holder probe other tokens, so that is refused.
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); !strings.EqualFold(scheme, "Basic") {
		p.oauth.WriteIntrospectionError(ctx, w, fosite.ErrRequestUnauthorized.WithHint("Authenticate as a confidential client with HTTP Basic."))
		return
	}
	client, _ := clientAccount(r)
	if wait := p.throttle.admit(ctx, r, client); wait > 0 {
		tooManyJSON(w, wait)
		return
	}
	ir, err := p.oauth.NewIntrospectionRequest(ctx, r, NewSession())
	if err != nil {
		if clientFailure(err) {
			p.throttle.failed(ctx, r, client)
		}
		p.oauth.WriteIntrospectionError(ctx, w, err)
		return
	}
	p.throttle.succeeded(ctx, r, client)
	p.oauth.WriteIntrospectionResponse(ctx, w, ir)
}

// revoke is RFC 7009: revoking either token of a grant revokes the grant's
// access and refresh tokens.
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_ = r.ParseForm()
	client, _ := clientAccount(r)
	if wait := p.throttle.admit(ctx, r, client); wait > 0 {
		tooManyJSON(w, wait)
		return
	}
	err := p.oauth.NewRevocationRequest(ctx, r)
	if clientFailure(err) {
		p.throttle.failed(ctx, r, client)
	}
	p.oauth.WriteRevocationResponse(ctx, w, err)
}

// authorize is the authorization endpoint with the sign-in and consent
// pages. Every step re-validates the whole request with fosite (the OAuth
// parameters stay in the query string of the page's URL, and the forms
// post back to it), so nothing about the request is trusted from a form.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	if err != nil {
		p.oauth.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	client, ok := ar.GetClient().(*Client)
	if !ok {
		p.oauth.WriteAuthorizeError(ctx, w, ar, fosite.ErrServerError.WithDebug("unexpected client type"))
		return
	}
	// fosite matches loopback redirect URIs on any port (RFC 8252); Slipway
	// matches exactly. A mismatch is never redirected to.
	for _, raw := range r.Form["redirect_uri"] {
		if !slices.Contains(client.RedirectURIs, raw) {
			p.renderError(w, http.StatusBadRequest, "The redirect URI is not registered for this application.")
			return
		}
	}
	// fosite enforces PKCE when it issues the code; refusing here already
	// spares the user a sign-in that could only fail.
	if method := r.Form.Get("code_challenge_method"); (client.IsPublic() && r.Form.Get("code_challenge") == "") ||
		(r.Form.Get("code_challenge") != "" && method != "S256") {
		p.oauth.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint(
			"Clients must use PKCE with code_challenge_method S256; public clients always."))
		return
	}
	page := pageData{Client: client, ClientName: client.Name, Scopes: describeScopes(ar.GetRequestedScopes())}
	if page.ClientName == "" {
		page.ClientName = client.GetID()
	}
	st, valid := p.readState(r)
	if r.Method == http.MethodGet {
		if !valid {
			st = p.newState("", "")
			p.writeState(w, st)
		}
		page.CSRF = p.csrfToken(st)
		if st.UserID == "" {
			p.render(w, http.StatusOK, signInPage, page)
			return
		}
		page.Email = st.Email
		p.render(w, http.StatusOK, consentPage, page)
		return
	}

	// POST: a form of ours, or nothing.
	if !valid || !p.validCSRF(st, r.PostFormValue("csrf_token")) {
		p.renderError(w, http.StatusForbidden, "The form expired or was not sent by this site. Go back and try again.")
		return
	}
	switch r.PostFormValue("action") {
	case "sign_in":
		user := userAccount(r.PostFormValue("email"))
		if wait := p.throttle.admit(ctx, r, user); wait > 0 {
			// Refused before the password is even checked: a locked-out
			// guesser learns nothing, right password or not.
			secs := retryAfter(w, wait)
			page.CSRF = p.csrfToken(st)
			page.Error = "Too many attempts. Try again in " + strconv.FormatInt(secs, 10) + " seconds."
			page.Email = r.PostFormValue("email")
			p.render(w, http.StatusTooManyRequests, signInPage, page)
			return
		}
		u, err := checkPassword(ctx, p.users, r.PostFormValue("email"), r.PostFormValue("password"))
		if errors.Is(err, errBadCredentials) {
			p.throttle.failed(ctx, r, user)
			page.CSRF = p.csrfToken(st)
			page.Error = "Invalid email or password."
			page.Email = r.PostFormValue("email")
			p.render(w, http.StatusUnauthorized, signInPage, page)
			return
		}
		if err != nil {
			p.renderError(w, http.StatusInternalServerError, "Signing in failed. Try again later.")
			return
		}
		p.throttle.succeeded(ctx, r, user)
		// A fresh state (new nonce, so new CSRF token) on every sign-in.
		st = p.newState(u.ID, u.Email)
		p.writeState(w, st)
		page.CSRF = p.csrfToken(st)
		page.Email = u.Email
		p.render(w, http.StatusOK, consentPage, page)
	case "switch_user":
		st = p.newState("", "")
		p.writeState(w, st)
		page.CSRF = p.csrfToken(st)
		p.render(w, http.StatusOK, signInPage, page)
	case "consent":
		if st.UserID == "" {
			page.CSRF = p.csrfToken(st)
			p.render(w, http.StatusUnauthorized, signInPage, page)
			return
		}
		if r.PostFormValue("decision") != "allow" {
			p.oauth.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
			return
		}
		if err := p.checkMember(r, client, st.UserID); err != nil {
			p.oauth.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		sess := NewSession()
		sess.Subject = st.UserID
		sess.UserID = st.UserID
		sess.TeamID = client.TeamID
		sess.GrantType = GrantAuthorizationCode
		resp, err := p.oauth.NewAuthorizeResponse(ctx, ar, sess)
		if err != nil {
			p.oauth.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		p.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
	default:
		p.renderError(w, http.StatusBadRequest, "Unknown form action.")
	}
}
