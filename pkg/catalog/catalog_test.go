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
