package builds

import (
	"context"

	buildsv1 "github.com/slipwayhq/slipway/gen/slipway/builds/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
)

// The RPCs of services' builds and of jobs' builds: one handler each,
// told whose builds (KindService or KindJob) by its route. The messages
// are the same: a service's route gives service_id, a job's job_id, which
// owner moves into service_id, where the handlers read the owner's id.

// ownerRequest is what the requests of both forms name.
type ownerRequest interface {
	GetServiceId() string
	GetJobId() string
}

// owner checks that req names its owner the way its route does, and
// leaves the owner's id in service_id (set is the message's setter).
func owner(kind string, req ownerRequest, set func(string)) error {
	if kind == KindJob {
		if req.GetJobId() == "" {
			return apierr.InvalidField("jobId", "is required")
		}
		set(req.GetJobId())
		return nil
	}
	if req.GetServiceId() == "" {
		return apierr.InvalidField("serviceId", "is required")
	}
	return nil
}

// StartServiceBuild implements BuildsService.
func (s *Service) StartServiceBuild(ctx context.Context, req *buildsv1.StartServiceBuildRequest) (*buildsv1.StartServiceBuildResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.startBuild(ctx, KindService, req)
}

// StartJobBuild implements BuildsService.
func (s *Service) StartJobBuild(ctx context.Context, req *buildsv1.StartServiceBuildRequest) (*buildsv1.StartServiceBuildResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.startBuild(ctx, KindJob, req)
}

// ListServiceBuilds implements BuildsService.
func (s *Service) ListServiceBuilds(ctx context.Context, req *buildsv1.ListServiceBuildsRequest) (*buildsv1.ListServiceBuildsResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.listBuilds(ctx, KindService, req)
}

// ListJobBuilds implements BuildsService.
func (s *Service) ListJobBuilds(ctx context.Context, req *buildsv1.ListServiceBuildsRequest) (*buildsv1.ListServiceBuildsResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.listBuilds(ctx, KindJob, req)
}

// GetServiceBuild implements BuildsService.
func (s *Service) GetServiceBuild(ctx context.Context, req *buildsv1.GetServiceBuildRequest) (*buildsv1.GetServiceBuildResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.getBuild(ctx, KindService, req)
}

// GetJobBuild implements BuildsService.
func (s *Service) GetJobBuild(ctx context.Context, req *buildsv1.GetServiceBuildRequest) (*buildsv1.GetServiceBuildResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.getBuild(ctx, KindJob, req)
}

// AbortServiceBuild implements BuildsService.
func (s *Service) AbortServiceBuild(ctx context.Context, req *buildsv1.AbortServiceBuildRequest) (*buildsv1.AbortServiceBuildResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.abortBuild(ctx, KindService, req)
}

// AbortJobBuild implements BuildsService.
func (s *Service) AbortJobBuild(ctx context.Context, req *buildsv1.AbortServiceBuildRequest) (*buildsv1.AbortServiceBuildResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.abortBuild(ctx, KindJob, req)
}

// GetServiceBranches implements BuildsService.
func (s *Service) GetServiceBranches(ctx context.Context, req *buildsv1.GetServiceBranchesRequest) (*buildsv1.GetServiceBranchesResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.branches(ctx, KindService, req)
}

// GetJobBranches implements BuildsService.
func (s *Service) GetJobBranches(ctx context.Context, req *buildsv1.GetServiceBranchesRequest) (*buildsv1.GetServiceBranchesResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.branches(ctx, KindJob, req)
}

// GetServicePullRequests implements BuildsService.
func (s *Service) GetServicePullRequests(ctx context.Context, req *buildsv1.GetServicePullRequestsRequest) (*buildsv1.GetServicePullRequestsResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.pullRequests(ctx, KindService, req)
}

// GetJobPullRequests implements BuildsService.
func (s *Service) GetJobPullRequests(ctx context.Context, req *buildsv1.GetServicePullRequestsRequest) (*buildsv1.GetServicePullRequestsResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.pullRequests(ctx, KindJob, req)
}

// GetServiceBuildLogs implements BuildsService.
func (s *Service) GetServiceBuildLogs(ctx context.Context, req *buildsv1.GetServiceBuildLogsRequest) (*buildsv1.GetServiceBuildLogsResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.buildLogs(ctx, KindService, req)
}

// GetJobBuildLogs implements BuildsService.
func (s *Service) GetJobBuildLogs(ctx context.Context, req *buildsv1.GetServiceBuildLogsRequest) (*buildsv1.GetServiceBuildLogsResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.buildLogs(ctx, KindJob, req)
}

// TailServiceBuildLogs implements BuildsService.
func (s *Service) TailServiceBuildLogs(req *buildsv1.TailServiceBuildLogsRequest, stream buildsv1.BuildsService_TailServiceBuildLogsServer) error {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return err
	}
	return s.tailBuildLogs(KindService, req, stream)
}

// TailJobBuildLogs implements BuildsService.
func (s *Service) TailJobBuildLogs(req *buildsv1.TailServiceBuildLogsRequest, stream buildsv1.BuildsService_TailJobBuildLogsServer) error {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return err
	}
	return s.tailBuildLogs(KindJob, req, stream)
}

// GetServiceBuildWebhook implements BuildsService.
func (s *Service) GetServiceBuildWebhook(ctx context.Context, req *buildsv1.GetServiceBuildWebhookRequest) (*buildsv1.GetServiceBuildWebhookResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.buildWebhook(ctx, KindService, req)
}

// GetJobBuildWebhook implements BuildsService.
func (s *Service) GetJobBuildWebhook(ctx context.Context, req *buildsv1.GetServiceBuildWebhookRequest) (*buildsv1.GetServiceBuildWebhookResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.buildWebhook(ctx, KindJob, req)
}

// RotateServiceBuildWebhook implements BuildsService.
func (s *Service) RotateServiceBuildWebhook(ctx context.Context, req *buildsv1.RotateServiceBuildWebhookRequest) (*buildsv1.RotateServiceBuildWebhookResponse, error) {
	if err := owner(KindService, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.rotateBuildWebhook(ctx, KindService, req)
}

// RotateJobBuildWebhook implements BuildsService.
func (s *Service) RotateJobBuildWebhook(ctx context.Context, req *buildsv1.RotateServiceBuildWebhookRequest) (*buildsv1.RotateServiceBuildWebhookResponse, error) {
	if err := owner(KindJob, req, func(id string) { req.ServiceId = id }); err != nil {
		return nil, err
	}
	return s.rotateBuildWebhook(ctx, KindJob, req)
}
