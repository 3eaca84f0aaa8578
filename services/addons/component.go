package addons

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/netguard"
	"github.com/slipwayhq/slipway/pkg/runtime/drivers"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/addons/engine"
	"github.com/slipwayhq/slipway/services/addons/migrations"
)

// Component is the addons service's row in the component table:
// databases run on the workload runtime, with verified backups.
var Component = component.Component{
	Name:       "addons",
	Summary:    "addons (PostgreSQL, Redis, MySQL/MariaDB) on the workload runtime, their credentials, verified backups, restores and schedules",
	Deps:       []string{"auth", "projects"},
	Migrations: []sqldb.Migrations{migrations.Set},
	Settings: append([]component.Setting{
		component.EncryptionKeySetting,
		DestinationAllowHostsSetting,
		{Flag: "addon-image-postgresql", Env: "SLIPWAY_ADDON_IMAGE_POSTGRESQL",
			Help: "docker driver: image of PostgreSQL addons (empty: docker.io/library/postgres:<major>); Slipway runs its own command line in it, so any image with the server binaries works"},
		{Flag: "addon-image-redis", Env: "SLIPWAY_ADDON_IMAGE_REDIS",
			Help: "docker driver: image of Redis addons (empty: docker.io/library/redis:<version>)"},
		{Flag: "addon-image-mysql", Env: "SLIPWAY_ADDON_IMAGE_MYSQL",
			Help: "docker driver: image of MySQL (MariaDB) addons (empty: docker.io/library/mariadb:<version>)"},
		{Flag: "addon-download-ttl", Env: "SLIPWAY_ADDON_DOWNLOAD_TTL", Default: "15m",
			Help: "how long a backup download link works", Check: positiveDuration},
		{Flag: "addon-download-key", Env: "SLIPWAY_ADDON_DOWNLOAD_KEY",
			Help: "key (32+ characters) signing backup download links; replicas share it (empty: generated once into the data directory)"},
		{Flag: "addon-tls-hostname", Env: "SLIPWAY_ADDON_TLS_HOSTNAME",
			Help:  "host name (or IP address) that TLS certificates of addons hold besides 127.0.0.1, ::1 and localhost: where an operator forwards addons' ports from (empty: none)",
			Check: tlsHostname},
	}, drivers.Settings...),
	Start: start,
	API: &component.API{
		HealthService: addonsv1.AddonsService_ServiceDesc.ServiceName,
		Register: func(ctx context.Context, mux *gwruntime.ServeMux, conn grpc.ClientConnInterface) error {
			if err := addonsv1.RegisterAddonsServiceHandlerClient(ctx, mux, addonsv1.NewAddonsServiceClient(conn)); err != nil {
				return err
			}
			if err := addonsv1.RegisterBackupDestinationsServiceHandlerClient(ctx, mux, addonsv1.NewBackupDestinationsServiceClient(conn)); err != nil {
				return err
			}
			return RegisterSecretsGateway(ctx, mux, conn)
		},
		Tails: []component.Tail{
			{Path: "/projects/{project_id}/addons/{addon_id}/logs", Method: addonsv1.AddonsService_TailAddonLogs_FullMethodName},
			{Path: "/projects/{project_id}/addons/{addon_id}/backups/{backup_id}/logs", Method: addonsv1.AddonsService_TailBackupLogs_FullMethodName},
			{Path: "/projects/{project_id}/addons/{addon_id}/backups/{backup_id}/restores/{restore_id}/logs", Method: addonsv1.AddonsService_TailRestoreLogs_FullMethodName},
		},
		Downloads: []component.Download{{Path: DownloadPath, Method: addonsv1.AddonsService_DownloadBackup_FullMethodName}},
		Optional:  true,
	},
}

// tlsHostname accepts an IP address or a DNS name.
func tlsHostname(v string) error {
	if v == "" || net.ParseIP(v) != nil || tlsHostnameRE.MatchString(v) {
		return nil
	}
	return fmt.Errorf("want a host name such as db.example.com or an IP address")
}

var tlsHostnameRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

func positiveDuration(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration such as 15m")
	}
	return nil
}

// start opens the runtime driver, recovers what a previous run left and
// starts the scheduler.
func start(ctx context.Context, env *component.Env) (*component.Instance, error) {
	cat, err := catalog.Load(env.Setting("catalog-file"))
	if err != nil {
		return nil, err
	}
	key, err := env.EncryptionKey()
	if err != nil {
		return nil, err
	}
	box, err := secret.NewBox(key, "addons-credentials")
	if err != nil {
		return nil, err
	}
	cursors, err := env.Cursors()
	if err != nil {
		return nil, err
	}
	driver, err := drivers.FromEnv(ctx, env, "runtime")
	if err != nil {
		return nil, err
	}
	downloadKey, err := env.Key(env.Setting("addon-download-key"), "addons-download-key")
	if err != nil {
		return nil, err
	}
	projectsConn, err := env.Conn("projects")
	if err != nil {
		return nil, err
	}
	ttl, _ := time.ParseDuration(env.Setting("addon-download-ttl")) // checked
	importClient, err := importHTTPClient(netguard.SplitList(env.Setting(DestinationAllowHostsSetting.Flag)))
	if err != nil {
		return nil, err
	}
	svc, err := New(Options{
		Store: NewSQLStore(env.DB, box, env.Notify), Driver: driver,
		Projects: projectsv1.NewProjectsServiceClient(projectsConn), Internal: env.Authorizer.Internal,
		Catalog: cat, NATS: env.JetStream.Conn(), DataDir: filepath.Join(env.DataDir, "addons"),
		Images: map[string]string{
			engine.TypePostgreSQL: env.Setting("addon-image-postgresql"),
			engine.TypeRedis:      env.Setting("addon-image-redis"),
			engine.TypeMySQL:      env.Setting("addon-image-mysql"),
		},
		DownloadKey: downloadKey, PublicURL: env.PublicURL, DownloadTTL: ttl,
		ImportClient: importClient,
		Logger:       env.Log, Cursors: cursors, TLSHostname: env.Setting("addon-tls-hostname"),
	})
	if err != nil {
		return nil, err
	}
	destBox, err := DestinationBox(key)
	if err != nil {
		return nil, err
	}
	destinations, err := newDestinationsServer(env.DB, env.Notify, destBox, cursors, svc, netguard.SplitList(env.Setting(DestinationAllowHostsSetting.Flag)))
	if err != nil {
		return nil, err
	}
	// Backups with customDestinationId are kept in the team's destination.
	svc.UseDestinations(destinations.destinationObjectStore)
	env.Go(svc.Run)
	// Secret groups: their own sealing key, the addons server as the
	// source of linked addons' values.
	secretBox, err := NewSecretBox(key)
	if err != nil {
		return nil, err
	}
	secrets := NewSecretsServer(env.DB, env.Notify, secretBox, cursors, projectsv1.NewProjectsServiceClient(projectsConn),
		env.Authorizer.Internal, svc, env.Log)
	return &component.Instance{
		Services: []component.Service{
			{Desc: &addonsv1.AddonsService_ServiceDesc, Impl: svc},
			{Desc: &addonsv1.BackupDestinationsService_ServiceDesc, Impl: destinations},
			secrets.ComponentService(),
		},
		Consumers: append([]component.Consumer{
			component.ProjectDeletedConsumer(ProjectsConsumer, svc.DeleteProjectAddons),
		}, secrets.ComponentConsumers()...),
	}, nil
}
