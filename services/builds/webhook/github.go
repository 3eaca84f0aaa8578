package webhook

import (
	"fmt"
	"strings"
)

// GitHub's payloads, and Gitea's, which copy their shape: only the fields
// read here.
type (
	ghRepo struct {
		ID       int64  `json:"id"`
		FullName string `json:"full_name"`
		HTMLURL  string `json:"html_url"`
		CloneURL string `json:"clone_url"`
		SSHURL   string `json:"ssh_url"`
		GitURL   string `json:"git_url"`
	}
	ghCommit struct {
		ID       string   `json:"id"`
		Message  string   `json:"message"`
		Added    []string `json:"added"`
		Modified []string `json:"modified"`
		Removed  []string `json:"removed"`
	}
	ghPush struct {
		Ref        string     `json:"ref"`
		Before     string     `json:"before"`
		After      string     `json:"after"`
		Deleted    bool       `json:"deleted"`
		Commits    []ghCommit `json:"commits"`
		HeadCommit *ghCommit  `json:"head_commit"`
		// TotalCommits is Gitea's count of pushed commits, of which it
		// lists only the newest few.
		TotalCommits int     `json:"total_commits"`
		Repository   *ghRepo `json:"repository"`
	}
	ghPRBranch struct {
		Ref    string  `json:"ref"`
		SHA    string  `json:"sha"`
		RepoID int64   `json:"repo_id"` // Gitea
		Repo   *ghRepo `json:"repo"`
	}
	ghPullRequest struct {
		Action      string `json:"action"`
		Number      int    `json:"number"`
		PullRequest *struct {
			Number  int        `json:"number"`
			State   string     `json:"state"`
			Title   string     `json:"title"`
			HTMLURL string     `json:"html_url"`
			Merged  bool       `json:"merged"`
			Head    ghPRBranch `json:"head"`
			Base    ghPRBranch `json:"base"`
		} `json:"pull_request"`
		Repository *ghRepo `json:"repository"`
	}
	ghPing struct {
		HookID     int64   `json:"hook_id"`
		Repository *ghRepo `json:"repository"`
	}
)

// urls lists the repository's URLs, if it is there.
func (r *ghRepo) urls() []string {
	if r == nil {
		return nil
	}
	return []string{r.HTMLURL, r.CloneURL, r.SSHURL, r.GitURL}
}

// parseGitHubStyle reads GitHub's and Gitea's payloads.
func parseGitHubStyle(d Delivery, body []byte) (*Event, error) {
	switch d.Event {
	case "push":
		var p ghPush
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		if p.Repository == nil {
			return nil, errorf(ErrMalformed, "the payload names no repository")
		}
		e := &Event{Kind: Push, RepoURLs: p.Repository.urls()}
		if err := e.setRef(p.Ref); err != nil {
			return nil, err
		}
		if err := e.setSHAs(p.Before, p.After, p.Deleted); err != nil {
			return nil, err
		}
		commits := make([]Commit, len(p.Commits))
		for i, c := range p.Commits {
			commits[i] = Commit{SHA: c.ID, Message: c.Message, Added: c.Added, Modified: c.Modified, Removed: c.Removed}
		}
		total := p.TotalCommits
		if d.Provider == GitHub && len(commits) >= 2048 {
			total = len(commits) + 1 // GitHub's limit: there may be more
		}
		var head *string
		if p.HeadCommit != nil && !e.Deleted {
			head = &p.HeadCommit.Message
		}
		if err := e.setCommits(commits, total, head); err != nil {
			return nil, err
		}
		return e, nil
	case "pull_request":
		var p ghPullRequest
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		pr := p.PullRequest
		if pr == nil || p.Repository == nil {
			return nil, errorf(ErrMalformed, "the payload has no pull request or repository")
		}
		number := p.Number
		if number == 0 {
			number = pr.Number
		}
		out := &PR{
			ID: number, Action: ghAction(p.Action), State: pr.State, Source: pr.Head.Ref,
			Destination: pr.Base.Ref, SHA: strings.ToLower(pr.Head.SHA), Title: pr.Title, URL: pr.HTMLURL,
			FromFork: ghFork(pr.Head, pr.Base), HeadRef: fmt.Sprintf("refs/pull/%d/head", number),
		}
		if pr.Merged {
			out.State = "merged"
		}
		e := &Event{Kind: PullRequest, RepoURLs: p.Repository.urls(), PullRequest: out}
		if err := e.setPR(out); err != nil {
			return nil, err
		}
		return e, nil
	case "ping":
		if d.Provider != GitHub {
			break
		}
		var p ghPing
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		return &Event{Kind: Ping, RepoURLs: p.Repository.urls()}, nil
	}
	return nil, errorf(ErrUnsupportedEvent, "only push and pull request events start builds")
}

// ghAction maps GitHub's and Gitea's pull request actions to PR*.
func ghAction(a string) string {
	if a == "synchronized" { // Gitea's word
		return PRSynchronize
	}
	return a
}

// ghFork reports whether the head branch is in another repository than
// the base: a deleted fork shows as no head repository.
func ghFork(head, base ghPRBranch) bool {
	switch {
	case head.RepoID != 0 && base.RepoID != 0:
		return head.RepoID != base.RepoID
	case head.Repo == nil || base.Repo == nil:
		return true
	case head.Repo.ID != 0 && base.Repo.ID != 0:
		return head.Repo.ID != base.Repo.ID
	}
	return !strings.EqualFold(head.Repo.FullName, base.Repo.FullName)
}

// setPR checks a pull request and fills the event's Branch and SHA from
// it.
func (e *Event) setPR(pr *PR) error {
	switch {
	case pr.ID <= 0:
		return errorf(ErrMalformed, "the pull request number is not valid")
	case !validRefName(pr.Source) || !validRefName(pr.Destination):
		return errorf(ErrMalformed, "a pull request branch name is not valid")
	case !validSHA(pr.SHA):
		return errorf(ErrMalformed, "the pull request's head commit id is not valid")
	}
	switch pr.State {
	case "open", "closed", "merged":
	default:
		return errorf(ErrMalformed, "the pull request state is not valid")
	}
	e.Branch, e.SHA = pr.Source, pr.SHA
	return nil
}
