package trigger

// MatchBranch reports whether branch matches the build rule pattern, the
// way Northflank documents its branch and pull request build rules: `*` is
// a wildcard for any run of characters, and every other character stands
// for itself. "feature/*" matches every branch that starts with
// "feature/", "feature/a/b" included (Northflank's own example says "all
// commits from branches that start with feature/"), so `*` crosses `/`;
// `**` is accepted and means the same. Matching is case-sensitive, as git
// branch names are.
//
// The match runs in O(len(pattern)·len(branch)) at worst, with no
// recursion, so a hostile pattern cannot stall the caller.
func MatchBranch(pattern, branch string) bool {
	p, s := 0, 0
	// star is the pattern index after the last `*` seen, retry the branch
	// index that star is currently matched up to; -1 = no star yet.
	star, retry := -1, 0
	for s < len(branch) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			for p < len(pattern) && pattern[p] == '*' {
				p++
			}
			star, retry = p, s
		case p < len(pattern) && pattern[p] == branch[s]:
			p++
			s++
		case star >= 0:
			// Let the last star swallow one more byte and try again.
			retry++
			p, s = star, retry
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchAny reports whether branch matches at least one of patterns.
func matchAny(patterns []string, branch string) bool {
	for _, p := range patterns {
		if MatchBranch(p, branch) {
			return true
		}
	}
	return false
}
