// Package trigger decides whether a pushed commit builds automatically,
// from a service's buildConfiguration: branch and pull request build
// rules, CI-skip flags in the commit message, and path ignore rules.
//
// It is pure: the caller gathers what it knows about the push (from a
// webhook or from polling) into a Commit and asks Decide. Builds started
// by hand (POST …/build) do not go through it, as on Northflank, where
// build rules only say what "will be built automatically".
package trigger

import (
	"fmt"
	"strings"
)

// Config mirrors the fields of Northflank's buildConfiguration that decide
// whether a commit builds. It is a plain struct so this package does not
// depend on the API's generated types.
type Config struct {
	// BranchRestrictions are branch build rules (see MatchBranch): a push
	// to a branch builds when the branch matches one of them.
	BranchRestrictions []string
	// PRRestrictions are pull request build rules: a pull request builds
	// when its source branch matches one of them.
	PRRestrictions []string
	// PathIgnoreRules are rules in .gitignore syntax (see PathRules).
	PathIgnoreRules []string
	// IsAllowList inverts PathIgnoreRules: a commit builds only when a
	// changed file matches one of them.
	IsAllowList bool
	// CIIgnoreFlagsEnabled turns on the CI-skip flags.
	CIIgnoreFlagsEnabled bool
	// CIIgnoreFlags are the CI-skip flags; none given means
	// DefaultCIIgnoreFlags.
	CIIgnoreFlags []string
}

// Commit is what the caller knows of a push or a pull request update.
type Commit struct {
	// Branch is the branch pushed to; for a pull request, its source
	// branch may be given here or in PRSource.
	Branch string
	// PullRequest is the pull request number, 0 for a plain branch push.
	PullRequest int
	// PRSource is the pull request's source (head) branch, which the pull
	// request build rules are matched against; "" means Branch.
	PRSource string
	// Messages are commit messages oldest first, so the last one is the
	// head commit's, the commit that would be built. A caller that knows
	// only the head commit passes just its message.
	Messages []string
	// ChangedPaths are the files the push changed (added, modified or
	// removed, across all its commits), relative to the repository root.
	// nil or empty means unknown (a provider that sends no file lists, a
	// push too large to list, an empty commit): path rules then cannot
	// stop the build.
	ChangedPaths []string
}

// DefaultCIIgnoreFlags are the flags used when CI-skip flags are enabled
// but none are given: Northflank's documented default for ciIgnoreFlags.
var DefaultCIIgnoreFlags = []string{
	"[skip ci]", "[ci skip]", "[no ci]", "[skip nf]", "[nf skip]", "[northflank skip]", "[skip northflank]",
}

// Decide reports whether the commit builds automatically under cfg and,
// when it does not, why, in words meant for the user (it names the
// branch, the rule or the flag, never anything internal).
//
// The checks, in order:
//
//  1. Build rules. With no branch and no pull request rules at all, every
//     branch push builds and pull requests do not (a pull request from the
//     same repository already builds through the push to its branch, and
//     one from a fork would run code the service's owner never pushed).
//     Once any rule is given, only what matches builds: a branch push must
//     match BranchRestrictions, a pull request PRRestrictions (on its
//     source branch), as on Northflank.
//  2. CI-skip flags, when enabled: the head commit's message (the last of
//     Messages) must not contain one of the flags, compared without
//     regard to case. Only the head commit counts, as in GitHub Actions: a
//     flag in an earlier commit of the same push does not stop the newest
//     from building.
//  3. Path rules, when some are given and ChangedPaths are known: normally
//     the commit builds unless every changed file matches the rules; with
//     IsAllowList it builds only if some changed file matches them.
func Decide(cfg Config, c Commit) (build bool, reason string) {
	if ok, why := checkRules(cfg, c); !ok {
		return false, why
	}
	if flag, skip := skipFlag(cfg, c.Messages); skip {
		return false, fmt.Sprintf("commit message contains the CI-skip flag %s", flag)
	}
	rules := NewPathRules(cfg.PathIgnoreRules)
	if rules.Empty() || len(c.ChangedPaths) == 0 {
		return true, ""
	}
	if cfg.IsAllowList {
		for _, p := range c.ChangedPaths {
			if rules.Match(p) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no changed file matches the path rules %s (allow list)", list(cfg.PathIgnoreRules))
	}
	for _, p := range c.ChangedPaths {
		if !rules.Match(p) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("every changed file matches the path ignore rules %s", list(cfg.PathIgnoreRules))
}

// checkRules applies the branch and pull request build rules.
func checkRules(cfg Config, c Commit) (bool, string) {
	noRules := len(cfg.BranchRestrictions) == 0 && len(cfg.PRRestrictions) == 0
	if c.PullRequest > 0 {
		source := c.PRSource
		if source == "" {
			source = c.Branch
		}
		switch {
		case len(cfg.PRRestrictions) == 0:
			return false, fmt.Sprintf("pull request #%d does not build: no pull request restrictions are set", c.PullRequest)
		case source == "":
			return false, fmt.Sprintf("pull request #%d has no source branch", c.PullRequest)
		case !matchAny(cfg.PRRestrictions, source):
			return false, fmt.Sprintf("pull request #%d from branch %s does not match the pull request restrictions %s",
				c.PullRequest, source, list(cfg.PRRestrictions))
		}
		return true, ""
	}
	switch {
	case c.Branch == "":
		return false, "the commit is on no branch"
	case noRules:
		return true, ""
	case len(cfg.BranchRestrictions) == 0:
		return false, fmt.Sprintf("branch %s does not build: only pull requests matching %s build",
			c.Branch, list(cfg.PRRestrictions))
	case !matchAny(cfg.BranchRestrictions, c.Branch):
		return false, fmt.Sprintf("branch %s does not match the branch restrictions %s", c.Branch, list(cfg.BranchRestrictions))
	}
	return true, ""
}

// skipFlag returns the CI-skip flag found in the head commit's message.
func skipFlag(cfg Config, messages []string) (string, bool) {
	if !cfg.CIIgnoreFlagsEnabled || len(messages) == 0 {
		return "", false
	}
	flags := cfg.CIIgnoreFlags
	if len(flags) == 0 {
		flags = DefaultCIIgnoreFlags
	}
	head := strings.ToLower(messages[len(messages)-1])
	for _, f := range flags {
		if strings.TrimSpace(f) == "" {
			continue // an empty flag would be in every message
		}
		if strings.Contains(head, strings.ToLower(f)) {
			return f, true
		}
	}
	return "", false
}

// list formats rules the way users write them: [main release/*].
func list(rules []string) string {
	return "[" + strings.Join(rules, " ") + "]"
}
