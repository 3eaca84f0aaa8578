// Package migrations holds the auth database schema, one directory of
// goose migrations per SQL dialect.
package migrations

import (
	"embed"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Set is the auth service's migration set.
var Set = sqldb.Migrations{Name: "auth", FS: files}
