package probe

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

func validHTTP(t Type) HealthCheck {
	return HealthCheck{Protocol: HTTP, Type: t, Path: "/health", Port: 8080,
		InitialDelaySeconds: 10, PeriodSeconds: 60, TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1}
}

func TestValidateAcceptsAFullSet(t *testing.T) {
	checks := []HealthCheck{
		validHTTP(Readiness),
		{Protocol: TCP, Type: Liveness, Port: 9090, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3},
		{Protocol: CMD, Type: Startup, Cmd: `sh -c 'test -f "/tmp/up ready"'`, PeriodSeconds: 2, TimeoutSeconds: 1, FailureThreshold: 30},
	}
	if err := Validate("healthChecks", checks, []int{8080, 9090}); err != nil {
		t.Fatalf("Validate: %v (%v)", err, apierr.From(err).Fields)
	}
	if err := Validate("healthChecks", nil, nil); err != nil {
		t.Fatalf("no checks: %v", err)
	}
}

func TestValidateNamesEveryBadField(t *testing.T) {
	mod := func(f func(*HealthCheck)) HealthCheck { c := validHTTP(Readiness); f(&c); return c }
	cases := []struct {
		name   string
		checks []HealthCheck
		ports  []int
		field  string
		want   string
	}{
		{"unknown type", []HealthCheck{mod(func(c *HealthCheck) { c.Type = "healthProbe" })}, []int{8080}, "healthChecks[0].type", "livenessProbe, readinessProbe or startupProbe"},
		{"two readiness checks", []HealthCheck{validHTTP(Readiness), validHTTP(Liveness), validHTTP(Readiness)}, []int{8080}, "healthChecks[2].type", "only one readinessProbe"},
		{"unknown protocol", []HealthCheck{mod(func(c *HealthCheck) { c.Protocol = "GRPC" })}, []int{8080}, "healthChecks[0].protocol", "HTTP, TCP or CMD"},
		{"HTTP without path", []HealthCheck{mod(func(c *HealthCheck) { c.Path = "" })}, []int{8080}, "healthChecks[0].path", "required"},
		{"relative path", []HealthCheck{mod(func(c *HealthCheck) { c.Path = "health" })}, []int{8080}, "healthChecks[0].path", `start with "/"`},
		{"path with a space", []HealthCheck{mod(func(c *HealthCheck) { c.Path = "/a b" })}, []int{8080}, "healthChecks[0].path", "spaces"},
		{"path too long", []HealthCheck{mod(func(c *HealthCheck) { c.Path = "/" + strings.Repeat("a", MaxPathLength) })}, []int{8080}, "healthChecks[0].path", "at most"},
		{"HTTP without port", []HealthCheck{mod(func(c *HealthCheck) { c.Port = 0 })}, []int{8080}, "healthChecks[0].port", "required"},
		{"undeclared port", []HealthCheck{mod(func(c *HealthCheck) { c.Port = 3000 })}, []int{8080, 9090}, "healthChecks[0].port", "one of the service's ports (8080, 9090)"},
		{"service without ports", []HealthCheck{validHTTP(Readiness)}, nil, "healthChecks[0].port", "declares none"},
		{"TCP without port", []HealthCheck{{Protocol: TCP, Type: Liveness, PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 1}}, []int{8080}, "healthChecks[0].port", "required"},
		{"TCP with a path", []HealthCheck{{Protocol: TCP, Type: Liveness, Port: 8080, Path: "/x", PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 1}}, []int{8080}, "healthChecks[0].path", "only used by HTTP"},
		{"CMD without cmd", []HealthCheck{{Protocol: CMD, Type: Liveness, Cmd: "  ", PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 1}}, nil, "healthChecks[0].cmd", "required"},
		{"CMD that does not split", []HealthCheck{{Protocol: CMD, Type: Liveness, Cmd: `echo "open`, PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 1}}, nil, "healthChecks[0].cmd", "cannot be split"},
		{"CMD with a port", []HealthCheck{{Protocol: CMD, Type: Liveness, Cmd: "true", Port: 8080, PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 1}}, []int{8080}, "healthChecks[0].port", "only used by HTTP and TCP"},
		{"HTTP with a cmd", []HealthCheck{mod(func(c *HealthCheck) { c.Cmd = "true" })}, []int{8080}, "healthChecks[0].cmd", "only used by CMD"},
		{"negative initial delay", []HealthCheck{mod(func(c *HealthCheck) { c.InitialDelaySeconds = -1 })}, []int{8080}, "healthChecks[0].initialDelaySeconds", "between 0 and 3600"},
		{"no period", []HealthCheck{mod(func(c *HealthCheck) { c.PeriodSeconds = 0 })}, []int{8080}, "healthChecks[0].periodSeconds", "between 1 and 3600"},
		{"no timeout", []HealthCheck{mod(func(c *HealthCheck) { c.TimeoutSeconds = 0 })}, []int{8080}, "healthChecks[0].timeoutSeconds", "at least 1"},
		{"timeout as long as the period", []HealthCheck{mod(func(c *HealthCheck) { c.TimeoutSeconds, c.PeriodSeconds = 5, 5 })}, []int{8080}, "healthChecks[0].timeoutSeconds", "less than periodSeconds"},
		{"no failure threshold", []HealthCheck{mod(func(c *HealthCheck) { c.FailureThreshold = 0 })}, []int{8080}, "healthChecks[0].failureThreshold", "between 1 and 100"},
		{"negative success threshold", []HealthCheck{mod(func(c *HealthCheck) { c.SuccessThreshold = -1 })}, []int{8080}, "healthChecks[0].successThreshold", "between 1 and 100"},
		{"liveness success threshold", []HealthCheck{func() HealthCheck { c := validHTTP(Liveness); c.SuccessThreshold = 2; return c }()}, []int{8080}, "healthChecks[0].successThreshold", "must be 1 for a livenessProbe"},
		{"startup success threshold", []HealthCheck{func() HealthCheck { c := validHTTP(Startup); c.SuccessThreshold = 3; return c }()}, []int{8080}, "healthChecks[0].successThreshold", "must be 1 for a startupProbe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate("healthChecks", tc.checks, tc.ports)
			e := apierr.From(err)
			if e == nil {
				t.Fatalf("Validate = %v, want a validation error", err)
			}
			if e.Code != codes.InvalidArgument || e.Reason != apierr.ReasonValidationFailed {
				t.Fatalf("code %v reason %v, want InvalidArgument VALIDATION_FAILED", e.Code, e.Reason)
			}
			got := e.Fields[tc.field]
			if len(got) == 0 || !strings.Contains(strings.Join(got, "; "), tc.want) {
				t.Fatalf("fields %v, want %s containing %q", e.Fields, tc.field, tc.want)
			}
		})
	}
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	checks := []HealthCheck{
		{Protocol: HTTP, Type: Liveness, Path: "x", Port: 1, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 0},
	}
	e := apierr.From(Validate("healthChecks", checks, []int{8080}))
	for _, f := range []string{"path", "port", "timeoutSeconds", "failureThreshold"} {
		if len(e.Fields["healthChecks[0]."+f]) == 0 {
			t.Errorf("no problem reported for %s: %v", f, e.Fields)
		}
	}
}

// GET …/health-checks names the port httpPort or tcpSocketPort; requests
// name it port.
func TestViewUsesTheGetFieldNames(t *testing.T) {
	req := `{"protocol":"HTTP","type":"readinessProbe","path":"/up","port":8080,"initialDelaySeconds":0,"periodSeconds":5,"timeoutSeconds":1,"failureThreshold":3}`
	var c HealthCheck
	if err := json.Unmarshal([]byte(req), &c); err != nil {
		t.Fatal(err)
	}
	if c.Port != 8080 || c.Successes() != DefaultSuccessThreshold {
		t.Fatalf("decoded %+v", c)
	}
	out, _ := json.Marshal(c.View())
	want := `{"protocol":"HTTP","type":"readinessProbe","path":"/up","httpPort":8080,"initialDelaySeconds":0,"periodSeconds":5,"timeoutSeconds":1,"failureThreshold":3,"successThreshold":1}`
	if string(out) != want {
		t.Fatalf("HTTP view\n got %s\nwant %s", out, want)
	}
	tcp := HealthCheck{Protocol: TCP, Type: Liveness, Port: 5432, PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 3}
	out, _ = json.Marshal(tcp.View())
	want = `{"protocol":"TCP","type":"livenessProbe","path":null,"tcpSocketPort":5432,"initialDelaySeconds":0,"periodSeconds":10,"timeoutSeconds":1,"failureThreshold":3,"successThreshold":1}`
	if string(out) != want {
		t.Fatalf("TCP view\n got %s\nwant %s", out, want)
	}
	cmd := HealthCheck{Protocol: CMD, Type: Startup, Cmd: "pg_isready", PeriodSeconds: 10, TimeoutSeconds: 1, FailureThreshold: 3}
	out, _ = json.Marshal(cmd.View())
	want = `{"protocol":"CMD","type":"startupProbe","path":null,"cmd":"pg_isready","initialDelaySeconds":0,"periodSeconds":10,"timeoutSeconds":1,"failureThreshold":3,"successThreshold":1}`
	if string(out) != want {
		t.Fatalf("CMD view\n got %s\nwant %s", out, want)
	}
}
