// Package catalog is the configured set of regions and plans: which
// regions a project may be placed in and which resource plans workloads
// may use. It is its own package because several services read it (the
// projects service lists it, jobs and later builds, deployments and addons
// size their workloads from it) and none of them should have to import
// another service to do so.
package catalog

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/slug"
)

//go:embed catalog.json
var defaultCatalog []byte

// Catalog is the configured set of regions and plans. A self-hosted install
// describes its own machines here; prices default to zero.
type Catalog struct {
	regions *projectsv1.ListRegionsResponse
	plans   *projectsv1.ListPlansResponse
	// clusters maps a region id to the id of the region whose cluster runs
	// it, for regions that are names for another one's machines (the
	// built-in catalogue's Northflank region ids); other regions run on
	// their own cluster.
	clusters map[string]string
}

// Load reads the catalogue from path, or the built-in one when path is
// empty: the region "local" (the default), Northflank's public region ids
// as other names for it, and the standard plan sizes.
func Load(path string) (*Catalog, error) {
	data := defaultCatalog
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
	}
	return Parse(data)
}

// Parse parses a catalogue document. Every region and plan needs an
// id that is a slug, ids are unique, and there is at least one region. A
// region may name, in "cluster", another region of the document whose
// machines it runs on (which itself runs on its own); the key is the
// catalogue's own and never part of the API's region.
func Parse(data []byte) (*Catalog, error) {
	// The file is {"regions": [...], "plans": [...]} in the API's own JSON
	// shapes, so each half is decoded by protojson through its response
	// message, which also rejects unknown fields.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	var doc struct {
		regions projectsv1.ListRegionsResponse
		plans   projectsv1.ListPlansResponse
	}
	var clusters map[string]string
	for key, value := range raw {
		var target proto.Message
		switch key {
		case "regions":
			var err error
			if value, clusters, err = splitClusters(value); err != nil {
				return nil, err
			}
			target = &doc.regions
		case "plans":
			target = &doc.plans
		default:
			return nil, fmt.Errorf("catalog: unknown key %q", key)
		}
		wrapped, _ := json.Marshal(map[string]json.RawMessage{key: value})
		if err := protojson.Unmarshal(wrapped, target); err != nil {
			return nil, fmt.Errorf("catalog %s: %w", key, err)
		}
	}
	if len(doc.regions.GetRegions()) == 0 {
		return nil, errors.New("catalog: at least one region is required")
	}
	seen := map[string]bool{}
	for _, r := range doc.regions.GetRegions() {
		if err := checkID("region", r.GetId(), seen); err != nil {
			return nil, err
		}
	}
	for region, cluster := range clusters {
		if !seen[cluster] {
			return nil, fmt.Errorf("catalog: region %q runs on cluster %q, which is not a region of the catalogue", region, cluster)
		}
		if _, chained := clusters[cluster]; chained || cluster == region {
			return nil, fmt.Errorf("catalog: region %q runs on cluster %q, which must be a region running on its own", region, cluster)
		}
	}
	seen = map[string]bool{}
	for _, p := range doc.plans.GetPlans() {
		if err := checkID("plan", p.GetId(), seen); err != nil {
			return nil, err
		}
		if p.GetCurrency() == "" {
			p.Currency = "usd"
		}
	}
	return &Catalog{regions: &doc.regions, plans: &doc.plans, clusters: clusters}, nil
}

// splitClusters takes the catalogue-only "cluster" key out of each region
// of a "regions" array, so that the rest decodes as the API's Region, and
// returns the array without it and the region-to-cluster map.
func splitClusters(regions json.RawMessage) (json.RawMessage, map[string]string, error) {
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(regions, &list); err != nil {
		return nil, nil, fmt.Errorf("catalog regions: %w", err)
	}
	clusters := map[string]string{}
	for _, r := range list {
		raw, ok := r["cluster"]
		if !ok {
			continue
		}
		delete(r, "cluster")
		var cluster, id string
		if err := json.Unmarshal(raw, &cluster); err != nil || cluster == "" {
			return nil, nil, errors.New(`catalog regions: "cluster" must be a region id`)
		}
		_ = json.Unmarshal(r["id"], &id) // a bad id is reported with the region
		clusters[id] = cluster
	}
	out, err := json.Marshal(list)
	return out, clusters, err
}

func checkID(kind, id string, seen map[string]bool) error {
	if id == "" || slug.Make(id) != id {
		return fmt.Errorf("catalog: %s id %q must be a slug", kind, id)
	}
	if seen[id] {
		return fmt.Errorf("catalog: duplicate %s id %q", kind, id)
	}
	seen[id] = true
	return nil
}

// Regions is the whole list of regions, as GET /v1/regions answers it.
// Callers must not modify it.
func (c *Catalog) Regions() *projectsv1.ListRegionsResponse { return c.regions }

// Plans is the whole list of plans, as GET /v1/plans answers it. Callers
// must not modify it.
func (c *Catalog) Plans() *projectsv1.ListPlansResponse { return c.plans }

// DefaultRegion is the region projects get when they name none.
func (c *Catalog) DefaultRegion() *projectsv1.Region { return c.regions.GetRegions()[0] }

// Region returns the region with the given id, or nil.
func (c *Catalog) Region(id string) *projectsv1.Region {
	for _, r := range c.regions.GetRegions() {
		if r.GetId() == id {
			return r
		}
	}
	return nil
}

// Cluster is the region whose cluster runs the region with the given id:
// the region itself, unless the catalogue maps it onto another one. Nil
// for an unknown region.
func (c *Catalog) Cluster(regionID string) *projectsv1.Region {
	if cluster, ok := c.clusters[regionID]; ok {
		return c.Region(cluster)
	}
	return c.Region(regionID)
}

// Plan returns the plan with the given id, or nil.
func (c *Catalog) Plan(id string) *projectsv1.Plan {
	for _, p := range c.plans.GetPlans() {
		if p.GetId() == id {
			return p
		}
	}
	return nil
}

// DefaultPlan is the plan workloads get when they name none: the first
// one, or nil when the catalogue has no plans (no limits then).
func (c *Catalog) DefaultPlan() *projectsv1.Plan {
	if plans := c.plans.GetPlans(); len(plans) > 0 {
		return plans[0]
	}
	return nil
}

// MaxInstances is the most instances a service may run on any plan of the
// catalogue. The catalogue's plans (Northflank's shapes) carry no instance
// limit of their own, so every plan shares this one: Northflank's own
// per-service default, and plenty for one machine.
const MaxInstances = 20

// MaxInstances returns the most instances a service on the plan with the
// given id may run: MaxInstances for every plan (0 for an unknown one).
func (c *Catalog) MaxInstances(plan string) int {
	if c.Plan(plan) == nil {
		return 0
	}
	return MaxInstances
}
