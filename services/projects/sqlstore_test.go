package projects_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/projects"
	"github.com/slipwayhq/slipway/services/projects/migrations"
	"github.com/slipwayhq/slipway/services/projects/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// schema is what the projects service's database holds.
var schema = []sqldb.Migrations{migrations.Set, events.Migrations}

// openDB returns a fresh, migrated database on engine.
func openDB(t *testing.T, engine sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqltest.Open(t, engine, schema...)
}

func TestSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.Run(t, func(t *testing.T) (projects.Store, func() int) {
			db := openDB(t, engine)
			return projects.NewSQLStore(db, nil), sqltest.RowCounter(t, db, "event_outbox")
		})
	})
}

func TestMigrationsAreIdempotent(t *testing.T) { sqltest.MigrationsAreIdempotent(t, schema...) }

// notificationBox seals notification secrets in tests.
func notificationBox(t *testing.T) *secret.Box {
	t.Helper()
	box, err := projects.NotificationBox([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func TestNotificationSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.RunNotifications(t, func(t *testing.T) projects.NotificationStore {
			return projects.NewNotificationSQLStore(openDB(t, engine), notificationBox(t))
		})
	})
}

// TestNotificationSecretsAreSealed: the database holds no secret in the
// clear, neither an integration's nor a webhook's.
func TestNotificationSecretsAreSealed(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		db := openDB(t, engine)
		s := projects.NewNotificationSQLStore(db, notificationBox(t))
		ctx := context.Background()
		now := time.Now().UTC()
		if err := s.CreateIntegration(ctx, projects.Integration{TeamID: "t", ID: "i", Name: "i", Type: "RAW_WEBHOOK", Webhook: "https://example.com",
			Secret: "integration-plain-secret", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateWebhook(ctx, projects.Webhook{TeamID: "t", ID: "w", URL: "https://example.com", Events: []string{"*"},
			Secret: "webhook-plain-secret", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`SELECT secret FROM notification_integrations`, `SELECT secret FROM app_webhooks`} {
			var sealed []byte
			if err := db.QueryRowContext(ctx, q).Scan(&sealed); err != nil {
				t.Fatal(err)
			}
			if len(sealed) == 0 || bytes.Contains(sealed, []byte("plain-secret")) {
				t.Fatalf("%s: secret stored in the clear (%d bytes)", q, len(sealed))
			}
		}
	})
}
