package webhook

import (
	"fmt"
	"strings"
)

// GitLab's payloads: only the fields read here.
type (
	glProject struct {
		ID         int64  `json:"id"`
		WebURL     string `json:"web_url"`
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
		HTTPURL    string `json:"http_url"`
		SSHURL     string `json:"ssh_url"`
		URL        string `json:"url"`
	}
	glCommit struct {
		ID       string   `json:"id"`
		Message  string   `json:"message"`
		Added    []string `json:"added"`
		Modified []string `json:"modified"`
		Removed  []string `json:"removed"`
	}
	glPush struct {
		ObjectKind        string     `json:"object_kind"`
		Ref               string     `json:"ref"`
		Before            string     `json:"before"`
		After             string     `json:"after"`
		TotalCommitsCount int        `json:"total_commits_count"`
		Commits           []glCommit `json:"commits"`
		Project           *glProject `json:"project"`
	}
	glMergeRequest struct {
		ObjectKind string     `json:"object_kind"`
		Project    *glProject `json:"project"`
		Attrs      *struct {
			IID             int       `json:"iid"`
			SourceBranch    string    `json:"source_branch"`
			TargetBranch    string    `json:"target_branch"`
			SourceProjectID int64     `json:"source_project_id"`
			TargetProjectID int64     `json:"target_project_id"`
			State           string    `json:"state"`
			Title           string    `json:"title"`
			URL             string    `json:"url"`
			Action          string    `json:"action"`
			Oldrev          string    `json:"oldrev"`
			LastCommit      *glCommit `json:"last_commit"`
		} `json:"object_attributes"`
	}
)

// urls lists the project's URLs, if it is there.
func (p *glProject) urls() []string {
	if p == nil {
		return nil
	}
	return []string{p.WebURL, p.GitHTTPURL, p.GitSSHURL, p.HTTPURL, p.SSHURL, p.URL}
}

// parseGitLab reads GitLab's payloads.
func parseGitLab(d Delivery, body []byte) (*Event, error) {
	switch d.Event {
	case "Push Hook", "Tag Push Hook":
		var p glPush
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		if p.Project == nil {
			return nil, errorf(ErrMalformed, "the payload names no project")
		}
		e := &Event{Kind: Push, RepoURLs: p.Project.urls()}
		if err := e.setRef(p.Ref); err != nil {
			return nil, err
		}
		if err := e.setSHAs(p.Before, p.After, false); err != nil {
			return nil, err
		}
		commits := make([]Commit, len(p.Commits))
		for i, c := range p.Commits {
			commits[i] = Commit{SHA: c.ID, Message: c.Message, Added: c.Added, Modified: c.Modified, Removed: c.Removed}
		}
		if err := e.setCommits(commits, p.TotalCommitsCount, nil); err != nil {
			return nil, err
		}
		return e, nil
	case "Merge Request Hook":
		var p glMergeRequest
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		a := p.Attrs
		if a == nil || p.Project == nil {
			return nil, errorf(ErrMalformed, "the payload has no merge request or project")
		}
		pr := &PR{
			ID: a.IID, Action: glAction(a.Action, a.Oldrev), State: glState(a.State), Source: a.SourceBranch,
			Destination: a.TargetBranch, Title: a.Title, URL: a.URL,
			FromFork: a.SourceProjectID != a.TargetProjectID, HeadRef: fmt.Sprintf("refs/merge-requests/%d/head", a.IID),
		}
		e := &Event{Kind: PullRequest, RepoURLs: p.Project.urls(), PullRequest: pr}
		if a.LastCommit != nil {
			pr.SHA = strings.ToLower(a.LastCommit.ID)
			e.HeadCommitMessage = a.LastCommit.Message
		}
		if err := e.setPR(pr); err != nil {
			return nil, err
		}
		return e, nil
	}
	return nil, errorf(ErrUnsupportedEvent, "only push and merge request events start builds")
}

// glAction maps GitLab's merge request actions to PR*: "update" is new
// commits when GitLab sends the previous head (oldrev), an edit otherwise.
func glAction(action, oldrev string) string {
	switch action {
	case "open":
		return PROpened
	case "reopen":
		return PRReopened
	case "close", "merge":
		return PRClosed
	case "update":
		if oldrev != "" {
			return PRSynchronize
		}
		return PREdited
	}
	return action
}

// glState maps GitLab's merge request states to PR.State.
func glState(s string) string {
	switch s {
	case "opened", "locked":
		return "open"
	}
	return s
}
