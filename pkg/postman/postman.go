// Package postman converts Slipway's OpenAPI (v2) document into a Postman
// collection (format v2.1), so users can import the API into Postman or
// run it with newman. `make generate` runs it (cmd/postman-collection)
// and commits the result next to the OpenAPI document, which the gateway
// serves at /v1/postman-collection.json.
//
// The collection has one folder per OpenAPI tag (a service) and one
// request per operation: its method, a {{baseUrl}} URL with the path's
// variables (:name, Postman's syntax) and its query parameters (disabled
// unless required, so a request sends only what the user turns on), an
// example JSON body built from the request schema, and the operation's
// summary as description. Authentication is set once, at the collection:
// a bearer token from the {{token}} variable.
//
// The output depends only on the input: keys and items come in a fixed
// order, so the generated file is reproducible byte for byte.
package postman

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// SchemaURL is the Postman collection format the output follows.
const SchemaURL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"

// DefaultBaseURL is the {{baseUrl}} variable's initial value: where
// `slipway serve` listens by default. Users point it at their install.
const DefaultBaseURL = "http://localhost:8080"

// Collection is a Postman collection, v2.1.
type Collection struct {
	Info     Info       `json:"info"`
	Item     []Item     `json:"item"`
	Auth     *Auth      `json:"auth,omitempty"`
	Variable []Variable `json:"variable,omitempty"`
}

// Info names the collection and its format.
type Info struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version,omitempty"`
	Schema      string `json:"schema"`
}

// Item is a folder (Item set) or a request (Request set).
type Item struct {
	ID          string   `json:"id,omitempty"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Item        []Item   `json:"item,omitempty"`
	Request     *Request `json:"request,omitempty"`
}

// Request is one API call.
type Request struct {
	Method      string   `json:"method"`
	Header      []Header `json:"header"`
	URL         URL      `json:"url"`
	Body        *Body    `json:"body,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Header is a request header.
type Header struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// URL is a request's URL, whole (Raw) and in parts.
type URL struct {
	Raw      string     `json:"raw"`
	Host     []string   `json:"host"`
	Path     []string   `json:"path"`
	Query    []Query    `json:"query,omitempty"`
	Variable []Variable `json:"variable,omitempty"`
}

// Query is a query parameter; Disabled ones are not sent.
type Query struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	Description string `json:"description,omitempty"`
	Disabled    bool   `json:"disabled,omitempty"`
}

// Variable is a collection variable or a path variable.
type Variable struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	Type        string `json:"type,omitempty"`
	Description string `json:"description,omitempty"`
}

// Body is a request body: raw JSON.
type Body struct {
	Mode    string      `json:"mode"`
	Raw     string      `json:"raw"`
	Options BodyOptions `json:"options"`
}

// BodyOptions says the raw body's language.
type BodyOptions struct {
	Raw struct {
		Language string `json:"language"`
	} `json:"raw"`
}

// Auth is a collection's (or request's) authentication.
type Auth struct {
	Type   string     `json:"type"`
	Bearer []Variable `json:"bearer,omitempty"`
}

// swagger is the part of an OpenAPI v2 document the conversion reads.
type swagger struct {
	Info struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Version     string `json:"version"`
	} `json:"info"`
	Tags []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Paths       map[string]map[string]json.RawMessage `json:"paths"`
	Definitions map[string]*schema                    `json:"definitions"`
}

type operation struct {
	Summary     string      `json:"summary"`
	Description string      `json:"description"`
	OperationID string      `json:"operationId"`
	Tags        []string    `json:"tags"`
	Parameters  []parameter `json:"parameters"`
}

type parameter struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description"`
	Required    bool    `json:"required"`
	Type        string  `json:"type"`
	Format      string  `json:"format"`
	Items       *schema `json:"items"`
	Enum        []any   `json:"enum"`
	Schema      *schema `json:"schema"`
}

type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Format               string             `json:"format"`
	Enum                 []any              `json:"enum"`
	Example              any                `json:"example"`
	Default              any                `json:"default"`
	ReadOnly             bool               `json:"readOnly"`
	Items                *schema            `json:"items"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *schema            `json:"additionalProperties"`
}

// methods are the HTTP methods of an OpenAPI path item, in the order a
// folder lists them.
var methods = []string{"get", "post", "put", "patch", "delete", "head", "options"}

// Convert returns the Postman collection of an OpenAPI v2 document, as
// indented JSON.
func Convert(openapi []byte) ([]byte, error) {
	c, err := Build(openapi)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build returns the Postman collection of an OpenAPI v2 document.
func Build(openapi []byte) (*Collection, error) {
	var doc swagger
	if err := json.Unmarshal(openapi, &doc); err != nil {
		return nil, fmt.Errorf("postman: the OpenAPI document: %w", err)
	}
	c := &Collection{
		Info: Info{Name: doc.Info.Title, Description: doc.Info.Description, Version: doc.Info.Version, Schema: SchemaURL},
		Auth: &Auth{Type: "bearer", Bearer: []Variable{{Key: "token", Value: "{{token}}", Type: "string"}}},
		Variable: []Variable{
			{Key: "baseUrl", Value: DefaultBaseURL, Type: "string", Description: "Where the Slipway API is, without a trailing slash."},
			{Key: "token", Value: "", Type: "string", Description: "An API token (slw_pat_..., slw_tok_...) or an OAuth2 access token."},
		},
	}
	folders := map[string]*Item{}
	var order []string
	folder := func(tag string) *Item {
		if f, ok := folders[tag]; ok {
			return f
		}
		f := &Item{Name: tag, Item: []Item{}}
		folders[tag] = f
		order = append(order, tag)
		return f
	}
	for _, t := range doc.Tags {
		folder(t.Name).Description = t.Description
	}
	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		for _, method := range methods {
			raw, ok := doc.Paths[path][method]
			if !ok {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("postman: %s %s: %w", strings.ToUpper(method), path, err)
			}
			tag := "Other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			item, err := requestItem(&doc, path, method, op)
			if err != nil {
				return nil, err
			}
			f := folder(tag)
			f.Item = append(f.Item, item)
		}
	}
	for _, tag := range order {
		if f := folders[tag]; len(f.Item) > 0 {
			c.Item = append(c.Item, *f)
		}
	}
	return c, nil
}

// requestItem converts one operation.
func requestItem(doc *swagger, path, method string, op operation) (Item, error) {
	req := &Request{Method: strings.ToUpper(method), Header: []Header{}, Description: describe(op.Summary, op.Description)}
	var segments []string
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		// OpenAPI's {name} is Postman's :name.
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			seg = ":" + strings.TrimSuffix(strings.TrimPrefix(seg, "{"), "}")
		}
		segments = append(segments, seg)
	}
	req.URL = URL{Host: []string{"{{baseUrl}}"}, Path: segments}
	var enabled []string
	for _, p := range op.Parameters {
		switch p.In {
		case "path":
			req.URL.Variable = append(req.URL.Variable, Variable{Key: p.Name, Value: "", Description: p.Description})
		case "query":
			q := Query{Key: p.Name, Value: queryExample(p), Description: p.Description, Disabled: !p.Required}
			req.URL.Query = append(req.URL.Query, q)
			if !q.Disabled {
				enabled = append(enabled, q.Key+"="+q.Value)
			}
		case "header":
			req.Header = append(req.Header, Header{Key: p.Name, Value: ""})
		case "body":
			example := exampleOf(doc, p.Schema, map[string]bool{})
			if example == nil {
				example = map[string]any{}
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(example); err != nil {
				return Item{}, fmt.Errorf("postman: %s %s: body example: %w", req.Method, path, err)
			}
			req.Body = &Body{Mode: "raw", Raw: strings.TrimSuffix(buf.String(), "\n")}
			req.Body.Options.Raw.Language = "json"
			req.Header = append(req.Header, Header{Key: "Content-Type", Value: "application/json"})
		}
	}
	req.URL.Raw = "{{baseUrl}}/" + strings.Join(segments, "/")
	if len(enabled) > 0 {
		req.URL.Raw += "?" + strings.Join(enabled, "&")
	}
	return Item{ID: op.OperationID, Name: itemName(op.OperationID, req.Method, path), Request: req}, nil
}

// itemName is what Postman shows for a request: the RPC's name (the
// operation id without its service) and the route, since one RPC can
// serve several routes (the team-scoped /v1/teams/{teamId}/... ones).
func itemName(operationID, method, path string) string {
	_, name, ok := strings.Cut(operationID, "_")
	if !ok {
		name = operationID
	}
	name = strings.TrimRight(name, "0123456789")
	return name + " (" + method + " " + path + ")"
}

// describe joins an operation's summary and description.
func describe(summary, description string) string {
	switch {
	case summary == "":
		return description
	case description == "":
		return summary
	}
	return summary + "\n\n" + description
}

// queryExample is a query parameter's placeholder value, in the form
// Postman's own converter writes (<type>), or its first allowed value.
func queryExample(p parameter) string {
	if len(p.Enum) > 0 {
		return fmt.Sprint(p.Enum[0])
	}
	if p.Type == "array" && p.Items != nil {
		if len(p.Items.Enum) > 0 {
			return fmt.Sprint(p.Items.Enum[0])
		}
		return "<" + p.Items.Type + ">"
	}
	switch {
	case p.Format == "date-time":
		return "<dateTime>"
	case p.Format == "int64" || p.Format == "uint64":
		return "<long>"
	case p.Type == "":
		return "<string>"
	}
	return "<" + p.Type + ">"
}

// exampleOf is an example value of s: its own example when the document
// gives one, else a placeholder of its type, with every property of an
// object (read-only ones and free-form ones, such as a
// google.protobuf.Value, left out: a request may not set them). seen holds
// the definitions being expanded, so a recursive schema stops.
func exampleOf(doc *swagger, s *schema, seen map[string]bool) any {
	if s == nil {
		return nil
	}
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/definitions/")
		def, ok := doc.Definitions[name]
		if !ok || seen[name] {
			return nil
		}
		seen[name] = true
		defer delete(seen, name)
		return exampleOf(doc, def, seen)
	}
	if s.Example != nil {
		return s.Example
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	switch s.Type {
	case "object", "":
		if s.Properties == nil {
			if s.AdditionalProperties != nil {
				if v := exampleOf(doc, s.AdditionalProperties, seen); v != nil {
					return map[string]any{"<key>": v}
				}
			}
			if s.Type == "" {
				return nil // free-form
			}
			return map[string]any{}
		}
		out := map[string]any{}
		for name, prop := range s.Properties {
			if prop.ReadOnly {
				continue
			}
			if v := exampleOf(doc, prop, seen); v != nil {
				out[name] = v
			}
		}
		return out
	case "array":
		item := exampleOf(doc, s.Items, seen)
		if item == nil {
			return []any{}
		}
		return []any{item}
	case "integer":
		return 0
	case "number":
		return 0
	case "boolean":
		return false
	case "string":
		switch s.Format {
		case "date-time":
			return "1970-01-01T00:00:00Z"
		case "int64", "uint64":
			return "0" // protojson writes 64-bit integers as strings
		case "byte":
			return ""
		}
		return "<string>"
	}
	return nil
}
