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
	"github.com/slipwayhq/slipway/pkg/webhook"
	"github.com/slipwayhq/slipway/services/projects/migrations"
)

// Component is the projects service's row in the component table:
// projects, the regions and plans catalogue, the record of what other
// services created in each project, and the team's notification
// integrations and webhooks with their deliveries.
var Component = component.Component{
	Name:       "projects",
	Summary:    "projects, the regions and plans catalogue, each project's resources, notification integrations and webhooks",
	Deps:       []string{"auth"},
	Migrations: []sqldb.Migrations{migrations.Set},
	// The encryption key seals list cursors and notification secrets.
	Settings: append([]component.Setting{component.EncryptionKeySetting}, NotificationSettings...),
	Start:    start,
	API: &component.API{
		HealthService: projectsv1.ProjectsService_ServiceDesc.ServiceName,
		Register: func(ctx context.Context, mux *gwruntime.ServeMux, conn grpc.ClientConnInterface) error {
			if err := projectsv1.RegisterProjectsServiceHandlerClient(ctx, mux, projectsv1.NewProjectsServiceClient(conn)); err != nil {
				return err
			}
			return projectsv1.RegisterNotificationsServiceHandlerClient(ctx, mux, projectsv1.NewNotificationsServiceClient(conn))
		},
	},
}

// start opens the stores, starts the notification dispatcher and returns
// the services and consumers.
func start(ctx context.Context, env *component.Env) (*component.Instance, error) {
	cat, err := catalog.Load(env.Setting("catalog-file"))
	if err != nil {
		return nil, err
	}
	cursors, err := env.Cursors()
	if err != nil {
		return nil, err
	}
	key, err := env.EncryptionKey()
	if err != nil {
		return nil, err
	}
	box, err := NotificationBox(key)
	if err != nil {
		return nil, err
	}
	cfg, err := notificationConfigFrom(env.Setting)
	if err != nil {
		return nil, err
	}
	store := NewSQLStore(env.DB, env.Notify)
	notifications := NewNotificationSQLStore(env.DB, box)
	dispatcher := NewDispatcher(notifications, DispatcherOptions{
		Sender:  webhook.NewSender(webhook.SenderOptions{Rule: cfg.Rule, Timeout: cfg.Timeout}),
		Timeout: cfg.Timeout, Workers: cfg.Workers, RetryBase: cfg.RetryBase, RetryFor: cfg.RetryFor, Logger: env.Log,
	})
	env.Go(dispatcher.Run)
	return &component.Instance{
		Services: []component.Service{
			{Desc: &projectsv1.ProjectsService_ServiceDesc, Impl: NewServer(store, cat, Options{Cursors: cursors})},
			{Desc: &projectsv1.NotificationsService_ServiceDesc, Impl: NewNotificationsServer(notifications, NotificationOptions{
				Rule: cfg.Rule, RetryFor: cfg.RetryFor, Wake: dispatcher.Wake, Cursors: cursors,
			})},
		},
		Consumers: []component.Consumer{
			{
				Config:  events.ConsumerConfig{Durable: ResourceConsumer, Subjects: ResourceSubjects},
				Handler: ResourceHandler(store),
			},
			{
				Config:  events.ConsumerConfig{Durable: NotificationConsumer, Subjects: NotificationSubjects()},
				Handler: NotificationHandler(notifications, cfg.RetryFor, dispatcher.Wake, env.Log),
			},
		},
	}, nil
}
