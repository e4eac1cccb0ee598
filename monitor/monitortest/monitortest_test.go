package monitortest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

// A host service's TestMain: the pggit schema plus its own, applied once to
// the template every test database is cloned from.
func TestMain(m *testing.M) {
	monitortest.Main(m, monitortest.CheckGoroutines(), monitortest.TemplateSetup(
		func(ctx context.Context, pool *pgxpool.Pool) error {
			_, err := pool.Exec(ctx, `CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric NOT NULL)`)
			return err
		}))
}

// What a host service's test looks like: a fresh database with both schemas,
// its own queries unqualified (the search_path is the server's), the monitor
// on the same pool.
func TestHostServiceSuite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := monitortest.New(t)
	_, err := pool.Exec(ctx, `INSERT INTO orders (total) VALUES (9.99)`)
	require.NoError(t, err)

	client, err := monitor.New(pool, nil)
	require.NoError(t, err)
	rec, err := client.NewRecorder(nil)
	require.NoError(t, err)
	require.NoError(t, rec.Record("checkout", 41e6))
	require.NoError(t, rec.Close(ctx))
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = 'checkout'`).Scan(&n))
	require.Equal(t, 1, n)
}

// Each test gets its own database: what one writes, another never sees, and
// the databases are gone after the tests.
func TestDatabasesAreIsolatedAndDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var names sync.Map
	t.Run("group", func(t *testing.T) {
		for i := range 3 {
			t.Run("db", func(t *testing.T) {
				t.Parallel()
				pool := monitortest.New(t)
				var name string
				require.NoError(t, pool.QueryRow(ctx, `SELECT current_database()`).Scan(&name))
				names.Store(name, true)
				var orders int
				require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&orders))
				require.Zero(t, orders, "a fresh database")
				_, err := pool.Exec(ctx, `INSERT INTO orders (total) VALUES ($1)`, i)
				require.NoError(t, err)
			})
		}
	})
	admin := monitortest.Admin(t)
	count := 0
	names.Range(func(k, _ any) bool {
		count++
		var exists bool
		require.NoError(t, admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, k).Scan(&exists))
		require.False(t, exists, "database %v still exists after its test", k)
		return true
	})
	require.Equal(t, 3, count)
}
