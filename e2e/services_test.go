package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestServicesOverHTTP: a service created through the API answers at its
// ingress host name, GET …/ports shows that URL, and bad input is a 4xx
// in the error envelope that creates nothing.
func TestServicesOverHTTP(t *testing.T) {
	inst := startSlipway(t)
	base := inst.URL
	callJSON(t, "POST", base+"/v1/projects", `{"name":"Svc Demo"}`).data(t)
	svc := base + "/v1/projects/svc-demo/services"

	for _, c := range []struct {
		name, body, id string
		status         int
	}{
		{"unknown field", `{"name":"Bad One","deployment":{"instances":1,"docker":{"configType":"customCommand","customCommand":"sleep 1"}},"colour":"blue"}`, "", http.StatusBadRequest},
		{"duplicate port names", `{"name":"Bad Two","deployment":{"instances":1,"docker":{"configType":"customCommand","customCommand":"sleep 1"}},
			"ports":[{"name":"p01","internalPort":8080,"protocol":"HTTP"},{"name":"p01","internalPort":8081,"protocol":"HTTP"}]}`, "VALIDATION_FAILED", http.StatusBadRequest},
		{"image on the process driver", `{"name":"Bad Three","deployment":{"instances":1,"external":{"imagePath":"nginx:latest"}}}`, "VALIDATION_FAILED", http.StatusBadRequest},
		{"too many instances", `{"name":"Bad Four","deployment":{"instances":21,"docker":{"configType":"customCommand","customCommand":"sleep 1"}}}`, "VALIDATION_FAILED", http.StatusBadRequest},
		{"a build of an unknown service", `{"name":"Bad Five","deployment":{"instances":1,"internal":{"id":"builder","branch":"main","buildSHA":"latest"}}}`, "NOT_FOUND", http.StatusNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := callJSON(t, "POST", svc+"/deployment", c.body).apiErr(t, c.status)
			if c.id != "" && e.ID != c.id {
				t.Errorf("error id %q, want %q: %v", e.ID, c.id, e)
			}
		})
	}
	if list := callJSON(t, "GET", svc, "").data(t); len(list["services"].([]any)) != 0 {
		t.Fatalf("bad input created services: %v", list)
	}

	callJSON(t, "POST", svc+"/deployment", `{"name":"Hello","deployment":{"instances":1,"docker":{"configType":"customCommand",
		"customCommand":"mkdir -p www && echo hello > www/index.html && busybox httpd -f -p $PORT -h www"}},
		"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}]}`).data(t)
	ports := callJSON(t, "GET", svc+"/hello/ports", "").data(t)
	p := ports["ports"].([]any)[0].(map[string]any)
	url, _ := p["dns"].(string)
	if !strings.HasPrefix(url, "http://p01--hello--svc-demo.localhost:") {
		t.Fatalf("port dns %q", url)
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(url, "http://"), ":")
	callJSON(t, "POST", svc+"/hello/scale", `{"instances":-1}`).apiErr(t, http.StatusBadRequest)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The host name resolves to loopback in browsers; here the request
		// goes to 127.0.0.1 with the Host header.
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/", nil)
		req.Host = "p01--hello--svc-demo.localhost"
		res, err := httpClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == 200 && strings.TrimSpace(string(b)) == "hello" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not answer through the ingress: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Containers in Northflank's shape: createdAt is a number of seconds.
	containers := callJSON(t, "GET", svc+"/hello/containers", "").data(t)
	c, _ := containers["containers"].([]any)
	if len(c) != 1 {
		t.Fatalf("containers %v", containers)
	}
	if at, ok := c[0].(map[string]any)["createdAt"].(float64); !ok || at < 1e9 || c[0].(map[string]any)["status"] != "TASK_RUNNING" {
		t.Errorf("container %v: want createdAt a number of Unix seconds and TASK_RUNNING", c[0])
	}

	// The project lists the service (through its resource event) and
	// refuses to go while it holds it; with delete_child_objects the
	// service goes too, and its host name stops answering.
	projectURL := base + "/v1/projects/svc-demo"
	deadline = time.Now().Add(10 * time.Second)
	for {
		p := callJSON(t, "GET", projectURL, "").data(t)
		services, _ := p["services"].([]any)
		if slices.ContainsFunc(services, func(v any) bool { m, _ := v.(map[string]any); return m["id"] == "hello" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s does not list service hello within 10s: %v", projectURL, p)
		}
		time.Sleep(pollEvery)
	}
	if e := callJSON(t, "DELETE", projectURL, "").apiErr(t, http.StatusConflict); e.ID != "PROJECT_NOT_EMPTY" {
		t.Errorf("DELETE of a project with a service: error id %q, want PROJECT_NOT_EMPTY", e.ID)
	}
	callJSON(t, "DELETE", projectURL+"?delete_child_objects=true", "").data(t)
	deadline = time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/", nil)
		req.Host = "p01--hello--svc-demo.localhost"
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted project's service still answers: HTTP %d", res.StatusCode)
		}
		time.Sleep(pollEvery)
	}
}

// TestServiceLogTailOverWebSocket: GET …/services/{id}/logs opened as a
// WebSocket (queryType=tail), the protocol of the JS client's logTail,
// sends the service's lines as they are written.
func TestServiceLogTailOverWebSocket(t *testing.T) {
	inst := startSlipway(t)
	base := inst.URL
	callJSON(t, "POST", base+"/v1/projects", `{"name":"Tail Demo"}`).data(t)
	callJSON(t, "POST", base+"/v1/projects/tail-demo/services/deployment", `{"name":"Talker","deployment":{"instances":1,
		"docker":{"configType":"customCommand","customCommand":"echo one; sleep 1; echo two; sleep 600"}}}`).data(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(base, "http") + "/v1/projects/tail-demo/services/talker/logs?queryType=tail"
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"init","data":{"auth":{"type":"apiToken","apiToken":"`+adminToken+`"}}}`)); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for !slices.Contains(seen, "two") {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("tail after %q: %v", seen, err)
		}
		var m struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("message %q: %v", data, err)
		}
		switch m.Type {
		case "init":
			if !strings.Contains(string(m.Data), "successful") {
				t.Fatalf("init answer %s", m.Data)
			}
		case "log-lines":
			var lines []struct {
				Log         string `json:"log"`
				ContainerID string `json:"containerId"`
			}
			if err := json.Unmarshal(m.Data, &lines); err != nil {
				t.Fatalf("log-lines %s: %v", m.Data, err)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l.ContainerID, "talker-") {
					t.Errorf("line of container %q", l.ContainerID)
				}
				seen = append(seen, l.Log)
			}
		default:
			t.Fatalf("message %s", data)
		}
	}
	if seen[0] != "one" {
		t.Errorf("tail lines %q, want one then two", seen)
	}
}
