package gateway_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/gen/openapi"
	"github.com/slipwayhq/slipway/pkg/postman"
)

// TestPostmanCollection: GET /v1/postman-collection.json, without
// credentials, is a Postman v2.1 collection in which every operation of
// the OpenAPI document appears exactly once, as its method on its path,
// in its tag's folder; and it is what the converter makes of the document
// the gateway serves (the generated file is current).
func TestPostmanCollection(t *testing.T) {
	base := newGateway(t)
	r := do(t, "GET", base+"/v1/postman-collection.json", "", "Authorization", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /v1/postman-collection.json = %d %s", r.status, r.header.Get("Content-Type"))
	}
	want, err := postman.Convert(openapi.Document)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.raw, want) {
		t.Fatal("the served collection is not the OpenAPI document's: run `make generate`")
	}
	var c postman.Collection
	if err := json.Unmarshal(r.raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.Info.Schema != postman.SchemaURL || c.Auth == nil || c.Auth.Type != "bearer" || c.Auth.Bearer[0].Value != "{{token}}" {
		t.Fatalf("collection info %+v, auth %+v", c.Info, c.Auth)
	}

	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string   `json:"operationId"`
			Tags        []string `json:"tags"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		t.Fatal(err)
	}
	type op struct{ method, path, tag string }
	ops := map[string]op{}
	for path, item := range doc.Paths {
		for method, o := range item {
			if method == "parameters" {
				continue
			}
			ops[o.OperationID] = op{strings.ToUpper(method), path, o.Tags[0]}
		}
	}
	seen := map[string]int{}
	for _, folder := range c.Item {
		for _, it := range folder.Item {
			seen[it.ID]++
			o, ok := ops[it.ID]
			if !ok {
				t.Errorf("item %q is no OpenAPI operation", it.ID)
				continue
			}
			// The URL is the path with Postman's :variables.
			path := "{{baseUrl}}/" + strings.Join(it.Request.URL.Path, "/")
			wantPath := "{{baseUrl}}" + o.path
			for _, v := range it.Request.URL.Variable {
				wantPath = strings.Replace(wantPath, "{"+v.Key+"}", ":"+v.Key, 1)
			}
			if it.Request.Method != o.method || path != wantPath || folder.Name != o.tag || !strings.HasPrefix(it.Request.URL.Raw, path) {
				t.Errorf("item %s = %s %s in folder %s; want %s %s in %s", it.ID, it.Request.Method, path, folder.Name, o.method, wantPath, o.tag)
			}
		}
	}
	for id := range ops {
		if seen[id] != 1 {
			t.Errorf("operation %s appears %d times in the collection, want once", id, seen[id])
		}
	}
	if len(ops) < 100 {
		t.Fatalf("the OpenAPI document has only %d operations", len(ops))
	}
}
