package jobs

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/slug"
)

// request is what every job request names.
type request interface {
	GetTeamId() string
	GetProjectId() string
}

// team is the team the call acts on, as the authorization interceptor
// resolved it (it has also checked the token's project restriction).
func team(ctx context.Context) (string, error) {
	grant, ok := authz.GrantFrom(ctx)
	if !ok {
		return "", authz.Unauthenticated("credentials required")
	}
	return grant.GetTeamId(), nil
}

// ListJobs implements JobsService.
func (s *Service) ListJobs(ctx context.Context, req *jobsv1.ListJobsRequest) (*jobsv1.ListJobsResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	scope := "jobs/" + teamID + "/" + req.GetProjectId()
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	if err := s.checkProject(ctx, teamID, req.GetProjectId()); err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListJobs(ctx, teamID, req.GetProjectId(), p)
	if err != nil {
		return nil, err
	}
	resp := &jobsv1.ListJobsResponse{Jobs: make([]*jobsv1.JobSummary, 0, len(list))}
	last := ""
	for _, j := range list {
		resp.Jobs = append(resp.Jobs, summaryOf(j))
		last = j.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateManualJob implements JobsService.
func (s *Service) CreateManualJob(ctx context.Context, req *jobsv1.CreateManualJobRequest) (*jobsv1.CreateManualJobResponse, error) {
	j, err := s.create(ctx, req, TypeManual, req.GetSpec())
	return &jobsv1.CreateManualJobResponse{Job: j}, err
}

// CreateCronJob implements JobsService.
func (s *Service) CreateCronJob(ctx context.Context, req *jobsv1.CreateCronJobRequest) (*jobsv1.CreateCronJobResponse, error) {
	j, err := s.create(ctx, req, TypeCron, req.GetSpec())
	return &jobsv1.CreateCronJobResponse{Job: j}, err
}

// PutManualJob implements JobsService.
func (s *Service) PutManualJob(ctx context.Context, req *jobsv1.PutManualJobRequest) (*jobsv1.PutManualJobResponse, error) {
	j, err := s.put(ctx, req, TypeManual, req.GetSpec())
	return &jobsv1.PutManualJobResponse{Job: j}, err
}

// PutCronJob implements JobsService.
func (s *Service) PutCronJob(ctx context.Context, req *jobsv1.PutCronJobRequest) (*jobsv1.PutCronJobResponse, error) {
	j, err := s.put(ctx, req, TypeCron, req.GetSpec())
	return &jobsv1.PutCronJobResponse{Job: j}, err
}

// PatchManualJob implements JobsService.
func (s *Service) PatchManualJob(ctx context.Context, req *jobsv1.PatchManualJobRequest) (*jobsv1.PatchManualJobResponse, error) {
	j, err := s.patch(ctx, req, req.GetJobId(), TypeManual, req.GetSpec())
	return &jobsv1.PatchManualJobResponse{Job: j}, err
}

// PatchCronJob implements JobsService.
func (s *Service) PatchCronJob(ctx context.Context, req *jobsv1.PatchCronJobRequest) (*jobsv1.PatchCronJobResponse, error) {
	j, err := s.patch(ctx, req, req.GetJobId(), TypeCron, req.GetSpec())
	return &jobsv1.PatchCronJobResponse{Job: j}, err
}

// GetJob implements JobsService.
func (s *Service) GetJob(ctx context.Context, req *jobsv1.GetJobRequest) (*jobsv1.GetJobResponse, error) {
	j, err := s.job(ctx, req, req.GetJobId())
	if err != nil {
		return nil, err
	}
	return &jobsv1.GetJobResponse{Job: jobOf(j, s.opts.Driver.Name())}, nil
}

// DeleteJob implements JobsService.
func (s *Service) DeleteJob(ctx context.Context, req *jobsv1.DeleteJobRequest) (*jobsv1.DeleteJobResponse, error) {
	j, err := s.job(ctx, req, req.GetJobId())
	if err != nil {
		return nil, err
	}
	if err := s.deleteJob(ctx, j); err != nil {
		return nil, err
	}
	return &jobsv1.DeleteJobResponse{}, nil
}

// SuspendJob implements JobsService.
func (s *Service) SuspendJob(ctx context.Context, req *jobsv1.SuspendJobRequest) (*jobsv1.SuspendJobResponse, error) {
	suspend := true
	if req.Suspended != nil {
		suspend = req.GetSuspended()
	}
	return &jobsv1.SuspendJobResponse{}, s.setSuspended(ctx, req, req.GetJobId(), suspend)
}

// ResumeJob implements JobsService.
func (s *Service) ResumeJob(ctx context.Context, req *jobsv1.ResumeJobRequest) (*jobsv1.ResumeJobResponse, error) {
	return &jobsv1.ResumeJobResponse{}, s.setSuspended(ctx, req, req.GetJobId(), req.GetSuspended())
}

// GetJobRuntimeEnvironment implements JobsService.
func (s *Service) GetJobRuntimeEnvironment(ctx context.Context, req *jobsv1.GetJobRuntimeEnvironmentRequest) (*jobsv1.GetJobRuntimeEnvironmentResponse, error) {
	j, err := s.job(ctx, req, req.GetJobId())
	if err != nil {
		return nil, err
	}
	if req.GetShow() == "inherited" { // a job inherits nothing (yet)
		return &jobsv1.GetJobRuntimeEnvironmentResponse{RuntimeEnvironment: map[string]string{}, RuntimeFiles: map[string]string{}}, nil
	}
	return &jobsv1.GetJobRuntimeEnvironmentResponse{RuntimeEnvironment: orEmpty(j.Env), RuntimeFiles: map[string]string{}}, nil
}

// UpdateJobRuntimeEnvironment implements JobsService.
func (s *Service) UpdateJobRuntimeEnvironment(ctx context.Context, req *jobsv1.UpdateJobRuntimeEnvironmentRequest) (*jobsv1.UpdateJobRuntimeEnvironmentResponse, error) {
	if err := checkEnv("runtimeEnvironment", req.GetRuntimeEnvironment()); err != nil {
		return nil, err
	}
	j, err := s.update(ctx, req, req.GetJobId(), func(j *Job) error {
		j.Env = maps.Clone(req.GetRuntimeEnvironment())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &jobsv1.UpdateJobRuntimeEnvironmentResponse{RuntimeEnvironment: orEmpty(j.Env), RuntimeFiles: map[string]string{}}, nil
}

// create validates spec and creates the job.
func (s *Service) create(ctx context.Context, req request, typ Type, spec *jobsv1.JobSpec) (*jobsv1.Job, error) {
	j, err := s.newJob(ctx, req, typ, spec)
	if err != nil {
		return nil, err
	}
	evs, err := jobEvents(events.ResourceCreated, j)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateJob(ctx, j, evs...); err != nil {
		return nil, apierr.FromStore(err, "job", j.ID)
	}
	return jobOf(j, s.opts.Driver.Name()), nil
}

// put creates the job or replaces the settings of the one with the same id
// (its type cannot change).
func (s *Service) put(ctx context.Context, req request, typ Type, spec *jobsv1.JobSpec) (*jobsv1.Job, error) {
	want, err := s.newJob(ctx, req, typ, spec)
	if err != nil {
		return nil, err
	}
	evs, err := jobEvents(events.ResourceCreated, want)
	if err != nil {
		return nil, err
	}
	err = s.store.CreateJob(ctx, want, evs...)
	if err == nil {
		return jobOf(want, s.opts.Driver.Name()), nil
	}
	if !errors.Is(err, ErrAlreadyExists) {
		return nil, apierr.FromStore(err, "job", want.ID)
	}
	j, err := s.update(ctx, req, want.ID, func(j *Job) error {
		if j.Type != typ {
			return apierr.Conflict(apierr.ReasonJobTypeMismatch, "job %q is a %s job; its type cannot change", j.ID, j.Type)
		}
		j.Name, j.Description, j.Tags, j.Plan, j.Deployment, j.Env = want.Name, want.Description, want.Tags, want.Plan, want.Deployment, want.Env
		j.BackoffLimit, j.ActiveDeadlineSeconds, j.RunOnSourceChange = want.BackoffLimit, want.ActiveDeadlineSeconds, want.RunOnSourceChange
		j.Schedule, j.ConcurrencyPolicy, j.Suspended = want.Schedule, want.ConcurrencyPolicy, want.Suspended
		build := cloneBuild(want.Build)
		if build != nil {
			keepCredentials(j.Build, build, spec.GetDeployment().GetVcs().GetCredentials())
		}
		j.Build = build
		return nil
	})
	if err != nil {
		return nil, err
	}
	return jobOf(j, s.opts.Driver.Name()), nil
}

// newJob validates a create or put request into a job.
func (s *Service) newJob(ctx context.Context, req request, typ Type, spec *jobsv1.JobSpec) (Job, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Job{}, err
	}
	now := s.now()
	j := Job{
		TeamID: teamID, ProjectID: req.GetProjectId(), ID: slug.Make(spec.GetName()), Name: spec.GetName(),
		Description: spec.GetDescription(), Tags: slices.Clone(spec.GetTags()), Type: typ,
		Plan: spec.GetBilling().GetDeploymentPlan(), Deployment: deploymentFrom(spec.GetDeployment()),
		Env: maps.Clone(spec.GetRuntimeEnvironment()), BackoffLimit: spec.GetBackoffLimit(),
		ActiveDeadlineSeconds: int64(spec.GetActiveDeadlineSeconds()), RunOnSourceChange: spec.GetRunOnSourceChange(),
		Schedule: spec.GetSchedule(), ConcurrencyPolicy: spec.GetConcurrencyPolicy(), Suspended: spec.GetSuspended(),
		CreatedAt: now, UpdatedAt: now,
	}
	if j.Build, err = buildFrom(spec.GetDeployment().GetVcs(), spec.GetBuildSettings(), spec.GetBuildConfiguration(),
		spec.GetBuildArguments(), spec.GetBilling().GetBuildPlan(), spec.GetDisabledCi()); err != nil {
		return Job{}, err
	}
	if j.RunOnSourceChange == "" {
		j.RunOnSourceChange = "never"
	}
	if typ == TypeCron && j.ConcurrencyPolicy == "" {
		j.ConcurrencyPolicy = PolicyAllow
	}
	if err := s.check(&j); err != nil {
		return Job{}, err
	}
	if err := s.checkProject(ctx, teamID, j.ProjectID); err != nil {
		return Job{}, err
	}
	return j, nil
}

// check validates what the proto rules cannot (cron syntax, plans, what
// the runtime can run) and fills in defaults and the next tick.
func (s *Service) check(j *Job) error {
	if j.Type == TypeManual {
		switch {
		case j.Schedule != "":
			return apierr.InvalidField("schedule", "only cron jobs have a schedule")
		case j.ConcurrencyPolicy != "":
			return apierr.InvalidField("concurrencyPolicy", "only cron jobs have a concurrency policy")
		case j.Suspended:
			return apierr.InvalidField("suspended", "only cron jobs can be suspended")
		}
	}
	if j.Type == TypeCron && j.Schedule == "" {
		return apierr.InvalidField("schedule", "is required for a cron job")
	}
	next, err := nextTick(*j, s.opts.Clock())
	if err != nil {
		return err
	}
	j.NextRunAt = next
	if j.Plan == "" {
		if p := s.opts.Catalog.DefaultPlan(); p != nil {
			j.Plan = p.GetId()
		}
	} else if s.opts.Catalog.Plan(j.Plan) == nil {
		return apierr.InvalidField("billing.deploymentPlan", "is not a plan of GET /v1/plans")
	}
	if j.Build != nil {
		if err := checkBuild(*j); err != nil {
			return err
		}
		if plan := j.Build.BuildPlan; plan != "" && s.opts.Catalog.Plan(plan) == nil {
			return apierr.InvalidField("billing.buildPlan", "is not a plan of GET /v1/plans")
		}
	} else if j.Deployment.Internal != nil {
		if err := checkInternal(j.Deployment); err != nil {
			return err
		}
	} else if err := checkDeployment(j.Deployment, s.opts.Driver.Name()); err != nil {
		return err
	}
	return checkEnv("runtimeEnvironment", j.Env)
}

// patch applies the fields a patch request gives.
func (s *Service) patch(ctx context.Context, req request, id string, typ Type, p *jobsv1.JobPatch) (*jobsv1.Job, error) {
	if typ == TypeManual {
		switch {
		case p.Schedule != nil:
			return nil, apierr.InvalidField("schedule", "only cron jobs have a schedule")
		case p.ConcurrencyPolicy != nil:
			return nil, apierr.InvalidField("concurrencyPolicy", "only cron jobs have a concurrency policy")
		case p.Suspended != nil:
			return nil, apierr.InvalidField("suspended", "only cron jobs have a schedule to suspend")
		}
	}
	j, err := s.update(ctx, req, id, func(j *Job) error {
		if j.Type != typ {
			return apierr.NotFound(string(typ)+" job", id)
		}
		if p.Description != nil {
			j.Description = p.GetDescription()
		}
		if p.Tags != nil {
			j.Tags = slices.Clone(p.GetTags())
		}
		if p.GetBilling().GetDeploymentPlan() != "" {
			j.Plan = p.GetBilling().GetDeploymentPlan()
		}
		if p.Deployment != nil {
			j.Deployment = deploymentFrom(p.GetDeployment())
			switch {
			case p.GetDeployment().GetVcs() != nil: // a new repository (credentials as vcs.KeepCredentials says)
				before := cloneBuild(j.Build)
				build := cloneBuild(j.Build)
				if build == nil {
					build = &Build{}
				}
				if err := setVcs(build, p.GetDeployment().GetVcs()); err != nil {
					return err
				}
				keepCredentials(before, build, p.GetDeployment().GetVcs().GetCredentials())
				j.Build = build
			case p.GetDeployment().GetExternal() != nil: // an image instead of a build
				j.Build = nil
			}
		}
		if err := patchBuild(j, p); err != nil {
			return err
		}
		if p.RuntimeEnvironment != nil {
			j.Env = maps.Clone(p.GetRuntimeEnvironment())
		}
		if p.BackoffLimit != nil {
			j.BackoffLimit = p.GetBackoffLimit()
		}
		if p.RunOnSourceChange != nil {
			j.RunOnSourceChange = p.GetRunOnSourceChange()
		}
		if p.ActiveDeadlineSeconds != nil {
			j.ActiveDeadlineSeconds = int64(p.GetActiveDeadlineSeconds())
		}
		if p.Schedule != nil {
			j.Schedule = p.GetSchedule()
		}
		if p.ConcurrencyPolicy != nil {
			j.ConcurrencyPolicy = p.GetConcurrencyPolicy()
		}
		if p.Suspended != nil { // Northflank's patch of a cron job carries it
			j.Suspended = p.GetSuspended()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return jobOf(j, s.opts.Driver.Name()), nil
}

// setSuspended suspends or resumes a cron job's schedule.
func (s *Service) setSuspended(ctx context.Context, req request, id string, suspended bool) error {
	_, err := s.update(ctx, req, id, func(j *Job) error {
		if j.Type != TypeCron {
			return apierr.Conflict(apierr.ReasonNotACronJob, "job %q is a manual job; only cron jobs have a schedule to suspend", j.ID)
		}
		j.Suspended = suspended
		return nil
	})
	return err
}

// update runs mutate on the job, re-validates it, and stamps and announces
// it when something changed.
func (s *Service) update(ctx context.Context, req request, id string, mutate func(*Job) error) (Job, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Job{}, err
	}
	j, err := s.store.UpdateJob(ctx, teamID, req.GetProjectId(), id, func(j *Job) ([]events.Event, error) {
		before := copyJob(*j)
		if err := mutate(j); err != nil {
			return nil, err
		}
		if err := s.check(j); err != nil {
			return nil, err
		}
		if j.Schedule == before.Schedule && j.Suspended == before.Suspended && !before.NextRunAt.IsZero() {
			// Same schedule: keep the pending tick, even one already due.
			j.NextRunAt = before.NextRunAt
		}
		if jobsEqual(before, *j) {
			*j = before
			return nil, nil
		}
		j.UpdatedAt = s.now()
		return jobEvents(events.ResourceUpdated, *j)
	})
	if err != nil {
		return Job{}, apierr.FromStore(err, "job", id)
	}
	return j, nil
}

// job reads the job a request names.
func (s *Service) job(ctx context.Context, req request, id string) (Job, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Job{}, err
	}
	j, err := s.store.GetJob(ctx, teamID, req.GetProjectId(), id)
	if err != nil {
		return Job{}, apierr.FromStore(err, "job", id)
	}
	return j, nil
}

// deleteJob aborts the job's active runs and deletes it with its runs and
// logs.
func (s *Service) deleteJob(ctx context.Context, j Job) error {
	active, err := s.store.ActiveRuns(ctx, j.TeamID, j.ProjectID, j.ID)
	if err != nil {
		return err
	}
	for _, r := range active {
		if _, err := s.abort(ctx, r); err != nil && !isConflict(err) && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	evs, err := jobEvents(events.ResourceDeleted, j)
	if err != nil {
		return err
	}
	if err := s.store.DeleteJob(ctx, j.TeamID, j.ProjectID, j.ID, evs...); err != nil {
		return apierr.FromStore(err, "job", j.ID)
	}
	return nil
}

// checkProject asks the projects service whether the project exists in
// the team; 404 when it does not.
func (s *Service) checkProject(ctx context.Context, teamID, project string) error {
	_, err := s.opts.Projects.LookupProject(s.opts.Internal(ctx), &projectsv1.LookupProjectRequest{TeamId: teamID, ProjectId: project})
	if status.Code(err) == codes.NotFound {
		return apierr.NotFound("project", project)
	}
	if err != nil {
		s.log.WarnContext(ctx, "looking up a project", "error", err)
		return apierr.Unavailable("the projects service")
	}
	return nil
}

func isConflict(err error) bool {
	e := apierr.From(err)
	return e != nil && e.Code == codes.FailedPrecondition
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// jobEventData is the data of jobs.job.* events, the jobs service's own
// lifecycle events (documented in the README; the feed for webhooks).
type jobEventData struct {
	TeamID      string `json:"teamId"`
	ProjectID   string `json:"projectId"`
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Type        string `json:"type"`
	Schedule    string `json:"schedule,omitempty"`
	Suspended   bool   `json:"suspended,omitempty"`
}

// jobEvents are the events announcing that j was created, updated or
// deleted: the service's own jobs.job.<verb> and the shared
// jobs.resource.<verb> (events.ProjectResource) through which the projects
// service lists the job on its project. Both go into the same outbox
// transaction as the change, so the two never disagree.
func jobEvents(verb events.ResourceVerb, j Job) ([]events.Event, error) {
	own, err := events.New("jobs", "job", string(verb), j.TeamID+"/"+j.ProjectID+"/"+j.ID, jobEventData{
		TeamID: j.TeamID, ProjectID: j.ProjectID, ID: j.ID, Name: j.Name, Description: j.Description,
		Type: string(j.Type), Schedule: j.Schedule, Suspended: j.Suspended,
	})
	if err != nil {
		return nil, err
	}
	shared, err := events.NewProjectResource("jobs", verb, events.ProjectResource{
		TeamID: j.TeamID, ProjectID: j.ProjectID, Kind: events.ResourceJob, ID: j.ID,
		Name: j.Name, Description: j.Description, Type: string(j.Type),
	})
	if err != nil {
		return nil, err
	}
	return []events.Event{own, shared}, nil
}

// copyJob deep-copies what mutate may change in place.
func copyJob(j Job) Job {
	j.Tags = slices.Clone(j.Tags)
	j.Env = maps.Clone(j.Env)
	j.Build = cloneBuild(j.Build)
	return j
}

// jobsEqual reports whether an update changed nothing (nil and empty
// collections are the same).
func jobsEqual(a, b Job) bool {
	ta, tb := a.Tags, b.Tags
	ea, eb := a.Env, b.Env
	a.Tags, b.Tags, a.Env, b.Env = nil, nil, nil, nil
	return reflect.DeepEqual(a, b) && slices.Equal(ta, tb) && maps.Equal(ea, eb)
}

func isNotFound(err error) bool {
	e := apierr.From(err)
	return e != nil && e.Code == codes.NotFound
}
