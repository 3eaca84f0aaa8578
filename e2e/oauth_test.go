package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The OAuth tests drive the authorization server's sign-in and consent pages
// in a real browser: Debian's Chromium, headless, through the DevTools
// protocol (chromedp). scripts/install-deps.sh installs it.

const (
	// chromiumPath is where Debian's chromium package puts the browser.
	chromiumPath = "/usr/bin/chromium"
	// browserTimeout bounds the life of one test's browser, so the whole
	// browser flow of a test.
	browserTimeout = 60 * time.Second
	// browserStepTimeout bounds one browser step (a navigation, a form
	// submission, a query), so a hang names the step.
	browserStepTimeout = 20 * time.Second

	aliceEmail    = "alice@example.com"
	alicePassword = "alice's correct horse battery staple"
	// oauthClientName is shown on the sign-in and consent pages.
	oauthClientName = "E2E Browser App"
	oauthScope      = "project_read"
)

// TestOAuthCodeFlowInChromium runs the 3-legged authorization code flow
// with PKCE for a public client in headless Chromium: the authorize
// redirect, the sign-in page, the consent page, the redirect back with the
// code; then, with plain HTTP, the code exchange, the access token on the
// API (role ∩ scopes), refresh-token rotation with reuse detection, and
// revocation.
func TestOAuthCodeFlowInChromium(t *testing.T) {
	e := newOAuthEnv(t)
	b := startChromium(t)

	// A project made by the admin: the OAuth token, acting for alice on
	// the client's team, must see it.
	callJSON(t, "POST", e.inst.URL+"/v1/projects", `{"name":"Seen Through OAuth"}`).data(t)

	// ---- The browser: authorize → sign in → consent → callback.
	flow := e.newAuthorization()
	resp := b.navigate("open the authorize URL", flow.url)
	e.checkSignInPage(b, resp)
	resp = b.signIn(aliceEmail, alicePassword)
	e.checkConsentPage(b, resp)

	shot := b.screenshot("consent")
	path := filepath.Join(t.ArtifactDir(), "consent.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatalf("write the consent screenshot: %v", err)
	}
	t.Logf("consent page screenshot (PNG, %d bytes): %s", len(shot), path)

	resp = b.submit("click Allow", `button[name="decision"][value="allow"]`)
	code := e.expectCode(b, resp, flow)

	// ---- The code exchange, with plain HTTP.
	tok := e.exchange(flow, code)
	at1, rt1 := tok.AccessToken, tok.RefreshToken

	// The access token on the API: alice is a developer, the token has
	// project_read only, so it may read projects but not create them.
	list := requestAs(t, "Bearer "+at1, "GET", e.inst.URL+"/v1/projects", "")
	if !slices.Contains(projectIDs(t, list), "seen-through-oauth") {
		t.Errorf("GET /v1/projects with the OAuth token does not list the team's project seen-through-oauth: %s", list.Raw)
	}
	requestAs(t, "Bearer "+at1, "GET", e.inst.URL+"/v1/projects/seen-through-oauth", "").data(t)
	requestAs(t, "Bearer "+at1, "POST", e.inst.URL+"/v1/projects", `{"name":"Scope Says No"}`).
		apiErr(t, http.StatusForbidden)
	if r := callJSON(t, "GET", e.inst.URL+"/v1/projects/scope-says-no", ""); r.Status != http.StatusNotFound {
		t.Errorf("the POST refused with 403 created the project anyway: GET it → HTTP %d: %s", r.Status, r.Raw)
	}

	// ---- Refresh: the tokens rotate.
	ref := e.tokenOK("refresh", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {e.clientID},
	})
	at2, rt2 := ref.AccessToken, ref.RefreshToken
	if at2 == at1 || rt2 == rt1 {
		t.Fatalf("refresh did not rotate the tokens: access %t, refresh %t (true = the same)", at2 == at1, rt2 == rt1)
	}
	if ref.Scope != oauthScope {
		t.Errorf("refreshed token's scope %q, want %q", ref.Scope, oauthScope)
	}
	requestAs(t, "Bearer "+at2, "GET", e.inst.URL+"/v1/projects", "").data(t)
	e.expectUnauthorized("the access token replaced by a refresh", at1)

	// Reusing the old refresh token fails, and revokes the whole chain:
	// the new access token and the new refresh token too.
	reuse := e.tokenRequest(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {e.clientID},
	})
	if reuse.Status != http.StatusBadRequest || reuse.Body["error"] != "invalid_grant" {
		t.Errorf("POST /oauth2/token reusing the rotated refresh token: HTTP %d %s; want 400 invalid_grant", reuse.Status, reuse.Raw)
	}
	e.expectUnauthorized("the new access token after the old refresh token was reused", at2)
	if r := e.tokenRequest(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "client_id": {e.clientID},
	}); r.Status != http.StatusBadRequest || r.Body["error"] != "invalid_grant" {
		t.Errorf("POST /oauth2/token with the new refresh token after reuse was detected: HTTP %d %s; want 400 invalid_grant", r.Status, r.Raw)
	}

	// ---- A second authorization in the same browser: alice is still
	// signed in (the sign-in cookie), so the consent page comes at once.
	flow2 := e.newAuthorization()
	resp = b.navigate("open the authorize URL again, signed in", flow2.url)
	e.checkConsentPage(b, resp)
	resp = b.submit("click Allow again", `button[name="decision"][value="allow"]`)
	code2 := e.expectCode(b, resp, flow2)
	if code2 == code {
		t.Errorf("the second authorization returned the same code")
	}
	// A code works only with its own flow's verifier (PKCE).
	if r := e.tokenRequest(url.Values{
		"grant_type": {"authorization_code"}, "code": {code2}, "redirect_uri": {e.redirectURI},
		"client_id": {e.clientID}, "code_verifier": {flow.verifier},
	}); r.Status != http.StatusBadRequest || r.Body["error"] != "invalid_grant" {
		t.Errorf("POST /oauth2/token with another authorization's code_verifier: HTTP %d %s; want 400 invalid_grant", r.Status, r.Raw)
	}
	// A code used twice: the second exchange fails.
	flow3 := e.newAuthorization()
	resp = b.navigate("open the authorize URL a third time", flow3.url)
	e.checkConsentPage(b, resp)
	resp = b.submit("click Allow a third time", `button[name="decision"][value="allow"]`)
	code3 := e.expectCode(b, resp, flow3)
	tok3 := e.exchange(flow3, code3)
	if r := e.tokenRequest(url.Values{
		"grant_type": {"authorization_code"}, "code": {code3}, "redirect_uri": {e.redirectURI},
		"client_id": {e.clientID}, "code_verifier": {flow3.verifier},
	}); r.Status != http.StatusBadRequest || r.Body["error"] != "invalid_grant" {
		t.Errorf("POST /oauth2/token with a used code: HTTP %d %s; want 400 invalid_grant", r.Status, r.Raw)
	}
	// RFC 6749 §4.1.2: a code used twice revokes what it issued.
	e.expectUnauthorized("the access token of a code that was used twice", tok3.AccessToken)

	// ---- Revocation (RFC 7009): a live token, revoked, is refused.
	flow4 := e.newAuthorization()
	resp = b.navigate("open the authorize URL a fourth time", flow4.url)
	e.checkConsentPage(b, resp)
	resp = b.submit("click Allow a fourth time", `button[name="decision"][value="allow"]`)
	tok4 := e.exchange(flow4, e.expectCode(b, resp, flow4))
	requestAs(t, "Bearer "+tok4.AccessToken, "GET", e.inst.URL+"/v1/projects", "").data(t)
	rev := e.postForm(e.md.RevocationEndpoint, url.Values{"token": {tok4.AccessToken}, "client_id": {e.clientID}})
	if rev.Status != http.StatusOK {
		t.Fatalf("POST %s: HTTP %d %s; want 200", e.md.RevocationEndpoint, rev.Status, rev.Raw)
	}
	e.expectUnauthorized("a revoked access token", tok4.AccessToken)
	// Revoking either token of a grant revokes both.
	if r := e.tokenRequest(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tok4.RefreshToken}, "client_id": {e.clientID},
	}); r.Status != http.StatusBadRequest || r.Body["error"] != "invalid_grant" {
		t.Errorf("POST /oauth2/token with the refresh token of a revoked grant: HTTP %d %s; want 400 invalid_grant", r.Status, r.Raw)
	}
	// The admin token is unaffected by all of this.
	callJSON(t, "GET", e.inst.URL+"/v1/projects", "").data(t)
}

// TestOAuthBrowserRefusals checks, in headless Chromium, what the pages
// refuse: a forged CSRF token, a wrong password (the sign-in page again,
// with an error, and no redirect), and the Deny button (a redirect with
// error=access_denied).
func TestOAuthBrowserRefusals(t *testing.T) {
	e := newOAuthEnv(t)
	b := startChromium(t)
	flow := e.newAuthorization()

	// A form whose CSRF token was tampered with is refused, and nobody is
	// signed in by it.
	resp := b.navigate("open the authorize URL", flow.url)
	e.checkSignInPage(b, resp)
	b.do("forge the CSRF token", chromedp.SetValue(chromedp.CSS(`input[name="csrf_token"]`), "forged-"+strings.Repeat("A", 36)))
	resp = b.signIn(aliceEmail, alicePassword)
	if resp.Status != http.StatusForbidden {
		b.fatalf("sign-in with a forged CSRF token: HTTP %d, want 403", resp.Status)
	}
	if msg := b.text("the error message", `.error`); !strings.Contains(msg, "expired or was not sent by this site") {
		b.fatalf("sign-in with a forged CSRF token shows %q, want the form-expired error", msg)
	}
	e.expectNoCallback("after the forged sign-in")

	// A wrong password: the sign-in page again, with an error, the email
	// kept, and no redirect.
	resp = b.navigate("open the authorize URL after the forged form", flow.url)
	e.checkSignInPage(b, resp) // not signed in by the forged form
	resp = b.signIn(aliceEmail, "not alice's password")
	if resp.Status != http.StatusUnauthorized {
		b.fatalf("sign-in with a wrong password: HTTP %d, want 401", resp.Status)
	}
	if msg := b.text("the error message", `.error[role="alert"]`); msg != "Invalid email or password." {
		b.fatalf("sign-in with a wrong password shows the error %q, want %q", msg, "Invalid email or password.")
	}
	if h1 := b.text("the heading", "h1"); h1 != "Sign in to Slipway" {
		b.fatalf("after a wrong password the page is %q, want the sign-in page", h1)
	}
	if loc := b.location(); !strings.HasPrefix(loc, e.md.AuthorizationEndpoint+"?") {
		b.fatalf("after a wrong password the browser is at %s, want the authorize endpoint", loc)
	}
	if v := b.value("the email field", "#email"); v != aliceEmail {
		b.fatalf("after a wrong password the email field holds %q, want %q", v, aliceEmail)
	}
	if v := b.value("the password field", "#password"); v != "" {
		b.fatalf("after a wrong password the password field is not empty")
	}
	e.expectNoCallback("after a wrong password")

	// The right password on the re-rendered form works.
	b.do("type the right password", chromedp.SendKeys(chromedp.CSS("#password"), alicePassword))
	resp = b.submit("submit the sign-in form", `form button[type="submit"]`)
	e.checkConsentPage(b, resp)

	// Deny: back to the client with error=access_denied and the state.
	resp = b.submit("click Deny", `button[name="decision"][value="deny"]`)
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, e.redirectURI+"?") {
		b.fatalf("after Deny the browser got HTTP %d from %s, want the callback %s", resp.Status, resp.URL, e.redirectURI)
	}
	q := e.awaitCallback("after Deny")
	if q.Get("error") != "access_denied" || q.Get("state") != flow.state || q.Has("code") {
		t.Fatalf("callback after Deny: %s; want error=access_denied, state=%s and no code", q.Encode(), flow.state)
	}
	e.expectNoCallback("after the Deny callback")
}

// ------------------------------------------------------------ environment

// oauthEnv is a running Slipway with alice (a developer of team "default"
// with a password), a registered public client, and the client's loopback
// redirect URI served by this test.
type oauthEnv struct {
	t           *testing.T
	inst        *instance
	md          oauthMetadata
	clientID    string
	redirectURI string
	callbacks   chan url.Values
}

// oauthMetadata is the part of the RFC 8414 document the tests use.
type oauthMetadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	IntrospectionEndpoint         string   `json:"introspection_endpoint"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	ScopesSupported               []string `json:"scopes_supported"`
}

func newOAuthEnv(t *testing.T) *oauthEnv {
	t.Helper()
	e := &oauthEnv{t: t, inst: startSlipway(t), callbacks: make(chan url.Values, 16)}

	// alice, with a password, a developer of team "default"; made with the
	// admin CLI while Slipway serves.
	dataDir := "SLIPWAY_DATA_DIR=" + e.inst.DataDir
	id := strings.TrimSpace(runSlipwayStdin(t, alicePassword+"\n",
		[]string{"admin", "create-user", "--email", aliceEmail, "--name", "Alice", "--password-stdin"}, dataDir))
	if id == "" {
		t.Fatal("admin create-user printed no user id")
	}
	runSlipway(t, []string{"admin", "add-member", "--team", "default", "--email", aliceEmail, "--role", "developer"}, dataDir)

	// The metadata document names the endpoints; the issuer is the HTTP
	// address.
	r := requestAs(t, "", "GET", e.inst.URL+"/.well-known/oauth-authorization-server", "")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /.well-known/oauth-authorization-server: HTTP %d %.500s", r.Status, r.Raw)
	}
	if err := json.Unmarshal(r.Raw, &e.md); err != nil {
		t.Fatalf("GET /.well-known/oauth-authorization-server: %v: %.500s", err, r.Raw)
	}
	base := e.inst.URL
	want := oauthMetadata{
		Issuer: base, AuthorizationEndpoint: base + "/oauth2/authorize", TokenEndpoint: base + "/oauth2/token",
		RevocationEndpoint: base + "/oauth2/revoke", IntrospectionEndpoint: base + "/oauth2/introspect",
	}
	if e.md.Issuer != want.Issuer || e.md.AuthorizationEndpoint != want.AuthorizationEndpoint ||
		e.md.TokenEndpoint != want.TokenEndpoint || e.md.RevocationEndpoint != want.RevocationEndpoint ||
		e.md.IntrospectionEndpoint != want.IntrospectionEndpoint {
		t.Fatalf("metadata issuer and endpoints %+v, want %+v", e.md, want)
	}
	if !slices.Equal(e.md.CodeChallengeMethodsSupported, []string{"S256"}) || !slices.Contains(e.md.ScopesSupported, oauthScope) {
		t.Errorf("metadata: code_challenge_methods_supported %v (want [S256]), scopes_supported %v (want %s among them)",
			e.md.CodeChallengeMethodsSupported, e.md.ScopesSupported, oauthScope)
	}

	// The client's redirect URI: a loopback server that records what
	// comes back and answers a small page.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		select {
		case e.callbacks <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Back at the app</title></head>`+
			`<body><h1 id="callback">Back at the app</h1></body></html>`)
	})
	cb := httptest.NewServer(mux)
	t.Cleanup(cb.Close)
	e.redirectURI = cb.URL + "/callback"

	// A public client, registered with the admin token.
	body, _ := json.Marshal(map[string]any{
		"name": oauthClientName, "public": true, "redirectUris": []string{e.redirectURI},
		"grantTypes": []string{"authorization_code", "refresh_token"}, "scopes": []string{oauthScope},
		"allowPasswordGrant": false,
	})
	client := callJSON(t, "POST", e.inst.URL+"/v1/oauth-clients", string(body)).data(t)
	e.clientID, _ = client["id"].(string)
	if e.clientID == "" {
		t.Fatalf("POST /v1/oauth-clients returned no id: %v", client)
	}
	if s, _ := client["secret"].(string); s != "" {
		t.Errorf("POST /v1/oauth-clients returned a secret for a public client")
	}
	return e
}

// authorization is one run of the code flow: its PKCE pair, its state and
// its authorize URL.
type authorization struct {
	verifier, challenge, state, url string
}

func (e *oauthEnv) newAuthorization() authorization {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	a := authorization{verifier: base64.RawURLEncoding.EncodeToString(raw[:]), state: rand.Text()}
	sum := sha256.Sum256([]byte(a.verifier))
	a.challenge = base64.RawURLEncoding.EncodeToString(sum[:])
	a.url = e.md.AuthorizationEndpoint + "?" + url.Values{
		"response_type":         {"code"},
		"client_id":             {e.clientID},
		"redirect_uri":          {e.redirectURI},
		"scope":                 {oauthScope},
		"state":                 {a.state},
		"code_challenge":        {a.challenge},
		"code_challenge_method": {"S256"},
	}.Encode()
	return a
}

// checkSignInPage checks that the browser shows the sign-in page, as the
// answer resp of the authorize endpoint.
func (e *oauthEnv) checkSignInPage(b *browserTab, resp *network.Response) {
	b.t.Helper()
	if resp.Status != http.StatusOK {
		b.fatalf("sign-in page: HTTP %d, want 200", resp.Status)
	}
	if title := b.title(); !strings.Contains(title, "Sign in") {
		b.fatalf("sign-in page title %q, want it to contain %q", title, "Sign in")
	}
	if h1 := b.text("the heading", "h1"); h1 != "Sign in to Slipway" {
		b.fatalf("sign-in page heading %q, want %q", h1, "Sign in to Slipway")
	}
	if main := b.text("the page", "main"); !strings.Contains(main, oauthClientName) {
		b.fatalf("the sign-in page does not name the client %q: %q", oauthClientName, main)
	}
	if csrf := b.value("the CSRF token", `input[name="csrf_token"]`); csrf == "" {
		b.fatalf("the sign-in form has an empty CSRF token")
	}
	b.do("find the sign-in fields", chromedp.WaitVisible(chromedp.CSS(`#email[type="email"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#password[type="password"]`)))
}

// checkConsentPage checks that the browser shows the consent page for the
// client, alice and project_read.
func (e *oauthEnv) checkConsentPage(b *browserTab, resp *network.Response) {
	b.t.Helper()
	if resp.Status != http.StatusOK {
		b.fatalf("consent page: HTTP %d, want 200", resp.Status)
	}
	if title := b.title(); !strings.Contains(title, "Authorize "+oauthClientName) {
		b.fatalf("consent page title %q, want it to contain %q", title, "Authorize "+oauthClientName)
	}
	if h1 := b.text("the heading", "h1"); h1 != "Authorize "+oauthClientName {
		b.fatalf("consent page heading %q, want %q", h1, "Authorize "+oauthClientName)
	}
	main := b.text("the page", "main")
	for _, want := range []string{aliceEmail, "default", oauthScope, "See your projects"} {
		if !strings.Contains(main, want) {
			b.fatalf("the consent page does not show %q:\n%s", want, main)
		}
	}
	if strings.Contains(main, "project_write") {
		b.fatalf("the consent page lists project_write, which was not asked for:\n%s", main)
	}
	if csrf := b.value("the CSRF token", `input[name="csrf_token"]`); csrf == "" {
		b.fatalf("the consent form has an empty CSRF token")
	}
	b.do("find Allow and Deny", chromedp.WaitVisible(chromedp.CSS(`button[name="decision"][value="allow"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[name="decision"][value="deny"]`)))
}

// expectCode checks that the browser landed on the redirect URI with a code
// and the flow's state, and returns the code.
func (e *oauthEnv) expectCode(b *browserTab, resp *network.Response, a authorization) string {
	b.t.Helper()
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, e.redirectURI+"?") {
		b.fatalf("after Allow the browser got HTTP %d from %s, want the callback %s", resp.Status, resp.URL, e.redirectURI)
	}
	if h1 := b.text("the callback page", "#callback"); h1 != "Back at the app" {
		b.fatalf("the callback page shows %q", h1)
	}
	q := e.awaitCallback("after Allow")
	if q.Get("state") != a.state || q.Get("code") == "" || q.Has("error") {
		b.fatalf("callback query %s: want a code and state=%s, and no error", q.Encode(), a.state)
	}
	if loc := b.location(); !strings.Contains(loc, "code="+url.QueryEscape(q.Get("code"))) {
		b.fatalf("the browser is at %s, not at the callback URL that carried the code", loc)
	}
	return q.Get("code")
}

// awaitCallback returns the query of the next request to the redirect URI.
func (e *oauthEnv) awaitCallback(when string) url.Values {
	e.t.Helper()
	select {
	case q := <-e.callbacks:
		return q
	case <-time.After(10 * time.Second):
		e.t.Fatalf("%s: no request to the redirect URI %s", when, e.redirectURI)
		return nil
	}
}

func (e *oauthEnv) expectNoCallback(when string) {
	e.t.Helper()
	select {
	case q := <-e.callbacks:
		e.t.Fatalf("%s: the redirect URI got a request: %s", when, q.Encode())
	default:
	}
}

// tokenResponse is a successful answer of the token endpoint.
type tokenResponse struct {
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	TokenType    string  `json:"token_type"`
	Scope        string  `json:"scope"`
	ExpiresIn    float64 `json:"expires_in"`
}

// exchange trades the flow's code for tokens and checks them.
func (e *oauthEnv) exchange(a authorization, code string) tokenResponse {
	e.t.Helper()
	tok := e.tokenOK("code exchange", url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {e.redirectURI},
		"client_id":     {e.clientID},
		"code_verifier": {a.verifier},
	})
	if tok.Scope != oauthScope {
		e.t.Errorf("code exchange: scope %q, want %q", tok.Scope, oauthScope)
	}
	return tok
}

// tokenOK posts form to the token endpoint, fails unless it answers 200
// with a slw_oat_ access token and a slw_ort_ refresh token, and returns
// the answer.
func (e *oauthEnv) tokenOK(what string, form url.Values) tokenResponse {
	e.t.Helper()
	r := e.tokenRequest(form)
	if r.Status != http.StatusOK {
		e.t.Fatalf("%s: POST %s (grant_type=%s): HTTP %d %s; want 200", what, e.md.TokenEndpoint, form.Get("grant_type"), r.Status, r.Raw)
	}
	var tok tokenResponse
	if err := json.Unmarshal(r.Raw, &tok); err != nil {
		e.t.Fatalf("%s: token response %s: %v", what, r.Raw, err)
	}
	if !strings.HasPrefix(tok.AccessToken, "slw_oat_") || !strings.HasPrefix(tok.RefreshToken, "slw_ort_") {
		e.t.Fatalf("%s: token response %s: want a slw_oat_ access token and a slw_ort_ refresh token", what, r.Raw)
	}
	if !strings.EqualFold(tok.TokenType, "bearer") || tok.ExpiresIn <= 0 {
		e.t.Errorf("%s: token_type %q and expires_in %v, want bearer and > 0", what, tok.TokenType, tok.ExpiresIn)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		e.t.Errorf("%s: token response has Cache-Control %q, want no-store", what, cc)
	}
	return tok
}

func (e *oauthEnv) tokenRequest(form url.Values) response {
	e.t.Helper()
	return e.postForm(e.md.TokenEndpoint, form)
}

// postForm posts an application/x-www-form-urlencoded body, without
// credentials (a public client), and decodes a JSON answer.
func (e *oauthEnv) postForm(u string, form url.Values) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := httpClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("POST %s: read body: %v", u, err)
	}
	r := response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// expectUnauthorized checks that the API refuses token with 401.
func (e *oauthEnv) expectUnauthorized(what, token string) {
	e.t.Helper()
	r := requestAs(e.t, "Bearer "+token, "GET", e.inst.URL+"/v1/projects", "")
	if r.Status != http.StatusUnauthorized {
		e.t.Errorf("GET /v1/projects with %s: HTTP %d %.300s; want 401", what, r.Status, r.Raw)
		return
	}
	r.apiErr(e.t, http.StatusUnauthorized)
	if r.Header.Get("WWW-Authenticate") == "" {
		e.t.Errorf("GET /v1/projects with %s: 401 without WWW-Authenticate", what)
	}
}

// projectIDs returns the ids of a GET /v1/projects answer.
func projectIDs(t *testing.T, r response) []string {
	t.Helper()
	d := r.data(t)
	list, _ := d["projects"].([]any)
	var ids []string
	for _, p := range list {
		if m, ok := p.(map[string]any); ok {
			id, _ := m["id"].(string)
			ids = append(ids, id)
		}
	}
	return ids
}

// runSlipwayStdin is runSlipway with stdin: it runs a one-shot subcommand
// to completion, feeding it stdin, and returns its stdout.
func runSlipwayStdin(t testing.TB, stdin string, args []string, env ...string) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("slipway binary not built: %v", buildErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, slipwayBin, args...)
	cmd.Env = append(append(baseEnv(), "SLIPWAY_LOG_FORMAT=json"), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("slipway %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// ---------------------------------------------------------------- browser

// browserTab is the one tab of a headless Chromium started for a test.
type browserTab struct {
	t   *testing.T
	ctx context.Context // the tab's chromedp context
}

// startChromium starts Debian's Chromium, headless, with a fresh profile,
// for at most browserTimeout; it is closed when the test ends, and its
// output is added to the log of a failed test.
func startChromium(t *testing.T) *browserTab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is missing (%v): run make test (scripts/install-deps.sh installs chromium)", err)
	}
	profile := t.TempDir()
	output := &lockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1024, 768),
		chromedp.CombinedOutput(output),
	)
	root, cancelRoot := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Close the browser gracefully, then make sure that no process of
		// this profile is left to write into it while it is removed.
		if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("closing Chromium: %v", err)
		}
		cancelTab()
		cancelAlloc()
		cancelRoot()
		killProfileProcesses(profile)
		if t.Failed() {
			t.Logf("--- Chromium output ---\n%s", output)
		}
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n--- Chromium output ---\n%s", chromiumPath, err, output)
	}
	version, err := chromedp.Run(ctx, chromedp.Evaluate[string]("navigator.userAgent"))
	if err != nil {
		t.Fatalf("Chromium started but does not answer: %v", err)
	}
	t.Logf("Chromium started in %s: %s", time.Since(start).Round(time.Millisecond), version)
	return &browserTab{t: t, ctx: ctx}
}

// step returns a context for one browser step.
func (b *browserTab) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, browserStepTimeout)
}

// fatalf fails the test with the page the browser shows.
func (b *browserTab) fatalf(format string, args ...any) {
	b.t.Helper()
	b.t.Fatalf("%s\n--- the browser ---\n%s", fmt.Sprintf(format, args...), b.describe())
}

// describe returns the browser's URL and HTML, for failure messages.
func (b *browserTab) describe() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return fmt.Sprintf("(cannot read the page: %v)", err)
	}
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.documentElement.outerHTML"))
	if err != nil {
		html = fmt.Sprintf("(cannot read the HTML: %v)", err)
	}
	return "URL: " + loc + "\n" + html
}

// do runs steps that return nothing.
func (b *browserTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fatalf("%s: %v", what, err)
	}
}

// navigate loads u and returns the response of the page (after redirects).
func (b *browserTab) navigate(what, u string) *network.Response {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		b.fatalf("%s (%s): %v", what, u, err)
	}
	if resp == nil {
		b.fatalf("%s (%s): no response", what, u)
	}
	return resp
}

// submit clicks the button sel, waits for the page it leads to and returns
// its response (after redirects).
func (b *browserTab) submit(what, sel string) *network.Response {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("%s: %v", what, err)
	}
	if resp == nil {
		b.fatalf("%s: no response", what)
	}
	return resp
}

// signIn fills in the sign-in form and submits it.
func (b *browserTab) signIn(email, password string) *network.Response {
	b.t.Helper()
	b.do("fill in the sign-in form",
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password))
	return b.submit("submit the sign-in form", `form button[type="submit"]`)
}

func (b *browserTab) text(what, sel string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("read %s (%s): %v", what, sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browserTab) value(what, sel string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("read %s (%s): %v", what, sel, err)
	}
	return s
}

func (b *browserTab) title() string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		b.fatalf("read the title: %v", err)
	}
	return s
}

func (b *browserTab) location() string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.fatalf("read the location: %v", err)
	}
	return s
}

// screenshot returns a PNG of the whole page.
func (b *browserTab) screenshot(what string) []byte {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 is PNG
	if err != nil {
		b.fatalf("screenshot of %s: %v", what, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		b.fatalf("screenshot of %s is not a PNG (%d bytes)", what, len(png))
	}
	return png
}

// killProfileProcesses kills, by pid, the processes that still run with the
// user data dir profile (Chromium's helpers can outlive the browser by a
// moment), so that the profile can be removed. Only the browser this test
// started uses that fresh dir.
func killProfileProcesses(profile string) {
	want := []byte("--user-data-dir=" + profile + "\x00")
	deadline := time.Now().Add(2 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return // not Linux: nothing to look at
		}
		found := 0
		for _, ent := range entries {
			pid, err := strconv.Atoi(ent.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
			if err != nil || !bytes.Contains(cmdline, want) {
				continue
			}
			found++
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if found == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes and reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
