// Package pgtest is the real-PostgreSQL test harness: one server per test
// binary, a migrated template database, and a fresh database per test cloned
// from the template (fast, parallel, isolated).
//
// The server is, in order of preference:
//  1. TEST_DATABASE_URL (a postgres:// URL; its user needs CREATEDB),
//  2. a throwaway cluster from the local PostgreSQL binaries (package pgserver),
//  3. a container from testcontainers' postgres module (needs a Docker daemon).
//
// PGTEST_BACKEND=local or PGTEST_BACKEND=container forces 2 or 3.
//
// When none can be had, every test that asks for a database fails: a missing
// PostgreSQL is a failure, never a skip.
//
// Test connections run with an empty search_path, so any unqualified name in
// the schema or the queries fails loudly.
package pgtest

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

var (
	once      sync.Once
	setupErr  error
	admin     *pgxpool.Pool
	baseURL   *url.URL
	template  string
	stopFuncs []func()
	counter   atomic.Int64
	prefix    = fmt.Sprintf("pggit_t%d", os.Getpid())
)

// Main runs the tests of a package, then stops the server and checks that no
// goroutine was left behind. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	teardown()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: goroutines left behind after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func setup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	setupErr = start(ctx)
}

func start(ctx context.Context) error {
	var dsn string
	backend := os.Getenv("PGTEST_BACKEND") // "", "local" or "container": force one
	switch {
	case os.Getenv("TEST_DATABASE_URL") != "":
		dsn = os.Getenv("TEST_DATABASE_URL")
	case backend != "" && backend != "local" && backend != "container":
		return fmt.Errorf("PGTEST_BACKEND must be local or container (or unset), got %q", backend)
	default:
		localErr := errors.New("not tried, PGTEST_BACKEND=container")
		if backend != "container" {
			srv, err := pgserver.Start(ctx, nil)
			if err == nil {
				stopFuncs = append(stopFuncs, func() { _ = srv.Stop() })
				dsn = srv.DSN("postgres")
				break
			}
			if backend == "local" {
				return err
			}
			localErr = err
		}
		containerDSN, stop, err := startContainer(ctx)
		if err != nil {
			return fmt.Errorf("no PostgreSQL for the tests: set TEST_DATABASE_URL, or install the server binaries (local cluster: %v), or run a Docker daemon (testcontainers: %v)", localErr, err)
		}
		stopFuncs = append(stopFuncs, stop)
		dsn = containerDSN
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

// DSN returns the connection URL of database name on the test server.
func DSN(name string) string {
	u := *baseURL
	u.Path = "/" + name
	return u.String()
}

func ready(t testing.TB) {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("pgtest: %v", setupErr)
	}
}

func createDB(t testing.TB, fromTemplate bool) string {
	t.Helper()
	ready(t)
	name, err := create(fromTemplate)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(name); err != nil {
			t.Errorf("pgtest: %v", err)
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
		return "", nil, setupErr
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

// NewPool returns a pool on a fresh migrated database, with an empty
// search_path on every connection. It is closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Connect(t, NewDB(t))
}

// Connect opens a pool on dsn with an empty search_path on every connection.
// It is closed when the test ends.
func Connect(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	cfg, err := PoolConfig(dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// PoolConfig parses dsn and empties the search_path of every connection.
func PoolConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = ""
	return cfg, nil
}

// Conn opens a single connection on dsn with an empty search_path, closed when
// the test ends.
func Conn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.RuntimeParams["search_path"] = ""
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
