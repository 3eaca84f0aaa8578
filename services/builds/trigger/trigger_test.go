package trigger

import "testing"

func TestDecide(t *testing.T) {
	restricted := Config{BranchRestrictions: []string{"main", "release/*"}}
	prOnly := Config{PRRestrictions: []string{"feature/*"}}
	skip := Config{CIIgnoreFlagsEnabled: true}
	for _, c := range []struct {
		name   string
		cfg    Config
		commit Commit
		build  bool
		reason string
	}{
		// Build rules.
		{"no rules: any branch builds", Config{}, Commit{Branch: "dev"}, true, ""},
		{"no rules: a pull request does not build", Config{},
			Commit{Branch: "feature/x", PullRequest: 3},
			false, "pull request #3 does not build: no pull request restrictions are set"},
		{"no branch", Config{}, Commit{}, false, "the commit is on no branch"},
		{"branch matches", restricted, Commit{Branch: "main"}, true, ""},
		{"branch matches a wildcard", restricted, Commit{Branch: "release/1.2"}, true, ""},
		{"branch outside the restrictions", restricted, Commit{Branch: "dev"},
			false, "branch dev does not match the branch restrictions [main release/*]"},
		{"pull request with only branch rules", restricted,
			Commit{Branch: "main", PullRequest: 7, PRSource: "main"},
			false, "pull request #7 does not build: no pull request restrictions are set"},
		{"pull request source matches", prOnly, Commit{PullRequest: 4, PRSource: "feature/login"}, true, ""},
		{"pull request source from Branch", prOnly, Commit{PullRequest: 4, Branch: "feature/login"}, true, ""},
		{"pull request source outside the restrictions", prOnly, Commit{PullRequest: 4, PRSource: "fix/login"},
			false, "pull request #4 from branch fix/login does not match the pull request restrictions [feature/*]"},
		{"pull request with no source branch", prOnly, Commit{PullRequest: 4},
			false, "pull request #4 has no source branch"},
		{"branch push with only pull request rules", prOnly, Commit{Branch: "feature/login"},
			false, "branch feature/login does not build: only pull requests matching [feature/*] build"},
		{"both rules, branch", Config{BranchRestrictions: []string{"main"}, PRRestrictions: []string{"*"}},
			Commit{Branch: "main"}, true, ""},
		{"both rules, pull request", Config{BranchRestrictions: []string{"main"}, PRRestrictions: []string{"*"}},
			Commit{PullRequest: 1, PRSource: "anything"}, true, ""},

		// CI-skip flags: the head commit (the last message) decides.
		{"skip flag", skip, Commit{Branch: "main", Messages: []string{"docs [skip ci]"}},
			false, "commit message contains the CI-skip flag [skip ci]"},
		{"skip flag in any case", skip, Commit{Branch: "main", Messages: []string{"Docs [CI Skip]\n\nbody"}},
			false, "commit message contains the CI-skip flag [ci skip]"},
		{"every default flag works: [skip northflank]", skip,
			Commit{Branch: "main", Messages: []string{"x\n\n[skip northflank]"}},
			false, "commit message contains the CI-skip flag [skip northflank]"},
		{"skip flag in an earlier commit only", skip,
			Commit{Branch: "main", Messages: []string{"wip [skip ci]", "real change"}}, true, ""},
		{"skip flag in the head commit of several", skip,
			Commit{Branch: "main", Messages: []string{"real change", "docs [skip ci]"}},
			false, "commit message contains the CI-skip flag [skip ci]"},
		{"skip flags disabled", Config{CIIgnoreFlags: []string{"[skip ci]"}},
			Commit{Branch: "main", Messages: []string{"[skip ci]"}}, true, ""},
		{"custom flags replace the defaults", Config{CIIgnoreFlagsEnabled: true, CIIgnoreFlags: []string{"#nobuild"}},
			Commit{Branch: "main", Messages: []string{"[skip ci]"}}, true, ""},
		{"custom flag", Config{CIIgnoreFlagsEnabled: true, CIIgnoreFlags: []string{"#nobuild"}},
			Commit{Branch: "main", Messages: []string{"tweak #NoBuild"}},
			false, "commit message contains the CI-skip flag #nobuild"},
		{"an empty custom flag matches nothing", Config{CIIgnoreFlagsEnabled: true, CIIgnoreFlags: []string{"", " "}},
			Commit{Branch: "main", Messages: []string{"anything"}}, true, ""},
		{"no message known", skip, Commit{Branch: "main"}, true, ""},
		{"rules are checked before flags", Config{BranchRestrictions: []string{"main"}, CIIgnoreFlagsEnabled: true},
			Commit{Branch: "dev", Messages: []string{"[skip ci]"}},
			false, "branch dev does not match the branch restrictions [main]"},

		// Path ignore rules.
		{"some file not ignored", Config{PathIgnoreRules: []string{"*.md", "docs/"}},
			Commit{Branch: "main", ChangedPaths: []string{"README.md", "src/app.go"}}, true, ""},
		{"every file ignored", Config{PathIgnoreRules: []string{"*.md", "docs/"}},
			Commit{Branch: "main", ChangedPaths: []string{"README.md", "docs/guide/intro.txt"}},
			false, "every changed file matches the path ignore rules [*.md docs/]"},
		{"a negated rule takes a file back", Config{PathIgnoreRules: []string{"*.md", "!CHANGELOG.md"}},
			Commit{Branch: "main", ChangedPaths: []string{"README.md", "CHANGELOG.md"}}, true, ""},
		{"changed paths unknown", Config{PathIgnoreRules: []string{"*"}}, Commit{Branch: "main"}, true, ""},
		{"no changed path (an empty commit)", Config{PathIgnoreRules: []string{"*"}},
			Commit{Branch: "main", ChangedPaths: []string{}}, true, ""},
		{"only comments as rules", Config{PathIgnoreRules: []string{"# nothing"}},
			Commit{Branch: "main", ChangedPaths: []string{"a"}}, true, ""},
		{"allow list: a file matches", Config{PathIgnoreRules: []string{"services/api/"}, IsAllowList: true},
			Commit{Branch: "main", ChangedPaths: []string{"README.md", "services/api/main.go"}}, true, ""},
		{"allow list: no file matches", Config{PathIgnoreRules: []string{"services/api/"}, IsAllowList: true},
			Commit{Branch: "main", ChangedPaths: []string{"README.md", "services/web/main.go"}},
			false, "no changed file matches the path rules [services/api/] (allow list)"},
		{"allow list with no rules builds", Config{IsAllowList: true},
			Commit{Branch: "main", ChangedPaths: []string{"a"}}, true, ""},
		{"allow list, paths unknown", Config{PathIgnoreRules: []string{"services/api/"}, IsAllowList: true},
			Commit{Branch: "main"}, true, ""},
		{"flags are checked before paths", Config{PathIgnoreRules: []string{"*.md"}, CIIgnoreFlagsEnabled: true},
			Commit{Branch: "main", Messages: []string{"[no ci]"}, ChangedPaths: []string{"README.md"}},
			false, "commit message contains the CI-skip flag [no ci]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			build, reason := Decide(c.cfg, c.commit)
			if build != c.build || reason != c.reason {
				t.Errorf("Decide = %v, %q; want %v, %q", build, reason, c.build, c.reason)
			}
		})
	}
}
