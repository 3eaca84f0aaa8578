package gateway

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/slipwayhq/slipway/gen/openapi"
)

// routeTable knows which methods each path template serves, so a 405 can
// carry the Allow header HTTP requires. grpc-gateway's routing error
// handler is not told; the OpenAPI document generated from the same protos
// is the authority on the API's routes.
type routeTable []routeMethods

type routeMethods struct {
	segments []string // "*" matches any one segment
	methods  []string
}

func newRouteTable(extra map[string][]string) (routeTable, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		return nil, err
	}
	all := map[string][]string{}
	for path, ops := range doc.Paths {
		for method := range ops {
			all[path] = append(all[path], strings.ToUpper(method))
		}
	}
	for path, methods := range extra {
		all[path] = append(all[path], methods...)
	}
	var t routeTable
	for path, methods := range all {
		segments := strings.Split(strings.Trim(path, "/"), "/")
		for i, s := range segments {
			if strings.HasPrefix(s, "{") {
				segments[i] = "*"
			}
		}
		slices.Sort(methods)
		t = append(t, routeMethods{segments: segments, methods: methods})
	}
	return t, nil
}

// allowed returns the methods path is served with, comma-separated.
func (t routeTable) allowed(path string) string {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	var methods []string
	for _, r := range t {
		if len(r.segments) != len(segments) {
			continue
		}
		match := true
		for i, s := range r.segments {
			if s != "*" && s != segments[i] {
				match = false
				break
			}
		}
		if match {
			methods = append(methods, r.methods...)
		}
	}
	slices.Sort(methods)
	return strings.Join(slices.Compact(methods), ", ")
}
