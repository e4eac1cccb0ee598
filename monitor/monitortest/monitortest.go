// Package monitortest gives a test suite a real PostgreSQL with the pggit
// schema migrated: one server per test binary, a migrated template database,
// and a fresh database per test cloned from it (fast, parallel, isolated). It
// is the harness pggit-monitor's own tests run on, for host services to use in
// theirs:
//
//	func TestMain(m *testing.M) { monitortest.Main(m) }
//
//	func TestCheckout(t *testing.T) {
//		pool := monitortest.New(t) // fresh database, pggit schema migrated
//		...
//	}
//
// The server is, in order of preference:
//  1. TEST_DATABASE_URL (a postgres:// URL; its user needs CREATEDB),
//  2. a throwaway cluster from the local PostgreSQL server binaries
//     (initdb, pg_ctl on PATH or under /usr/lib/postgresql/*/bin),
//  3. a testcontainers PostgreSQL container (needs a Docker daemon).
//
// PGTEST_BACKEND=local or PGTEST_BACKEND=container forces 2 or 3.
//
// When none can be had, every test that asks for a database fails with an
// error naming the three ways: a missing PostgreSQL is a failure, never a
// skip.
package monitortest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/pggit/pggit-monitor/internal/pgserver"
	"github.com/pggit/pggit-monitor/migrate"
)

// Option configures the harness; pass options to Main.
type Option func(*options)

type options struct {
	checkGoroutines bool
	emptySearchPath bool
	setup           []func(ctx context.Context, pool *pgxpool.Pool) error
}

// CheckGoroutines makes Main fail the run when goroutines are left behind
// after the tests (go.uber.org/goleak).
func CheckGoroutines() Option { return func(o *options) { o.checkGoroutines = true } }

// EmptySearchPath gives every connection opened by the harness an empty
// search_path, so any unqualified name fails loudly. pggit-monitor's own tests
// use it; a host service whose queries rely on its search_path does not.
func EmptySearchPath() Option { return func(o *options) { o.emptySearchPath = true } }

// TemplateSetup runs fn once on the template database after the pggit
// migrations, before any test database is cloned from it: apply the host
// service's own schema here, and every test database has both.
func TemplateSetup(fn func(ctx context.Context, pool *pgxpool.Pool) error) Option {
	return func(o *options) { o.setup = append(o.setup, fn) }
}

var (
	mainCalled bool
	opts       options
	once       sync.Once
	setupErr   error
	admin      *pgxpool.Pool
	baseURL    *url.URL
	template   string
	stopFuncs  []func()
	counter    atomic.Int64
	prefix     = fmt.Sprintf("pggit_t%d", os.Getpid())
)

// Main runs the tests of a package, then drops the template database and
// stops the server the harness started. Call it from TestMain; New and the
// other helpers fail the test without it, since nothing else would stop the
// server:
//
//	func TestMain(m *testing.M) { monitortest.Main(m) }
func Main(m *testing.M, o ...Option) {
	mainCalled = true
	for _, fn := range o {
		fn(&opts)
	}
	code := m.Run()
	teardown()
	if code == 0 && opts.checkGoroutines {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "monitortest: goroutines left behind after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func setup() {
	if !mainCalled {
		setupErr = errors.New("call monitortest.Main(m) from TestMain: it stops the server the harness starts")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	setupErr = start(ctx)
}

func start(ctx context.Context) error {
	dsn := os.Getenv("TEST_DATABASE_URL")
	if dsn == "" {
		var stop func()
		var err error
		dsn, stop, err = pgserver.Provision(ctx, pgserver.Backend(os.Getenv("PGTEST_BACKEND")), nil, "TEST_DATABASE_URL")
		if err != nil {
			return err
		}
		stopFuncs = append(stopFuncs, stop)
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("TEST_DATABASE_URL must be a postgres:// URL")
	}
	baseURL = u
	admin, err = pgxpool.New(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to the test server: %w", err)
	}
	if err := admin.Ping(ctx); err != nil {
		return fmt.Errorf("connecting to the test server: %w", err)
	}
	template = prefix + "_template"
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+template); err != nil {
		return fmt.Errorf("creating the template database: %w", err)
	}
	pool, err := pgxpool.New(ctx, DSN(template))
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := migrate.Up(ctx, pool, nil); err != nil {
		return fmt.Errorf("migrating the template database: %w", err)
	}
	for _, fn := range opts.setup {
		if err := fn(ctx, pool); err != nil {
			return fmt.Errorf("template setup: %w", err)
		}
	}
	return nil
}

func teardown() {
	if admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if template != "" {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+template+" WITH (FORCE)")
		}
		admin.Close()
	}
	for i := len(stopFuncs) - 1; i >= 0; i-- {
		stopFuncs[i]()
	}
}

// DSN returns the connection URL of database name on the test server. Call it
// after a helper has started the server (New, NewDB, Admin).
func DSN(name string) string {
	u := *baseURL
	u.Path = "/" + name
	return u.String()
}

func ready(t testing.TB) {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("monitortest: %v", setupErr)
	}
}

func createDB(t testing.TB, fromTemplate bool) string {
	t.Helper()
	ready(t)
	name, err := create(fromTemplate)
	if err != nil {
		t.Fatalf("monitortest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(name); err != nil {
			t.Errorf("monitortest: %v", err)
		}
	})
	return DSN(name)
}

func create(fromTemplate bool) (string, error) {
	name := fmt.Sprintf("%s_%d", prefix, counter.Add(1))
	stmt := "CREATE DATABASE " + name
	if fromTemplate {
		stmt += " TEMPLATE " + template
	}
	ctx := context.Background()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		// Cloning fails while another session is connected to the template
		// (only possible for a moment after setup); retry briefly.
		if _, err = admin.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", stmt, err)
	}
	return name, nil
}

func drop(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping %s: %w", name, err)
	}
	return nil
}

// ExampleDB is NewDB for runnable examples, which have no *testing.T: it
// returns the URL of a fresh migrated database and a function that drops it.
func ExampleDB() (dsn string, cleanup func(), err error) {
	once.Do(setup)
	if setupErr != nil {
		return "", nil, fmt.Errorf("monitortest: %w", setupErr)
	}
	name, err := create(true)
	if err != nil {
		return "", nil, err
	}
	return DSN(name), func() { _ = drop(name) }, nil
}

// Admin returns a pool on the test server's maintenance database, for tests
// that act on databases as a whole (ALTER DATABASE, pg_terminate_backend).
func Admin(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ready(t)
	return admin
}

// New returns a pool on a fresh database with the pggit schema migrated (and
// whatever TemplateSetup added). The pool is closed and the database dropped
// when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Connect(t, NewDB(t))
}

// NewDB returns the URL of a fresh database with the pggit schema migrated.
// The database is dropped when the test ends.
func NewDB(t testing.TB) string {
	t.Helper()
	return createDB(t, true)
}

// NewEmptyDB returns the URL of a fresh database with nothing in it, for
// migration tests. The database is dropped when the test ends.
func NewEmptyDB(t testing.TB) string {
	t.Helper()
	return createDB(t, false)
}

// Connect opens a pool on dsn, closed when the test ends.
func Connect(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	cfg, err := PoolConfig(dsn)
	if err != nil {
		t.Fatalf("monitortest: %v", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("monitortest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// PoolConfig parses dsn with the harness's connection settings (an empty
// search_path under EmptySearchPath).
func PoolConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if opts.emptySearchPath {
		cfg.ConnConfig.RuntimeParams["search_path"] = ""
	}
	return cfg, nil
}

// Conn opens a single connection on dsn, closed when the test ends.
func Conn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("monitortest: %v", err)
	}
	if opts.emptySearchPath {
		cfg.RuntimeParams["search_path"] = ""
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("monitortest: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
