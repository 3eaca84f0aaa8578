package slug

import "testing"

func TestMake(t *testing.T) {
	for in, want := range map[string]string{
		"My App":          "my-app",
		"  Spaces  ":      "spaces",
		"a--b__c":         "a-b-c",
		"Already-slug-1":  "already-slug-1",
		"Ünïcode Project": "n-code-project",
		"!!!":             "",
		"":                "",
		"x":               "x",
	} {
		if got := Make(in); got != want {
			t.Errorf("Make(%q) = %q, want %q", in, got, want)
		}
	}
}
