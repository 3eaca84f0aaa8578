package addons

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestImportClientRefusesPrivateHosts: an importUrl on the server's
// loopback is refused before anything is sent, unless the operator
// allows the host.
func TestImportClientRefusesPrivateHosts(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits++ }))
	t.Cleanup(srv.Close)

	refused, err := importHTTPClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refused.Get(srv.URL); !errors.Is(err, errDestinationPrivate) {
		t.Fatalf("a loopback importUrl: err = %v, want %v", err, errDestinationPrivate)
	}
	if hits != 0 {
		t.Fatalf("the refused request reached the server %d times", hits)
	}

	allowed, err := importHTTPClient([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := allowed.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits != 1 {
		t.Fatalf("the allowed request reached the server %d times", hits)
	}
}
