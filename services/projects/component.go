package projects

import (
	"context"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/projects/migrations"
)

// Component is the projects service's row in the component table:
// projects, the regions and plans catalogue, and the record of what other
// services created in each project.
var Component = component.Component{
	Name:       "projects",
	Summary:    "projects, the regions and plans catalogue, each project's resources",
	Deps:       []string{"auth"},
	Migrations: []sqldb.Migrations{migrations.Set},
	Settings:   []component.Setting{component.EncryptionKeySetting}, // list cursors
	Start: func(ctx context.Context, env *component.Env) (*component.Instance, error) {
		cat, err := catalog.Load(env.Setting("catalog-file"))
		if err != nil {
			return nil, err
		}
		cursors, err := env.Cursors()
		if err != nil {
			return nil, err
		}
		store := NewSQLStore(env.DB, env.Notify)
		return &component.Instance{
			Services: []component.Service{{Desc: &projectsv1.ProjectsService_ServiceDesc, Impl: NewServer(store, cat, Options{Cursors: cursors})}},
			Consumers: []component.Consumer{{
				Config:  events.ConsumerConfig{Durable: ResourceConsumer, Subjects: ResourceSubjects},
				Handler: ResourceHandler(store),
			}},
		}, nil
	},
	API: &component.API{
		HealthService: projectsv1.ProjectsService_ServiceDesc.ServiceName,
		Register: func(ctx context.Context, mux *gwruntime.ServeMux, conn grpc.ClientConnInterface) error {
			return projectsv1.RegisterProjectsServiceHandlerClient(ctx, mux, projectsv1.NewProjectsServiceClient(conn))
		},
	},
}
