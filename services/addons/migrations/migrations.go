// Package migrations holds the addons database schema, one directory of
// goose migrations per SQL dialect.
package migrations

import (
	"embed"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Set is the addons service's migration set.
var Set = sqldb.Migrations{Name: "addons", FS: files}
