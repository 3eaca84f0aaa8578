// Package projects is the projects service: projects, the resources other
// services report into them, and the regions and plans of the catalogue
// (pkg/catalog).
package projects

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/paging"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/slug"
)

// Event coordinates: subjects are slipway.projects.project.<verb>.
const (
	eventService  = "projects"
	eventResource = "project"
)

type server struct {
	projectsv1.UnimplementedProjectsServiceServer
	store   Store
	catalog *catalog.Catalog
	cursors *paging.Cursors
	now     func() time.Time
}

// Options configure NewServer.
type Options struct {
	// Cursors seal the list cursors; nil: under a random key, read back
	// only by this server until it stops (tests).
	Cursors *paging.Cursors
}

// NewServer returns the ProjectsService gRPC implementation over store.
// opts is optional (at most one is used).
func NewServer(store Store, catalog *catalog.Catalog, opts ...Options) projectsv1.ProjectsServiceServer {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Cursors == nil {
		o.Cursors = paging.EphemeralCursors()
	}
	return &server{store: store, catalog: catalog, cursors: o.Cursors, now: now}
}

// now is the clock, at the millisecond precision of Northflank's
// timestamps (and within what both databases store exactly).
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// ListProjects implements ProjectsService.
func (s *server) ListProjects(ctx context.Context, req *projectsv1.ListProjectsRequest) (*projectsv1.ListProjectsResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	scope := "projects/" + grant.GetTeamId()
	p, err := s.cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.List(ctx, grant.GetTeamId(), Page{Page: p, Only: grant.GetProjects()})
	if err != nil {
		return nil, err
	}
	resp := &projectsv1.ListProjectsResponse{
		Projects: make([]*projectsv1.ProjectSummary, 0, len(list)),
	}
	lastID := ""
	for _, p := range list {
		resp.Projects = append(resp.Projects, summaryOf(p))
		lastID = p.ID
	}
	resp.Pagination = s.cursors.Result(scope, len(list), more, lastID, total)
	return resp, nil
}

// CreateProject implements ProjectsService.
func (s *server) CreateProject(ctx context.Context, req *projectsv1.CreateProjectRequest) (*projectsv1.CreateProjectResponse, error) {
	region, err := s.placement(req.GetRegion(), req.GetClusterId())
	if err != nil {
		return nil, err
	}
	p, err := s.newProject(ctx, req.GetName(), req.GetDescription(), req.GetColor(), region)
	if err != nil {
		return nil, err
	}
	ev, err := projectEvent("created", p, false)
	if err != nil {
		return nil, err
	}
	if err := s.store.Create(ctx, p, ev); err != nil {
		return nil, apierr.FromStore(err, "project", p.ID)
	}
	return &projectsv1.CreateProjectResponse{Project: s.projectOf(p, nil)}, nil
}

// PutProject implements ProjectsService.
func (s *server) PutProject(ctx context.Context, req *projectsv1.PutProjectRequest) (*projectsv1.PutProjectResponse, error) {
	region, err := s.placement(req.GetRegion(), req.GetClusterId())
	if err != nil {
		return nil, err
	}
	want, err := s.newProject(ctx, req.GetName(), req.GetDescription(), req.GetColor(), region)
	if err != nil {
		return nil, err
	}
	// Create first; on a taken id fall through to the update, so two racing
	// PUTs both succeed and the later one wins.
	ev, err := projectEvent("created", want, false)
	if err != nil {
		return nil, err
	}
	err = s.store.Create(ctx, want, ev)
	if err == nil {
		return &projectsv1.PutProjectResponse{Project: s.projectOf(want, nil)}, nil
	}
	if !errors.Is(err, ErrAlreadyExists) {
		return nil, apierr.FromStore(err, "project", want.ID)
	}
	p, err := s.store.Update(ctx, want.TeamID, want.ID, func(p *Project) ([]events.Event, error) {
		if req.GetRegion() != "" && req.GetRegion() != p.Region {
			return nil, apierr.InvalidField("region", "a project's region cannot be changed")
		}
		if c := req.GetClusterId(); c != "" && s.catalog.Cluster(p.Region).GetId() != c {
			return nil, apierr.InvalidField("clusterId", "a project's cluster cannot be changed")
		}
		before := *p
		p.Name, p.Description, p.Color = want.Name, want.Description, want.Color
		return s.touched(before, p)
	})
	if err != nil {
		return nil, apierr.FromStore(err, "project", want.ID)
	}
	resources, err := s.store.Resources(ctx, p.TeamID, p.ID)
	if err != nil {
		return nil, err
	}
	return &projectsv1.PutProjectResponse{Project: s.projectOf(p, resources)}, nil
}

// GetProject implements ProjectsService.
func (s *server) GetProject(ctx context.Context, req *projectsv1.GetProjectRequest) (*projectsv1.GetProjectResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	p, resources, err := s.store.GetWithResources(ctx, grant.GetTeamId(), req.GetProjectId())
	if err != nil {
		return nil, apierr.FromStore(err, "project", req.GetProjectId())
	}
	return &projectsv1.GetProjectResponse{Project: s.projectOf(p, resources)}, nil
}

// PatchProject implements ProjectsService.
func (s *server) PatchProject(ctx context.Context, req *projectsv1.PatchProjectRequest) (*projectsv1.PatchProjectResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.store.Update(ctx, grant.GetTeamId(), req.GetProjectId(), func(p *Project) ([]events.Event, error) {
		before := *p
		if req.Description != nil {
			p.Description = req.GetDescription()
		}
		if req.Color != nil {
			p.Color = req.GetColor()
		}
		return s.touched(before, p)
	})
	if err != nil {
		return nil, apierr.FromStore(err, "project", req.GetProjectId())
	}
	resources, err := s.store.Resources(ctx, p.TeamID, p.ID)
	if err != nil {
		return nil, err
	}
	return &projectsv1.PatchProjectResponse{Project: s.projectOf(p, resources)}, nil
}

// DeleteProject implements ProjectsService.
func (s *server) DeleteProject(ctx context.Context, req *projectsv1.DeleteProjectRequest) (*projectsv1.DeleteProjectResponse, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.store.Get(ctx, grant.GetTeamId(), req.GetProjectId())
	if err != nil {
		return nil, apierr.FromStore(err, "project", req.GetProjectId())
	}
	ev, err := projectEvent("deleted", p, req.GetDeleteChildObjects())
	if err != nil {
		return nil, err
	}
	if err := s.store.Delete(ctx, p.TeamID, p.ID, req.GetDeleteChildObjects(), ev); errors.Is(err, ErrNotEmpty) {
		return nil, apierr.Conflict(apierr.ReasonProjectNotEmpty,
			"project %q still has services, jobs, addons or secret groups; delete them first or set delete_child_objects=true", p.ID)
	} else if err != nil {
		return nil, apierr.FromStore(err, "project", p.ID)
	}
	return &projectsv1.DeleteProjectResponse{}, nil
}

// ListRegions implements ProjectsService.
func (s *server) ListRegions(context.Context, *projectsv1.ListRegionsRequest) (*projectsv1.ListRegionsResponse, error) {
	return s.catalog.Regions(), nil
}

// ListPlans implements ProjectsService.
func (s *server) ListPlans(context.Context, *projectsv1.ListPlansRequest) (*projectsv1.ListPlansResponse, error) {
	return s.catalog.Plans(), nil
}

// newProject validates what protovalidate can't (the derived id, the
// region, the caller's project restriction) and builds the project to
// store in the caller's team.
//
// Its callers have turned Northflank's clusterId into region (placement).
func (s *server) newProject(ctx context.Context, name, description, color, region string) (Project, error) {
	grant, err := grantOf(ctx)
	if err != nil {
		return Project{}, err
	}
	id := slug.Make(name)
	if len(id) < 3 {
		return Project{}, apierr.InvalidField("name", "must contain at least 3 letters or digits")
	}
	if !authz.ProjectAllowed(grant, id) {
		return Project{}, &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonProjectRestricted, Message: "these credentials are restricted to other projects"}
	}
	if region == "" {
		region = s.catalog.DefaultRegion().GetId()
	} else if s.catalog.Region(region) == nil {
		return Project{}, apierr.InvalidField("region", "unknown region; GET /v1/regions lists them")
	}
	now := s.now()
	return Project{TeamID: grant.GetTeamId(), ID: id, Name: name, Description: description, Color: color, Region: region, CreatedAt: now, UpdatedAt: now}, nil
}

// placement is the region a create or put asks for: region, or the
// cluster named by clusterId (Northflank's field for a project on its own
// cluster), which must be a region of the catalogue that runs on its own
// machines and, with region, the one that runs region.
func (s *server) placement(region, clusterID string) (string, error) {
	if clusterID == "" {
		return region, nil
	}
	if c := s.catalog.Cluster(clusterID); c == nil || c.GetId() != clusterID {
		return "", apierr.InvalidField("clusterId", "unknown cluster; the clusters are the regions of GET /v1/regions that run on their own machines")
	}
	if region == "" {
		return clusterID, nil
	}
	if c := s.catalog.Cluster(region); c != nil && c.GetId() != clusterID {
		return "", apierr.InvalidField("clusterId", fmt.Sprintf("region %q runs on cluster %q, not %q", region, c.GetId(), clusterID))
	}
	return region, nil
}

// projectEventData is the payload of projects.project.* events.
type projectEventData struct {
	TeamID             string    `json:"teamId"`
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	Description        string    `json:"description,omitempty"`
	Color              string    `json:"color,omitempty"`
	Region             string    `json:"region"`
	CreatedAt          time.Time `json:"createdAt"`
	UpdatedAt          time.Time `json:"updatedAt"`
	DeleteChildObjects bool      `json:"deleteChildObjects,omitempty"`
}

func projectEvent(verb string, p Project, deleteChildObjects bool) (events.Event, error) {
	return events.New(eventService, eventResource, verb, p.TeamID+"/"+p.ID, projectEventData{
		TeamID: p.TeamID, ID: p.ID, Name: p.Name, Description: p.Description, Color: p.Color, Region: p.Region,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, DeleteChildObjects: deleteChildObjects,
	})
}

// touched stamps and announces an update that changed something; an
// update that changed nothing (a repeated PUT) stays a no-op, which keeps
// PUT idempotent down to updatedAt and emits no event.
func (s *server) touched(before Project, p *Project) ([]events.Event, error) {
	if *p == before {
		return nil, nil
	}
	p.UpdatedAt = s.now()
	ev, err := projectEvent("updated", *p, false)
	if err != nil {
		return nil, err
	}
	return []events.Event{ev}, nil
}

// LookupProject implements ProjectsService (internal: the authorizer has
// checked the caller's internal key, so the team comes from the request).
func (s *server) LookupProject(ctx context.Context, req *projectsv1.LookupProjectRequest) (*projectsv1.LookupProjectResponse, error) {
	p, err := s.store.Get(ctx, req.GetTeamId(), req.GetProjectId())
	if err != nil {
		return nil, apierr.FromStore(err, "project", req.GetProjectId())
	}
	return &projectsv1.LookupProjectResponse{Project: summaryOf(p)}, nil
}

// grantOf is the caller's standing in the team the call acts on, which
// the authorization interceptor resolved.
func grantOf(ctx context.Context) (*authv1.TeamGrant, error) {
	grant, ok := authz.GrantFrom(ctx)
	if !ok {
		return nil, authz.Unauthenticated("credentials required")
	}
	return grant, nil
}

func summaryOf(p Project) *projectsv1.ProjectSummary {
	return &projectsv1.ProjectSummary{
		Id: p.ID, Name: p.Name, Description: p.Description, Color: p.Color, Region: p.Region,
		CreatedAt: timestamppb.New(p.CreatedAt), UpdatedAt: timestamppb.New(p.UpdatedAt),
	}
}

func (s *server) projectOf(p Project, resources []Resource) *projectsv1.Project {
	out := &projectsv1.Project{
		Id: p.ID, Name: p.Name, Description: p.Description, Color: p.Color, Region: p.Region,
		Deployment: &projectsv1.ProjectDeployment{Region: p.Region},
		CreatedAt:  timestamppb.New(p.CreatedAt), UpdatedAt: timestamppb.New(p.UpdatedAt),
		Services: []*projectsv1.ProjectService{}, Jobs: []*projectsv1.ProjectJob{}, Addons: []*projectsv1.ProjectAddon{},
		Cluster: &projectsv1.ProjectCluster{Id: p.Region, Name: p.Region},
	}
	// A region the catalogue maps onto another's machines (Northflank's
	// region ids in the built-in catalogue) shows the cluster that runs it.
	if c := s.catalog.Cluster(p.Region); c != nil {
		out.Cluster = &projectsv1.ProjectCluster{Id: c.GetId(), Name: c.GetName()}
	}
	for _, r := range resources {
		appID := "/" + p.TeamID + "/" + p.ID + "/" + r.ID
		switch r.Kind {
		case KindService:
			out.Services = append(out.Services, &projectsv1.ProjectService{Id: r.ID, AppId: appID, Name: r.Name, Description: r.Description, ServiceType: r.Type})
		case KindJob:
			out.Jobs = append(out.Jobs, &projectsv1.ProjectJob{Id: r.ID, AppId: appID, Name: r.Name, Description: r.Description, JobType: r.Type})
		case KindAddon:
			out.Addons = append(out.Addons, &projectsv1.ProjectAddon{Id: r.ID, AppId: appID, Name: r.Name, Description: r.Description, Spec: &projectsv1.ProjectAddonSpec{Type: r.Type}})
		}
	}
	return out
}
