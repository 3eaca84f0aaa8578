package e2e

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// followLinks pages through the list at first by its Link rel="next"
// headers alone, as a ComputeStacks client does, and returns how many
// times each id (under key in data) was listed, and the whole list's size
// (Total, which every page must say alike, with the page size in
// Per-Page). The last page has no Link.
func followLinks(t *testing.T, base, first, key string, perPage int) (map[string]int, int) {
	t.Helper()
	baseURL, _ := url.Parse(base)
	seen := map[string]int{}
	total := -1
	for next, pages := first, 0; next != ""; pages++ {
		if pages > 50 {
			t.Fatalf("%s: Link never ends", first)
		}
		r := callJSON(t, "GET", next, "")
		items := r.data(t)[key].([]any)
		for _, it := range items {
			seen[it.(map[string]any)["id"].(string)]++
		}
		if got := r.Header.Get("Per-Page"); got != strconv.Itoa(perPage) {
			t.Errorf("%s: Per-Page %q, want %d", next, got, perPage)
		}
		n, err := strconv.Atoi(r.Header.Get("Total"))
		if err != nil || (total >= 0 && n != total) {
			t.Fatalf("%s: Total %q (earlier pages said %d)", next, r.Header.Get("Total"), total)
		}
		total = n
		link := r.Header.Get("Link")
		if link == "" {
			next = ""
			continue
		}
		target, ok := strings.CutPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
		u, err := url.Parse(target)
		if !ok || !strings.HasSuffix(link, `>; rel="next"`) || err != nil || u.Host != baseURL.Host || u.Scheme != baseURL.Scheme {
			t.Fatalf("%s: Link %q is not an absolute rel=next URL on %s", next, link, base)
		}
		next = target
	}
	return seen, total
}

// TestPaginationLinkHeaders: on real lists of the running binary (projects
// and a project's jobs), following Link from the first page visits every
// item exactly once, with Total and Per-Page on every page.
func TestPaginationLinkHeaders(t *testing.T) {
	inst := startSlipway(t)
	var projects []string
	for i := range 7 {
		name := fmt.Sprintf("Paged Project %d", i)
		projects = append(projects, callJSON(t, "POST", inst.URL+"/v1/projects", fmt.Sprintf(`{"name":%q}`, name)).data(t)["id"].(string))
	}
	seen, total := followLinks(t, inst.URL, inst.URL+"/v1/projects?per_page=3", "projects", 3)
	if total != len(seen) {
		t.Errorf("Total says %d projects, following Link listed %v", total, seen)
	}
	for _, id := range projects {
		if seen[id] != 1 {
			t.Errorf("project %s listed %d times following Link", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("project %s listed %d times following Link", id, n)
		}
	}

	var jobs []string
	for i := range 5 {
		jobs = append(jobs, callJSON(t, "POST", inst.URL+"/v1/projects/"+projects[0]+"/jobs/manual",
			commandJob(fmt.Sprintf("Paged Job %d", i), "true")).data(t)["id"].(string))
	}
	seen, total = followLinks(t, inst.URL, inst.URL+"/v1/projects/"+projects[0]+"/jobs?per_page=2", "jobs", 2)
	if len(seen) != len(jobs) || total != len(jobs) {
		t.Errorf("following Link listed jobs %v (Total %d), want %v", seen, total, jobs)
	}
	for _, id := range jobs {
		if seen[id] != 1 {
			t.Errorf("job %s listed %d times following Link", id, seen[id])
		}
	}
	// Starting from a numbered page joins the cursor chain: the pages
	// after it, nothing twice.
	rest, total := followLinks(t, inst.URL, inst.URL+"/v1/projects/"+projects[0]+"/jobs?per_page=2&page=2", "jobs", 2)
	if len(rest) != 3 || total != len(jobs) {
		t.Errorf("from page 2 of 2-job pages, Link listed %v (Total %d); want the last 3 jobs of 5", rest, total)
	}
	for id, n := range rest {
		if n != 1 || seen[id] != 1 {
			t.Errorf("job %s listed %d times from page 2", id, n)
		}
	}
}

// TestPostmanCollectionWithNewman loads the binary's Postman collection
// with Postman's own npm packages (postman-collection, newman; pinned in
// e2e/js) and runs its create-project and list-projects requests against
// the binary with newman (e2e/js/postman.newman.mjs).
func TestPostmanCollectionWithNewman(t *testing.T) {
	jsDir := requireNodeSuite(t)
	inst := startSlipway(t)
	runNodeSuite(t, jsDir, inst.URL, "postman.newman.mjs")
}
