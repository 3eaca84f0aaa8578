package trigger

import (
	"path"
	"strings"
)

// PathRules is a list of path rules in .gitignore syntax, as Northflank's
// pathIgnoreRules are ("Path ignore rules follow .gitignore syntax"):
//
//   - a blank rule or one starting with "#" is ignored; "\#" and "\!" start
//     a rule with a literal "#" or "!";
//   - "!" in front negates the rule: a path it matches is matched no more,
//     unless a later rule matches it again (the last matching rule wins);
//   - a trailing "/" makes the rule match directories only ("node_modules/"
//     matches every file under any node_modules directory);
//   - a rule with no other "/" matches a file or directory name at any
//     depth ("*.md", "README.md"); a rule with a "/" at its start or in its
//     middle is relative to the repository root ("/build", "docs/*.md");
//   - "*" matches any run of characters but "/", "?" one character but "/",
//     "[a-z]" and "[!a-z]" one character of a class, "\" escapes the next
//     character;
//   - "**" as a whole path element matches any number of directories:
//     "**/foo" is foo at any depth, "a/**/b" is b anywhere under a, and
//     "a/**" is everything inside a.
//
// As in git, a file under a directory a rule matches is matched too, and
// cannot be taken back by a later negated rule for the file itself ("It is
// not possible to re-include a file if a parent directory of that file is
// excluded"). For rules written in the syntax above, the results agree
// with `git check-ignore --no-index`. Where git's own reading is an
// accident of its implementation, this one is simpler: "a//b" is "a/b"
// (git matches nothing), a bracket expression never spans a "/" and "[]"
// is malformed (git reads "[]a]" as a class holding "]"), and "**" glued
// to other characters is "*" wherever it stands.
type PathRules struct {
	rules []pathRule
}

// pathRule is one compiled rule.
type pathRule struct {
	negate   bool
	dirOnly  bool
	anchored bool     // relative to the root, not matched by name at any depth
	elems    []string // the pattern split at "/", each a path.Match pattern or "**"
}

// NewPathRules compiles rules. Malformed rules (an unclosed "[", say) are
// kept but match nothing, as git treats them.
func NewPathRules(rules []string) PathRules {
	var out PathRules
	for _, raw := range rules {
		if r, ok := compileRule(raw); ok {
			out.rules = append(out.rules, r)
		}
	}
	return out
}

// Empty reports whether there is no rule to apply (none given, or only
// blank lines and comments).
func (r PathRules) Empty() bool { return len(r.rules) == 0 }

// compileRule parses one line of .gitignore syntax; ok is false for blank
// lines and comments.
func compileRule(raw string) (pathRule, bool) {
	s := trimTrailingSpaces(strings.TrimRight(raw, "\r\n"))
	if s == "" || s[0] == '#' {
		return pathRule{}, false
	}
	var r pathRule
	if s[0] == '!' {
		r.negate = true
		s = s[1:]
	}
	if strings.HasSuffix(s, "/") {
		r.dirOnly = true
		s = strings.TrimRight(s, "/")
	}
	if s == "" {
		return pathRule{}, false
	}
	r.anchored = strings.Contains(s, "/")
	s = strings.TrimLeft(s, "/")
	if s == "" {
		return pathRule{}, false
	}
	for _, e := range strings.Split(s, "/") {
		if e == "" {
			continue // "a//b" is "a/b"
		}
		if len(e) > 1 && strings.Trim(e, "*") == "" {
			e = "**" // git reads any run of two or more stars that fills an element as "**"
		}
		if e != "**" {
			// gitignore spells a negated class "[!…]"; path.Match "[^…]".
			e = strings.ReplaceAll(e, "[!", "[^")
		}
		r.elems = append(r.elems, e)
	}
	return r, true
}

// trimTrailingSpaces drops trailing spaces that are not escaped with a
// backslash, as git does.
func trimTrailingSpaces(s string) string {
	for strings.HasSuffix(s, " ") && !strings.HasSuffix(s, `\ `) {
		s = s[:len(s)-1]
	}
	return s
}

// Match reports whether the rules match the file at p, a path relative to
// the repository root with "/" separators ("src/app.go"); a leading "/" or
// "./" is allowed. Every directory above p is tried first: a matched
// directory matches everything in it.
func (r PathRules) Match(p string) bool {
	elems := splitPath(p)
	if len(elems) == 0 || len(r.rules) == 0 {
		return false
	}
	for n := 1; n < len(elems); n++ {
		if r.matched(elems[:n], true) {
			return true
		}
	}
	return r.matched(elems, false)
}

// matched applies the rules to one path, the last matching rule deciding.
func (r PathRules) matched(elems []string, isDir bool) bool {
	for i := len(r.rules) - 1; i >= 0; i-- {
		rule := r.rules[i]
		if rule.dirOnly && !isDir {
			continue
		}
		if rule.match(elems) {
			return !rule.negate
		}
	}
	return false
}

// match reports whether the rule's pattern matches the path elements.
func (r pathRule) match(elems []string) bool {
	if !r.anchored {
		// A pattern with no "/" is a single element matched against the
		// name at any depth.
		return matchElem(r.elems[0], elems[len(elems)-1])
	}
	return matchElems(r.elems, elems)
}

// matchElems matches pattern elements against path elements, "**"
// standing for any number of path elements. It fills a table of
// len(pattern)+1 × len(path)+1 answers from the end, one row at a time,
// so patterns with many "**" cost no more than that table's size in time
// and one row in memory.
func matchElems(pattern, elems []string) bool {
	m, n := len(pattern), len(elems)
	// next[j]: pattern[i+1:] matches elems[j:]; cur[j]: pattern[i:] does.
	next, cur := make([]bool, n+1), make([]bool, n+1)
	next[n] = true
	for i := m - 1; i >= 0; i-- {
		for j := n; j >= 0; j-- {
			switch {
			case pattern[i] == "**" && i == m-1 && i > 0:
				// A trailing "/**" is everything inside, not the
				// directory itself: at least one element.
				cur[j] = j < n
			case pattern[i] == "**":
				cur[j] = next[j] || (j < n && cur[j+1])
			default:
				cur[j] = j < n && next[j+1] && matchElem(pattern[i], elems[j])
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

// matchElem matches one pattern element against one path element. A
// "**" that is not a whole element is two "*", which path.Match treats as
// one; a malformed pattern matches nothing.
func matchElem(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// splitPath splits a repository path into its elements, dropping empty
// ones and "." so "./a//b/" is [a b].
func splitPath(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" && e != "." {
			out = append(out, e)
		}
	}
	return out
}
