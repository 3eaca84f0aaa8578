package deployments

import "testing"

func TestSettingChecks(t *testing.T) {
	for v, ok := range map[string]bool{"127.0.0.1:8000": true, "0.0.0.0:0": true, ":8000": true, "localhost": false, "8000": false} {
		if err := hostPort(v); (err == nil) != ok {
			t.Errorf("hostPort(%q) = %v", v, err)
		}
	}
	for v, ok := range map[string]bool{"localhost": true, "apps.example.com": true, "": false, "http://x": false, ".example.com": false, "example.com.": false, "a b": false} {
		if err := domain(v); (err == nil) != ok {
			t.Errorf("domain(%q) = %v", v, err)
		}
	}
}
