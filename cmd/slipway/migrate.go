package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	authmigrations "github.com/slipwayhq/slipway/services/auth/migrations"
	"github.com/slipwayhq/slipway/services/auth/oauth"
	jobmigrations "github.com/slipwayhq/slipway/services/jobs/migrations"
	"github.com/slipwayhq/slipway/services/projects/migrations"
)

// migrate applies every pending migration to the databases of the
// services the target runs (all of them by default) and exits.
func migrate(ctx context.Context, cfg config) error {
	log := cfg.logger()
	type service struct {
		name string
		url  string
		sets []sqldb.Migrations
	}
	services := []service{
		{"auth", cfg.authDatabase(), []sqldb.Migrations{authmigrations.Set, events.Migrations, oauth.Migrations}},
		{"projects", cfg.projectsDatabase(), []sqldb.Migrations{migrations.Set, events.Migrations}},
		{"jobs", cfg.jobsDatabase(), []sqldb.Migrations{jobmigrations.Set, events.Migrations}},
	}
	for _, s := range services {
		if !cfg.runs(s.name) {
			continue
		}
		db, err := sqldb.Open(ctx, s.url)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		err = db.Migrate(ctx, s.sets...)
		_ = db.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		log.Info("database migrated", "service", s.name, "dialect", db.Dialect)
	}
	return nil
}

func jsonObject(m map[string]string) string {
	data, _ := json.Marshal(m)
	return string(data)
}
