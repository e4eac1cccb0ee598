// Package gen holds the type-safe pgx/v5 wrappers that sqlc generates from
// queries/ and sql/migrations/. Do not edit the generated files: change the
// queries or migrations and run `go generate ./gen` (or `make generate`).
package gen

//go:generate go tool -modfile=../tools/go.mod sqlc generate -f ../sqlc.yaml
