package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/migrate"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestMain(m *testing.M) {
	monitortest.Main(m, monitortest.CheckGoroutines(), monitortest.EmptySearchPath())
}

// schemaSignature describes everything in schema pggit: relations, columns,
// constraints, indexes, functions (with bodies and settings), triggers.
const schemaSignature = `
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
  SELECT 'rel ' || c.relname || ' ' || c.relkind::text AS line
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pggit'
  UNION ALL
  SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE n.nspname = 'pggit' AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'con ' || conname || ' ' || pg_get_constraintdef(co.oid)
    FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = 'pggit'
  UNION ALL
  SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'pggit'
  UNION ALL
  SELECT 'fn ' || pg_get_functiondef(p.oid)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pggit'
  UNION ALL
  SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'pggit'
  UNION ALL
  SELECT 'trg ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'pggit' AND NOT t.tgisinternal
) s`

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func signature(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s sql.NullString
	require.NoError(t, db.QueryRow(schemaSignature).Scan(&s))
	return s.String
}

func scalar[T any](t *testing.T, db *sql.DB, q string) T {
	t.Helper()
	var v T
	require.NoError(t, db.QueryRow(q).Scan(&v))
	return v
}

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := open(t, monitortest.NewEmptyDB(t))
	m, err := migrate.New(db, nil)
	require.NoError(t, err)

	res, err := m.Up(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(res), 2)
	require.Equal(t, "00001_baselines_schema.sql", res[0].Name)
	require.Equal(t, "up", res[0].Direction)
	first := signature(t, db)
	require.Contains(t, first, "fn CREATE OR REPLACE FUNCTION pggit.recalculate_all_baselines_rolling")

	cur, latest, err := m.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, latest, cur)

	// Idempotent.
	res, err = m.Up(ctx)
	require.NoError(t, err)
	require.Empty(t, res)

	st, err := m.Status(ctx)
	require.NoError(t, err)
	for _, s := range st {
		require.True(t, s.Applied, s.Name)
		require.False(t, s.AppliedAt.IsZero())
	}

	// One step down, then all the way: nothing of pggit is left.
	res, err = m.Down(ctx)
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, latest, res[0].Version)
	_, err = m.DownTo(ctx, 0)
	require.NoError(t, err)
	require.False(t, scalar[bool](t, db, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pggit')`))
	require.Zero(t, scalar[int](t, db, `SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pggit'`))
	cur, _, err = m.Version(ctx)
	require.NoError(t, err)
	require.Zero(t, cur)
	res, err = m.Down(ctx) // nothing left to roll back
	require.NoError(t, err)
	require.Empty(t, res)

	_, err = m.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, first, signature(t, db))

	// Only our version table; goose's default is never touched.
	require.True(t, scalar[bool](t, db, `SELECT to_regclass('public.pggit_goose_db_version') IS NOT NULL`))
	require.True(t, scalar[bool](t, db, `SELECT to_regclass('public.goose_db_version') IS NULL`))

	_, err = m.DownTo(ctx, -1)
	require.ErrorContains(t, err, "version must be >= 0")
}

func TestGooseCLIGivesTheSameSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	viaLib := open(t, monitortest.NewEmptyDB(t))
	m, err := migrate.New(viaLib, nil)
	require.NoError(t, err)
	_, err = m.Up(ctx)
	require.NoError(t, err)

	cliDSN := monitortest.NewEmptyDB(t)
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, "go", "tool", "-modfile="+filepath.Join(root, "tools", "go.mod"), "goose",
		"-dir", filepath.Join(root, "sql", "migrations"), "-table", "pggit_goose_db_version", "postgres", cliDSN, "up")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	viaCLI := open(t, cliDSN)
	require.Equal(t, signature(t, viaLib), signature(t, viaCLI))
	require.Equal(t,
		scalar[string](t, viaLib, `SELECT string_agg(version_id::text, ',' ORDER BY version_id) FROM pggit_goose_db_version`),
		scalar[string](t, viaCLI, `SELECT string_agg(version_id::text, ',' ORDER BY version_id) FROM pggit_goose_db_version`))

	// And the library continues where the CLI stopped.
	m2, err := migrate.New(viaCLI, nil)
	require.NoError(t, err)
	res, err := m2.Up(ctx)
	require.NoError(t, err)
	require.Empty(t, res)
}

func TestConcurrentUpDoesNotInterleave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := monitortest.NewEmptyDB(t)
	const deploys = 4
	var wg sync.WaitGroup
	errs := make([]error, deploys)
	applied := make([]int, deploys)
	for i := range deploys {
		db := open(t, dsn)
		wg.Go(func() {
			m, err := migrate.New(db, nil)
			if err != nil {
				errs[i] = err
				return
			}
			res, err := m.Up(ctx)
			errs[i], applied[i] = err, len(res)
		})
	}
	wg.Wait()
	total := 0
	for i := range deploys {
		require.NoError(t, errs[i])
		total += applied[i]
	}
	db := open(t, dsn)
	_, latest, err := func() (int64, int64, error) {
		m, err := migrate.New(db, nil)
		require.NoError(t, err)
		return m.Version(ctx)
	}()
	require.NoError(t, err)
	// Each migration applied exactly once, by one of the deploys.
	require.EqualValues(t, latest, total)
	require.EqualValues(t, latest, scalar[int64](t, db, `SELECT count(*) FROM pggit_goose_db_version WHERE version_id > 0`))
}

func TestMigrationsAreNumberedAndReversible(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "sql", "migrations", "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for i, f := range files {
		name := filepath.Base(f)
		require.Regexp(t, `^\d{5}_[a-z0-9_]+\.sql$`, name)
		require.True(t, strings.HasPrefix(name, fmt.Sprintf("%05d_", i+1)), "gap before %s", name)
	}
}

// Every Down restores exactly the schema of the version below it.
func TestEachDownRestoresThePreviousSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := open(t, monitortest.NewEmptyDB(t))
	m, err := migrate.New(db, nil)
	require.NoError(t, err)
	st, err := m.Status(ctx)
	require.NoError(t, err)

	want := map[int64]string{}
	for _, s := range st {
		_, err := m.UpTo(ctx, s.Version)
		require.NoError(t, err)
		want[s.Version] = signature(t, db)
	}
	for i := len(st) - 1; i > 0; i-- {
		_, err := m.Down(ctx)
		require.NoError(t, err)
		require.Equal(t, want[st[i-1].Version], signature(t, db), "after rolling back %s", st[i].Name)
	}
}
