package projects

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// NotificationSQLStore is the NotificationStore on PostgreSQL or SQLite.
// Secrets are sealed with box before they are written.
type NotificationSQLStore struct {
	db  *sqldb.DB
	box *secret.Box
}

var _ NotificationStore = (*NotificationSQLStore)(nil)

// NewNotificationSQLStore returns the store on db (migrated with
// migrations.Set and events.Migrations), sealing secrets with box.
func NewNotificationSQLStore(db *sqldb.DB, box *secret.Box) *NotificationSQLStore {
	return &NotificationSQLStore{db: db, box: box}
}

// NotificationBox returns the Box sealing integrations' and webhooks'
// secrets, derived from the component's master key for this purpose only.
func NotificationBox(master []byte) (*secret.Box, error) {
	return secret.NewBox(master, "projects-notification-secrets")
}

func (s *NotificationSQLStore) seal(secret string) []byte {
	if secret == "" {
		return nil
	}
	return s.box.Seal([]byte(secret))
}

func (s *NotificationSQLStore) open(sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	plain, err := s.box.Open(sealed)
	if err != nil {
		return "", fmt.Errorf("projects: open a notification secret: %w", err)
	}
	return string(plain), nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v) // slices of strings cannot fail
	return string(b)
}

// ---- integrations

const integrationColumns = `team_id, id, name, type, webhook, secret, restricted, projects, restrictions, events,
	failed_requests, first_failed_at, created_at, updated_at`

func (s *NotificationSQLStore) scanIntegration(row scanner) (Integration, error) {
	var (
		in               Integration
		sealed           []byte
		projects, evs    string
		firstFailed      sql.NullInt64
		created, updated int64
	)
	if err := row.Scan(&in.TeamID, &in.ID, &in.Name, &in.Type, &in.Webhook, &sealed, &in.Restricted, &projects, &in.Restrictions, &evs,
		&in.FailedRequests, &firstFailed, &created, &updated); err != nil {
		return Integration{}, err
	}
	if err := json.Unmarshal([]byte(projects), &in.Projects); err != nil {
		return Integration{}, fmt.Errorf("projects: integration %s projects: %w", in.ID, err)
	}
	if err := json.Unmarshal([]byte(evs), &in.Events); err != nil {
		return Integration{}, fmt.Errorf("projects: integration %s events: %w", in.ID, err)
	}
	secret, err := s.open(sealed)
	if err != nil {
		return Integration{}, err
	}
	in.Secret = secret
	in.FirstFailedAt = sqldb.FromMicros(firstFailed.Int64) // NULL reads as 0
	in.CreatedAt, in.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return in, nil
}

// CreateIntegration implements NotificationStore.
func (s *NotificationSQLStore) CreateIntegration(ctx context.Context, in Integration) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO notification_integrations (`+integrationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, NULL, $11, $12)`,
		in.TeamID, in.ID, in.Name, in.Type, in.Webhook, s.seal(in.Secret), in.Restricted, jsonText(nonNil(in.Projects)),
		restrictionsText(in.Restrictions), jsonText(nonNil(in.Events)), in.CreatedAt.UnixMicro(), in.UpdatedAt.UnixMicro())
	return sqldb.AlreadyExistsIfUnique(err)
}

func restrictionsText(r string) string {
	if r == "" {
		return "{}"
	}
	return r
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// GetIntegration implements NotificationStore.
func (s *NotificationSQLStore) GetIntegration(ctx context.Context, team, id string) (Integration, error) {
	in, err := s.scanIntegration(s.db.QueryRow(ctx, `SELECT `+integrationColumns+` FROM notification_integrations WHERE team_id = $1 AND id = $2`, team, id))
	return in, sqldb.NotFoundIfNoRows(err)
}

// ListIntegrations implements NotificationStore.
func (s *NotificationSQLStore) ListIntegrations(ctx context.Context, team string, page paging.Page) ([]Integration, bool, int, error) {
	total, err := paging.Count(ctx, s.db, `notification_integrations WHERE team_id = $1`, team)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+integrationColumns+` FROM notification_integrations
		WHERE team_id = $1 AND id > $2 ORDER BY id LIMIT $3 OFFSET $4`, team, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Integration, error) { return s.scanIntegration(rows) })
	return list, more, total, err
}

// UpdateIntegration implements NotificationStore. The row is read and
// written in one transaction (on PostgreSQL with FOR UPDATE), so
// concurrent updates apply one after the other.
func (s *NotificationSQLStore) UpdateIntegration(ctx context.Context, team, id string, mutate func(*Integration) error) (Integration, error) {
	var out Integration
	lock := ""
	if s.db.Dialect == sqldb.Postgres {
		lock = " FOR UPDATE"
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		in, err := s.scanIntegration(tx.QueryRowContext(ctx, `SELECT `+integrationColumns+` FROM notification_integrations WHERE team_id = $1 AND id = $2`+lock, team, id))
		if err != nil {
			return sqldb.NotFoundIfNoRows(err)
		}
		if err := mutate(&in); err != nil {
			return err
		}
		in.TeamID, in.ID = team, id
		_, err = tx.ExecContext(ctx, `UPDATE notification_integrations SET name = $1, webhook = $2, secret = $3, restricted = $4,
			projects = $5, restrictions = $6, events = $7, updated_at = $8 WHERE team_id = $9 AND id = $10`,
			in.Name, in.Webhook, s.seal(in.Secret), in.Restricted, jsonText(nonNil(in.Projects)), restrictionsText(in.Restrictions),
			jsonText(nonNil(in.Events)), in.UpdatedAt.UnixMicro(), team, id)
		out = in
		return err
	})
	if err != nil {
		return Integration{}, err
	}
	return out, nil
}

// DeleteIntegration implements NotificationStore.
func (s *NotificationSQLStore) DeleteIntegration(ctx context.Context, team, id string) error {
	return s.deleteTarget(ctx, `notification_integrations`, TargetIntegration, team, id)
}

// deleteTarget deletes an integration or a webhook and its deliveries.
func (s *NotificationSQLStore) deleteTarget(ctx context.Context, table, kind, team, id string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM notification_deliveries WHERE team_id = $1 AND target_kind = $2 AND target_id = $3`, team, kind, id); err != nil {
			return err
		}
		return sqldb.NotFoundIfNoneAffected(tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE team_id = $1 AND id = $2`, team, id))
	})
}

// ---- webhooks

const webhookColumns = `team_id, id, url, events, secret, created_at`

func (s *NotificationSQLStore) scanWebhook(row scanner) (Webhook, error) {
	var (
		w       Webhook
		evs     string
		sealed  []byte
		created int64
	)
	if err := row.Scan(&w.TeamID, &w.ID, &w.URL, &evs, &sealed, &created); err != nil {
		return Webhook{}, err
	}
	if err := json.Unmarshal([]byte(evs), &w.Events); err != nil {
		return Webhook{}, fmt.Errorf("projects: webhook %s events: %w", w.ID, err)
	}
	secret, err := s.open(sealed)
	if err != nil {
		return Webhook{}, err
	}
	w.Secret, w.CreatedAt = secret, time.UnixMicro(created).UTC()
	return w, nil
}

// CreateWebhook implements NotificationStore.
func (s *NotificationSQLStore) CreateWebhook(ctx context.Context, w Webhook) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO app_webhooks (`+webhookColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		w.TeamID, w.ID, w.URL, jsonText(nonNil(w.Events)), s.seal(w.Secret), w.CreatedAt.UnixMicro())
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetWebhook implements NotificationStore.
func (s *NotificationSQLStore) GetWebhook(ctx context.Context, team, id string) (Webhook, error) {
	w, err := s.scanWebhook(s.db.QueryRow(ctx, `SELECT `+webhookColumns+` FROM app_webhooks WHERE team_id = $1 AND id = $2`, team, id))
	return w, sqldb.NotFoundIfNoRows(err)
}

// ListWebhooks implements NotificationStore.
func (s *NotificationSQLStore) ListWebhooks(ctx context.Context, team string, page paging.Page) ([]Webhook, bool, int, error) {
	total, err := paging.Count(ctx, s.db, `app_webhooks WHERE team_id = $1`, team)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+webhookColumns+` FROM app_webhooks
		WHERE team_id = $1 AND id > $2 ORDER BY id LIMIT $3 OFFSET $4`, team, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Webhook, error) { return s.scanWebhook(rows) })
	return list, more, total, err
}

// DeleteWebhook implements NotificationStore.
func (s *NotificationSQLStore) DeleteWebhook(ctx context.Context, team, id string) error {
	return s.deleteTarget(ctx, `app_webhooks`, TargetWebhook, team, id)
}

// ---- deliveries

// Enqueue implements NotificationStore.
func (s *NotificationSQLStore) Enqueue(ctx context.Context, consumer, eventID, team string, deliveries func(Subscribers) ([]Delivery, error)) (int, error) {
	var n int
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		n = 0
		first, err := events.MarkProcessed(ctx, tx, consumer, eventID)
		if err != nil || !first {
			return err
		}
		subs, err := s.subscribers(ctx, tx, team)
		if err != nil {
			return err
		}
		list, err := deliveries(subs)
		if err != nil {
			return err
		}
		for _, d := range list {
			if _, err := tx.ExecContext(ctx, `INSERT INTO notification_deliveries (id, team_id, target_kind, target_id, event_id, event_type, body,
				status, attempts, next_attempt_at, retry_until, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)`,
				d.ID, d.TeamID, d.TargetKind, d.TargetID, d.EventID, d.EventType, d.Body, DeliveryPending,
				d.NextAttemptAt.UnixMicro(), d.RetryUntil.UnixMicro(), d.CreatedAt.UnixMicro()); err != nil {
				return err
			}
		}
		n = len(list)
		return nil
	})
	return n, err
}

// subscribers reads a team's integrations and webhooks in tx, without
// their secrets: matching and rendering need none, and every lifecycle
// event reads them (the secret is opened at send time, by claimed).
func (s *NotificationSQLStore) subscribers(ctx context.Context, tx *sql.Tx, team string) (Subscribers, error) {
	var subs Subscribers
	rows, err := tx.QueryContext(ctx, `SELECT `+withoutSecret(integrationColumns)+` FROM notification_integrations WHERE team_id = $1 ORDER BY id`, team)
	if err != nil {
		return subs, err
	}
	for rows.Next() {
		in, err := s.scanIntegration(rows)
		if err != nil {
			rows.Close()
			return subs, err
		}
		subs.Integrations = append(subs.Integrations, in)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return subs, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+withoutSecret(webhookColumns)+` FROM app_webhooks WHERE team_id = $1 ORDER BY id`, team)
	if err != nil {
		return subs, err
	}
	for rows.Next() {
		w, err := s.scanWebhook(rows)
		if err != nil {
			rows.Close()
			return subs, err
		}
		subs.Webhooks = append(subs.Webhooks, w)
	}
	return subs, errors.Join(rows.Err(), rows.Close())
}

// withoutSecret is a column list with the sealed secret read as NULL,
// which the scanners take for "no secret".
func withoutSecret(columns string) string {
	return strings.Replace(columns, " secret,", " NULL,", 1)
}

const deliveryColumns = `id, team_id, target_kind, target_id, event_id, event_type, body, status, attempts, next_attempt_at, retry_until,
	last_status_code, last_latency_ms, last_error, last_attempt_at, created_at`

func scanDelivery(row scanner) (Delivery, error) {
	var (
		d                  Delivery
		next, until, creat int64
		latency            int64
		last               sql.NullInt64
	)
	err := row.Scan(&d.ID, &d.TeamID, &d.TargetKind, &d.TargetID, &d.EventID, &d.EventType, &d.Body, &d.Status, &d.Attempts,
		&next, &until, &d.LastStatusCode, &latency, &d.LastError, &last, &creat)
	d.NextAttemptAt, d.RetryUntil = time.UnixMicro(next).UTC(), time.UnixMicro(until).UTC()
	d.LastLatency = time.Duration(latency) * time.Millisecond
	d.LastAttemptAt, d.CreatedAt = sqldb.FromMicros(last.Int64), time.UnixMicro(creat).UTC() // NULL reads as 0
	return d, err
}

// ListDeliveries implements NotificationStore.
func (s *NotificationSQLStore) ListDeliveries(ctx context.Context, team, kind, target string, page paging.Page) ([]Delivery, bool, int, error) {
	total, err := paging.Count(ctx, s.db, `notification_deliveries WHERE team_id = $1 AND target_kind = $2 AND target_id = $3`, team, kind, target)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+deliveryColumns+` FROM notification_deliveries
		WHERE team_id = $1 AND target_kind = $2 AND target_id = $3 AND ($4 = '' OR id < $4)
		ORDER BY id DESC LIMIT $5 OFFSET $6`, team, kind, target, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Delivery, error) { return scanDelivery(rows) })
	return list, more, total, err
}

// RetryDelivery implements NotificationStore.
func (s *NotificationSQLStore) RetryDelivery(ctx context.Context, team, kind, target, id string, now, retryUntil time.Time) (Delivery, error) {
	var out Delivery
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE notification_deliveries SET status = $1, next_attempt_at = $2, retry_until = $3, lease_owner = '', lease_until = 0
			WHERE team_id = $4 AND target_kind = $5 AND target_id = $6 AND id = $7 AND status = $8`,
			DeliveryPending, now.UnixMicro(), retryUntil.UnixMicro(), team, kind, target, id, DeliveryFailed)
		if err != nil {
			return err
		}
		changed, err := res.RowsAffected()
		if err != nil {
			return err
		}
		out, err = scanDelivery(tx.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM notification_deliveries
			WHERE team_id = $1 AND target_kind = $2 AND target_id = $3 AND id = $4`, team, kind, target, id))
		if err != nil {
			return sqldb.NotFoundIfNoRows(err)
		}
		if changed == 0 {
			return ErrNotFailed
		}
		return nil
	})
	return out, err
}

// Claim implements NotificationStore: candidates are read, then each is
// leased by an UPDATE that checks again that it is pending and unleased,
// so of two replicas racing for a row only one changes it (PostgreSQL
// re-checks the WHERE clause on the row it waited for; SQLite has one
// writer).
func (s *NotificationSQLStore) Claim(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, `SELECT id FROM notification_deliveries
		WHERE status = $1 AND next_attempt_at <= $2 AND lease_until < $2 ORDER BY next_attempt_at, id LIMIT $3`,
		DeliveryPending, now.UnixMicro(), limit)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	var out []Claim
	for _, id := range ids {
		res, err := s.db.ExecContext(ctx, `UPDATE notification_deliveries SET lease_owner = $1, lease_until = $2
			WHERE id = $3 AND status = $4 AND next_attempt_at <= $5 AND lease_until < $5`,
			owner, leaseUntil.UnixMicro(), id, DeliveryPending, now.UnixMicro())
		if err != nil {
			return out, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			continue // another replica took it
		}
		c, err := s.claimed(ctx, id)
		if errors.Is(err, sql.ErrNoRows) {
			continue // its target was deleted meanwhile
		}
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// claimed reads a claimed delivery with its target's URL and secret.
func (s *NotificationSQLStore) claimed(ctx context.Context, id string) (Claim, error) {
	var (
		c      Claim
		sealed []byte
	)
	row := s.db.QueryRow(ctx, `SELECT `+prefixed("d", deliveryColumns)+`, COALESCE(i.webhook, w.url), COALESCE(i.secret, w.secret), COALESCE(i.type, ''), COALESCE(i.name, '')
		FROM notification_deliveries d
		LEFT JOIN notification_integrations i ON d.target_kind = 'integration' AND i.team_id = d.team_id AND i.id = d.target_id
		LEFT JOIN app_webhooks w ON d.target_kind = 'webhook' AND w.team_id = d.team_id AND w.id = d.target_id
		WHERE d.id = $1 AND (i.id IS NOT NULL OR w.id IS NOT NULL)`, id)
	d, err := scanDelivery(scanFunc(func(dest ...any) error {
		return row.Scan(append(dest, &c.URL, &sealed, &c.Type, &c.Name)...)
	}))
	if err != nil {
		return Claim{}, err
	}
	c.Delivery = d
	if c.Secret, err = s.open(sealed); err != nil {
		return Claim{}, err
	}
	return c, nil
}

type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// prefixed qualifies each column of a column list with table alias t.
func prefixed(t, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = t + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// Record implements NotificationStore.
func (s *NotificationSQLStore) Record(ctx context.Context, owner, id string, a Attempt) error {
	status, next := DeliveryPending, a.Next
	switch {
	case a.Succeeded:
		status, next = DeliverySucceeded, a.At
	case a.Next.IsZero():
		status, next = DeliveryFailed, a.At
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var team, kind, target string
		err := tx.QueryRowContext(ctx, `UPDATE notification_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2,
			last_status_code = $3, last_latency_ms = $4, last_error = $5, last_attempt_at = $6, lease_owner = '', lease_until = 0
			WHERE id = $7 AND lease_owner = $8 AND status = $9 RETURNING team_id, target_kind, target_id`,
			status, next.UnixMicro(), a.StatusCode, a.Latency.Milliseconds(), a.Err, a.At.UnixMicro(), id, owner, DeliveryPending).
			Scan(&team, &kind, &target)
		if err != nil {
			return sqldb.NotFoundIfNoRows(err)
		}
		if kind != TargetIntegration {
			return nil
		}
		if a.Succeeded {
			_, err = tx.ExecContext(ctx, `UPDATE notification_integrations SET failed_requests = 0, first_failed_at = NULL WHERE team_id = $1 AND id = $2`, team, target)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE notification_integrations SET failed_requests = failed_requests + 1,
				first_failed_at = COALESCE(first_failed_at, $1) WHERE team_id = $2 AND id = $3`, a.At.UnixMicro(), team, target)
		}
		return err
	})
}

// NextDue implements NotificationStore.
func (s *NotificationSQLStore) NextDue(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.db.QueryRow(ctx, `SELECT MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until ELSE next_attempt_at END)
		FROM notification_deliveries WHERE status = $1`, DeliveryPending).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, false, err
	}
	return time.UnixMicro(next.Int64).UTC(), true, nil
}

// Prune implements NotificationStore.
func (s *NotificationSQLStore) Prune(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM notification_deliveries WHERE status <> $1 AND created_at < $2`, DeliveryPending, before.UnixMicro())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
