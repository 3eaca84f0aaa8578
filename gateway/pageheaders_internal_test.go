package gateway

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
)

// TestNextPage: the Link target is on the scheme the request came on, and
// a list that pages without cursors links to the next page number.
func TestNextPage(t *testing.T) {
	cursor := "abc"
	r := httptest.NewRequest("GET", "https://api.example.com/v1/teams/acme/projects?per_page=5&page=2", nil)
	r.TLS = &tls.ConnectionState{}
	if got, want := nextPage(r, r.URL.Query(), &apiv1.Pagination{HasNextPage: true, Cursor: &cursor}),
		"https://api.example.com/v1/teams/acme/projects?cursor=abc&per_page=5"; got != want {
		t.Errorf("cursor page: %q, want %q", got, want)
	}
	if got, want := nextPage(r, r.URL.Query(), &apiv1.Pagination{HasNextPage: true}),
		"https://api.example.com/v1/teams/acme/projects?page=3&per_page=5"; got != want {
		t.Errorf("numbered page: %q, want %q", got, want)
	}
	if got := nextPage(r, r.URL.Query(), &apiv1.Pagination{HasNextPage: false, Cursor: &cursor}); got != "" {
		t.Errorf("last page links to %q", got)
	}
	r = httptest.NewRequest("GET", "http://localhost:8080/v1/projects", nil)
	if got, want := nextPage(r, r.URL.Query(), &apiv1.Pagination{HasNextPage: true, Cursor: &cursor}),
		"http://localhost:8080/v1/projects?cursor=abc"; got != want {
		t.Errorf("plain HTTP: %q, want %q", got, want)
	}
}
