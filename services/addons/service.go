package addons

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/objstore"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// Options configure New.
type Options struct {
	// Store persists addons, backups, restores, schedules and logs.
	Store Store
	// Driver runs the addons' servers and verification instances.
	Driver runtime.Driver
	// Projects answers whether a project exists; Internal marks a context
	// for an internal call (authz.Authorizer.Internal).
	Projects projectsv1.ProjectsServiceClient
	Internal func(context.Context) context.Context
	// Catalog gives plans their CPU and memory.
	Catalog *catalog.Catalog
	// NATS carries live log lines to tails.
	NATS *nats.Conn
	// DataDir holds the addons' data (<DataDir>/<internal id>/data), their
	// sockets and, through the default Objects, the backups.
	DataDir string
	// Objects stores backup files; a directory under DataDir/backups when
	// nil.
	Objects objstore.Store
	// Images are the docker driver's images per addon type (empty: the
	// engine's default).
	Images map[string]string
	// DownloadKey signs backup download links (at least 32 bytes);
	// PublicURL is the API's base URL the links point at; DownloadTTL how
	// long a link works (15 minutes when zero).
	DownloadKey []byte
	PublicURL   string
	DownloadTTL time.Duration
	// ReadyTimeout bounds how long a server may take to answer after its
	// start (3 minutes when zero).
	ReadyTimeout time.Duration
	// ImportClient fetches importUrl dumps; http.DefaultClient when nil.
	ImportClient HTTPDoer
	Logger       *slog.Logger
	// Clock is for tests; time.Now by default.
	Clock func() time.Time
	// Cursors seal the list cursors; ephemeral when nil (tests).
	Cursors *paging.Cursors
	// Tick is how often schedules and retention are looked at (10 s when
	// zero).
	Tick time.Duration
	// TLSCA issues the certificates of addons with TLS on; nil: the CA
	// in DataDir/tls-ca, made there on first use (engine.LoadOrCreateCA).
	TLSCA *engine.CA
	// TLSHostname is a name the certificates hold besides the loopback
	// addresses and localhost: the host an operator forwards addons'
	// ports from (empty: none).
	TLSHostname string
}

// Service is the addons service: its gRPC API, the addons' lifecycle on
// the runtime, backups, restores and schedules.
type Service struct {
	addonsv1.UnimplementedAddonsServiceServer
	opts  Options
	store Store
	log   *slog.Logger

	mu sync.Mutex
	// locks serialise what changes an addon's server (start, stop, backup,
	// restore), by internal id.
	locks map[string]*sync.Mutex
	// cancels abort running backups and restores, by "<kind>/<addon
	// internal id>/<id>".
	cancels map[string]context.CancelFunc
	// pumps are the log pumps of running servers, by workload id.
	pumps map[string]bool
	// ctx is the service's lifetime (set by Run): background work runs in it.
	ctx context.Context
	wg  sync.WaitGroup
	// destinations opens a team's backup destination (UseDestinations);
	// nil: backups are only kept in Objects.
	destinations DestinationOpener
}

// DestinationOpener opens the object store of team's backup destination
// id; an apierr 404 when the team has no such destination.
type DestinationOpener func(ctx context.Context, team, id string) (objstore.Store, error)

// UseDestinations lets backups go to the teams' backup destinations
// (customDestinationId), opened by open; called once, before Run.
func (s *Service) UseDestinations(open DestinationOpener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.destinations = open
}

// objects is where backup b's file is kept: its team's destination
// b.DestinationID, or Objects (the data directory) when it has none.
func (s *Service) objects(ctx context.Context, b Backup) (objstore.Store, error) {
	if b.DestinationID == "" {
		return s.opts.Objects, nil
	}
	s.mu.Lock()
	open := s.destinations
	s.mu.Unlock()
	if open == nil {
		return nil, apierr.Conflict(apierr.ReasonAddonDestinationUnsupported, "backup destinations are not available on this install")
	}
	return open(ctx, b.TeamID, b.DestinationID)
}

// putFile stores backup b's file from r where b is kept, and returns its
// size and SHA-256 (hex), which the store computes as it writes.
func (s *Service) putFile(ctx context.Context, b Backup, r io.Reader) (int64, string, error) {
	o, err := s.objects(ctx, b)
	if err != nil {
		return 0, "", err
	}
	return o.Put(ctx, b.Key, r)
}

// getFile opens backup b's file where b is kept.
func (s *Service) getFile(ctx context.Context, b Backup) (io.ReadCloser, error) {
	o, err := s.objects(ctx, b)
	if err != nil {
		return nil, err
	}
	rc, err := o.Get(ctx, b.Key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, ErrNotFound
	}
	return rc, err
}

// deleteFile removes backup b's file where b is kept.
func (s *Service) deleteFile(ctx context.Context, b Backup) error {
	o, err := s.objects(ctx, b)
	if err != nil {
		return err
	}
	return o.Delete(ctx, b.Key)
}

// New returns the service; Run starts its background work.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Driver == nil || opts.Projects == nil || opts.Catalog == nil || opts.NATS == nil || opts.DataDir == "" {
		return nil, errors.New("addons: Store, Driver, Projects, Catalog, NATS and DataDir are required")
	}
	if len(opts.DownloadKey) < 32 {
		return nil, errors.New("addons: DownloadKey must hold at least 32 bytes")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Internal == nil {
		opts.Internal = func(ctx context.Context) context.Context { return ctx }
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Cursors == nil {
		opts.Cursors = paging.EphemeralCursors()
	}
	if opts.Objects == nil {
		objects, err := objstore.NewLocal(filepath.Join(opts.DataDir, "backups"))
		if err != nil {
			return nil, err
		}
		opts.Objects = objects
	}
	if opts.DownloadTTL <= 0 {
		opts.DownloadTTL = 15 * time.Minute
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	if opts.Tick <= 0 {
		opts.Tick = 10 * time.Second
	}
	if opts.ImportClient == nil {
		opts.ImportClient = defaultImportClient
	}
	if opts.TLSCA == nil {
		ca, err := engine.LoadOrCreateCA(filepath.Join(opts.DataDir, "tls-ca"))
		if err != nil {
			return nil, err
		}
		opts.TLSCA = ca
	}
	return &Service{opts: opts, store: opts.Store, log: opts.Logger.With("service", "addons"),
		locks: map[string]*sync.Mutex{}, cancels: map[string]context.CancelFunc{}, pumps: map[string]bool{},
		ctx: context.Background()}, nil
}

// now is the clock at millisecond precision (Northflank's timestamps).
func (s *Service) now() time.Time { return s.opts.Clock().UTC().Truncate(time.Millisecond) }

// Run recovers what a previous run left unfinished, then fires schedules
// and prunes expired backups until ctx ends. Servers keep running when it
// returns: the next start takes them back.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	s.recover(ctx)
	tick := time.NewTicker(s.opts.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return nil
		case <-tick.C:
			s.fireSchedules(ctx)
			s.pruneExpired(ctx)
		}
	}
}

// background runs f in the service's lifetime, tracked so that Run waits
// for it.
func (s *Service) background(f func(ctx context.Context)) {
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(ctx)
	}()
}

// lock returns the mutex that serialises work on an addon's server.
func (s *Service) lock(internalID string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.locks[internalID]
	if !ok {
		m = &sync.Mutex{}
		s.locks[internalID] = m
	}
	return m
}

// cancelable registers the cancel function of a running backup or
// restore; the returned function forgets it.
func (s *Service) cancelable(key string, cancel context.CancelFunc) func() {
	s.mu.Lock()
	s.cancels[key] = cancel
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.cancels, key)
		s.mu.Unlock()
		cancel()
	}
}

// cancel aborts the work registered under key; false when none runs here.
func (s *Service) cancel(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cancels[key]
	if ok {
		c()
	}
	return ok
}

// request is what every addon request names.
type request interface {
	GetTeamId() string
	GetProjectId() string
}

// team is the team the call acts on, as the authorization interceptor
// resolved it.
func team(ctx context.Context) (string, error) {
	grant, ok := authz.GrantFrom(ctx)
	if !ok {
		return "", authz.Unauthenticated("credentials required")
	}
	return grant.GetTeamId(), nil
}

// addon loads the addon a request names in the caller's team; 404 when
// it does not exist there.
func (s *Service) addon(ctx context.Context, req request, id string) (Addon, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Addon{}, err
	}
	a, err := s.store.GetAddon(ctx, teamID, req.GetProjectId(), id)
	if err != nil {
		return Addon{}, apierr.FromStore(err, "addon", id)
	}
	return a, nil
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

// engineOf is the engine of an addon's type.
func engineOf(typ string) (engine.Engine, error) {
	e, ok := engine.Get(typ)
	if !ok {
		return nil, fmt.Errorf("addons: no engine for type %q", typ)
	}
	return e, nil
}

// addonDir is the host directory of an addon's data (process driver; on
// docker the data is a named volume, see engine.ServerVolume), sockets,
// TLS files (docker) and verification instances.
func (s *Service) addonDir(a Addon) string { return filepath.Join(s.opts.DataDir, a.InternalID) }

// engineAddon is what the engine needs of a.
func (s *Service) engineAddon(a Addon) engine.Addon {
	res := runtime.Resources{}
	if p := s.opts.Catalog.Plan(a.Settings.Plan); p != nil {
		res.MilliCPU = int64(p.GetCpuResource() * 1000)
		res.MemoryMB = int64(p.GetRamResource())
	}
	dbName := a.Settings.DBName
	if dbName == "" {
		dbName = defaultDBName
	}
	ea := engine.Addon{
		ID: a.InternalID, Project: a.ProjectID, Name: a.Name, Version: a.Settings.Version, DBName: dbName,
		AdminUser: a.Credentials.AdminUser, AdminPassword: a.Credentials.AdminPassword,
		User: a.Credentials.User, Password: a.Credentials.Password,
		DataDir: filepath.Join(s.addonDir(a), "data"), RunDir: filepath.Join(s.addonDir(a), "run"),
		Volume: engine.ServerVolume(a.InternalID), TLSDir: filepath.Join(s.addonDir(a), "tls"),
		Driver: s.opts.Driver.Name(), Image: s.opts.Images[a.Type], Resources: res,
	}
	if a.Settings.TLS {
		ea.TLS = &engine.TLS{CA: s.opts.TLSCA, Hosts: []string{s.opts.TLSHostname}}
	}
	return ea
}

// defaultDBName is the database of an addon without customCredentials.
const defaultDBName = "app"
