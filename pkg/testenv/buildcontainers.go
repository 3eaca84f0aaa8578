package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BuildContainers lists the containers a Podman engine at host (as Podman
// returns it) knows, running or not, that are no workload of Slipway's
// (no dev.slipway.managed label): the working containers of image builds,
// which only libpod's list with external=true shows. The list fails now
// and then while a container is being removed (Podman 4.3), so an error
// is worth a retry.
func BuildContainers(host string) ([]string, error) {
	hc := unixHTTPClient(strings.TrimPrefix(host, "unix://"))
	defer hc.CloseIdleConnections()
	res, err := hc.Get("http://engine/v4.0.0/libpod/containers/json?all=true&external=true")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return nil, fmt.Errorf("listing containers: %s: %s", res.Status, b)
	}
	var list []struct {
		ID     string            `json:"Id"`
		Names  []string          `json:"Names"`
		Image  string            `json:"Image"`
		State  string            `json:"State"`
		Labels map[string]string `json:"Labels"`
	}
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		return nil, err
	}
	var out []string
	for _, c := range list {
		if c.Labels["dev.slipway.managed"] != "true" {
			out = append(out, fmt.Sprintf("%.12s %v %s %s", c.ID, c.Names, c.Image, c.State))
		}
	}
	return out, nil
}

// AwaitBuildGone waits up to within for a build to leave nothing behind on
// the Podman engine at host: no process whose command line contains step
// (see Processes) and no build container (see BuildContainers). It
// returns "" when that came to pass, otherwise what was left; processes
// still running then are killed, so that none outlives the test.
func AwaitBuildGone(t testing.TB, host, step string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		procs := Processes(t, step)
		cs, err := BuildContainers(host)
		if err == nil && len(cs) == 0 && len(procs) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			for _, pid := range procs {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return fmt.Sprintf("the step's processes %v, build containers %v (listing: %v)", procs, cs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
