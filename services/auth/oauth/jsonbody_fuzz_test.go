package oauth

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeJSONForm: whatever the body, decoding never panics, and what
// it accepts is exactly a JSON object of distinct string members, each
// carried over unchanged.
func FuzzDecodeJSONForm(f *testing.F) {
	for _, seed := range []string{
		`{"grant_type":"client_credentials","scope":"a b"}`, `{}`, `{"a":1}`, `{"a":"x","a":"y"}`, `[]`, `{"a":"b"}x`,
		`{"a":{"b":"c"}}`, `{"a":"\u00e9\n"}`, `{`, ``, `null`, `{"a":"b",}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, err := decodeJSONForm(strings.NewReader(body))
		if err != nil {
			return
		}
		var object map[string]string
		if err := json.Unmarshal([]byte(body), &object); err != nil {
			t.Fatalf("accepted %q, which is not an object of strings: %v", body, err)
		}
		if len(object) != len(form) {
			t.Fatalf("accepted %q as %v", body, form)
		}
		for name, value := range object {
			if got := form[name]; len(got) != 1 || got[0] != value {
				t.Fatalf("accepted %q: %s = %q, want %q", body, name, got, value)
			}
		}
	})
}
