package addons_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/migrations"
	"github.com/slipwayhq/slipway/services/addons/storetest"
)

// TestDestinationSQLStore runs the DestinationStore contract on both
// engines.
func TestDestinationSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.RunDestinations(t, func(t *testing.T) (addons.DestinationStore, func() int) {
			db := sqltest.Open(t, engine, migrations.Set, events.Migrations)
			box, err := addons.DestinationBox([]byte(strings.Repeat("m", 32)))
			if err != nil {
				t.Fatal(err)
			}
			return addons.NewDestinationSQLStore(db, nil, box), sqltest.RowCounter(t, db, "event_outbox")
		})
	})
}

// TestDestinationCredentialsSealedAtRest: the database holds no credential
// in the clear, and a store under another key cannot read them (and says
// so rather than returning garbage).
func TestDestinationCredentialsSealedAtRest(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, engine, migrations.Set, events.Migrations)
		box, _ := addons.DestinationBox([]byte(strings.Repeat("m", 32)))
		s := addons.NewDestinationSQLStore(db, nil, box)
		now := time.Now().UTC().Truncate(time.Millisecond)
		d := addons.Destination{TeamID: "acme", ID: "s3", Name: "S3", Type: addons.DestinationTypeS3, CreatedAt: now, UpdatedAt: now,
			Credentials: addons.DestinationCredentials{AccessKey: "AKIAEXAMPLEACCESS", SecretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", Bucket: "my-bucket-name", Region: "eu-west-3", Endpoint: "s3.example.com"}}
		if err := s.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		var raw []byte
		if err := db.QueryRow(ctx, `SELECT credentials FROM backup_destinations WHERE id = 's3'`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		for _, clear := range []string{d.Credentials.AccessKey, d.Credentials.SecretKey, d.Credentials.Bucket, d.Credentials.Endpoint} {
			if bytes.Contains(raw, []byte(clear)) {
				t.Fatalf("the database holds %q in the clear", clear)
			}
		}
		other, _ := addons.DestinationBox([]byte(strings.Repeat("x", 32)))
		_, err := addons.NewDestinationSQLStore(db, nil, other).Get(ctx, "acme", "s3")
		if err == nil || strings.Contains(err.Error(), d.Credentials.SecretKey) {
			t.Fatalf("Get under another key: %v", err)
		}
	})
}

// TestDestinationCredentialsNeverPrinted: formatting credentials (a stray
// %v in a log line) does not print the secret key.
func TestDestinationCredentialsNeverPrinted(t *testing.T) {
	c := addons.DestinationCredentials{AccessKey: "AK", SecretKey: "very-secret", Bucket: "b"}
	d := addons.Destination{ID: "x", Credentials: c}
	for _, s := range []string{destFmtV(c), destFmtPlusV(c), destFmtSharpV(c), destFmtV(d), destFmtPlusV(d)} {
		if strings.Contains(s, "very-secret") {
			t.Fatalf("printed the secret: %s", s)
		}
	}
}

func destFmtV(v any) string      { return fmt.Sprintf("%v", v) }
func destFmtPlusV(v any) string  { return fmt.Sprintf("%+v", v) }
func destFmtSharpV(v any) string { return fmt.Sprintf("%#v", v) }
