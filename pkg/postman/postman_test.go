package postman_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/slipwayhq/slipway/pkg/postman"
)

const doc = `{
  "swagger": "2.0",
  "info": {"title": "Test API", "description": "About it.", "version": "1"},
  "tags": [{"name": "ZooService", "description": "Animals."}, {"name": "EmptyService"}],
  "paths": {
    "/v1/zoos/{zooId}/animals": {
      "get": {"summary": "ListAnimals lists.", "operationId": "ZooService_ListAnimals", "tags": ["ZooService"],
        "parameters": [
          {"name": "zooId", "in": "path", "required": true, "type": "string", "description": "Zoo id."},
          {"name": "perPage", "in": "query", "required": false, "type": "integer", "format": "int32"},
          {"name": "kind", "in": "query", "required": true, "type": "string", "enum": ["CAT", "DOG"]},
          {"name": "since", "in": "query", "type": "string", "format": "date-time"}
        ]},
      "post": {"summary": "CreateAnimal creates.", "description": "More words.", "operationId": "ZooService_CreateAnimal", "tags": ["ZooService"],
        "parameters": [
          {"name": "zooId", "in": "path", "required": true, "type": "string"},
          {"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Animal"}}
        ]}
    },
    "/v1/teams/{teamId}/zoos/{zooId}/animals": {
      "get": {"operationId": "ZooService_ListAnimals2", "tags": ["ZooService"],
        "parameters": [{"name": "teamId", "in": "path", "required": true, "type": "string"}, {"name": "zooId", "in": "path", "required": true, "type": "string"}]}
    }
  },
  "definitions": {
    "Animal": {"type": "object", "properties": {
      "name": {"type": "string"},
      "legs": {"type": "integer", "format": "int32"},
      "weight": {"type": "string", "format": "int64"},
      "born": {"type": "string", "format": "date-time"},
      "tame": {"type": "boolean"},
      "kind": {"type": "string", "enum": ["CAT", "DOG"]},
      "colour": {"type": "string", "example": "#EF233C"},
      "tags": {"type": "array", "items": {"type": "string"}},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}},
      "id": {"type": "string", "readOnly": true},
      "anything": {"description": "free-form"},
      "parent": {"$ref": "#/definitions/Animal"}
    }}
  }
}`

func TestBuild(t *testing.T) {
	c, err := postman.Build([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Info.Name != "Test API" || c.Info.Schema != postman.SchemaURL {
		t.Errorf("info = %+v", c.Info)
	}
	if c.Auth == nil || c.Auth.Type != "bearer" || len(c.Auth.Bearer) != 1 || c.Auth.Bearer[0].Value != "{{token}}" {
		t.Errorf("collection auth = %+v, want bearer {{token}}", c.Auth)
	}
	vars := map[string]string{}
	for _, v := range c.Variable {
		vars[v.Key] = v.Value
	}
	if vars["baseUrl"] != postman.DefaultBaseURL || len(vars) != 2 {
		t.Errorf("variables = %v", vars)
	}
	// One folder per tag with operations (the empty one is left out).
	if len(c.Item) != 1 || c.Item[0].Name != "ZooService" || c.Item[0].Description != "Animals." || len(c.Item[0].Item) != 3 {
		t.Fatalf("folders = %+v", c.Item)
	}
	byID := map[string]postman.Item{}
	for _, it := range c.Item[0].Item {
		byID[it.ID] = it
	}
	list := byID["ZooService_ListAnimals"].Request
	if list == nil || list.Method != "GET" || list.URL.Raw != "{{baseUrl}}/v1/zoos/:zooId/animals?kind=CAT" {
		t.Fatalf("list request = %+v", list)
	}
	if len(list.URL.Variable) != 1 || list.URL.Variable[0].Key != "zooId" || list.URL.Variable[0].Description != "Zoo id." {
		t.Errorf("path variables = %+v", list.URL.Variable)
	}
	wantQuery := []postman.Query{
		{Key: "perPage", Value: "<integer>", Disabled: true},
		{Key: "kind", Value: "CAT"},
		{Key: "since", Value: "<dateTime>", Disabled: true},
	}
	if len(list.URL.Query) != len(wantQuery) {
		t.Fatalf("query = %+v", list.URL.Query)
	}
	for i, q := range wantQuery {
		if got := list.URL.Query[i]; got.Key != q.Key || got.Value != q.Value || got.Disabled != q.Disabled {
			t.Errorf("query %d = %+v, want %+v", i, got, q)
		}
	}
	if list.Body != nil {
		t.Errorf("a GET has a body: %+v", list.Body)
	}
	if got := byID["ZooService_ListAnimals2"].Name; got != "ListAnimals (GET /v1/teams/{teamId}/zoos/{zooId}/animals)" {
		t.Errorf("team route's name = %q", got)
	}

	create := byID["ZooService_CreateAnimal"].Request
	if create == nil || create.Method != "POST" || create.Body == nil || create.Body.Mode != "raw" || create.Body.Options.Raw.Language != "json" ||
		create.Description != "CreateAnimal creates.\n\nMore words." {
		t.Fatalf("create request = %+v", create)
	}
	if len(create.Header) != 1 || create.Header[0].Key != "Content-Type" || create.Header[0].Value != "application/json" {
		t.Errorf("create headers = %+v", create.Header)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(create.Body.Raw), &body); err != nil {
		t.Fatalf("body example is not JSON: %v\n%s", err, create.Body.Raw)
	}
	want := map[string]any{"name": "<string>", "legs": float64(0), "weight": "0", "born": "1970-01-01T00:00:00Z", "tame": false,
		"kind": "CAT", "colour": "#EF233C", "tags": []any{"<string>"}, "labels": map[string]any{"<key>": "<string>"}}
	// A field whose schema is the one being expanded (a recursion) is
	// left out, as are read-only and free-form fields.
	if !jsonEqual(body, want) {
		t.Errorf("body example = %s", create.Body.Raw)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestConvertIsReproducible: the same document gives the same bytes, so
// the committed collection can be checked by `make generate`.
func TestConvertIsReproducible(t *testing.T) {
	first, err := postman.Convert([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := postman.Convert([]byte(doc))
		if err != nil || !bytes.Equal(first, again) {
			t.Fatalf("Convert differs between runs: %v", err)
		}
	}
	if _, err := postman.Convert([]byte(`{"paths": [`)); err == nil {
		t.Error("a malformed document converted")
	}
}
