package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestOAuthClientCredentials registers a confidential client through the
// API, gets a token with the client-credentials grant, and shows that the
// token acts within its scopes (read, not write), that introspection
// describes it, and that revocation takes effect at once.
func TestOAuthClientCredentials(t *testing.T) {
	inst := startSlipway(t)
	meta := callJSON(t, "GET", inst.URL+"/.well-known/oauth-authorization-server", "")
	var doc map[string]any
	if err := json.Unmarshal(meta.Raw, &doc); err != nil || doc["issuer"] != inst.URL || doc["token_endpoint"] != inst.URL+"/oauth2/token" {
		t.Fatalf("metadata = %s", meta.Raw)
	}
	client := callJSON(t, "POST", inst.URL+"/v1/oauth-clients",
		`{"name":"Reporting robot","grantTypes":["client_credentials"],"scopes":["project_read"]}`).data(t)
	id, _ := client["id"].(string)
	sec, _ := client["secret"].(string)
	if id == "" || !strings.HasPrefix(sec, "slw_sk_") {
		t.Fatalf("registered client = %v", client)
	}
	listed := callJSON(t, "GET", inst.URL+"/v1/oauth-clients", "").data(t)
	if cs, _ := listed["clients"].([]any); len(cs) != 1 || cs[0].(map[string]any)["secret"] != nil {
		t.Fatalf("client list = %v (the secret must not be listed)", listed)
	}

	form := func(path string, values url.Values) *http.Response {
		t.Helper()
		req, err := http.NewRequest("POST", inst.URL+path, strings.NewReader(values.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, sec)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"project_read"}})
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(tok.AccessToken, "slw_oat_") {
		t.Fatalf("token response %d %+v %v", resp.StatusCode, tok, err)
	}
	bearer := "Bearer " + tok.AccessToken
	if r := call(t, "GET", inst.URL+"/v1/projects", nil, "Authorization", bearer); r.Status != 200 {
		t.Fatalf("read with a project_read token: %d %s", r.Status, r.Raw)
	}
	callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Beyond Scope"}`, "Authorization", bearer).apiErr(t, http.StatusForbidden)

	// The same request as a JSON body, the client's secret in it, through
	// the binary's gateway; and a JSON body of the wrong shape is RFC 6749's
	// invalid_request.
	postJSON := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(inst.URL+"/oauth2/token", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	body, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": sec, "scope": "project_read"})
	status, jtok := postJSON(string(body))
	jat, _ := jtok["access_token"].(string)
	if status != 200 || !strings.HasPrefix(jat, "slw_oat_") || jtok["scope"] != "project_read" {
		t.Fatalf("JSON token request: %d %v", status, jtok)
	}
	if r := call(t, "GET", inst.URL+"/v1/projects", nil, "Authorization", "Bearer "+jat); r.Status != 200 {
		t.Fatalf("read with the JSON-issued token: %d %s", r.Status, r.Raw)
	}
	for _, bad := range []string{`{"grant_type":`, `{"grant_type":["client_credentials"]}`, `{"grant_type":"client_credentials","scope":7}`} {
		if status, out := postJSON(bad); status != http.StatusBadRequest || out["error"] != "invalid_request" {
			t.Errorf("JSON token request %s: %d %v, want 400 invalid_request", bad, status, out)
		}
	}
	if _, err := http.PostForm(inst.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"project_write"}}); err != nil {
		t.Fatal(err)
	}
	if r := form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"project_write"}}); r.StatusCode == 200 {
		t.Fatal("a scope the client was not registered for was granted")
	}

	var info map[string]any
	if err := json.NewDecoder(form("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}).Body).Decode(&info); err != nil || info["active"] != true {
		t.Fatalf("introspection = %v, %v", info, err)
	}
	if r := form("/oauth2/revoke", url.Values{"token": {tok.AccessToken}}); r.StatusCode != 200 {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	callJSON(t, "GET", inst.URL+"/v1/projects", "", "Authorization", bearer).apiErr(t, http.StatusUnauthorized)
	info = nil
	if err := json.NewDecoder(form("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}).Body).Decode(&info); err != nil || info["active"] != false {
		t.Fatalf("introspection after revoke = %v, %v", info, err)
	}
	callJSON(t, "DELETE", inst.URL+"/v1/oauth-clients/"+id, "").data(t)
	callJSON(t, "DELETE", inst.URL+"/v1/oauth-clients/"+id, "").apiErr(t, http.StatusNotFound)
}
