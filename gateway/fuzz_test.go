package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRequestBody sends arbitrary bodies through the whole gateway into a
// real projects service: whatever arrives, the answer is a well-formed
// envelope and never a 500 (a panic would be a 500 too). The seeds run in
// every `go test`; `go test -fuzz FuzzRequestBody ./gateway` explores.
func FuzzRequestBody(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `1e309`, `{"name":"Fuzz Project"}`, `{"name":"Fuzz Project","color":"#ABCDEF"}`,
		`{"name":{"nested":true}}`, `{"name":["a"]}`, `{"description":1.5}`, `{"name":"\u0000\u0000\u0000"}`,
		`{"name":"ok name","region":null}`, `{"name":"a","name":"bbbbb"}`, `{"name":"` + strings.Repeat("é", 50) + `"}`,
		`{"name":"abc"`, `{"per_page":3}`, `{"createdAt":"2020-01-01T00:00:00Z"}`, "\xff\xfe", `{"name":"abc"}garbage`,
		// Strings no database keeps: a NUL, bytes that are not UTF-8, a lone
		// surrogate.
		`{"name":"Fuzz Project","description":"\u0000"}`, "{\"name\":\"Fuzz \xff Project\"}", `{"name":"Fuzz \ud800 Project"}`,
		"{\"name\":\"Fuzz Project\",\"description\":\"\xc3\"}",
	} {
		f.Add("POST", seed)
		f.Add("PATCH", seed)
		f.Add("PUT", seed)
	}
	base := newGateway(f)
	f.Fuzz(func(t *testing.T, method, body string) {
		path := "/v1/projects"
		switch method {
		case "POST", "PUT":
		case "PATCH":
			path = "/v1/projects/fuzz-project"
		default:
			return
		}
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer test-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var envelope map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&envelope); err != nil {
			t.Fatalf("%s %q: response is not JSON: %v", method, body, err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %q: status %d %s", method, body, resp.StatusCode, envelope["error"])
		}
		_, hasData := envelope["data"]
		_, hasError := envelope["error"]
		if hasData == hasError || (resp.StatusCode == 200) != hasData {
			t.Fatalf("%s %q: status %d with envelope keys %v", method, body, resp.StatusCode, envelope)
		}
	})
}

// FuzzRequestTarget sends arbitrary path ids and cursors through the whole
// gateway into a real projects service: never a 500; an id holding a NUL
// or bytes that are not UTF-8 is a 400 naming projectId; and any cursor
// this server did not issue (a fuzzer cannot forge one) is a 400 naming
// cursor. The seeds run in every `go test`; `go test -fuzz
// FuzzRequestTarget ./gateway` explores.
func FuzzRequestTarget(f *testing.F) {
	for _, seed := range [][2]string{
		{"ok-project", ""}, {"\x00", "AA"}, {"\xff", "_w"}, {"a\x00b", "\x00"}, {"\xc3", "\xff"},
		{"é", "ZWRnZQ"}, {"%ZZ", "%ZZ"}, {"x", "!!"}, {"x", "="}, {"\ufffd", "\ufffd"},
	} {
		f.Add(seed[0], seed[1])
	}
	base := newGateway(f)
	f.Fuzz(func(t *testing.T, id, cursor string) {
		if id == "" || id == "." || id == ".." || strings.Contains(id, "/") {
			return // other routes (the mux splits %2F too), or a path the client cleans
		}
		get := func(target string) (int, map[string]any) {
			req, err := http.NewRequest("GET", base+target, nil)
			if err != nil {
				t.Skip() // not a URL the client sends
			}
			req.Header.Set("Authorization", "Bearer test-token")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var envelope map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&envelope); err != nil {
				t.Fatalf("GET %s: response is not JSON: %v", target, err)
			}
			if resp.StatusCode >= 500 {
				t.Fatalf("GET %s: status %d %v", target, resp.StatusCode, envelope["error"])
			}
			return resp.StatusCode, envelope
		}
		names := func(envelope map[string]any, field string) bool {
			e, _ := envelope["error"].(map[string]any)
			d, _ := e["details"].(map[string]any)
			_, ok := d[field]
			return ok && e["id"] == "VALIDATION_FAILED"
		}
		status, envelope := get("/v1/projects/" + url.PathEscape(id))
		if (!utf8.ValidString(id) || strings.ContainsRune(id, 0)) && (status != 400 || !names(envelope, "projectId")) {
			t.Fatalf("id %q: status %d %v, want 400 naming projectId", id, status, envelope)
		}
		if cursor == "" {
			return
		}
		status, envelope = get("/v1/projects?cursor=" + url.QueryEscape(cursor))
		if status != 400 || !names(envelope, "cursor") {
			t.Fatalf("cursor %q: status %d %v, want 400 naming cursor", cursor, status, envelope)
		}
	})
}
