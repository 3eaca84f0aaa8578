package deployments

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"context"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/deployments/rollout"
)

// artifactDir is where a process-driver workload sees the app tree of the
// build it runs (the builds component's artifacts plan).
const artifactDir = "/app"

// maxEnvBytes bounds a service's environment (keys and values together),
// as jobs bound theirs.
const maxEnvBytes = 256 << 10

// defaultGraceSeconds is the stop grace period of a service that sets
// none (Kubernetes' and Northflank's 30 s).
const defaultGraceSeconds = 30

// overridesFrom reads a deployment's image and docker overrides.
func overridesFrom(external *deploymentsv1.ExternalImage, docker *deploymentsv1.DockerOverrides) overrides.Overrides {
	return overrides.Overrides{
		Image:            strings.TrimSpace(external.GetImagePath()),
		ConfigType:       docker.GetConfigType(),
		CustomEntrypoint: docker.GetCustomEntrypoint(),
		CustomCommand:    docker.GetCustomCommand(),
	}
}

// portsFrom reads ports, refusing duplicate names and port numbers and
// public ports the ingress cannot route.
func portsFrom(field string, in []*deploymentsv1.PortSpec) ([]Port, error) {
	out := make([]Port, 0, len(in))
	problems := map[string][]string{}
	names := map[string]int{}
	numbers := map[int32]int{}
	for i, p := range in {
		at := fmt.Sprintf("%s[%d]", field, i)
		if j, dup := names[p.GetName()]; dup {
			problems[at+".name"] = append(problems[at+".name"], fmt.Sprintf("%q is also the name of %s[%d]; port names are unique", p.GetName(), field, j))
		}
		names[p.GetName()] = i
		if j, dup := numbers[p.GetInternalPort()]; dup {
			problems[at+".internalPort"] = append(problems[at+".internalPort"], fmt.Sprintf("%d is also the port of %s[%d]; each port is declared once", p.GetInternalPort(), field, j))
		}
		numbers[p.GetInternalPort()] = i
		if strings.Contains(p.GetName(), "--") {
			problems[at+".name"] = append(problems[at+".name"], `may not contain "--", which separates the parts of the port's host name`)
		}
		if p.GetPublic() && p.GetProtocol() != "HTTP" && p.GetProtocol() != "HTTP/2" {
			problems[at+".public"] = append(problems[at+".public"], "only HTTP and HTTP/2 ports can be public (the ingress routes HTTP by host name)")
		}
		out = append(out, Port{Name: p.GetName(), Port: int(p.GetInternalPort()), Protocol: p.GetProtocol(), Public: p.GetPublic()})
	}
	if len(problems) > 0 {
		return nil, apierr.Invalid("invalid ports", problems)
	}
	return out, nil
}

// healthChecksFrom reads health checks (Validate checks them).
func healthChecksFrom(in []*deploymentsv1.HealthCheck) []probe.HealthCheck {
	out := make([]probe.HealthCheck, 0, len(in))
	for _, c := range in {
		out = append(out, probe.HealthCheck{
			Protocol: probe.Protocol(c.GetProtocol()), Type: probe.Type(c.GetType()), Path: c.GetPath(), Cmd: c.GetCmd(),
			Port: int(c.GetPort()), InitialDelaySeconds: int(c.GetInitialDelaySeconds()), PeriodSeconds: int(c.GetPeriodSeconds()),
			TimeoutSeconds: int(c.GetTimeoutSeconds()), FailureThreshold: int(c.GetFailureThreshold()), SuccessThreshold: int(c.GetSuccessThreshold()),
		})
	}
	return out
}

// checkHealthChecks validates checks against the service's ports.
func checkHealthChecks(field string, checks []probe.HealthCheck, ports []Port) error {
	numbers := make([]int, 0, len(ports))
	for _, p := range ports {
		numbers = append(numbers, p.Port)
	}
	return probe.Validate(field, checks, numbers)
}

// strategyFrom reads a rollout strategy; a custom one needs its settings.
func strategyFrom(in *deploymentsv1.Strategy) (Strategy, error) {
	st := Strategy{Type: in.GetType()}
	if in.GetType() != "custom" {
		if in.GetSettings() != nil {
			return Strategy{}, apierr.InvalidField("deployment.strategy.settings", `are only used with type "custom"`)
		}
		return st, nil
	}
	var err error
	if st.MaxSurge, err = amount("deployment.strategy.settings.maxSurge", in.GetSettings().GetMaxSurge()); err != nil {
		return Strategy{}, err
	}
	if st.MaxUnavailable, err = amount("deployment.strategy.settings.maxUnavailable", in.GetSettings().GetMaxUnavailable()); err != nil {
		return Strategy{}, err
	}
	return st, nil
}

// amount reads a number or a percentage ("25%") of a custom strategy.
func amount(field string, v *structpb.Value) (string, error) {
	bad := apierr.InvalidField(field, `is required with type "custom": a whole number of instances or a percentage such as "25%"`)
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		if k.NumberValue < 0 || k.NumberValue != math.Trunc(k.NumberValue) || k.NumberValue > 1000 {
			return "", bad
		}
		return strconv.Itoa(int(k.NumberValue)), nil
	case *structpb.Value_StringValue:
		pct, ok := strings.CutSuffix(k.StringValue, "%")
		n, err := strconv.Atoi(pct)
		if !ok || err != nil || n < 0 || n > 100 {
			return "", bad
		}
		return k.StringValue, nil
	}
	return "", bad
}

// resolve turns an amount into instances out of wanted, rounding up or
// down.
func resolve(a string, wanted int, up bool) int {
	if pct, ok := strings.CutSuffix(a, "%"); ok {
		n, _ := strconv.Atoi(pct) // checked on write
		f := float64(n*wanted) / 100
		if up {
			return int(math.Ceil(f))
		}
		return int(math.Floor(f))
	}
	n, _ := strconv.Atoi(a)
	return n
}

// rolloutStrategy is the controller's form of a strategy.
func rolloutStrategy(st Strategy, wanted int) rollout.Strategy {
	surge, unavailable := "1", "0"
	switch st.Type {
	case "recreate":
		return rollout.Strategy{Recreate: true}
	case "rollout-balanced":
		surge, unavailable = "25%", "25%"
	case "rollout-fast":
		surge, unavailable = "50%", "50%"
	case "custom":
		surge, unavailable = st.MaxSurge, st.MaxUnavailable
	}
	out := rollout.Strategy{MaxSurge: resolve(surge, wanted, true), MaxUnavailable: resolve(unavailable, wanted, false)}
	if out.MaxSurge == 0 && out.MaxUnavailable == 0 {
		out.MaxSurge = 1 // a rollout must be able to move
	}
	return out
}

// checkEnv bounds an environment's total size.
func checkEnv(field string, env map[string]string) error {
	n := 0
	for k, v := range env {
		n += len(k) + len(v)
	}
	if n > maxEnvBytes {
		return apierr.InvalidField(field, fmt.Sprintf("is %d bytes; at most %d are allowed", n, maxEnvBytes))
	}
	return nil
}

// ---- the controller's view

// unrunnable says why sv's build cannot run on this driver ("" when it
// can): the docker driver runs the built image; the process driver runs
// the built app tree with the build's start command or the service's
// customCommand.
func (s *Server) unrunnable(sv Service) string {
	b := sv.Deployable.Build
	hasCommand := sv.Deployable.Overrides.CustomCommand != ""
	switch {
	case s.opts.Driver == "process" && b.Path == "":
		return fmt.Sprintf("build %s has no app tree for the process driver (it was built as an image); build it again on this install", b.ID)
	case s.opts.Driver == "process" && len(b.Command) == 0 && !hasCommand:
		return fmt.Sprintf("build %s found no start command (no Procfile or known stack); set deployment.docker.customCommand (configType customCommand) to start it", b.ID)
	case s.opts.Driver != "process" && b.Image == "":
		return fmt.Sprintf("build %s has no image for the %s driver; build it again on this install", b.ID, s.opts.Driver)
	}
	return ""
}

// toRollout is the desired state of sv for the controller.
func (s *Server) toRollout(sv Service) rollout.Service {
	d := sv.Deployable
	spec := runtime.Spec{Env: maps.Clone(d.Env)}
	if spec.Env == nil {
		spec.Env = map[string]string{}
	}
	switch b := d.Build; {
	case b == nil:
		overrides.Apply(&spec, d.Overrides)
	case s.opts.Driver == "process":
		// The artifact's app tree, read-only at /app, started there.
		o := d.Overrides
		o.Image = ""
		if o.CustomCommand != "" {
			overrides.Apply(&spec, o)
		} else {
			spec.Command = slices.Clone(b.Command)
		}
		spec.Mounts = []runtime.Mount{{Source: b.Path, Target: artifactDir, ReadOnly: true}}
		spec.WorkDir = artifactDir
	default:
		o := d.Overrides
		o.Image = b.Image
		overrides.Apply(&spec, o)
	}
	if p := s.opts.Catalog.Plan(sv.Plan); p != nil {
		spec.Resources = runtime.Resources{MilliCPU: int64(p.GetCpuResource() * 1000), MemoryMB: int64(p.GetRamResource())}
	}
	ports := make([]rollout.Port, 0, len(d.Ports))
	for _, p := range d.Ports {
		ports = append(ports, rollout.Port{Name: p.Name, Port: p.Port, Protocol: p.Protocol, Public: p.Public})
	}
	return rollout.Service{
		ID: controllerID(sv.TeamID, sv.ProjectID, sv.ID), TeamID: sv.TeamID, ProjectID: sv.ProjectID, ProjectName: sv.ProjectID,
		Name: sv.ID,
		Release: rollout.Release{
			ID: sv.ReleaseID, Workload: spec, Ports: ports, HealthChecks: slices.Clone(d.HealthChecks), ReadyTimeout: s.opts.ReadyTimeout,
		},
		Instances: sv.Instances, Paused: sv.Paused, Strategy: rolloutStrategy(sv.Strategy, sv.Instances),
		Grace: time.Duration(sv.GraceSeconds) * time.Second, Restart: sv.Restart,
	}
}

// apply hands sv's desired state to the controller, with what its
// secret groups give it (read now: every apply, so every new instance,
// has the groups' current values). A build service runs nothing; a service that deploys builds runs nothing until there is a
// build to run (it waits, PENDING), and a release of a build that cannot
// run on this driver fails with the reason.
func (s *Server) apply(sv Service) {
	if sv.Kind == KindBuild {
		return
	}
	key := controllerID(sv.TeamID, sv.ProjectID, sv.ID)
	if _, builds := followOf(sv); builds {
		if sv.Deployable.Build == nil {
			s.ctl.Delete(key)
			return
		}
		if why := s.unrunnable(sv); why != "" {
			s.ctl.Delete(key)
			if sv.Status.Status != StatusFailed {
				s.Rollout(context.Background(), rollout.Outcome{ServiceID: key, ReleaseID: sv.ReleaseID, Status: rollout.RolloutFailed, Reason: why})
			}
			return
		}
	}
	rs := s.toRollout(sv)
	fp, err := s.addSecrets(sv, &rs.Release.Workload)
	if err != nil {
		s.applySecretsFailed(sv, err)
		return
	}
	if fp != sv.SecretsPrint {
		if rs.Restart, err = s.secretsChanged(sv, fp); err != nil {
			s.applySecretsFailed(sv, err)
			return
		}
	}
	s.metrics.track(key, sv.ProjectID, sv.ID, sv.Deployable.Ports)
	s.ctl.Apply(rs)
}

// ---- wire forms

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// externalOf is the wire form of an image.
func externalOf(image string) *deploymentsv1.ExternalImageView {
	if image == "" {
		return nil
	}
	provider := "dockerhub"
	if first, _, ok := strings.Cut(image, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		provider = "custom"
	}
	return &deploymentsv1.ExternalImageView{ImagePath: image, RegistryProvider: provider}
}

func dockerOf(o overrides.Overrides) *deploymentsv1.DockerOverrides {
	out := &deploymentsv1.DockerOverrides{ConfigType: o.ConfigType, CustomEntrypoint: o.CustomEntrypoint, CustomCommand: o.CustomCommand}
	if out.ConfigType == "" {
		out.ConfigType = overrides.Default
	}
	return out
}

func storageOf(sv Service) *deploymentsv1.ServiceStorage {
	out := &deploymentsv1.ServiceStorage{ShmSize: sv.ShmMB}
	if sv.StorageMB != 0 {
		out.EphemeralStorage = &deploymentsv1.EphemeralStorage{StorageSize: sv.StorageMB}
	}
	return out
}

func strategyOf(st Strategy) *deploymentsv1.Strategy {
	out := &deploymentsv1.Strategy{Type: st.Type}
	if out.Type == "" {
		out.Type = "rollout-steady"
	}
	if st.Type == "custom" {
		out.Settings = &deploymentsv1.StrategySettings{MaxSurge: amountOf(st.MaxSurge), MaxUnavailable: amountOf(st.MaxUnavailable)}
	}
	return out
}

func amountOf(a string) *structpb.Value {
	if n, err := strconv.Atoi(a); err == nil {
		return structpb.NewNumberValue(float64(n))
	}
	return structpb.NewStringValue(a)
}

// portsOf is the wire form of ports: a public HTTP port shows the URL the
// ingress answers on.
func (s *Server) portsOf(project, service string, ports []Port) []*deploymentsv1.Port {
	out := make([]*deploymentsv1.Port, 0, len(ports))
	for _, p := range ports {
		wp := &deploymentsv1.Port{Id: p.Name, Name: p.Name, InternalPort: int32(p.Port), Protocol: p.Protocol, Public: p.Public, Domains: []*deploymentsv1.Domain{}}
		if p.Public && (p.Protocol == "HTTP" || p.Protocol == "HTTP/2") {
			wp.Dns = s.portURL(project, service, p.Name)
		}
		out = append(out, wp)
	}
	return out
}

// portURL is where the ingress answers for a port.
func (s *Server) portURL(project, service, port string) string {
	host := s.opts.Ingress.Host(project, service, port)
	scheme, standard := "http://", "80"
	if s.opts.IngressTLS {
		scheme, standard = "https://", "443"
	}
	if s.opts.IngressPort != "" && s.opts.IngressPort != standard {
		host += ":" + s.opts.IngressPort
	}
	return scheme + host
}

func healthChecksOf(checks []probe.HealthCheck) []*deploymentsv1.HealthCheckView {
	out := make([]*deploymentsv1.HealthCheckView, 0, len(checks))
	for _, c := range checks {
		v := c.View()
		out = append(out, &deploymentsv1.HealthCheckView{
			Protocol: string(v.Protocol), Type: string(v.Type), Path: v.Path, Cmd: v.Cmd,
			HttpPort: int32(v.HTTPPort), TcpSocketPort: int32(v.TCPSocketPort),
			InitialDelaySeconds: int32(v.InitialDelaySeconds), PeriodSeconds: int32(v.PeriodSeconds),
			TimeoutSeconds: int32(v.TimeoutSeconds), FailureThreshold: int32(v.FailureThreshold), SuccessThreshold: int32(v.SuccessThreshold),
		})
	}
	return out
}

func statusOf(st Status) *deploymentsv1.ServiceStatus {
	return &deploymentsv1.ServiceStatus{Deployment: deploymentStatusOf(st)}
}

func deploymentStatusOf(st Status) *deploymentsv1.DeploymentStatus {
	out := &deploymentsv1.DeploymentStatus{Status: st.Status, Reason: st.Reason, LastTransitionTime: timestamp(st.At), Message: st.Message}
	if out.Status == "" {
		out.Status = StatusPending
	}
	if out.Reason == "" {
		out.Reason = ReasonDeploying
	}
	return out
}

func appID(sv Service) string { return "/" + sv.TeamID + "/" + sv.ProjectID + "/" + sv.ID }

func tagsOf(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

// serviceOf is the wire form of a service.
func (s *Server) serviceOf(sv Service) *deploymentsv1.Service {
	out := &deploymentsv1.Service{
		Id: sv.ID, AppId: appID(sv), Name: sv.Name, Description: sv.Description, Tags: tagsOf(sv.Tags),
		ProjectId: sv.ProjectID, ServiceType: string(sv.Kind), CreatedAt: timestamp(sv.CreatedAt), UpdatedAt: timestamp(sv.UpdatedAt),
		DisabledCi: disabledCI(sv), Billing: &deploymentsv1.Billing{DeploymentPlan: sv.Plan, BuildPlan: sv.Build.BuildPlan},
		Status: statusOf(sv.Status), ServicePaused: sv.Paused,
		Deployment: &deploymentsv1.ServiceDeployment{
			Type: "deployment", Instances: int32(sv.Instances), External: externalOf(sv.Deployable.Overrides.Image),
			Docker: dockerOf(sv.Deployable.Overrides), Storage: storageOf(sv), Strategy: strategyOf(sv.Strategy),
			GracePeriodSeconds: int32(sv.GraceSeconds), Region: "local",
		},
		Ports:   s.portsOf(sv.ProjectID, sv.ID, sv.Deployable.Ports),
		Cluster: &deploymentsv1.Cluster{Id: s.opts.Driver, Name: s.opts.Driver},
	}
	out.Deployment.Internal = internalOf(sv)
	if sv.Kind.Builds() {
		out.BuildSource = "git"
		out.VcsData, out.BuildSettings, out.BuildConfiguration = vcsOf(sv.Build), settingsOf(sv.Build), configOf(sv.Build)
		out.VcsData.PublicRepo = !sv.Build.Credentials.Private()
		out.DisabledCi = sv.Build.DisabledCI
	}
	if sv.Kind == KindBuild {
		// A build service deploys nothing: no deployment, plan or ports.
		out.Deployment, out.Status, out.Billing.DeploymentPlan = nil, &deploymentsv1.ServiceStatus{}, ""
		out.Ports = []*deploymentsv1.Port{}
	}
	return out
}

// disabledCI is whether pushes build nothing for sv (always for a
// service that does not build).
func disabledCI(sv Service) bool { return !sv.Kind.Builds() || sv.Build.DisabledCI }

func summaryOf(sv Service) *deploymentsv1.ServiceSummary {
	out := &deploymentsv1.ServiceSummary{
		Id: sv.ID, AppId: appID(sv), ProjectId: sv.ProjectID, Name: sv.Name, Tags: tagsOf(sv.Tags),
		Description: sv.Description, ServiceType: string(sv.Kind), DisabledCi: disabledCI(sv), Status: statusOf(sv.Status),
	}
	if sv.Kind == KindBuild {
		out.Status = &deploymentsv1.ServiceStatus{}
	}
	return out
}

// releaseOf is the wire form of a release; the environment's values are
// secrets and stay out of it.
func (s *Server) releaseOf(r Release) *deploymentsv1.Release {
	keys := slices.Sorted(maps.Keys(r.Deployable.Env))
	if keys == nil {
		keys = []string{}
	}
	return &deploymentsv1.Release{
		Id: r.ID, Cause: r.Cause, RolledBackFrom: r.RolledBackFrom,
		Deployment:             &deploymentsv1.ReleaseDeployment{External: externalOf(r.Deployable.Overrides.Image), Docker: dockerOf(r.Deployable.Overrides), Internal: releaseBuildOf(r.Deployable.Build)},
		Ports:                  s.portsOf(r.ProjectID, r.ServiceID, r.Deployable.Ports),
		HealthChecks:           healthChecksOf(r.Deployable.HealthChecks),
		RuntimeEnvironmentKeys: keys, CreatedBy: r.CreatedBy, CreatedAt: timestamp(r.CreatedAt),
		Status: r.Status, Reason: r.Reason,
	}
}

func containerOf(in rollout.Instance) *deploymentsv1.Container {
	return &deploymentsv1.Container{
		Name: in.Name, CreatedAt: float64(in.CreatedAt.Unix()), UpdatedAt: float64(in.CreatedAt.Unix()), Status: in.Status,
		ReleaseId: in.ReleaseID, Ready: in.Ready, Restarts: int32(in.Restarts),
	}
}

// releaseBuildOf is the wire form of the build a release deploys.
func releaseBuildOf(b *BuildRef) *deploymentsv1.ReleaseBuild {
	if b == nil {
		return nil
	}
	return &deploymentsv1.ReleaseBuild{NfObjectId: b.Service, BuildId: b.ID, Sha: b.SHA, Branch: b.Branch}
}
