package addons

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/netguard"
	"github.com/slipwayhq/slipway/pkg/objstore"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/slug"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// destinationBoxPurpose derives the key that seals destinations'
// credentials, apart from every other use of the component's key.
const destinationBoxPurpose = "addons-backup-destinations"

// destinationRevealPermission is what a caller needs, besides Read, to see
// a destination's secret key: those who may replace the key anyway. The
// viewer role reads configuration but no secret values.
const destinationRevealPermission = "Account > BackupDestinations > General > Update"

// destinationCheckTimeout bounds the check an add or a patch runs against
// the storage, so a black-holed endpoint answers the client in time.
const destinationCheckTimeout = 20 * time.Second

// DestinationBackups is what the destinations server needs of the addons'
// backups; the addons server implements it.
type DestinationBackups interface {
	// DestinationBackups returns a page of the backups of team stored in
	// destination (its id), in an order stable across calls, whether more
	// follow, and the key of the page's last backup: the next page asks
	// for page.After = that key; and total, how many backups of team the
	// destination holds. A destination without backups gives an empty
	// page.
	DestinationBackups(ctx context.Context, team, destination string, page paging.Page) (backups []*addonsv1.DestinationBackup, more bool, lastKey string, total int, err error)
	// DestinationSchedule returns the project and addon of one backup
	// schedule of team that keeps its backups in destination (its id), or
	// empty strings when none does.
	DestinationSchedule(ctx context.Context, team, destination string) (project, addon string, err error)
}

// destinationsServer implements BackupDestinationsService.
type destinationsServer struct {
	addonsv1.UnimplementedBackupDestinationsServiceServer
	store   DestinationStore
	cursors *paging.Cursors
	backups DestinationBackups
	// client carries every request to the destinations' storage.
	client *http.Client
	now    func() time.Time
}

// newDestinationsServer returns the BackupDestinationsService over db
// (migrated with migrations.Set and events.Migrations). notify wakes the
// outbox relay; box seals the credentials (DestinationBox of the
// component's key); backups lists what each destination holds (nil until
// wired: listing or deleting then answers 503 rather than guess);
// allowHosts is DestinationAllowHostsSetting's list (netguard.SplitList):
// the storage hosts that may be on loopback or private addresses.
func newDestinationsServer(db *sqldb.DB, notify func(), box *secret.Box, cursors *paging.Cursors, backups DestinationBackups, allowHosts []string) (*destinationsServer, error) {
	rule, err := netguard.Parse(allowHosts, nil)
	if err != nil {
		return nil, err
	}
	if cursors == nil {
		cursors = paging.EphemeralCursors()
	}
	return &destinationsServer{
		store:   NewDestinationSQLStore(db, notify, box),
		cursors: cursors,
		backups: backups,
		client:  destinationHTTPClient(rule),
		now:     func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
	}, nil
}

// DestinationBox returns the Box for destinations' credentials derived
// from the component's master key.
func DestinationBox(master []byte) (*secret.Box, error) {
	return secret.NewBox(master, destinationBoxPurpose)
}

// ListBackupDestinations implements BackupDestinationsService.
func (s *destinationsServer) ListBackupDestinations(ctx context.Context, req *addonsv1.ListBackupDestinationsRequest) (*addonsv1.ListBackupDestinationsResponse, error) {
	grant, err := destinationGrant(ctx)
	if err != nil {
		return nil, err
	}
	scope := "backup-destinations/" + grant.GetTeamId()
	page, err := s.cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.List(ctx, grant.GetTeamId(), page)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.ListBackupDestinationsResponse{BackupDestinations: make([]*addonsv1.BackupDestination, 0, len(list))}
	last := ""
	for _, d := range list {
		resp.BackupDestinations = append(resp.BackupDestinations, destinationOf(d, false))
		last = d.ID
	}
	resp.Pagination = s.cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// AddBackupDestination implements BackupDestinationsService.
func (s *destinationsServer) AddBackupDestination(ctx context.Context, req *addonsv1.AddBackupDestinationRequest) (*addonsv1.AddBackupDestinationResponse, error) {
	grant, err := destinationGrant(ctx)
	if err != nil {
		return nil, err
	}
	id := slug.Make(req.GetName())
	if len(id) < 3 {
		return nil, apierr.InvalidField("name", "must contain at least 3 letters or digits")
	}
	now := s.now()
	d := Destination{
		TeamID: grant.GetTeamId(), ID: id, Name: req.GetName(), Description: req.GetDescription(),
		Type: DestinationTypeS3, Prefix: destinationPrefix(req.GetPrefix()),
		Credentials: credentialsFrom(req.GetCredentials()), CreatedAt: now, UpdatedAt: now,
	}
	if _, err := s.store.Get(ctx, d.TeamID, d.ID); err == nil {
		return nil, apierr.AlreadyExists("backup destination", d.ID) // before the slower check
	} else if !errors.Is(err, apierr.ErrNotFound) {
		return nil, err
	}
	if err := s.check(ctx, d); err != nil {
		return nil, err
	}
	ev, err := destinationEvent("created", d)
	if err != nil {
		return nil, err
	}
	if err := s.store.Create(ctx, d, ev); err != nil {
		return nil, apierr.FromStore(err, "backup destination", d.ID)
	}
	return &addonsv1.AddBackupDestinationResponse{BackupDestination: destinationOf(d, true)}, nil
}

// GetBackupDestination implements BackupDestinationsService.
func (s *destinationsServer) GetBackupDestination(ctx context.Context, req *addonsv1.GetBackupDestinationRequest) (*addonsv1.GetBackupDestinationResponse, error) {
	grant, err := destinationGrant(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.store.Get(ctx, grant.GetTeamId(), req.GetBackupDestinationId())
	if err != nil {
		return nil, apierr.FromStore(err, "backup destination", req.GetBackupDestinationId())
	}
	reveal := slices.Contains(grant.GetPermissions(), destinationRevealPermission)
	return &addonsv1.GetBackupDestinationResponse{BackupDestination: destinationOf(d, reveal)}, nil
}

// PatchBackupDestination implements BackupDestinationsService.
func (s *destinationsServer) PatchBackupDestination(ctx context.Context, req *addonsv1.PatchBackupDestinationRequest) (*addonsv1.PatchBackupDestinationResponse, error) {
	grant, err := destinationGrant(ctx)
	if err != nil {
		return nil, err
	}
	team, id := grant.GetTeamId(), req.GetBackupDestinationId()
	var creds *DestinationCredentials
	if req.GetCredentials() != nil {
		// Check the new credentials before anything is written: a patch
		// that would break the destination is refused whole.
		current, err := s.store.Get(ctx, team, id)
		if err != nil {
			return nil, apierr.FromStore(err, "backup destination", id)
		}
		c := credentialsFrom(req.GetCredentials())
		if c != current.Credentials {
			probe := current
			probe.Credentials = c
			if err := s.check(ctx, probe); err != nil {
				return nil, err
			}
		}
		creds = &c
	}
	d, err := s.store.Update(ctx, team, id, func(d *Destination) ([]events.Event, error) {
		before := *d
		if req.Name != nil {
			d.Name = req.GetName()
		}
		if req.Description != nil {
			d.Description = req.GetDescription()
		}
		if creds != nil {
			d.Credentials = *creds
		}
		if *d == before {
			return nil, nil
		}
		d.UpdatedAt = s.now()
		ev, err := destinationEvent("updated", *d)
		if err != nil {
			return nil, err
		}
		return []events.Event{ev}, nil
	})
	if err != nil {
		return nil, apierr.FromStore(err, "backup destination", id)
	}
	return &addonsv1.PatchBackupDestinationResponse{BackupDestination: destinationOf(d, true)}, nil
}

// DeleteBackupDestination implements BackupDestinationsService.
func (s *destinationsServer) DeleteBackupDestination(ctx context.Context, req *addonsv1.DeleteBackupDestinationRequest) (*addonsv1.DeleteBackupDestinationResponse, error) {
	grant, err := destinationGrant(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.store.Get(ctx, grant.GetTeamId(), req.GetBackupDestinationId())
	if err != nil {
		return nil, apierr.FromStore(err, "backup destination", req.GetBackupDestinationId())
	}
	if s.backups == nil {
		return nil, apierr.Unavailable("the addons' backups")
	}
	held, _, _, _, err := s.backups.DestinationBackups(ctx, d.TeamID, d.ID, paging.Page{Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(held) > 0 {
		return nil, apierr.Conflict(apierr.ReasonBackupDestinationInUse,
			"backup destination %q still holds backups; delete them (or let retention expire them) first", d.ID)
	}
	// A schedule's next backup would have nowhere to go.
	project, addon, err := s.backups.DestinationSchedule(ctx, d.TeamID, d.ID)
	if err != nil {
		return nil, err
	}
	if addon != "" {
		return nil, apierr.Conflict(apierr.ReasonBackupDestinationInUse,
			"backup destination %q is used by a backup schedule of addon %q in project %q; delete that schedule (or change its destination) first", d.ID, addon, project)
	}
	ev, err := destinationEvent("deleted", d)
	if err != nil {
		return nil, err
	}
	if err := s.store.Delete(ctx, d.TeamID, d.ID, ev); err != nil {
		return nil, apierr.FromStore(err, "backup destination", d.ID)
	}
	return &addonsv1.DeleteBackupDestinationResponse{}, nil
}

// ListBackupDestinationBackups implements BackupDestinationsService.
func (s *destinationsServer) ListBackupDestinationBackups(ctx context.Context, req *addonsv1.ListBackupDestinationBackupsRequest) (*addonsv1.ListBackupDestinationBackupsResponse, error) {
	grant, err := destinationGrant(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.store.Get(ctx, grant.GetTeamId(), req.GetBackupDestinationId())
	if err != nil {
		return nil, apierr.FromStore(err, "backup destination", req.GetBackupDestinationId())
	}
	if s.backups == nil {
		return nil, apierr.Unavailable("the addons' backups")
	}
	scope := "backup-destination-backups/" + d.TeamID + "/" + d.ID
	page, err := s.cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, last, total, err := s.backups.DestinationBackups(ctx, d.TeamID, d.ID, page)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []*addonsv1.DestinationBackup{}
	}
	return &addonsv1.ListBackupDestinationBackupsResponse{Backups: list, Pagination: s.cursors.Result(scope, len(list), more, last, total)}, nil
}

// destinationObjectStore opens the object store of team's destination id,
// where the addons' backups put, read and delete their archives. It
// returns apierr.ErrNotFound (wrapped by FromStore as a 404) for a
// destination that does not exist (any more).
func (s *destinationsServer) destinationObjectStore(ctx context.Context, team, id string) (objstore.Store, error) {
	d, err := s.store.Get(ctx, team, id)
	if err != nil {
		return nil, apierr.FromStore(err, "backup destination", id)
	}
	return s.open(d)
}

// open builds the object store of d.
func (s *destinationsServer) open(d Destination) (*objstore.S3, error) {
	c := d.Credentials
	return objstore.NewS3(objstore.S3Config{
		Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket, Prefix: d.Prefix,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey,
		PathStyle: objstore.DefaultPathStyle(c.Endpoint), HTTPClient: s.client,
	})
}

// check refuses d unless its storage takes, returns and deletes a test
// object under its prefix; the answer names the field to fix.
func (s *destinationsServer) check(ctx context.Context, d Destination) error {
	if d.Prefix != "" {
		if err := objstore.CheckKey(d.Prefix); err != nil {
			return apierr.InvalidField("prefix", "must be a path of non-empty segments without '.', '..' or control characters")
		}
	}
	st, err := s.open(d)
	if err != nil {
		return apierr.InvalidField("credentials.endpoint", "must be host[:port], optionally with http:// or https://, without path, query or user")
	}
	cctx, cancel := context.WithTimeout(ctx, destinationCheckTimeout)
	defer cancel()
	err = objstore.Probe(cctx, st, "slipway-destination-check/"+d.ID+"-"+fmt.Sprint(s.now().UnixNano()))
	if err == nil {
		return nil
	}
	if ctx.Err() != nil { // the caller went away: not the storage's fault
		return ctx.Err()
	}
	return destinationCheckError(err)
}

// destinationCheckError turns a failed check into a 400 naming the field
// to fix. S3's error code is shown (it is the user's own storage
// answering); its message and anything about Slipway's side are not.
func destinationCheckError(err error) error {
	field, msg := "credentials", "the storage did not accept a test object"
	var re *objstore.RemoteError
	switch {
	case errors.Is(err, errDestinationPrivate):
		field, msg = "credentials.endpoint", errDestinationPrivate.Error()
	case errors.Is(err, context.DeadlineExceeded):
		field, msg = "credentials.endpoint", fmt.Sprintf("the endpoint did not answer within %s", destinationCheckTimeout)
	case errors.As(err, &re) && re.Code == "Unreachable":
		field, msg = "credentials.endpoint", "the endpoint could not be reached"
	case errors.As(err, &re) && re.Code == "NoSuchBucket":
		field, msg = "credentials.bucketName", "the bucket does not exist at this endpoint (NoSuchBucket)"
	case errors.As(err, &re) && re.Auth():
		msg = fmt.Sprintf("the storage refused these credentials (%s): check the access key, the secret key, the region and the key's rights on the bucket", re.Code)
	case errors.As(err, &re):
		msg = fmt.Sprintf("the storage refused a test object (%s)", re.Code)
	}
	return &apierr.Error{
		Code: codes.InvalidArgument, Reason: apierr.ReasonBackupDestinationCheckFailed,
		Message: "backup destination check failed: " + msg,
		Fields:  map[string][]string{field: {msg}},
	}
}

// destinationGrant is the caller's standing in the team the call acts on.
func destinationGrant(ctx context.Context) (*authv1.TeamGrant, error) {
	grant, ok := authz.GrantFrom(ctx)
	if !ok {
		return nil, authz.Unauthenticated("credentials required")
	}
	return grant, nil
}

// destinationPrefix normalises a prefix: no slashes around it.
func destinationPrefix(p string) string { return strings.Trim(p, "/") }

func credentialsFrom(in *addonsv1.BackupDestinationCredentialsInput) DestinationCredentials {
	return DestinationCredentials{
		AccessKey: in.GetAccessKey(), SecretKey: in.GetSecretKey(), Bucket: in.GetBucketName(),
		Region: in.GetRegion(), Endpoint: strings.TrimSpace(in.GetEndpoint()),
	}
}

// destinationOf is d on the wire, its secret key only when reveal is set.
func destinationOf(d Destination, reveal bool) *addonsv1.BackupDestination {
	c := &addonsv1.BackupDestinationCredentials{
		AccessKey: d.Credentials.AccessKey, BucketName: d.Credentials.Bucket,
		Region: d.Credentials.Region, Endpoint: d.Credentials.Endpoint,
	}
	if reveal {
		c.SecretKey = proto.String(d.Credentials.SecretKey)
	}
	return &addonsv1.BackupDestination{
		Id: d.ID, Name: d.Name, Description: d.Description, Type: d.Type, Prefix: d.Prefix, Credentials: c,
		CreatedAt: timestamppb.New(d.CreatedAt), UpdatedAt: timestamppb.New(d.UpdatedAt),
	}
}

// destinationEventData is the payload of addons.backupdestination.*
// events: never the credentials.
type destinationEventData struct {
	TeamID      string    `json:"teamId"`
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Type        string    `json:"type"`
	Prefix      string    `json:"prefix,omitempty"`
	Bucket      string    `json:"bucketName"`
	Endpoint    string    `json:"endpoint"`
	Region      string    `json:"region,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

func destinationEvent(verb string, d Destination) (events.Event, error) {
	return events.New("addons", "backupdestination", verb, d.TeamID+"/"+d.ID, destinationEventData{
		TeamID: d.TeamID, ID: d.ID, Name: d.Name, Description: d.Description, Type: d.Type, Prefix: d.Prefix,
		Bucket: d.Credentials.Bucket, Endpoint: d.Credentials.Endpoint, Region: d.Credentials.Region,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	})
}
