package trigger

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatchBranch(t *testing.T) {
	for _, c := range []struct {
		pattern, branch string
		want            bool
	}{
		{"main", "main", true},
		{"main", "Main", false},
		{"main", "main2", false},
		{"main", "", false},
		{"", "", true},
		{"", "main", false},
		{"*", "anything/at/all", true},
		{"*", "", true},
		{"feature/*", "feature/login", true},
		// Northflank: "feature/*" builds branches that start with feature/.
		{"feature/*", "feature/team/login", true},
		{"feature/*", "feature", false},
		{"feature/*", "features/login", false},
		{"feature/**", "feature/team/login", true},
		{"release-*", "release-1.2", true},
		{"*-hotfix", "v2-hotfix", true},
		{"*-hotfix", "v2-hotfix-2", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"*a*a*a*a*a*b", strings.Repeat("a", 200), false},
		// Only "*" is special: Northflank refuses ?, [ ] in rules, and a
		// literal one matches itself.
		{"v?", "v1", false},
		{"v?", "v?", true},
		{"[ab]", "a", false},
	} {
		if got := MatchBranch(c.pattern, c.branch); got != c.want {
			t.Errorf("MatchBranch(%q, %q) = %v, want %v", c.pattern, c.branch, got, c.want)
		}
	}
}

// FuzzMatchBranch checks MatchBranch against a regular expression built
// from the same pattern ("*" is ".*", everything else literal). The seeds
// run in every `go test`; `go test -fuzz FuzzMatchBranch
// ./services/builds/trigger` explores.
func FuzzMatchBranch(f *testing.F) {
	for _, s := range [][2]string{
		{"main", "main"}, {"feature/*", "feature/a/b"}, {"*", ""}, {"", "x"}, {"a*b*c", "axxbyyc"},
		{"**", "a/b"}, {"*a*a*a*b", "aaaaaaaaaaaaaaaa"}, {"\xff*", "\xff\xfe"}, {"é*", "éa"}, {"*.*", "."},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, branch string) {
		// regexp reads runes and MatchBranch bytes; on valid UTF-8 they
		// agree, since a literal then starts and ends on rune boundaries.
		if !utf8.ValidString(pattern) || !utf8.ValidString(branch) {
			MatchBranch(pattern, branch) // still must not panic
			return
		}
		lits := strings.Split(pattern, "*")
		for i, lit := range lits {
			lits[i] = regexp.QuoteMeta(lit)
		}
		re := `\A(?s)` + strings.Join(lits, ".*") + `\z`
		want := regexp.MustCompile(re).MatchString(branch)
		if got := MatchBranch(pattern, branch); got != want {
			t.Fatalf("MatchBranch(%q, %q) = %v, regexp %s says %v", pattern, branch, got, re, want)
		}
	})
}
