package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
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
