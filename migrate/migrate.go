// Package migrate applies the pggit-monitor schema (the goose migrations
// embedded in package sql) to a PostgreSQL database.
//
// The version table is [VersionTable], never goose's default goose_db_version,
// so a host's own goose migrations are left alone. Every run holds a
// PostgreSQL session-level advisory lock, so two deploys migrating at once
// run one after the other instead of interleaving.
//
// The plain goose CLI gives the same schema and the same version table:
//
//	goose -dir sql/migrations -table pggit_goose_db_version postgres "$DATABASE_URL" up
//
// The version table is created unqualified, in the connection's current
// schema (public by default), as the goose CLI does; run migrations on a
// connection whose search_path has a schema to create it in.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	pggitsql "github.com/pggit/pggit-monitor/sql"
)

// VersionTable is the goose version table of pggit-monitor.
const VersionTable = "pggit_goose_db_version"

// LockID is the key of the session-level advisory lock held while migrating.
// It is not goose's default key, so a host's own goose runs are not blocked.
const LockID int64 = 0x70676974_6d6f6e // "pgit" "mon"

// DefaultLockTimeout is how long a run waits for another run's lock.
const DefaultLockTimeout = 5 * time.Minute

// Options configure a Migrator. The zero value is valid.
type Options struct {
	// Logger receives one line per applied migration. Defaults to a logger
	// that discards everything.
	Logger *slog.Logger
	// LockTimeout is how long to wait for a concurrent run to release the
	// migration lock. Defaults to DefaultLockTimeout; rounded up to seconds.
	LockTimeout time.Duration
}

// Result describes one applied (or rolled back) migration.
type Result struct {
	Version   int64
	Name      string
	Direction string // "up" or "down"
	Duration  time.Duration
}

// Status describes one migration and whether it is applied.
type Status struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// Migrator applies the embedded migrations to one database.
type Migrator struct {
	provider *goose.Provider
	db       *sql.DB
	ownsDB   bool
}

// New returns a Migrator over db. The caller keeps ownership of db.
func New(db *sql.DB, opts *Options) (*Migrator, error) {
	if db == nil {
		return nil, errors.New("migrate: db must not be nil")
	}
	if opts == nil {
		opts = &Options{}
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = DefaultLockTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("migrate: LockTimeout must be positive, got %s", timeout)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(LockID),
		lock.WithLockTimeout(1, uint64((timeout+time.Second-1)/time.Second)),
	)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, pggitsql.Migrations(),
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return &Migrator{provider: provider, db: db}, nil
}

// NewFromPool returns a Migrator that runs over connections of pool. Close
// releases what it opened; the pool stays open.
func NewFromPool(pool *pgxpool.Pool, opts *Options) (*Migrator, error) {
	db := stdlib.OpenDBFromPool(pool)
	m, err := New(db, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	m.ownsDB = true
	return m, nil
}

// Close releases the database handle if the Migrator opened it.
func (m *Migrator) Close() error {
	if m.ownsDB {
		return m.db.Close()
	}
	return nil
}

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context) ([]Result, error) {
	res, err := m.provider.Up(ctx)
	return results(res), wrap("up", err)
}

// UpTo applies pending migrations up to and including version.
func (m *Migrator) UpTo(ctx context.Context, version int64) ([]Result, error) {
	res, err := m.provider.UpTo(ctx, version)
	return results(res), wrap("up", err)
}

// Down rolls back the most recently applied migration.
func (m *Migrator) Down(ctx context.Context) ([]Result, error) {
	res, err := m.provider.Down(ctx)
	if res == nil {
		return nil, wrap("down", err)
	}
	return results([]*goose.MigrationResult{res}), wrap("down", err)
}

// DownTo rolls back every migration above version; DownTo(ctx, 0) removes the
// whole pggit schema.
func (m *Migrator) DownTo(ctx context.Context, version int64) ([]Result, error) {
	if version < 0 {
		return nil, fmt.Errorf("migrate: version must be >= 0, got %d", version)
	}
	res, err := m.provider.DownTo(ctx, version)
	return results(res), wrap("down", err)
}

// Status lists every embedded migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, wrap("status", err)
	}
	out := make([]Status, 0, len(st))
	for _, s := range st {
		out = append(out, Status{
			Version:   s.Source.Version,
			Name:      baseName(s.Source.Path),
			Applied:   s.State == goose.StateApplied,
			AppliedAt: s.AppliedAt,
		})
	}
	return out, nil
}

// Version returns the highest applied version (0 when none) and the highest
// embedded version.
func (m *Migrator) Version(ctx context.Context) (current, latest int64, err error) {
	current, latest, err = m.provider.GetVersions(ctx)
	return current, latest, wrap("version", err)
}

// Up applies every pending migration to the database behind pool. It is the
// one call most host services need at start-up or in a deploy step.
func Up(ctx context.Context, pool *pgxpool.Pool, opts *Options) ([]Result, error) {
	m, err := NewFromPool(pool, opts)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.Up(ctx)
}

func results(in []*goose.MigrationResult) []Result {
	out := make([]Result, 0, len(in))
	for _, r := range in {
		if r == nil || r.Source == nil {
			continue
		}
		out = append(out, Result{
			Version:   r.Source.Version,
			Name:      baseName(r.Source.Path),
			Direction: r.Direction,
			Duration:  r.Duration,
		})
	}
	return out
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, goose.ErrNoNextVersion) || errors.Is(err, goose.ErrNoMigrations) {
		return nil
	}
	return fmt.Errorf("migrate %s: %w", op, err)
}
