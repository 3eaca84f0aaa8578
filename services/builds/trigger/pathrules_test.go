package trigger

import (
	"strings"
	"testing"
)

// pathRuleCases were checked against `git check-ignore --no-index` (git
// 2.39) with the rules as a .gitignore: git's answer is the expected one.
var pathRuleCases = []struct {
	rules []string
	path  string
	want  bool
}{
	// A name with no "/" matches at any depth, case-sensitively.
	{[]string{"README.md"}, "README.md", true},
	{[]string{"README.md"}, "docs/README.md", true},
	{[]string{"README.md"}, "README.md.bak", false},
	{[]string{"README.md"}, "readme.md", false},
	{[]string{"README.md"}, "./README.md", true},
	// A trailing "/" matches directories only, and so every file in them.
	{[]string{"node_modules/"}, "node_modules/a.js", true},
	{[]string{"node_modules/"}, "x/node_modules/b/c.js", true},
	{[]string{"node_modules/"}, "node_modules", false},
	{[]string{"node_modules/"}, "node_modulesx/a.js", false},
	{[]string{"*.foo"}, "a.foo", true},
	{[]string{"*.foo"}, "d/e/a.foo", true},
	{[]string{"*.foo"}, "a.foo/b", true},
	{[]string{"*.foo"}, "foo", false},
	{[]string{"**/foo"}, "foo", true},
	{[]string{"**/foo"}, "a/foo", true},
	{[]string{"**/foo"}, "a/b/foo/c", true},
	{[]string{"**/foo"}, "afoo", false},
	// The last matching rule wins; a negation re-includes a file...
	{[]string{"*.foo", "!important/file.foo"}, "important/file.foo", false},
	{[]string{"*.foo", "!important/file.foo"}, "x/important/file.foo", true},
	{[]string{"*.md", "!README.md"}, "docs/README.md", false},
	{[]string{"*.md", "!README.md"}, "CHANGELOG.md", true},
	{[]string{"!README.md", "*.md"}, "README.md", true},
	// ...but not one whose directory is matched.
	{[]string{"docs/", "!docs/keep.md"}, "docs/keep.md", true},
	{[]string{"*.md", "!README.md", "docs/"}, "docs/README.md", true},
	{[]string{"docs/*", "!docs/keep/"}, "docs/a.md", true},
	{[]string{"docs/*", "!docs/keep/"}, "docs/keep/b.md", false},
	// A "/" at the start or in the middle anchors at the root.
	{[]string{"/build"}, "build", true},
	{[]string{"/build"}, "build/out.js", true},
	{[]string{"/build"}, "src/build", false},
	{[]string{"docs/*.md"}, "docs/a.md", true},
	{[]string{"docs/*.md"}, "docs/sub/a.md", false},
	{[]string{"docs/*.md"}, "a/docs/a.md", false},
	{[]string{"foo/bar/"}, "foo/bar/x", true},
	{[]string{"foo/bar/"}, "foo/bar", false},
	{[]string{"foo/bar/"}, "x/foo/bar/y", false},
	{[]string{"a/*/c"}, "a/b/c", true},
	{[]string{"a/*/c"}, "a/b/d/c", false},
	// "**" as a whole element spans directories.
	{[]string{"docs/**/*.md"}, "docs/a.md", true},
	{[]string{"docs/**/*.md"}, "docs/sub/deeper/a.md", true},
	{[]string{"docs/**/*.md"}, "docs/sub/a.txt", false},
	{[]string{"docs/**"}, "docs/a", true},
	{[]string{"docs/**"}, "docs/a/b", true},
	{[]string{"docs/**"}, "docs", false},
	{[]string{"a/**/b"}, "a/b", true},
	{[]string{"a/**/b"}, "a/x/y/b/c", true},
	{[]string{"a/**/b"}, "b", false},
	{[]string{"**"}, "any/thing", true},
	{[]string{"*"}, "any/thing", true},
	// Elsewhere "**" is "*".
	{[]string{"**foo"}, "a/xfoo", true},
	{[]string{"a**b/c"}, "axyb/c", true},
	{[]string{"a**b/c"}, "a/b/c", false},
	// Classes, "?" and escapes.
	{[]string{"[abc].txt"}, "a.txt", true},
	{[]string{"[abc].txt"}, "d.txt", false},
	{[]string{"[!abc].txt"}, "d.txt", true},
	{[]string{"[!abc].txt"}, "a.txt", false},
	{[]string{"?.go"}, "a.go", true},
	{[]string{"?.go"}, "ab.go", false},
	{[]string{`\#file`}, "#file", true},
	{[]string{`\!important`}, "!important", true},
	{[]string{`\*`}, "*", true},
	{[]string{`\*`}, "x", false},
	// Comments, blank rules and trailing spaces.
	{[]string{"# README.md", "", "   "}, "README.md", false},
	{[]string{"# README.md"}, "# README.md", false},
	{[]string{"trailing   "}, "trailing", true},
	// A malformed rule matches nothing.
	{[]string{"[unclosed"}, "[unclosed", false},
	{[]string{"[unclosed"}, "u", false},
	{nil, "anything", false},
}

func TestPathRules(t *testing.T) {
	for _, c := range pathRuleCases {
		if got := NewPathRules(c.rules).Match(c.path); got != c.want {
			t.Errorf("rules %q, path %q: matched = %v, want %v", c.rules, c.path, got, c.want)
		}
	}
}

func TestPathRulesEmpty(t *testing.T) {
	for _, rules := range [][]string{nil, {}, {"", "# only a comment", "  ", "!", "/", "!/"}} {
		if !NewPathRules(rules).Empty() {
			t.Errorf("rules %q: not Empty", rules)
		}
	}
	if NewPathRules([]string{"# c", "*.md"}).Empty() {
		t.Error(`rules ["# c" "*.md"]: Empty`)
	}
}

// FuzzPathRules feeds arbitrary rules and paths to the matcher: it must
// not panic or hang, and must agree with itself under the equivalences
// gitignore promises. The seeds run in every `go test`; `go test -fuzz
// FuzzPathRules ./services/builds/trigger` explores.
func FuzzPathRules(f *testing.F) {
	for _, c := range pathRuleCases {
		f.Add(strings.Join(c.rules, "\n"), c.path)
	}
	f.Add("**/**/**/**/**/**/**/**/a", strings.Repeat("x/", 200)+"b")
	f.Add("[", "[")
	f.Add(`\`, `\`)
	f.Fuzz(func(t *testing.T, rules, p string) {
		lines := strings.Split(rules, "\n")
		r := NewPathRules(lines)
		got := r.Match(p)
		// A rule set followed by a comment, or by a blank line, matches
		// the same paths.
		if again := NewPathRules(append(lines, "# trailing comment", "")).Match(p); again != got {
			t.Fatalf("rules %q path %q: a trailing comment changed %v to %v", lines, p, got, again)
		}
		// "./p" and "/p" name the same file.
		if again := r.Match("./" + p); again != got && !strings.HasPrefix(p, "/") {
			t.Fatalf("rules %q path %q: ./ changed %v to %v", lines, p, got, again)
		}
		// Saying every rule twice changes nothing: the last match wins
		// either way.
		if again := NewPathRules(append(append([]string{}, lines...), lines...)).Match(p); again != got {
			t.Fatalf("rules %q path %q: repeating the rules changed %v to %v", lines, p, got, again)
		}
		// "**" matches every non-empty path.
		if len(splitPath(p)) > 0 && !NewPathRules([]string{"**"}).Match(p) {
			t.Fatalf("path %q: ** did not match", p)
		}
	})
}
