package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// execTable reads the exec channels of the binary's component table.
func execTable(t testing.TB) []string {
	t.Helper()
	var table []struct {
		Name string   `json:"name"`
		Exec []string `json:"exec"`
	}
	if err := json.Unmarshal([]byte(runSlipway(t, []string{"components", "--json"})), &table); err != nil {
		t.Fatalf("slipway components --json: %v", err)
	}
	var paths []string
	for _, c := range table {
		paths = append(paths, c.Exec...)
	}
	return paths
}

// TestEveryExecRouteIsGuarded walks every exec channel of the component
// table (WebSocket routes, which the OpenAPI walk of
// TestEveryRouteIsGuarded cannot see), plain and team-scoped: a bad
// token in the init message is refused with 401, a viewer token with 403
// (before the component looks the resource up, so no fixture is needed).
func TestEveryExecRouteIsGuarded(t *testing.T) {
	paths := execTable(t)
	t.Logf("%d exec channels in the component table", len(paths))
	if len(paths) == 0 {
		return // nothing to walk until a component declares one
	}
	inst := startSlipway(t, "SLIPWAY_RATE_LIMIT_PER_HOUR=1000000")
	project := callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Exec Authz"}`).data(t)["id"].(string)
	viewer := requestAs(t, "Bearer "+adminToken, "POST", inst.URL+"/v1/api-tokens",
		`{"name":"exec-viewer","kind":"team","roleId":"viewer","teamId":"default"}`).data(t)["token"].(string)
	ws := "ws" + strings.TrimPrefix(inst.URL, "http")
	for _, p := range paths {
		path := ws + strings.NewReplacer("{project_id}", project, "{resource_id}", "no-such-resource").Replace(p)
		for _, route := range []string{path, strings.Replace(path, "/v1/command-exec/", "/v1/command-exec/teams/default/", 1)} {
			for token, want := range map[string]float64{"not-a-token": 401, viewer: 403} {
				t.Run(fmt.Sprintf("%s %v", route, want), func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					c, _, err := websocket.Dial(ctx, route, nil)
					if err != nil {
						t.Fatal(err)
					}
					defer c.CloseNow()
					init := `{"type":"init","data":{"auth":{"type":"apiToken","apiToken":"` + token + `"},"context":{"command":"id","shell":"none"}}}`
					if err := c.Write(ctx, websocket.MessageBinary, []byte(init)); err != nil {
						t.Fatal(err)
					}
					_, data, err := c.Read(ctx)
					if err != nil {
						t.Fatal(err)
					}
					var m struct {
						Type string         `json:"type"`
						Data map[string]any `json:"data"`
					}
					if err := json.Unmarshal(data, &m); err != nil || m.Type != "init" || m.Data["auth"] != "failed" || m.Data["status"] != want {
						t.Fatalf("answer %s, want an init failure %v", data, want)
					}
				})
			}
		}
	}
}
