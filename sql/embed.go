// Package sql embeds the pggit-monitor schema: the goose migrations under
// sql/migrations, in the order goose (and sqlc) read them.
//
// Most programs use package migrate instead, which applies these files.
package sql

import (
	"embed"
	"io/fs"
)

//go:embed migrations/*.sql
var files embed.FS

// Migrations returns the migration files, named NNNNN_name.sql, at the root of
// the returned file system.
func Migrations() fs.FS {
	sub, err := fs.Sub(files, "migrations")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}
