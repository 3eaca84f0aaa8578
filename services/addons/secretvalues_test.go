package addons

import (
	"maps"
	"strings"
	"testing"
)

// TestPatchSecretValues: a patch's variables replace the variables and
// leave the files, its files replace the files and leave the variables,
// an empty secrets object clears both, and a result over the size bound
// is refused.
func TestPatchSecretValues(t *testing.T) {
	oldVars := map[string]string{"A": "1"}
	oldFiles := map[string]SecretFileValue{"/f": {Data: "eA=="}}
	for _, c := range []struct {
		name       string
		vars       map[string]string
		files      map[string]SecretFileValue
		wantVars   map[string]string
		wantFiles  map[string]SecretFileValue
		wantFailed bool
	}{
		{"variables", map[string]string{"B": "2"}, nil, map[string]string{"B": "2"}, oldFiles, false},
		{"files", nil, map[string]SecretFileValue{"/g": {Data: "eQ=="}}, oldVars, map[string]SecretFileValue{"/g": {Data: "eQ=="}}, false},
		{"empty", nil, nil, nil, nil, false},
		{"too large", map[string]string{"BIG": strings.Repeat("x", secretMaxBytes)}, nil, nil, nil, true},
	} {
		vars, files := maps.Clone(oldVars), maps.Clone(oldFiles)
		err := patchSecretValues(&vars, &files, c.vars, c.files)
		if c.wantFailed {
			if err == nil {
				t.Errorf("%s: accepted", c.name)
			}
			continue
		}
		if err != nil || !maps.Equal(vars, c.wantVars) || !maps.Equal(files, c.wantFiles) {
			t.Errorf("%s: %v, %v, %v", c.name, vars, files, err)
		}
	}
}
