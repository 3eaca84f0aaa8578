package testenv

import (
	"net/http"
	"strings"
	"testing"
)

// TestPodman starts the service, builds the test image and checks, through
// the Docker-compatible API, that the image is there and that no registry
// was needed for it.
func TestPodman(t *testing.T) {
	host := Podman(t)
	if !strings.HasPrefix(host, "unix://") {
		t.Fatalf("host = %q, want unix://...", host)
	}
	ref := BuildTestImage(t, host)
	if ref != TestImage {
		t.Fatalf("BuildTestImage = %q, want %q", ref, TestImage)
	}
	c := unixHTTPClient(strings.TrimPrefix(host, "unix://"))
	resp, err := c.Get("http://podman/v1.41/images/" + ref + "/json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("inspect %s: %s", ref, resp.Status)
	}
}
