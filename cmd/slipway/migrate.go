package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// migrate applies every pending migration to the databases of the
// components the target runs (all of them by default) and exits.
func migrate(ctx context.Context, cfg config) error {
	log := cfg.logger()
	for _, c := range table {
		if !cfg.runs(c.Name) || c.Migrations == nil {
			continue
		}
		db, err := openDatabase(ctx, cfg, c, true)
		if err != nil {
			return err
		}
		dialect := db.Dialect
		_ = db.Close()
		log.Info("database migrated", "component", c.Name, "dialect", dialect)
	}
	return nil
}

// migrationSets are a component's migrations: its own, then the event
// outbox and inbox every component with a database has, except an
// HTTPOnly one, which takes part in no events.
func migrationSets(c component.Component) []sqldb.Migrations {
	if c.HTTPOnly {
		return c.Migrations
	}
	return append(append([]sqldb.Migrations{}, c.Migrations...), events.Migrations)
}

// openDatabase opens a component's database, migrating it when asked.
func openDatabase(ctx context.Context, cfg config, c component.Component, migrate bool) (*sqldb.DB, error) {
	db, err := sqldb.Open(ctx, cfg.database(c))
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", c.Name, err)
	}
	if migrate {
		if err := db.Migrate(ctx, migrationSets(c)...); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("%s database: %w", c.Name, err)
		}
	}
	return db, nil
}

func jsonObject(m map[string]string) string {
	data, _ := json.Marshal(m)
	return string(data)
}
