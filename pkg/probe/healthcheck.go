// Package probe checks the health of a service's instances the way the
// kubelet does, because nothing else will: Buildah drops an image's
// HEALTHCHECK and Podman runs its own health checks from systemd timers,
// which a Slipway host need not have. So Slipway probes every instance
// itself, over 127.0.0.1 (where the runtime drivers publish an instance's
// ports) or through the driver's exec.
//
// The model is Northflank's health check (HealthCheck, with its wire field
// names) and the semantics are Kubernetes':
//
//   - A startupProbe gates the other two: liveness and readiness checks do
//     not run until the startup check has succeeded once. A startup check
//     that fails failureThreshold times in a row means the instance never
//     came up: it is reported Dead, like a liveness failure. Without a
//     startup check an instance counts as started as soon as probing begins.
//   - A livenessProbe that fails failureThreshold times in a row reports the
//     instance Dead: the caller restarts it (with Backoff) and calls
//     Prober.Reset. An instance is presumed live from the moment it starts.
//   - A readinessProbe decides whether the instance receives traffic: it
//     becomes Ready after successThreshold successes in a row and NotReady
//     after failureThreshold failures in a row. An instance starts not
//     ready; without a readiness check it is Ready as soon as it is started.
//
// Validate checks a set of health checks for the API and names the
// offending fields the Northflank way (healthChecks[1].port), so the
// deployments service can answer 400 VALIDATION_FAILED.
package probe

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mattn/go-shellwords"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// Protocol is how a health check reaches the instance.
type Protocol string

// The protocols of Northflank's health checks.
const (
	// HTTP sends GET http://127.0.0.1:<port><path>; a 2xx or 3xx answer is
	// healthy (redirects are not followed).
	HTTP Protocol = "HTTP"
	// TCP opens a connection to 127.0.0.1:<port>; connecting is healthy,
	// unless the connection is closed at once (a port forwarder with
	// nothing listening behind it; see TCPChecker).
	TCP Protocol = "TCP"
	// CMD runs a command inside the instance; exit code 0 is healthy.
	CMD Protocol = "CMD"
)

// Type is what a health check decides (see the package documentation).
type Type string

// The types of Northflank's health checks, which are Kubernetes' probes.
const (
	// Liveness checks decide restarts.
	Liveness Type = "livenessProbe"
	// Readiness checks decide traffic.
	Readiness Type = "readinessProbe"
	// Startup checks gate the other two until the instance has come up.
	Startup Type = "startupProbe"
)

// DefaultSuccessThreshold is the successThreshold of a check that leaves
// it out: Northflank marks it optional (its example is 1) and 1 is also
// Kubernetes' default. Every other numeric field is required by
// Northflank's request type, so it has no default here either.
const DefaultSuccessThreshold = 1

// Limits Slipway puts on the numbers of a health check; Northflank
// documents none, Kubernetes none that matter. They keep a typo (an extra
// zero or three) from parking an instance for days.
const (
	MaxInitialDelaySeconds = 3600
	MaxPeriodSeconds       = 3600
	MaxThreshold           = 100
	// MaxPathLength and MaxCmdLength bound what is stored and sent.
	MaxPathLength = 2048
	MaxCmdLength  = 4096
)

// HealthCheck is one of a service's health checks, with the field names
// of Northflank's request (POST …/health-checks and service create/update:
// §healthChecks). The GET answer names the port differently; see View.
type HealthCheck struct {
	// Protocol is HTTP, TCP or CMD.
	Protocol Protocol `json:"protocol"`
	// Type is livenessProbe, readinessProbe or startupProbe.
	Type Type `json:"type"`
	// Path is the HTTP path, starting with "/" (HTTP only).
	Path string `json:"path,omitempty"`
	// Cmd is the command line run in the instance (CMD only), split into
	// words like a job's customCommand (shell quoting, no shell).
	Cmd string `json:"cmd,omitempty"`
	// Port is the instance's internal port (HTTP and TCP), one of the
	// service's declared ports.
	Port int `json:"port,omitempty"`
	// InitialDelaySeconds is how long after the instance starts the check
	// first runs.
	InitialDelaySeconds int `json:"initialDelaySeconds"`
	// PeriodSeconds is the time between two runs of the check.
	PeriodSeconds int `json:"periodSeconds"`
	// TimeoutSeconds bounds one run; a run that takes longer failed.
	TimeoutSeconds int `json:"timeoutSeconds"`
	// FailureThreshold is how many failures in a row flip the check to
	// failed.
	FailureThreshold int `json:"failureThreshold"`
	// SuccessThreshold is how many successes in a row flip the check to
	// passed; 0 means DefaultSuccessThreshold. Liveness and startup checks
	// take only 1, as in Kubernetes.
	SuccessThreshold int `json:"successThreshold,omitempty"`
}

// Successes is the effective success threshold (the default for 0).
func (c HealthCheck) Successes() int {
	if c.SuccessThreshold == 0 {
		return DefaultSuccessThreshold
	}
	return c.SuccessThreshold
}

// Argv splits Cmd into the words handed to exec. Validate has already
// rejected a Cmd that does not split.
func (c HealthCheck) Argv() ([]string, error) {
	return shellwords.Parse(c.Cmd)
}

// View is a health check as GET …/health-checks answers it: Northflank
// names the port httpPort for HTTP checks and tcpSocketPort for TCP
// checks there, while requests use port for both. (Its GET type lists
// only livenessProbe and readinessProbe; Slipway answers the startup
// check too, since it accepted it.)
type View struct {
	Protocol            Protocol `json:"protocol"`
	Type                Type     `json:"type"`
	Path                *string  `json:"path"`
	Cmd                 string   `json:"cmd,omitempty"`
	HTTPPort            int      `json:"httpPort,omitempty"`
	TCPSocketPort       int      `json:"tcpSocketPort,omitempty"`
	InitialDelaySeconds int      `json:"initialDelaySeconds"`
	PeriodSeconds       int      `json:"periodSeconds"`
	TimeoutSeconds      int      `json:"timeoutSeconds"`
	FailureThreshold    int      `json:"failureThreshold"`
	SuccessThreshold    int      `json:"successThreshold"`
}

// View returns c in the shape of the GET answer.
func (c HealthCheck) View() View {
	v := View{
		Protocol: c.Protocol, Type: c.Type, Cmd: c.Cmd,
		InitialDelaySeconds: c.InitialDelaySeconds, PeriodSeconds: c.PeriodSeconds,
		TimeoutSeconds: c.TimeoutSeconds, FailureThreshold: c.FailureThreshold,
		SuccessThreshold: c.Successes(),
	}
	switch c.Protocol {
	case HTTP:
		path := c.Path
		v.Path = &path
		v.HTTPPort = c.Port
	case TCP:
		v.TCPSocketPort = c.Port
	}
	return v
}

// Validate checks a service's health checks against its declared ports
// (the internalPort of each of its ports). It returns nil or an
// *apierr.Error (VALIDATION_FAILED) whose fields are Northflank-style
// paths under field, e.g. "healthChecks[0].path" for field "healthChecks",
// each with every problem found, so one answer lists them all.
func Validate(field string, checks []HealthCheck, ports []int) error {
	fields := map[string][]string{}
	bad := func(i int, name, problem string) {
		f := fmt.Sprintf("%s[%d].%s", field, i, name)
		fields[f] = append(fields[f], problem)
	}
	seen := map[Type]int{}
	for i, c := range checks {
		switch c.Type {
		case Liveness, Readiness, Startup:
			if j, dup := seen[c.Type]; dup {
				bad(i, "type", fmt.Sprintf("only one %s is allowed (healthChecks[%d] is one already)", c.Type, j))
			} else {
				seen[c.Type] = i
			}
		default:
			bad(i, "type", "must be livenessProbe, readinessProbe or startupProbe")
		}

		needsPort := c.Protocol == HTTP || c.Protocol == TCP
		switch c.Protocol {
		case HTTP:
			switch {
			case c.Path == "":
				bad(i, "path", "is required for an HTTP health check")
			case !strings.HasPrefix(c.Path, "/"):
				bad(i, "path", `must start with "/"`)
			case len(c.Path) > MaxPathLength:
				bad(i, "path", "must be at most "+strconv.Itoa(MaxPathLength)+" characters")
			case strings.ContainsFunc(c.Path, func(r rune) bool { return r <= ' ' || r == 0x7f }):
				bad(i, "path", "must not contain spaces or control characters")
			}
		case TCP, CMD:
			if c.Path != "" {
				bad(i, "path", "is only used by HTTP health checks")
			}
		default:
			bad(i, "protocol", "must be HTTP, TCP or CMD")
		}

		if c.Protocol == CMD {
			switch argv, err := c.Argv(); {
			case strings.TrimSpace(c.Cmd) == "":
				bad(i, "cmd", "is required for a CMD health check")
			case len(c.Cmd) > MaxCmdLength:
				bad(i, "cmd", "must be at most "+strconv.Itoa(MaxCmdLength)+" characters")
			case err != nil:
				bad(i, "cmd", "cannot be split into words: "+err.Error())
			case len(argv) == 0:
				bad(i, "cmd", "is required for a CMD health check")
			}
		} else if c.Cmd != "" {
			bad(i, "cmd", "is only used by CMD health checks")
		}

		switch {
		case needsPort && c.Port == 0:
			bad(i, "port", "is required for an "+string(c.Protocol)+" health check")
		case needsPort && !slices.Contains(ports, c.Port):
			if len(ports) == 0 {
				bad(i, "port", "must be one of the service's ports, and it declares none")
			} else {
				bad(i, "port", "must be one of the service's ports ("+joinInts(ports)+")")
			}
		case c.Protocol == CMD && c.Port != 0:
			bad(i, "port", "is only used by HTTP and TCP health checks")
		}

		if c.InitialDelaySeconds < 0 || c.InitialDelaySeconds > MaxInitialDelaySeconds {
			bad(i, "initialDelaySeconds", "must be between 0 and "+strconv.Itoa(MaxInitialDelaySeconds))
		}
		periodOK := c.PeriodSeconds >= 1 && c.PeriodSeconds <= MaxPeriodSeconds
		if !periodOK {
			bad(i, "periodSeconds", "must be between 1 and "+strconv.Itoa(MaxPeriodSeconds))
		}
		switch {
		case c.TimeoutSeconds < 1:
			bad(i, "timeoutSeconds", "must be at least 1")
		case periodOK && c.TimeoutSeconds >= c.PeriodSeconds:
			// A run that may outlast its period would overlap the next one.
			bad(i, "timeoutSeconds", "must be less than periodSeconds")
		}
		if c.FailureThreshold < 1 || c.FailureThreshold > MaxThreshold {
			bad(i, "failureThreshold", "must be between 1 and "+strconv.Itoa(MaxThreshold))
		}
		switch s := c.SuccessThreshold; {
		case s < 0 || s > MaxThreshold:
			bad(i, "successThreshold", "must be between 1 and "+strconv.Itoa(MaxThreshold))
		case s > 1 && (c.Type == Liveness || c.Type == Startup):
			bad(i, "successThreshold", "must be 1 for a "+string(c.Type))
		}
	}
	if len(fields) > 0 {
		return apierr.Invalid("request validation failed", fields)
	}
	return nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
