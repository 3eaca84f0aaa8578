package jobs

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// maxEnvBytes bounds a job's environment (keys and values together), the
// way Kubernetes bounds a Secret: enough for any configuration, small
// enough that a run's spec stays a small row.
const maxEnvBytes = 256 << 10

// descriptors are the shorthands a schedule may be instead of five fields
// (those of Kubernetes' CronJob, which robfig/cron also knows). The
// parser's "@every <duration>" is not among them: it fires at any
// interval, down to nanoseconds, and a schedule fires at most once a
// minute.
var descriptors = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

// parseSchedule parses a schedule as the README documents it: five cron
// fields (minute, hour, day of month, month, day of week), always UTC, or
// one of the descriptors. Nothing finer than a minute can be said that
// way; anything else (seconds fields, "@every", "CRON_TZ=" prefixes) is
// refused.
func parseSchedule(expr string) (cron.Schedule, error) {
	invalid := func(why string) error {
		return apierr.InvalidField("schedule", "is not a valid schedule ("+why+"): give five cron fields, UTC, such as \"*/5 * * * *\", or one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually")
	}
	fields := strings.Fields(expr)
	switch {
	case len(fields) == 1 && strings.HasPrefix(fields[0], "@"):
		if !descriptors[fields[0]] {
			return nil, invalid(fmt.Sprintf("unknown descriptor %q", fields[0]))
		}
	case len(fields) > 0 && strings.HasPrefix(fields[0], "@"):
		return nil, invalid(fmt.Sprintf("unknown descriptor %q", fields[0]))
	case strings.Contains(expr, "TZ="):
		return nil, invalid("schedules are always UTC")
	case len(fields) != 5:
		return nil, invalid(fmt.Sprintf("%d fields, want 5", len(fields)))
	}
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, invalid(err.Error())
	}
	return s, nil
}

// nextTick is when schedule fires next after now, or zero for a job that
// does not fire.
func nextTick(j Job, now time.Time) (time.Time, error) {
	if j.Type != TypeCron || j.Suspended || j.Schedule == "" {
		return time.Time{}, nil
	}
	s, err := parseSchedule(j.Schedule)
	if err != nil {
		return time.Time{}, err
	}
	return s.Next(now.UTC()).UTC(), nil
}

// deploymentFrom reads the wire deployment.
func deploymentFrom(d *jobsv1.JobDeployment) Deployment {
	return Deployment{
		Image:            strings.TrimSpace(d.GetExternal().GetImagePath()),
		ConfigType:       d.GetDocker().GetConfigType(),
		CustomEntrypoint: d.GetDocker().GetCustomEntrypoint(),
		CustomCommand:    d.GetDocker().GetCustomCommand(),
		StorageMB:        d.GetStorage().GetEphemeralStorage().GetStorageSize(),
		ShmMB:            d.GetStorage().GetShmSize(),
		Internal:         internalFrom(d.GetInternal()),
	}
}

// internalFrom reads deployment.internal (nil when not given).
func internalFrom(in *deploymentsv1.InternalSource) *InternalRef {
	if in == nil {
		return nil
	}
	return &InternalRef{Service: in.GetId(), Branch: in.GetBranch(), BuildSHA: strings.ToLower(in.GetBuildSha()), BuildID: in.GetBuildId()}
}

// overlay applies a run's deployment override to the job's: what the
// override gives replaces the job's.
func overlay(base Deployment, o *jobsv1.JobDeployment) Deployment {
	if o == nil {
		return base
	}
	if o.GetExternal().GetImagePath() != "" {
		base.Image = strings.TrimSpace(o.GetExternal().GetImagePath())
	}
	if o.GetDocker() != nil {
		base.ConfigType = o.GetDocker().GetConfigType()
		base.CustomEntrypoint = o.GetDocker().GetCustomEntrypoint()
		base.CustomCommand = o.GetDocker().GetCustomCommand()
	}
	if o.GetStorage() != nil {
		base.StorageMB = o.GetStorage().GetEphemeralStorage().GetStorageSize()
		base.ShmMB = o.GetStorage().GetShmSize()
	}
	return base
}

// checkDeployment refuses a deployment the runtime cannot run (see
// overrides.Check).
func checkDeployment(d Deployment, driver string) error {
	return overrides.Check(d.Overrides(), driver, "deployment", "job")
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

// workload turns a run's spec into what the runtime starts (the image and
// command as overrides.Apply maps them).
func workload(r Run, attempt int32, deadline time.Duration) runtime.Spec {
	d := r.Spec.Deployment
	spec := runtime.Spec{
		Name:      containerName(r, attempt),
		Env:       maps.Clone(r.Spec.Env),
		Labels:    workloadLabels(r, attempt),
		Resources: runtime.Resources{MilliCPU: r.Spec.MilliCPU, MemoryMB: r.Spec.MemoryMB},
		Deadline:  deadline,
	}
	if spec.Env == nil {
		spec.Env = map[string]string{}
	}
	if a := r.Spec.Artifact; a != nil {
		applyArtifact(&spec, d, a)
		return spec
	}
	overrides.Apply(&spec, d.Overrides())
	return spec
}

// Labels on every workload, so a restarted service finds what it started.
const (
	labelService = "dev.slipway.service"
	labelTeam    = "dev.slipway.team"
	labelProject = "dev.slipway.project"
	labelJob     = "dev.slipway.job"
	labelRun     = "dev.slipway.run"
	labelAttempt = "dev.slipway.attempt"
)

func workloadLabels(r Run, attempt int32) map[string]string {
	return map[string]string{
		labelService: "jobs", labelTeam: r.TeamID, labelProject: r.ProjectID,
		labelJob: r.JobID, labelRun: r.ID, labelAttempt: fmt.Sprint(attempt),
	}
}

// containerName names an attempt's workload, Northflank's containerId.
func containerName(r Run, attempt int32) string { return fmt.Sprintf("%s-%d", r.Name, attempt) }

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// jobOf is the wire form of a job.
func jobOf(j Job, cluster string) *jobsv1.Job {
	out := &jobsv1.Job{
		Id: j.ID, AppId: "/" + j.TeamID + "/" + j.ProjectID + "/" + j.ID, Name: j.Name, Description: j.Description,
		Tags: j.Tags, ProjectId: j.ProjectID, JobType: string(j.Type),
		CreatedAt: timestamp(j.CreatedAt), UpdatedAt: timestamp(j.UpdatedAt),
		DisabledCi: true, Deployment: deploymentOf(j.Deployment), Billing: &jobsv1.JobBilling{DeploymentPlan: j.Plan},
		Suspended: j.Suspended, BackoffLimit: j.BackoffLimit, ActiveDeadlineSeconds: int32(j.ActiveDeadlineSeconds),
		RunOnSourceChange: j.RunOnSourceChange, Schedule: j.Schedule, ConcurrencyPolicy: j.ConcurrencyPolicy,
		Settings: &jobsv1.JobSettings{BackoffLimit: j.BackoffLimit, ActiveDeadlineSeconds: int32(j.ActiveDeadlineSeconds)},
		Cluster:  &jobsv1.JobCluster{Id: cluster, Name: cluster},
		Status:   &jobsv1.JobStatus{},
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if b := j.Build; b != nil {
		repo := vcsOf(b) // without its credentials, which are never shown
		repo.PublicRepo = !b.Credentials.Private()
		out.Deployment.Vcs = repo
		out.BuildSettings, out.BuildConfiguration = settingsOf(b), configOf(b)
		out.Billing.BuildPlan, out.DisabledCi = b.BuildPlan, b.DisabledCI
	}
	if j.Type == TypeCron {
		policy := j.ConcurrencyPolicy
		if policy != "" {
			policy = strings.ToUpper(policy[:1]) + policy[1:]
		}
		out.Settings.Cron = &jobsv1.JobCronSettings{Schedule: j.Schedule, ConcurrencyPolicy: policy}
	}
	return out
}

func deploymentOf(d Deployment) *jobsv1.JobDeployment {
	out := &jobsv1.JobDeployment{Docker: &jobsv1.DockerOverrides{ConfigType: d.ConfigType, CustomEntrypoint: d.CustomEntrypoint, CustomCommand: d.CustomCommand}}
	if out.Docker.ConfigType == "" {
		out.Docker.ConfigType = overrides.Default
	}
	if d.Image != "" {
		out.External = &jobsv1.ExternalImage{ImagePath: d.Image}
	}
	if in := d.Internal; in != nil {
		out.Internal = &deploymentsv1.InternalSource{Id: in.Service, Branch: in.Branch, BuildSha: in.BuildSHA, BuildId: in.BuildID}
	}
	if d.StorageMB != 0 || d.ShmMB != 0 {
		out.Storage = &jobsv1.JobStorage{ShmSize: d.ShmMB}
		if d.StorageMB != 0 {
			out.Storage.EphemeralStorage = &jobsv1.EphemeralStorage{StorageSize: d.StorageMB}
		}
	}
	return out
}

func summaryOf(j Job) *jobsv1.JobSummary {
	tags := j.Tags
	if tags == nil {
		tags = []string{}
	}
	return &jobsv1.JobSummary{
		Id: j.ID, ProjectId: j.ProjectID, AppId: "/" + j.TeamID + "/" + j.ProjectID + "/" + j.ID, Name: j.Name,
		Tags: tags, Description: j.Description, JobType: string(j.Type), DisabledCi: j.Build == nil || j.Build.DisabledCI, Suspended: j.Suspended,
	}
}

func runOf(r Run) *jobsv1.JobRun {
	out := &jobsv1.JobRun{
		Id: r.ID, RunName: r.Name, Status: string(r.Status), Succeeded: r.Succeeded, Failed: r.Failed,
		BackoffLimit: r.BackoffLimit, Retries: max(r.Attempts-1, 0), Completions: 1, Concluded: r.Concluded(),
		StartedAt: timestamp(r.StartedAt), ConcludedAt: timestamp(r.ConcludedAt), Reason: r.Reason,
		ExitCode: r.ExitCode, JobId: r.JobID,
	}
	if r.Active {
		out.Active = 1
	}
	return out
}

func lineOf(l LogLine) *jobsv1.LogLine {
	return &jobsv1.LogLine{ContainerId: l.Container, Log: l.Text, Ts: timestamppb.New(l.Time), RunId: l.RunID, Stream: l.Stream}
}
