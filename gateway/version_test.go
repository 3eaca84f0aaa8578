package gateway_test

import (
	"encoding/json"
	"reflect"
	"runtime"
	"testing"

	"github.com/slipwayhq/slipway/gateway"
)

// TestVersion: GET /version answers Slipway's envelope and, alongside it
// at the top level, ComputeStacks' shape, without credentials.
func TestVersion(t *testing.T) {
	base := newGateway(t)
	r := do(t, "GET", base+"/version", "", "Authorization", "")
	if r.status != 200 {
		t.Fatalf("GET /version = %d %s", r.status, r.raw)
	}
	var body struct {
		Data struct {
			Version     string `json:"version"`
			GoVersion   string `json:"goVersion"`
			APIVersions []int  `json:"apiVersions"`
		} `json:"data"`
		Version              string `json:"version"`
		APILatestVersion     *int   `json:"api_latest_version"`
		APIAvailableVersions []int  `json:"api_available_versions"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil {
		t.Fatal(err)
	}
	want := gateway.APIVersions
	if body.Data.Version != "test" || body.Data.GoVersion != runtime.Version() || !reflect.DeepEqual(body.Data.APIVersions, want) {
		t.Errorf("Slipway's shape: %s", r.raw)
	}
	if body.Version != "test" || body.APILatestVersion == nil || *body.APILatestVersion != want[len(want)-1] ||
		!reflect.DeepEqual(body.APIAvailableVersions, want) {
		t.Errorf("ComputeStacks' shape: %s", r.raw)
	}
}
