package catalog

import "testing"

func TestParse(t *testing.T) {
	for name, doc := range map[string]string{
		"no regions":     `{"regions": [], "plans": []}`,
		"unknown key":    `{"regions": [{"id": "a"}], "zones": []}`,
		"unknown field":  `{"regions": [{"id": "a", "size": 1}]}`,
		"non-slug id":    `{"regions": [{"id": "Not A Slug"}]}`,
		"duplicate plan": `{"regions": [{"id": "a"}], "plans": [{"id": "p"}, {"id": "p"}]}`,
		"not json":       `regions: []`,
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c, err := Parse([]byte(`{"regions": [{"id": "eu", "name": "Europe", "regionName": "EMEA"}], "plans": [{"id": "small", "cpuResource": 0.5, "ramResource": 512}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRegion().GetName() != "Europe" || c.Region("eu") == nil || c.Region("us") != nil {
		t.Fatal("catalog lookups wrong")
	}
}

func TestLoadDefault(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRegion() == nil || c.DefaultPlan() == nil || c.Plans().GetPlans()[0].GetCurrency() != "usd" {
		t.Fatal("the built-in catalogue has no default region or plan")
	}
}

// TestClusters: a region may run on another region's cluster; the
// reference must name a region of the catalogue that runs on its own.
func TestClusters(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown cluster": `{"regions": [{"id": "a"}, {"id": "b", "cluster": "c"}]}`,
		"chained cluster": `{"regions": [{"id": "a"}, {"id": "b", "cluster": "a"}, {"id": "c", "cluster": "b"}]}`,
		"own cluster":     `{"regions": [{"id": "a", "cluster": "a"}]}`,
		"empty cluster":   `{"regions": [{"id": "a"}, {"id": "b", "cluster": ""}]}`,
		"cluster object":  `{"regions": [{"id": "a"}, {"id": "b", "cluster": {"id": "a"}}]}`,
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c, err := Parse([]byte(`{"regions": [{"id": "dc1", "name": "Rack 1"}, {"id": "eu", "name": "Europe", "cluster": "dc1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cluster("eu"); got.GetId() != "dc1" {
		t.Errorf("Cluster(eu) = %v, want dc1", got)
	}
	if got := c.Cluster("dc1"); got.GetId() != "dc1" {
		t.Errorf("Cluster(dc1) = %v, want itself", got)
	}
	if c.Cluster("nowhere") != nil {
		t.Error("Cluster of an unknown region is not nil")
	}
}

// TestDefaultNorthflankRegions: the built-in catalogue accepts Northflank's
// public region ids (scripts written for Northflank name them), each run
// by this install's one cluster, "local", which stays the default.
func TestDefaultNorthflankRegions(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRegion().GetId() != "local" {
		t.Errorf("default region %q, want local", c.DefaultRegion().GetId())
	}
	for _, id := range []string{"asia-northeast", "asia-southeast", "australia-southeast", "europe-west",
		"europe-west-frankfurt", "europe-west-netherlands", "us-central", "us-east1", "us-west"} {
		if c.Region(id) == nil {
			t.Errorf("region %q missing", id)
		}
		if got := c.Cluster(id).GetId(); got != "local" {
			t.Errorf("region %q runs on %q, want local", id, got)
		}
	}
}

func TestMaxInstances(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MaxInstances(c.DefaultPlan().GetId()); got != MaxInstances {
		t.Errorf("MaxInstances(default plan) = %d, want %d", got, MaxInstances)
	}
	if got := c.MaxInstances("no-such-plan"); got != 0 {
		t.Errorf("MaxInstances(unknown plan) = %d, want 0", got)
	}
}
