package builds

import (
	"context"

	buildsv1 "github.com/slipwayhq/slipway/gen/slipway/builds/v1"
)

// The RPCs of services' builds and of jobs' builds: one handler each,
// told whose builds (KindService or KindJob) by its route. A job's id
// travels in service_id (the job routes bind it there).

// StartServiceBuild implements BuildsService.
func (s *Service) StartServiceBuild(ctx context.Context, req *buildsv1.StartServiceBuildRequest) (*buildsv1.StartServiceBuildResponse, error) {
	return s.startBuild(ctx, KindService, req)
}

// StartJobBuild implements BuildsService.
func (s *Service) StartJobBuild(ctx context.Context, req *buildsv1.StartServiceBuildRequest) (*buildsv1.StartServiceBuildResponse, error) {
	return s.startBuild(ctx, KindJob, req)
}

// ListServiceBuilds implements BuildsService.
func (s *Service) ListServiceBuilds(ctx context.Context, req *buildsv1.ListServiceBuildsRequest) (*buildsv1.ListServiceBuildsResponse, error) {
	return s.listBuilds(ctx, KindService, req)
}

// ListJobBuilds implements BuildsService.
func (s *Service) ListJobBuilds(ctx context.Context, req *buildsv1.ListServiceBuildsRequest) (*buildsv1.ListServiceBuildsResponse, error) {
	return s.listBuilds(ctx, KindJob, req)
}

// GetServiceBuild implements BuildsService.
func (s *Service) GetServiceBuild(ctx context.Context, req *buildsv1.GetServiceBuildRequest) (*buildsv1.GetServiceBuildResponse, error) {
	return s.getBuild(ctx, KindService, req)
}

// GetJobBuild implements BuildsService.
func (s *Service) GetJobBuild(ctx context.Context, req *buildsv1.GetServiceBuildRequest) (*buildsv1.GetServiceBuildResponse, error) {
	return s.getBuild(ctx, KindJob, req)
}

// AbortServiceBuild implements BuildsService.
func (s *Service) AbortServiceBuild(ctx context.Context, req *buildsv1.AbortServiceBuildRequest) (*buildsv1.AbortServiceBuildResponse, error) {
	return s.abortBuild(ctx, KindService, req)
}

// AbortJobBuild implements BuildsService.
func (s *Service) AbortJobBuild(ctx context.Context, req *buildsv1.AbortServiceBuildRequest) (*buildsv1.AbortServiceBuildResponse, error) {
	return s.abortBuild(ctx, KindJob, req)
}

// GetServiceBranches implements BuildsService.
func (s *Service) GetServiceBranches(ctx context.Context, req *buildsv1.GetServiceBranchesRequest) (*buildsv1.GetServiceBranchesResponse, error) {
	return s.branches(ctx, KindService, req)
}

// GetJobBranches implements BuildsService.
func (s *Service) GetJobBranches(ctx context.Context, req *buildsv1.GetServiceBranchesRequest) (*buildsv1.GetServiceBranchesResponse, error) {
	return s.branches(ctx, KindJob, req)
}

// GetServicePullRequests implements BuildsService.
func (s *Service) GetServicePullRequests(ctx context.Context, req *buildsv1.GetServicePullRequestsRequest) (*buildsv1.GetServicePullRequestsResponse, error) {
	return s.pullRequests(ctx, KindService, req)
}

// GetJobPullRequests implements BuildsService.
func (s *Service) GetJobPullRequests(ctx context.Context, req *buildsv1.GetServicePullRequestsRequest) (*buildsv1.GetServicePullRequestsResponse, error) {
	return s.pullRequests(ctx, KindJob, req)
}

// GetServiceBuildLogs implements BuildsService.
func (s *Service) GetServiceBuildLogs(ctx context.Context, req *buildsv1.GetServiceBuildLogsRequest) (*buildsv1.GetServiceBuildLogsResponse, error) {
	return s.buildLogs(ctx, KindService, req)
}

// GetJobBuildLogs implements BuildsService.
func (s *Service) GetJobBuildLogs(ctx context.Context, req *buildsv1.GetServiceBuildLogsRequest) (*buildsv1.GetServiceBuildLogsResponse, error) {
	return s.buildLogs(ctx, KindJob, req)
}

// TailServiceBuildLogs implements BuildsService.
func (s *Service) TailServiceBuildLogs(req *buildsv1.TailServiceBuildLogsRequest, stream buildsv1.BuildsService_TailServiceBuildLogsServer) error {
	return s.tailBuildLogs(KindService, req, stream)
}

// TailJobBuildLogs implements BuildsService.
func (s *Service) TailJobBuildLogs(req *buildsv1.TailServiceBuildLogsRequest, stream buildsv1.BuildsService_TailJobBuildLogsServer) error {
	return s.tailBuildLogs(KindJob, req, stream)
}
