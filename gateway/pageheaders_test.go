package gateway_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestPaginationHeaders: every list answers ComputeStacks' Per-Page and
// Total headers, and Link rel="next" to the next page, an absolute URL on
// the request's scheme and host keeping its other query parameters;
// following Link visits every item once and stops at the last page.
func TestPaginationHeaders(t *testing.T) {
	base := newGateway(t)
	for _, name := range []string{"Page One", "Page Two", "Page Three", "Page Four", "Page Five"} {
		if r := do(t, "POST", base+"/v1/projects", `{"name":"`+name+`"}`); r.status != 200 {
			t.Fatalf("create %s: %s", name, r.raw)
		}
	}
	baseURL, _ := url.Parse(base)
	seen := map[string]int{}
	// perPage is the other name grpc-gateway takes for per_page: the Link
	// keeps the parameter as the client wrote it.
	next := base + "/v1/projects?perPage=2"
	pages := 0
	for next != "" {
		if pages++; pages > 5 {
			t.Fatal("Link never ends")
		}
		r := do(t, "GET", next, "")
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", next, r.status, r.raw)
		}
		if got := r.header.Get("Per-Page"); got != "2" {
			t.Errorf("page %d: Per-Page = %q, want 2", pages, got)
		}
		if got := r.header.Get("Total"); got != "5" {
			t.Errorf("page %d: Total = %q, want 5", pages, got)
		}
		if total := r.body["pagination"].(map[string]any)["total"]; total != float64(5) {
			t.Errorf("page %d: pagination.total = %v, want 5", pages, total)
		}
		for _, p := range r.body["data"].(map[string]any)["projects"].([]any) {
			seen[p.(map[string]any)["id"].(string)]++
		}
		link := r.header.Get("Link")
		hasNext := r.body["pagination"].(map[string]any)["hasNextPage"] == true
		if link == "" {
			if hasNext {
				t.Fatalf("page %d has a next page but no Link", pages)
			}
			next = ""
			continue
		}
		target, ok := strings.CutSuffix(link, `>; rel="next"`)
		target, ok2 := strings.CutPrefix(target, "<")
		if !ok || !ok2 || !hasNext {
			t.Fatalf("page %d: Link %q (hasNextPage %v)", pages, link, hasNext)
		}
		u, err := url.Parse(target)
		if err != nil || u.Scheme != "http" || u.Host != baseURL.Host || u.Path != "/v1/projects" {
			t.Fatalf("Link %q is not this list's absolute URL on %s", target, base)
		}
		q := u.Query()
		if q.Get("perPage") != "2" || q.Get("cursor") != r.body["pagination"].(map[string]any)["cursor"] || q.Has("page") {
			t.Fatalf("Link %q: want perPage kept and the response's cursor", target)
		}
		next = target
	}
	if pages != 3 || len(seen) != 5 {
		t.Fatalf("followed %d pages to %v; want 3 pages, 5 projects", pages, seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}

	// A page asked by number links to the next with its cursor, and drops
	// the page number the cursor overrides.
	r := do(t, "GET", base+"/v1/projects?per_page=2&page=2", "")
	link := strings.TrimSuffix(strings.TrimPrefix(r.header.Get("Link"), "<"), `>; rel="next"`)
	if u, err := url.Parse(link); err != nil || u.Query().Get("per_page") != "2" || u.Query().Get("cursor") == "" || u.Query().Has("page") {
		t.Fatalf("Link of page 2 = %q", r.header.Get("Link"))
	}
	// The default page size, and the last page: no Link.
	r = do(t, "GET", base+"/v1/projects", "")
	if r.header.Get("Per-Page") != "50" || r.header.Get("Total") != "5" || r.header.Values("Link") != nil {
		t.Fatalf("default page headers %v", r.header)
	}
	// A page past the end still counts the list.
	r = do(t, "GET", base+"/v1/projects?per_page=2&page=9", "")
	if r.header.Get("Total") != "5" || r.header.Values("Link") != nil {
		t.Fatalf("page past the end headers %v", r.header)
	}
	// Not a list: none of the headers.
	r = do(t, "GET", base+"/v1/projects/page-one", "")
	for _, h := range []string{"Per-Page", "Total", "Link"} {
		if r.status != 200 || r.header.Values(h) != nil {
			t.Fatalf("GET one project: %d, %s = %v", r.status, h, r.header.Values(h))
		}
	}
}
