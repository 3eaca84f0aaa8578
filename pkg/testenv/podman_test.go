package testenv

import (
	"net/http"
	"strings"
	"testing"
	"time"
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

// TestBuildHostImage: an image of a dynamically linked host binary runs
// it (its libraries came along), with the shell tools and the user "app".
func TestBuildHostImage(t *testing.T) {
	host := Podman(t)
	ref := BuildHostImage(t, host, "localhost/slipway-host-test:latest", "/usr/bin/redis-cli")
	v, _ := podmanEnvs.Load(host)
	bin := lookBinary(t, "podman")
	out, err := podmanCLI(bin, v.([]string), time.Minute, "run", "--rm", "--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024", "--user", "999:999", ref,
		"/bin/sh", "-c", "redis-cli --version && id -un && ls -d /tmp /lib")
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out))
	if len(lines) != 5 || lines[0] != "redis-cli" || lines[2] != "app" || lines[3] != "/lib" || lines[4] != "/tmp" {
		t.Fatalf("output %q", out)
	}
}
