package sqldb

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// TestPoolSettings: a PostgreSQL pool keeps maxPostgresConns connections
// unless the URL's pool_max_conns says otherwise.
func TestPoolSettings(t *testing.T) {
	ctx := context.Background()
	base := testenv.Postgres(t)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	for url, want := range map[string]int32{
		base:                            maxPostgresConns,
		base + sep + "pool_max_conns=3": 3,
	} {
		db, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		cfg := db.pool.Config()
		if cfg.MaxConns != want || cfg.MaxConnIdleTime != 5*time.Minute {
			t.Errorf("%s: %d connections idle for %v, want %d for 5m", url, cfg.MaxConns, cfg.MaxConnIdleTime, want)
		}
		_ = db.Close()
	}
}
