package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/services/auth/oauth"
)

// postJSON posts body as application/json, with HTTP Basic when id is
// set.
func (e *env) postJSON(path, body, id, sec string) resp {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(sec))
	}
	return e.do(http.DefaultClient, req)
}

func jsonOf(t *testing.T, v map[string]string) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJSONTokenRequests: the token endpoint takes its parameters as a JSON
// object as well as a form, for every grant: authorization_code (a public
// client with PKCE), client_credentials (the secret in the body,
// client_secret_post) and refresh_token; introspection and revocation
// take JSON too.
func TestJSONTokenRequests(t *testing.T) {
	forEngine(t, func(t *testing.T, e *env) {
		// authorization_code, public client, PKCE.
		client := e.public()
		verifier, challenge := pkcePair()
		code := e.signInAndConsent(client, challenge)
		tok := e.postJSON("/oauth2/token", jsonOf(t, map[string]string{"grant_type": "authorization_code", "code": code,
			"redirect_uri": redirect, "client_id": client, "code_verifier": verifier}), "", "")
		if tok.status != http.StatusOK || tok.json["token_type"] != "bearer" || tok.json["scope"] != "project_read service_read" {
			t.Fatalf("authorization_code through JSON: %d %s", tok.status, tok.body)
		}
		if g, err := e.p.Resolve(context.Background(), tok.json["access_token"].(string)); err != nil || g.ClientID != client || g.UserID != e.userID {
			t.Fatalf("Resolve = %+v, %v", g, err)
		}
		// refresh_token, public client (client_id in the body).
		ref := e.postJSON("/oauth2/token", jsonOf(t, map[string]string{"grant_type": "refresh_token",
			"refresh_token": tok.json["refresh_token"].(string), "client_id": client}), "", "")
		if ref.status != http.StatusOK || ref.json["access_token"] == tok.json["access_token"] {
			t.Fatalf("refresh_token through JSON: %d %s", ref.status, ref.body)
		}

		// client_credentials, the secret in the JSON body.
		id, sec := e.confidential(oauth.GrantClientCredentials)
		cc := e.postJSON("/oauth2/token", jsonOf(t, map[string]string{"grant_type": "client_credentials",
			"client_id": id, "client_secret": sec, "scope": "service_read"}), "", "")
		if cc.status != http.StatusOK || cc.json["scope"] != "service_read" {
			t.Fatalf("client_credentials through JSON: %d %s", cc.status, cc.body)
		}
		at := cc.json["access_token"].(string)
		// …the same checks as a form: a wrong secret is invalid_client.
		if r := e.postJSON("/oauth2/token", jsonOf(t, map[string]string{"grant_type": "client_credentials",
			"client_id": id, "client_secret": "slw_sk_wrong"}), "", ""); r.status != http.StatusUnauthorized || r.json["error"] != "invalid_client" {
			t.Errorf("wrong secret through JSON: %d %s", r.status, r.body)
		}

		// Introspection and revocation.
		r := e.postJSON("/oauth2/introspect", jsonOf(t, map[string]string{"token": at}), id, sec)
		if r.status != http.StatusOK || r.json["active"] != true || r.json["client_id"] != id {
			t.Fatalf("introspect through JSON: %d %s", r.status, r.body)
		}
		if r := e.postJSON("/oauth2/revoke", jsonOf(t, map[string]string{"token": at, "client_id": id, "client_secret": sec}), "", ""); r.status != http.StatusOK {
			t.Fatalf("revoke through JSON: %d %s", r.status, r.body)
		}
		if _, err := e.p.Resolve(context.Background(), at); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Errorf("Resolve after a JSON revocation: %v", err)
		}
	})
}

// TestJSONTokenRequestErrors: a JSON body that is not an object of string
// parameters is RFC 6749's invalid_request (400) on each endpoint, and
// nothing is issued.
func TestJSONTokenRequestErrors(t *testing.T) {
	e := setup(t, "sqlite")
	id, sec := e.confidential(oauth.GrantClientCredentials)
	good := `"grant_type":"client_credentials","client_id":"` + id + `","client_secret":"` + sec + `"`
	for name, body := range map[string]string{
		"malformed":         `{` + good,
		"not an object":     `["grant_type","client_credentials"]`,
		"a string":          `"grant_type=client_credentials"`,
		"empty body":        ``,
		"number":            `{` + good + `,"scope":5}`,
		"null":              `{` + good + `,"scope":null}`,
		"boolean":           `{` + good + `,"scope":true}`,
		"array":             `{` + good + `,"scope":["service_read"]}`,
		"object":            `{` + good + `,"scope":{"a":"b"}}`,
		"given twice":       `{` + good + `,"grant_type":"client_credentials"}`,
		"trailing data":     `{` + good + `} {}`,
		"trailing garbage":  `{` + good + `}x`,
		"bad member string": `{"grant_type":"client_credentials","client_id":"\ud800` + `}`,
	} {
		for _, path := range []string{"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"} {
			basicID, basicSec := "", ""
			if path == "/oauth2/introspect" {
				basicID, basicSec = id, sec
			}
			r := e.postJSON(path, body, basicID, basicSec)
			if r.status != http.StatusBadRequest || r.json["error"] != "invalid_request" {
				t.Errorf("%s to %s: %d %s, want 400 invalid_request", name, path, r.status, r.body)
			}
			if _, ok := r.json["access_token"]; ok {
				t.Errorf("%s to %s issued a token", name, path)
			}
		}
	}
	// The description names the parameter, not its value.
	r := e.postJSON("/oauth2/token", `{`+good+`,"scope":12345}`, "", "")
	if desc, _ := r.json["error_description"].(string); !strings.Contains(desc, "scope") || strings.Contains(desc, "12345") {
		t.Errorf("error_description %q", desc)
	}
	// A form body is read as before.
	if r := e.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, id, sec); r.status != http.StatusOK {
		t.Errorf("form body: %d %s", r.status, r.body)
	}
}
