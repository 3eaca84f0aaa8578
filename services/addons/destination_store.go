package addons

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// DestinationTypeS3 is the one kind of backup destination: any
// S3-compatible server.
const DestinationTypeS3 = "s3"

// Destination is a team's backup destination.
type Destination struct {
	// TeamID owns it; ids are unique within a team.
	TeamID      string
	ID          string
	Name        string
	Description string
	// Type is DestinationTypeS3.
	Type string
	// Prefix is the objects' path prefix in the bucket.
	Prefix      string
	Credentials DestinationCredentials
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Version increases with every write; updates are conditional on it.
	Version int64
}

// DestinationCredentials are where and as whom a destination stores
// objects. Stored sealed, never logged (String hides the secret).
type DestinationCredentials struct {
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
	Bucket    string `json:"bucketName"`
	Region    string `json:"region"`
	Endpoint  string `json:"endpoint"`
}

// String implements fmt.Stringer without the secret key, so a stray %v
// in a log line cannot print it.
func (c DestinationCredentials) String() string {
	return fmt.Sprintf("{accessKey:%s bucket:%s region:%s endpoint:%s secretKey:<hidden>}", c.AccessKey, c.Bucket, c.Region, c.Endpoint)
}

// GoString implements fmt.GoStringer like String (for %#v).
func (c DestinationCredentials) GoString() string { return c.String() }

// DestinationStore persists backup destinations, each within its team: no
// method reads or writes across teams. Credentials go in and come out in
// the clear; implementations keep them encrypted at rest. Every write
// takes the events announcing it and commits them in the same transaction.
type DestinationStore interface {
	// Create inserts d, or returns apierr.ErrAlreadyExists when d.ID is
	// taken in d.TeamID.
	Create(ctx context.Context, d Destination, evs ...events.Event) error

	// Get returns the destination or apierr.ErrNotFound.
	Get(ctx context.Context, team, id string) (Destination, error)

	// List returns a page of the team's destinations ordered by id,
	// whether more follow, and how many destinations the team has.
	List(ctx context.Context, team string, page paging.Page) ([]Destination, bool, int, error)

	// Update reads the destination, lets mutate change it and return the
	// events to emit, and writes it back only if nobody wrote in between
	// (retrying mutate on a fresh copy otherwise). It returns
	// apierr.ErrNotFound, mutate's error, or apierr.ErrConflict when
	// retries run out. An unchanged destination is not written.
	Update(ctx context.Context, team, id string, mutate func(*Destination) ([]events.Event, error)) (Destination, error)

	// Delete removes the destination or returns apierr.ErrNotFound.
	Delete(ctx context.Context, team, id string, evs ...events.Event) error
}

// destinationSQLStore is the DestinationStore on PostgreSQL or SQLite.
type destinationSQLStore struct {
	db        *sqldb.DB
	committed func()
	box       *secret.Box
}

var _ DestinationStore = (*destinationSQLStore)(nil)

// NewDestinationSQLStore returns the store on db (migrated with
// migrations.Set and events.Migrations), sealing credentials with box;
// committed, when not nil, is called after commits that enqueued events.
func NewDestinationSQLStore(db *sqldb.DB, committed func(), box *secret.Box) DestinationStore {
	return &destinationSQLStore{db: db, committed: committed, box: box}
}

const destinationColumns = `team_id, id, name, description, type, prefix, credentials, created_at, updated_at, version`

type destinationScanner interface{ Scan(...any) error }

func (s *destinationSQLStore) scan(row destinationScanner) (Destination, error) {
	var d Destination
	var sealed []byte
	var created, updated int64
	if err := row.Scan(&d.TeamID, &d.ID, &d.Name, &d.Description, &d.Type, &d.Prefix, &sealed, &created, &updated, &d.Version); err != nil {
		return Destination{}, err
	}
	plain, err := s.box.Open(sealed)
	if err != nil {
		// The data directory's key changed or the row was altered: say
		// which destination, never what the bytes were.
		return Destination{}, fmt.Errorf("backup destination %s/%s: credentials: %w", d.TeamID, d.ID, err)
	}
	if err := json.Unmarshal(plain, &d.Credentials); err != nil {
		return Destination{}, fmt.Errorf("backup destination %s/%s: credentials are not a JSON object", d.TeamID, d.ID)
	}
	d.CreatedAt, d.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return d, nil
}

func (s *destinationSQLStore) seal(c DestinationCredentials) ([]byte, error) {
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return s.box.Seal(plain), nil
}

// Create implements DestinationStore.
func (s *destinationSQLStore) Create(ctx context.Context, d Destination, evs ...events.Event) error {
	sealed, err := s.seal(d.Credentials)
	if err != nil {
		return err
	}
	err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO backup_destinations (`+destinationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)`,
			d.TeamID, d.ID, d.Name, d.Description, d.Type, d.Prefix, sealed, d.CreatedAt.UnixMicro(), d.UpdatedAt.UnixMicro())
		return err
	}, func() []events.Event { return evs })
	return sqldb.AlreadyExistsIfUnique(err)
}

// Get implements DestinationStore.
func (s *destinationSQLStore) Get(ctx context.Context, team, id string) (Destination, error) {
	d, err := s.scan(s.db.QueryRow(ctx, `SELECT `+destinationColumns+` FROM backup_destinations WHERE team_id = $1 AND id = $2`, team, id))
	if err != nil {
		return Destination{}, sqldb.NotFoundIfNoRows(err)
	}
	return d, nil
}

// List implements DestinationStore.
func (s *destinationSQLStore) List(ctx context.Context, team string, page paging.Page) ([]Destination, bool, int, error) {
	const from = `backup_destinations WHERE team_id = $1`
	total, err := paging.Count(ctx, s.db, from, team)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+destinationColumns+` FROM `+from+` AND id > $2 ORDER BY id LIMIT $3 OFFSET $4`,
		team, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Destination, error) { return s.scan(rows) })
	return list, more, total, err
}

// Update implements DestinationStore.
func (s *destinationSQLStore) Update(ctx context.Context, team, id string, mutate func(*Destination) ([]events.Event, error)) (Destination, error) {
	var out Destination
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.Get(ctx, team, id)
		if err != nil {
			return err
		}
		next := current
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		if next == current {
			out = current
			return nil
		}
		next.TeamID, next.ID, next.Version = current.TeamID, current.ID, current.Version+1
		sealed, err := s.seal(next.Credentials)
		if err != nil {
			return err
		}
		err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE backup_destinations SET name = $1, description = $2, type = $3, prefix = $4,
				credentials = $5, updated_at = $6, version = $7 WHERE team_id = $8 AND id = $9 AND version = $10`,
				next.Name, next.Description, next.Type, next.Prefix, sealed, next.UpdatedAt.UnixMicro(), next.Version, team, id, current.Version)
			return sqldb.Versioned(res, err)
		}, func() []events.Event { return evs })
		out = next
		return err
	})
	if err != nil {
		return Destination{}, err
	}
	return out, nil
}

// Delete implements DestinationStore.
func (s *destinationSQLStore) Delete(ctx context.Context, team, id string, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM backup_destinations WHERE team_id = $1 AND id = $2`, team, id)
		if err := sqldb.NotFoundIfNoneAffected(res, err); err != nil {
			return err
		}
		return nil
	}, func() []events.Event { return evs })
}
