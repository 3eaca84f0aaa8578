package jobs

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"maps"

	"github.com/google/uuid"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
)

// StartJobRun implements JobsService.
func (s *Service) StartJobRun(ctx context.Context, req *jobsv1.StartJobRunRequest) (*jobsv1.StartJobRunResponse, error) {
	j, err := s.job(ctx, req, req.GetJobId())
	if err != nil {
		return nil, err
	}
	spec, err := s.runSpec(ctx, j, req.GetOverrides())
	if err != nil {
		return nil, err
	}
	r, err := s.startRun(ctx, j, spec)
	if err != nil {
		return nil, err
	}
	return &jobsv1.StartJobRunResponse{Run: runOf(r)}, nil
}

// ListJobRuns implements JobsService.
func (s *Service) ListJobRuns(ctx context.Context, req *jobsv1.ListJobRunsRequest) (*jobsv1.ListJobRunsResponse, error) {
	j, err := s.job(ctx, req, req.GetJobId())
	if err != nil {
		return nil, err
	}
	scope := "runs/" + j.TeamID + "/" + j.ProjectID + "/" + j.ID
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListRuns(ctx, j.TeamID, j.ProjectID, j.ID, p)
	if err != nil {
		return nil, err
	}
	resp := &jobsv1.ListJobRunsResponse{Runs: make([]*jobsv1.JobRun, 0, len(list))}
	last := ""
	for _, r := range list {
		resp.Runs = append(resp.Runs, runOf(r))
		last = r.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// GetJobRun implements JobsService.
func (s *Service) GetJobRun(ctx context.Context, req *jobsv1.GetJobRunRequest) (*jobsv1.GetJobRunResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.store.GetRun(ctx, teamID, req.GetProjectId(), req.GetJobId(), req.GetRunId())
	if err != nil {
		return nil, apierr.FromStore(err, "run", req.GetRunId())
	}
	return &jobsv1.GetJobRunResponse{Run: runOf(r)}, nil
}

// AbortJobRun implements JobsService.
func (s *Service) AbortJobRun(ctx context.Context, req *jobsv1.AbortJobRunRequest) (*jobsv1.AbortJobRunResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.store.GetRun(ctx, teamID, req.GetProjectId(), req.GetJobId(), req.GetRunId())
	if err != nil {
		return nil, apierr.FromStore(err, "run", req.GetRunId())
	}
	if _, err := s.abort(ctx, r); err != nil {
		return nil, err
	}
	return &jobsv1.AbortJobRunResponse{}, nil
}

// runSpec is what a run of j starts with overrides applied, validated
// like the job itself; a job that builds from git runs the newest
// successful build of its branch (409 NO_BUILD when there is none).
func (s *Service) runSpec(ctx context.Context, j Job, o *jobsv1.RunOverrides) (RunSpec, error) {
	if o.GetDeployment().GetVcs() != nil || o.GetDeployment().GetInternal() != nil {
		return RunSpec{}, apierr.InvalidField("deployment", "a run cannot change what the job builds or which service's builds it runs: change the job")
	}
	spec := RunSpec{Deployment: overlay(j.Deployment, o.GetDeployment()), Env: maps.Clone(j.Env), Plan: j.Plan}
	if len(o.GetRuntimeEnvironment()) > 0 {
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		maps.Copy(spec.Env, o.GetRuntimeEnvironment())
	}
	if plan := o.GetBilling().GetDeploymentPlan(); plan != "" {
		if s.opts.Catalog.Plan(plan) == nil {
			return RunSpec{}, apierr.InvalidField("billing.deploymentPlan", "is not a plan of GET /v1/plans")
		}
		spec.Plan = plan
	}
	if j.Build != nil || j.Deployment.Internal != nil {
		if err := checkBuiltDeployment(spec.Deployment); err != nil {
			return RunSpec{}, err
		}
		a, err := s.artifactFor(ctx, j, spec.Deployment)
		if err != nil {
			return RunSpec{}, err
		}
		spec.Artifact = a
	} else if err := checkDeployment(spec.Deployment, s.opts.Driver.Name()); err != nil {
		return RunSpec{}, err
	}
	if err := checkEnv("runtimeEnvironment", spec.Env); err != nil {
		return RunSpec{}, err
	}
	if err := s.addSecretGroups(ctx, j, &spec); err != nil {
		return RunSpec{}, err
	}
	if p := s.opts.Catalog.Plan(spec.Plan); p != nil {
		spec.MilliCPU = int64(p.GetCpuResource() * 1000)
		spec.MemoryMB = int64(p.GetRamResource())
	}
	return spec, nil
}

// startRun records a new run of j, owned by this replica, and starts
// supervising it; its first attempt starts right away.
func (s *Service) startRun(ctx context.Context, j Job, spec RunSpec) (Run, error) {
	id, err := uuid.NewV7() // sorts by creation time, so lists page by id
	if err != nil {
		return Run{}, err
	}
	now := s.now()
	r := Run{
		TeamID: j.TeamID, ProjectID: j.ProjectID, JobID: j.ID, ID: id.String(), Name: j.ID + "-" + suffix(),
		Status: RunRunning, Spec: spec, BackoffLimit: j.BackoffLimit,
		Owner: s.opts.Owner, LeaseUntil: now.Add(s.opts.LeaseTTL), StartedAt: now,
	}
	if j.ActiveDeadlineSeconds > 0 {
		r.Deadline = now.Add(secondsOf(j.ActiveDeadlineSeconds))
	}
	ev, err := runEvent("started", r)
	if err != nil {
		return Run{}, err
	}
	if err := s.store.CreateRun(ctx, r, ev); err != nil {
		return Run{}, apierr.FromStore(err, "run", r.ID)
	}
	s.supervise(r)
	return r, nil
}

// abort ends an active run as FAILED (Aborted) and stops its workload; a
// concluded run is a conflict.
func (s *Service) abort(ctx context.Context, r Run) (Run, error) {
	var workload string
	r, err := s.store.UpdateRun(ctx, r.TeamID, r.ProjectID, r.JobID, r.ID, func(r *Run) ([]events.Event, error) {
		if r.Concluded() {
			return nil, apierr.Conflict(apierr.ReasonRunConcluded, "run %q has already concluded with %s", r.ID, r.Status)
		}
		workload = r.WorkloadID
		return s.conclude(r, RunFailed, ReasonAborted, "aborted")
	})
	if err != nil {
		return Run{}, apierr.FromStore(err, "run", r.ID)
	}
	s.stopWorkload(r, workload)
	return r, nil
}

// conclude ends r and returns the event announcing it.
func (s *Service) conclude(r *Run, status RunStatus, reason, verb string) ([]events.Event, error) {
	r.Status, r.Reason, r.Active, r.ConcludedAt = status, reason, false, s.now()
	r.RetryAt = zeroTime
	ev, err := runEvent(verb, *r)
	if err != nil {
		return nil, err
	}
	return []events.Event{ev}, nil
}

// runEventData is the data of jobs.run.* events.
type runEventData struct {
	TeamID    string    `json:"teamId"`
	ProjectID string    `json:"projectId"`
	JobID     string    `json:"jobId"`
	ID        string    `json:"id"`
	RunName   string    `json:"runName"`
	Status    RunStatus `json:"status"`
	Reason    string    `json:"reason,omitempty"`
	ExitCode  *int32    `json:"exitCode,omitempty"`
	Attempts  int32     `json:"attempts"`
}

func runEvent(verb string, r Run) (events.Event, error) {
	return events.New("jobs", "run", verb, r.TeamID+"/"+r.ProjectID+"/"+r.JobID+"/"+r.ID, runEventData{
		TeamID: r.TeamID, ProjectID: r.ProjectID, JobID: r.JobID, ID: r.ID, RunName: r.Name,
		Status: r.Status, Reason: r.Reason, ExitCode: r.ExitCode, Attempts: r.Attempts,
	})
}

// suffix is the random part of a run name: five lowercase letters and
// digits, like a Kubernetes pod name's.
func suffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// abortMessage asks the replica supervising a run to stop its workload.
type abortMessage struct {
	Key      string `json:"key"`
	Workload string `json:"workload"`
}

// abortSubject carries abort requests between replicas (core NATS: a
// replica that misses one finds the run concluded when it next looks). It
// is a live subject: a signal for whoever supervises the run now, with no
// meaning once delivered, so the event stream must not keep it.
var abortSubject = events.LiveSubject("jobs", "abort")

func encode(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
