// Package migrations holds the jobs database schema, one directory of
// goose migrations per SQL dialect.
package migrations

import (
	"embed"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Set is the jobs service's migration set.
var Set = sqldb.Migrations{Name: "jobs", FS: files}
