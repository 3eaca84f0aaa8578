package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/permissions"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/auth"
	"github.com/slipwayhq/slipway/services/auth/migrations"
	"github.com/slipwayhq/slipway/services/auth/oauth"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	userEmail = "ada@example.com"
	userPass  = "correct horse battery staple"
	teamID    = "acme"
	redirect  = "http://127.0.0.1:9999/callback"
)

// hashOnce hashes the test password once per run: argon2id at production
// cost is deliberately slow.
var hashOnce = sync.OnceValues(func() (string, error) { return secret.HashPassword(userPass) })

type env struct {
	t      *testing.T
	srv    *httptest.Server
	p      *oauth.Provider
	userID string
	mu     sync.Mutex
	// members, when not nil, is the set of user ids IsMember accepts.
	members map[string]bool
	db      *sqldb.DB
	store   auth.Store
}

// setup starts the authorization server on a migrated database of the
// engine, with one user in the real auth store.
func setup(t *testing.T, engine sqldb.Dialect) *env { return setupWith(t, engine, nil) }

// setupWith is setup with a throttle (nil: the default, in memory).
func setupWith(t *testing.T, engine sqldb.Dialect, throttle *oauth.Throttle) *env {
	t.Helper()
	ctx := context.Background()
	db := sqltest.Open(t, engine, migrations.Set, events.Migrations, oauth.Migrations)
	store := auth.NewSQLStore(db, nil)
	hash, err := hashOnce()
	if err != nil {
		t.Fatal(err)
	}
	u := auth.User{ID: "u-ada", Email: userEmail, Name: "Ada", PasswordHash: hash, CreatedAt: time.Now()}
	if err := store.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	return serveProvider(t, db, store, u.ID, throttle)
}

// serveProvider serves a provider on db: another replica of the same
// install when db is shared.
func serveProvider(t *testing.T, db *sqldb.DB, store auth.Store, userID string, throttle *oauth.Throttle) *env {
	t.Helper()
	var err error
	e := &env{t: t, userID: userID, db: db, store: store}
	var h http.Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	e.p, err = oauth.New(oauth.Config{
		DB: db,
		Users: oauth.UsersFunc(func(ctx context.Context, email string) (oauth.User, error) {
			u, err := store.GetUserByEmail(ctx, email)
			if errors.Is(err, auth.ErrNotFound) {
				return oauth.User{}, oauth.ErrUserNotFound
			}
			return oauth.User{ID: u.ID, Email: u.Email, PasswordHash: u.PasswordHash}, err
		}),
		IsMember: func(_ context.Context, team, user string) (bool, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			return team == teamID && (e.members == nil || e.members[user]), nil
		},
		Issuer:   e.srv.URL,
		Secret:   []byte("0123456789abcdef0123456789abcdef"),
		Throttle: throttle,
	})
	if err != nil {
		t.Fatal(err)
	}
	h = e.p.Handler()
	return e
}

func (e *env) register(spec oauth.ClientSpec) (string, string) {
	e.t.Helper()
	if spec.TeamID == "" {
		spec.TeamID = teamID
	}
	if spec.OwnerID == "" {
		spec.OwnerID = e.userID
	}
	id, sec, err := e.p.RegisterClient(context.Background(), spec)
	if err != nil {
		e.t.Fatalf("RegisterClient: %v", err)
	}
	return id, sec
}

func (e *env) confidential(grants ...string) (string, string) {
	spec := oauth.ClientSpec{Name: "CI bot", GrantTypes: grants, Scopes: []string{"project_read", "service_read", "service_write"}}
	if slices.Contains(grants, oauth.GrantAuthorizationCode) {
		spec.RedirectURIs = []string{redirect}
	}
	if slices.Contains(grants, oauth.GrantPassword) {
		spec.AllowPasswordGrant = true
	}
	return e.register(spec)
}

func (e *env) public() string {
	id, _ := e.register(oauth.ClientSpec{Name: "Slipway CLI", Public: true, RedirectURIs: []string{redirect},
		GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}, Scopes: []string{"project_read", "service_read"}})
	return id
}

type resp struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (e *env) post(path string, form url.Values, id, sec string) resp {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(sec))
	}
	return e.do(http.DefaultClient, req)
}

func (e *env) do(c *http.Client, req *http.Request) resp {
	e.t.Helper()
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, body: body}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(body, &r.json)
	}
	return r
}

func (e *env) introspect(token, id, sec string) map[string]any {
	e.t.Helper()
	r := e.post("/oauth2/introspect", url.Values{"token": {token}}, id, sec)
	if r.status != http.StatusOK {
		e.t.Fatalf("introspect: %d %s", r.status, r.body)
	}
	return r.json
}

// browser is a user agent with cookies that does not follow redirects.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) get(u string) resp {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.e.do(b.c, req)
}

func (b *browser) submit(u string, form url.Values) resp {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.e.do(b.c, req)
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, r resp) string {
	t.Helper()
	m := csrfRe.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no CSRF token in page (%d): %s", r.status, r.body)
	}
	return string(m[1])
}

func pkcePair() (verifier, challenge string) {
	verifier = "verifier-" + strings.Repeat("x", 50)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func authorizeURL(e *env, clientID, challenge, redirectURI string) string {
	q := url.Values{
		"response_type": {"code"},
		"client_id":     {clientID},
		"redirect_uri":  {redirectURI},
		"scope":         {"project_read service_read"},
		"state":         {"state-1234567890"},
	}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	return e.srv.URL + "/oauth2/authorize?" + q.Encode()
}

// signInAndConsent runs the browser part of the code flow and returns the
// authorization code.
func (e *env) signInAndConsent(clientID, challenge string) string {
	t := e.t
	t.Helper()
	b := e.browser()
	au := authorizeURL(e, clientID, challenge, redirect)
	page := b.get(au)
	if page.status != http.StatusOK || !strings.Contains(string(page.body), "Sign in") {
		t.Fatalf("authorize page: %d %s", page.status, page.body)
	}
	if page.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options = %q", page.header.Get("X-Frame-Options"))
	}
	consent := b.submit(au, url.Values{"csrf_token": {csrfOf(t, page)}, "action": {"sign_in"},
		"email": {userEmail}, "password": {userPass}})
	if consent.status != http.StatusOK || !strings.Contains(string(consent.body), "Authorize") ||
		!strings.Contains(string(consent.body), "service_read") {
		t.Fatalf("consent page: %d %s", consent.status, consent.body)
	}
	done := b.submit(au, url.Values{"csrf_token": {csrfOf(t, consent)}, "action": {"consent"}, "decision": {"allow"}})
	if done.status/100 != 3 {
		t.Fatalf("consent: %d %s", done.status, done.body)
	}
	loc, err := url.Parse(done.header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("redirect to %q", done.header.Get("Location"))
	}
	if loc.Query().Get("state") != "state-1234567890" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect %s lacks code or state", loc)
	}
	return loc.Query().Get("code")
}

func forEngine(t *testing.T, f func(t *testing.T, e *env)) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) { f(t, setup(t, engine)) })
}

func TestMetadata(t *testing.T) {
	e := setup(t, sqldb.SQLite)
	res, err := http.Get(e.srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(res.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md["issuer"] != e.srv.URL || md["token_endpoint"] != e.srv.URL+"/oauth2/token" ||
		md["authorization_endpoint"] != e.srv.URL+"/oauth2/authorize" ||
		md["introspection_endpoint"] != e.srv.URL+"/oauth2/introspect" ||
		md["revocation_endpoint"] != e.srv.URL+"/oauth2/revoke" {
		t.Errorf("endpoints: %v", md)
	}
	list := func(k string) []string {
		var out []string
		for _, v := range md[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := list("code_challenge_methods_supported"); !slices.Equal(got, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v", got)
	}
	if got := list("scopes_supported"); !slices.Equal(got, permissions.Scopes()) {
		t.Errorf("scopes_supported = %v", got)
	}
	for _, g := range []string{"authorization_code", "client_credentials", "refresh_token", "password"} {
		if !slices.Contains(list("grant_types_supported"), g) {
			t.Errorf("grant_types_supported lacks %s", g)
		}
	}
	if !slices.Contains(list("token_endpoint_auth_methods_supported"), "client_secret_basic") {
		t.Errorf("token_endpoint_auth_methods_supported = %v", md["token_endpoint_auth_methods_supported"])
	}
}

func TestAuthorizationCodePKCE(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		client := e.public()
		verifier, challenge := pkcePair()
		code := e.signInAndConsent(client, challenge)

		// A wrong verifier is refused.
		bad := e.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "client_id": {client}, "code_verifier": {"wrong-" + strings.Repeat("y", 50)}}, "", "")
		if bad.status != http.StatusBadRequest || bad.json["error"] != "invalid_grant" {
			t.Fatalf("wrong verifier: %d %s", bad.status, bad.body)
		}

		// The exchange with the right verifier, on a fresh code.
		code = e.signInAndConsent(client, challenge)
		tok := e.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "client_id": {client}, "code_verifier": {verifier}}, "", "")
		if tok.status != http.StatusOK {
			t.Fatalf("token: %d %s", tok.status, tok.body)
		}
		at, _ := tok.json["access_token"].(string)
		rt, _ := tok.json["refresh_token"].(string)
		if k, err := secret.Parse(at); err != nil || k != secret.KindOAuthAccess {
			t.Errorf("access token %q is not slw_oat_: %v", at, err)
		}
		if k, err := secret.Parse(rt); err != nil || k != secret.KindOAuthRefresh {
			t.Errorf("refresh token %q is not slw_ort_: %v", rt, err)
		}
		if tok.json["token_type"] != "bearer" || tok.json["scope"] != "project_read service_read" {
			t.Errorf("token response: %s", tok.body)
		}

		g, err := e.p.Resolve(context.Background(), at)
		if err != nil {
			t.Fatal(err)
		}
		if g.UserID != e.userID || g.ClientID != client || g.TeamID != teamID || g.GrantType != "authorization_code" ||
			!slices.Equal(g.Scopes, []string{"project_read", "service_read"}) || time.Until(g.ExpiresAt) < 50*time.Minute {
			t.Errorf("Resolve = %+v", g)
		}
		// A code works once.
		again := e.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "client_id": {client}, "code_verifier": {verifier}}, "", "")
		if again.status != http.StatusBadRequest {
			t.Errorf("code reuse: %d %s", again.status, again.body)
		}
		// …and its reuse revokes what it issued.
		if _, err := e.p.Resolve(context.Background(), at); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("Resolve after code reuse = %v, want ErrInvalidToken", err)
		}
	})
}

func TestPublicClientWithoutPKCERefused(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		client := e.public()
		b := e.browser()
		r := b.get(authorizeURL(e, client, "", redirect))
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status/100 != 3 || loc == nil || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("authorize without PKCE: %d %s %s", r.status, r.header.Get("Location"), r.body)
		}
		// plain is not accepted either.
		q := authorizeURL(e, client, "x", redirect)
		q = strings.Replace(q, "code_challenge_method=S256", "code_challenge_method=plain", 1)
		r = b.get(q)
		loc, _ = url.Parse(r.header.Get("Location"))
		if loc == nil || loc.Query().Get("error") == "" {
			t.Fatalf("plain PKCE: %d %s", r.status, r.header.Get("Location"))
		}
	})
}

func TestRedirectURIExactMatch(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		client := e.public()
		_, challenge := pkcePair()
		b := e.browser()
		for _, u := range []string{
			"http://127.0.0.1:8888/callback", // another port: fosite's loopback rule would allow it
			redirect + "/other",
			"https://evil.example/callback",
		} {
			r := b.get(authorizeURL(e, client, challenge, u))
			if r.status/100 == 3 || r.status == http.StatusOK {
				t.Errorf("redirect_uri %s: %d %s", u, r.status, r.header.Get("Location"))
			}
		}
	})
}

func TestCSRF(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		client := e.public()
		_, challenge := pkcePair()
		b := e.browser()
		au := authorizeURL(e, client, challenge, redirect)
		page := b.get(au)
		good := csrfOf(t, page)
		for name, form := range map[string]url.Values{
			"missing": {"action": {"sign_in"}, "email": {userEmail}, "password": {userPass}},
			"wrong":   {"csrf_token": {base64.RawURLEncoding.EncodeToString(make([]byte, 32))}, "action": {"sign_in"}, "email": {userEmail}, "password": {userPass}},
		} {
			if r := b.submit(au, form); r.status != http.StatusForbidden {
				t.Errorf("%s CSRF token: %d", name, r.status)
			}
		}
		// The right token without its cookie (another browser) is refused.
		other := e.browser()
		if r := other.submit(au, url.Values{"csrf_token": {good}, "action": {"sign_in"}, "email": {userEmail}, "password": {userPass}}); r.status != http.StatusForbidden {
			t.Errorf("token without cookie: %d", r.status)
		}
		// Wrong password re-renders the sign-in page.
		if r := b.submit(au, url.Values{"csrf_token": {good}, "action": {"sign_in"}, "email": {userEmail}, "password": {"nope"}}); r.status != http.StatusUnauthorized {
			t.Errorf("wrong password: %d", r.status)
		}
		// Consent with the pre-sign-in token after signing in is refused:
		// signing in rotates the token.
		consent := b.submit(au, url.Values{"csrf_token": {good}, "action": {"sign_in"}, "email": {userEmail}, "password": {userPass}})
		if consent.status != http.StatusOK {
			t.Fatalf("sign in: %d", consent.status)
		}
		if r := b.submit(au, url.Values{"csrf_token": {good}, "action": {"consent"}, "decision": {"allow"}}); r.status != http.StatusForbidden {
			t.Errorf("stale token on consent: %d", r.status)
		}
		// Deny redirects with access_denied.
		r := b.submit(au, url.Values{"csrf_token": {csrfOf(t, consent)}, "action": {"consent"}, "decision": {"deny"}})
		loc, _ := url.Parse(r.header.Get("Location"))
		if loc == nil || loc.Query().Get("error") != "access_denied" {
			t.Errorf("deny: %d %s", r.status, r.header.Get("Location"))
		}
	})
}

func TestClientCredentials(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		id, sec := e.confidential(oauth.GrantClientCredentials)
		tok := e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"service_read"}}, id, sec)
		if tok.status != http.StatusOK {
			t.Fatalf("token: %d %s", tok.status, tok.body)
		}
		if _, ok := tok.json["refresh_token"]; ok {
			t.Error("client credentials issued a refresh token")
		}
		g, err := e.p.Resolve(context.Background(), tok.json["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if g.UserID != e.userID || g.TeamID != teamID || g.GrantType != "client_credentials" || !slices.Equal(g.Scopes, []string{"service_read"}) {
			t.Errorf("Resolve = %+v", g)
		}
		if r := e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, id, "slw_sk_wrong"); r.status != http.StatusUnauthorized {
			t.Errorf("wrong secret: %d %s", r.status, r.body)
		}
		if r := e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"secret_write"}}, id, sec); r.status != http.StatusBadRequest || r.json["error"] != "invalid_scope" {
			t.Errorf("unregistered scope: %d %s", r.status, r.body)
		}
	})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		id, sec := e.confidential(oauth.GrantAuthorizationCode, oauth.GrantRefreshToken)
		verifier, challenge := pkcePair()
		code := e.signInAndConsent(id, challenge)
		tok := e.post("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {redirect}, "code_verifier": {verifier}}, id, sec)
		if tok.status != http.StatusOK {
			t.Fatalf("token: %d %s", tok.status, tok.body)
		}
		rt1, at1 := tok.json["refresh_token"].(string), tok.json["access_token"].(string)

		ref := e.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}, id, sec)
		if ref.status != http.StatusOK {
			t.Fatalf("refresh: %d %s", ref.status, ref.body)
		}
		rt2, at2 := ref.json["refresh_token"].(string), ref.json["access_token"].(string)
		if rt2 == rt1 || at2 == at1 {
			t.Fatal("refresh did not rotate")
		}
		if _, err := e.p.Resolve(context.Background(), at1); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("old access token after rotation: %v", err)
		}
		if g, err := e.p.Resolve(context.Background(), at2); err != nil || g.UserID != e.userID {
			t.Errorf("new access token: %+v %v", g, err)
		}

		// Reusing the old refresh token fails and revokes the chain.
		reuse := e.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}, id, sec)
		if reuse.status != http.StatusBadRequest || reuse.json["error"] != "invalid_grant" {
			t.Fatalf("reuse: %d %s", reuse.status, reuse.body)
		}
		if _, err := e.p.Resolve(context.Background(), at2); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("access token after reuse: %v", err)
		}
		if r := e.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}, id, sec); r.status != http.StatusBadRequest {
			t.Errorf("new refresh token after reuse: %d %s", r.status, r.body)
		}
	})
}

func TestIntrospectionAndRevocation(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		id, sec := e.confidential(oauth.GrantClientCredentials)
		tok := e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"project_read service_read"}}, id, sec)
		at := tok.json["access_token"].(string)

		got := e.introspect(at, id, sec)
		if got["active"] != true || got["client_id"] != id || got["scope"] != "project_read service_read" ||
			got["sub"] != id || got["team_id"] != teamID || got["user_id"] != e.userID {
			t.Errorf("introspect active: %v", got)
		}
		if _, ok := got["exp"].(float64); !ok || got["iat"] == nil {
			t.Errorf("introspect lacks exp: %v", got)
		}
		if got := e.introspect("slw_oat_"+strings.Repeat("0", 47), id, sec); len(got) != 1 || got["active"] != false {
			t.Errorf("introspect unknown: %v", got)
		}
		// Introspection needs client authentication, and not a bearer token.
		if r := e.post("/oauth2/introspect", url.Values{"token": {at}}, id, "wrong"); r.status != http.StatusUnauthorized {
			t.Errorf("introspect with a wrong secret: %d", r.status)
		}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth2/introspect", strings.NewReader(url.Values{"token": {at}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+at)
		if r := e.do(http.DefaultClient, req); r.status != http.StatusUnauthorized {
			t.Errorf("introspect with a bearer token: %d", r.status)
		}

		if r := e.post("/oauth2/revoke", url.Values{"token": {at}}, id, sec); r.status != http.StatusOK {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		if got := e.introspect(at, id, sec); got["active"] != false {
			t.Errorf("introspect after revocation: %v", got)
		}
		if _, err := e.p.Resolve(context.Background(), at); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("Resolve after revocation: %v", err)
		}
		// RFC 7009 §2.2: an unknown token is a success too.
		if r := e.post("/oauth2/revoke", url.Values{"token": {"slw_oat_unknown"}}, id, sec); r.status != http.StatusOK {
			t.Errorf("revoke unknown: %d %s", r.status, r.body)
		}
	})
}

func TestPasswordGrant(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		form := url.Values{"grant_type": {"password"}, "username": {userEmail}, "password": {userPass}, "scope": {"project_read"}}
		id, sec := e.confidential(oauth.GrantClientCredentials)
		if r := e.post("/oauth2/token", form, id, sec); r.status != http.StatusBadRequest || r.json["error"] != "unauthorized_client" {
			t.Errorf("password grant without opt-in: %d %s", r.status, r.body)
		}
		id, sec = e.confidential(oauth.GrantPassword, oauth.GrantRefreshToken)
		r := e.post("/oauth2/token", form, id, sec)
		if r.status != http.StatusOK {
			t.Fatalf("password grant: %d %s", r.status, r.body)
		}
		if _, ok := r.json["refresh_token"].(string); !ok {
			t.Errorf("no refresh token: %s", r.body)
		}
		g, err := e.p.Resolve(context.Background(), r.json["access_token"].(string))
		if err != nil || g.UserID != e.userID || g.GrantType != "password" || !slices.Equal(g.Scopes, []string{"project_read"}) {
			t.Errorf("Resolve = %+v, %v", g, err)
		}
		bad := url.Values{"grant_type": {"password"}, "username": {userEmail}, "password": {"wrong"}}
		if r := e.post("/oauth2/token", bad, id, sec); r.status != http.StatusBadRequest || r.json["error"] != "invalid_grant" {
			t.Errorf("wrong password: %d %s", r.status, r.body)
		}
		// A non-member of the client's team gets nothing.
		e.mu.Lock()
		e.members = map[string]bool{}
		e.mu.Unlock()
		if r := e.post("/oauth2/token", form, id, sec); r.status/100 == 2 {
			t.Errorf("non-member: %d %s", r.status, r.body)
		}
	})
}

func TestResolveRejects(t *testing.T) {
	e := setup(t, sqldb.SQLite)
	for _, tok := range []string{"", "garbage", "slw_oat_" + strings.Repeat("0", 47), "slw_pat_" + strings.Repeat("0", 47)} {
		if _, err := e.p.Resolve(context.Background(), tok); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("Resolve(%q) = %v", tok, err)
		}
	}
	// A refresh token is not an access token.
	id, sec := e.confidential(oauth.GrantPassword, oauth.GrantRefreshToken)
	r := e.post("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {userEmail}, "password": {userPass}}, id, sec)
	if _, err := e.p.Resolve(context.Background(), r.json["refresh_token"].(string)); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Errorf("Resolve(refresh token) = %v", err)
	}
}

func TestRegisterClientValidation(t *testing.T) {
	e := setup(t, sqldb.SQLite)
	base := oauth.ClientSpec{TeamID: teamID, OwnerID: "u", GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{"https://app.example/cb"}, Scopes: []string{"project_read"}}
	for name, mutate := range map[string]func(*oauth.ClientSpec){
		"fragment":         func(s *oauth.ClientSpec) { s.RedirectURIs = []string{"https://app.example/cb#x"} },
		"relative":         func(s *oauth.ClientSpec) { s.RedirectURIs = []string{"/cb"} },
		"plain http":       func(s *oauth.ClientSpec) { s.RedirectURIs = []string{"http://app.example/cb"} },
		"no redirect":      func(s *oauth.ClientSpec) { s.RedirectURIs = nil },
		"unknown grant":    func(s *oauth.ClientSpec) { s.GrantTypes = []string{"implicit"} },
		"unknown scope":    func(s *oauth.ClientSpec) { s.Scopes = []string{"admin"} },
		"no scope":         func(s *oauth.ClientSpec) { s.Scopes = nil },
		"password no flag": func(s *oauth.ClientSpec) { s.GrantTypes = append(s.GrantTypes, "password") },
		"flag no password": func(s *oauth.ClientSpec) { s.AllowPasswordGrant = true },
		"public cc": func(s *oauth.ClientSpec) {
			s.Public = true
			s.GrantTypes = []string{"client_credentials"}
			s.RedirectURIs = nil
		},
		"no team": func(s *oauth.ClientSpec) { s.TeamID = "" },
	} {
		spec := base
		spec.RedirectURIs = slices.Clone(base.RedirectURIs)
		spec.GrantTypes = slices.Clone(base.GrantTypes)
		mutate(&spec)
		if _, _, err := e.p.RegisterClient(context.Background(), spec); !errors.Is(err, oauth.ErrInvalidClient) {
			t.Errorf("%s: err = %v, want ErrInvalidClient", name, err)
		}
	}
	id, sec, err := e.p.RegisterClient(context.Background(), base)
	if err != nil || id == "" || sec == "" {
		t.Fatalf("valid confidential: %q %q %v", id, sec, err)
	}
	pub := base
	pub.Public = true
	pub.RedirectURIs = []string{"com.example.app:/cb", "http://localhost:8080/cb"}
	if _, sec, err := e.p.RegisterClient(context.Background(), pub); err != nil || sec != "" {
		t.Fatalf("valid public: secret %q, %v", sec, err)
	}
}

// TestRoutingErrorsAreOAuthErrors: a path the server does not serve, or an
// endpoint asked with another method, answers in the RFC 6749 JSON error
// format of every other error here, not in net/http's plain text.
func TestRoutingErrorsAreOAuthErrors(t *testing.T) {
	e := setup(t, sqldb.SQLite)
	for _, c := range []struct {
		method, path string
		status       int
		id, allow    string
	}{
		{"GET", "/oauth2/nonexistent", http.StatusNotFound, "not_found", ""},
		{"POST", "/oauth2/", http.StatusNotFound, "not_found", ""},
		{"GET", "/oauth2/token", http.StatusMethodNotAllowed, "invalid_request", "POST"},
		{"DELETE", "/oauth2/authorize", http.StatusMethodNotAllowed, "invalid_request", "GET, HEAD, POST"},
		{"PUT", "/oauth2/introspect", http.StatusMethodNotAllowed, "invalid_request", "POST"},
		{"GET", "/oauth2/revoke", http.StatusMethodNotAllowed, "invalid_request", "POST"},
		{"POST", "/.well-known/oauth-authorization-server", http.StatusMethodNotAllowed, "invalid_request", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(c.method, e.srv.URL+c.path, nil)
		r := e.do(http.DefaultClient, req)
		if r.status != c.status || r.json["error"] != c.id || r.json["error_description"] == nil {
			t.Errorf("%s %s: %d %q, want %d with error %q", c.method, c.path, r.status, r.body, c.status, c.id)
		}
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	// The endpoints themselves still answer.
	if r := e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "", ""); r.status == http.StatusMethodNotAllowed || r.status == http.StatusNotFound {
		t.Errorf("POST /oauth2/token: %d %s", r.status, r.body)
	}
}
