package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Kind is what an Event is about.
type Kind string

// The kinds of Event.
const (
	// Push: commits pushed to a branch or a tag, or a branch deleted.
	Push Kind = "push"
	// PullRequest: a pull (GitLab: merge) request opened, updated, closed.
	PullRequest Kind = "pull_request"
	// Ping: GitHub's test delivery when a webhook is created.
	Ping Kind = "ping"
)

// Event is a webhook in provider-neutral terms. Until Verify has
// succeeded it is only what the sender claims.
type Event struct {
	// Provider is the sender.
	Provider Provider
	// Kind is what the event is about.
	Kind Kind
	// DeliveryID is the delivery's id (see Delivery.ID).
	DeliveryID string
	// RepoURLs are every URL the payload gives for the repository (the
	// base repository of a pull request): web page, https and ssh clone
	// URLs. Match a service's projectUrl against them with Matches.
	RepoURLs []string
	// Ref is the full ref a push updated ("refs/heads/main",
	// "refs/tags/v1"); "" for other kinds.
	Ref string
	// Branch is the branch pushed to, or a pull request's source branch;
	// "" for a tag or another ref.
	Branch string
	// Tag is the tag pushed, "" otherwise. The builds component ignores
	// tag pushes.
	Tag string
	// SHA is the commit the ref now points to (a pull request's head
	// commit), lowercase hex; "" when Deleted.
	SHA string
	// Before is the commit the ref pointed to before a push ("" when the
	// push created it).
	Before string
	// Deleted is true when the push deleted the ref.
	Deleted bool
	// Commits are the pushed commits the payload lists, oldest first, so
	// the last is the head commit when it is listed at all.
	Commits []Commit
	// CommitsTruncated is true when the provider listed only some of the
	// pushed commits (GitLab lists 20, Gitea a few, GitHub 2048).
	CommitsTruncated bool
	// HeadCommitMessage is the message of the commit at SHA, when the
	// payload has it (GitHub and Gitea pull request payloads do not).
	HeadCommitMessage string
	// PullRequest is set for Kind PullRequest.
	PullRequest *PR
}

// Commit is one commit of a push.
type Commit struct {
	// SHA is the commit id, lowercase hex.
	SHA string
	// Message is the full commit message.
	Message string
	// Added, Modified and Removed are the files the commit changed,
	// relative to the repository root.
	Added, Modified, Removed []string
}

// PR is a pull request (GitLab: merge request).
type PR struct {
	// ID is the pull request's number in its repository (GitLab's iid),
	// Northflank's pullRequestId.
	ID int
	// Action is what happened: one of the PR* actions below, or the
	// provider's own word for anything else.
	Action string
	// State is "open", "closed" or "merged".
	State string
	// Source is the branch the changes come from (head), Destination the
	// branch they would be merged into (base).
	Source, Destination string
	// SHA is the source's head commit.
	SHA string
	// Title and URL are the pull request's title and web page.
	Title, URL string
	// FromFork is true when the source branch is in another repository:
	// its code was not pushed by anyone with access to this one.
	FromFork bool
	// HeadRef is where the base repository keeps the pull request's head,
	// fetchable even from a fork: refs/pull/N/head (GitHub, Gitea) or
	// refs/merge-requests/N/head (GitLab).
	HeadRef string
}

// The pull request actions every provider's words are mapped to.
const (
	PROpened      = "opened"
	PRReopened    = "reopened"
	PRSynchronize = "synchronize" // new commits on the source branch
	PRClosed      = "closed"      // closed or merged
	PREdited      = "edited"      // title, description or target changed
)

// HasNewHead reports whether the action brought a head commit not built
// before: opened, reopened or new commits.
func (p *PR) HasNewHead() bool {
	return p.Action == PROpened || p.Action == PRReopened || p.Action == PRSynchronize
}

// ChangedPaths returns every file the push's commits added, modified or
// removed, each once, in the order first seen; nil when that is unknown
// (no commit listed, or not all of them), which trigger.Decide reads as
// "build".
func (e *Event) ChangedPaths() []string {
	if e.CommitsTruncated || len(e.Commits) == 0 {
		return nil
	}
	seen := map[string]bool{}
	out := []string{}
	for _, c := range e.Commits {
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, p := range list {
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// Messages returns the commit messages oldest first, the head commit's
// last (added from HeadCommitMessage when the list lacks it), as
// trigger.Commit.Messages wants them.
func (e *Event) Messages() []string {
	var out []string
	for _, c := range e.Commits {
		out = append(out, c.Message)
	}
	switch {
	case e.HeadCommitMessage == "":
	case len(out) > 0 && e.Commits[len(out)-1].SHA == e.SHA:
		out[len(out)-1] = e.HeadCommitMessage // the same commit, as the payload's head_commit tells it
	default:
		out = append(out, e.HeadCommitMessage)
	}
	return out
}

// Matches reports whether the event is about the repository at
// projectURL (see SameRepo).
func (e *Event) Matches(projectURL string) bool {
	for _, u := range e.RepoURLs {
		if SameRepo(u, projectURL) {
			return true
		}
	}
	return false
}

// Parse reads the webhook's payload into an Event. It does not verify the
// signature: call Verify first, or use Receive. Events other than push,
// pull request and GitHub's ping are ErrUnsupportedEvent; a payload that
// is not the provider's JSON, or lacks what the event needs, ErrMalformed.
func (d Delivery) Parse(h http.Header, body []byte) (*Event, error) {
	if len(body) > MaxBodyBytes {
		return nil, ErrTooLarge
	}
	if isForm(h) {
		v, err := url.ParseQuery(string(body))
		if err != nil || v.Get("payload") == "" {
			return nil, errorf(ErrMalformed, "a form-encoded body needs a payload field")
		}
		body = []byte(v.Get("payload"))
	}
	var (
		e   *Event
		err error
	)
	switch d.Provider {
	case GitHub, Gitea:
		e, err = parseGitHubStyle(d, body)
	case GitLab:
		e, err = parseGitLab(d, body)
	default:
		return nil, errorf(ErrUnsupportedEvent, "unknown provider")
	}
	if err != nil {
		return nil, err
	}
	e.Provider, e.DeliveryID = d.Provider, d.ID
	e.RepoURLs = uniqueNonEmpty(e.RepoURLs)
	return e, nil
}

// decode unmarshals a JSON object, refusing anything else.
func decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, v) != nil {
		return errorf(ErrMalformed, "the body is not the provider's JSON payload")
	}
	return nil
}

// setRef fills Ref, Branch and Tag from a pushed ref, refusing a name git
// itself would refuse.
func (e *Event) setRef(ref string) error {
	e.Ref = ref
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		e.Branch = strings.TrimPrefix(ref, "refs/heads/")
		if !validRefName(e.Branch) {
			return errorf(ErrMalformed, "the branch name is not valid")
		}
	case strings.HasPrefix(ref, "refs/tags/"):
		e.Tag = strings.TrimPrefix(ref, "refs/tags/")
		if !validRefName(e.Tag) {
			return errorf(ErrMalformed, "the tag name is not valid")
		}
	case !strings.HasPrefix(ref, "refs/") || !validRefName(ref):
		return errorf(ErrMalformed, "the ref is not valid")
	}
	return nil
}

// setSHAs fills SHA, Before and Deleted from a push's before and after
// commits; an all-zero after is a deletion.
func (e *Event) setSHAs(before, after string, deleted bool) error {
	before, after = strings.ToLower(before), strings.ToLower(after)
	switch {
	case deleted || isZeroSHA(after):
		e.Deleted = true
		after = ""
	case !validSHA(after):
		return errorf(ErrMalformed, "the pushed commit id is not valid")
	}
	if isZeroSHA(before) {
		before = ""
	}
	if before != "" && !validSHA(before) {
		return errorf(ErrMalformed, "the previous commit id is not valid")
	}
	e.SHA, e.Before = after, before
	return nil
}

// setCommits stores the listed commits oldest first (Gitea lists the
// newest first: the list is turned round when its first element is the
// head) and picks the head commit's message.
func (e *Event) setCommits(commits []Commit, total int, headMessage *string) error {
	for i := range commits {
		commits[i].SHA = strings.ToLower(commits[i].SHA)
		if !validSHA(commits[i].SHA) {
			return errorf(ErrMalformed, "a commit id is not valid")
		}
		for _, list := range [][]string{commits[i].Added, commits[i].Modified, commits[i].Removed} {
			for _, p := range list {
				if p == "" || !utf8.ValidString(p) || strings.ContainsRune(p, 0) {
					return errorf(ErrMalformed, "a changed file name is not valid")
				}
			}
		}
	}
	if n := len(commits); n > 1 && commits[0].SHA == e.SHA && commits[n-1].SHA != e.SHA {
		for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
			commits[i], commits[j] = commits[j], commits[i]
		}
	}
	e.Commits = commits
	e.CommitsTruncated = total > len(commits)
	switch {
	case headMessage != nil:
		e.HeadCommitMessage = *headMessage
	default:
		for _, c := range commits {
			if c.SHA == e.SHA && e.SHA != "" {
				e.HeadCommitMessage = c.Message
			}
		}
	}
	return nil
}

// validSHA reports whether s is a SHA-1 or SHA-256 object id in lowercase
// hex.
func validSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

// isZeroSHA reports whether s is the all-zero id providers send for a ref
// that does not exist (before a creation, after a deletion).
func isZeroSHA(s string) bool {
	return (len(s) == 40 || len(s) == 64) && strings.Trim(s, "0") == ""
}

// validRefName reports whether name could be a git branch or tag name,
// following `git check-ref-format`: no control characters, space, ~ ^ : ?
// * [ \ or DEL, no "..", "@{", "//", "/." or ".lock" at an element's end,
// and neither "-" nor "/" nor "." first nor "/" or "." last. A verified
// payload comes from the git server, but the name later reaches git's
// command line, where one starting with "-" would be an option.
func validRefName(name string) bool {
	if name == "" || name == "@" || len(name) > 1024 || !utf8.ValidString(name) {
		return false
	}
	if name[0] == '-' || name[0] == '/' || name[0] == '.' || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return false
		}
	}
	for _, bad := range []string{"..", "@{", "//", "/."} {
		if strings.Contains(name, bad) {
			return false
		}
	}
	for _, elem := range strings.Split(name, "/") {
		if strings.HasSuffix(elem, ".lock") {
			return false
		}
	}
	return true
}

// uniqueNonEmpty drops empty and repeated strings, keeping the order.
func uniqueNonEmpty(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
