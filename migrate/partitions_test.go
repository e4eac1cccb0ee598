package migrate_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/migrate"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

// An installed database with samples (and a host's own view over them) is
// upgraded to partitioned samples: every row stays, ids go on, the old table
// is the legacy partition, the host's view reads the new table; and Down puts
// back one plain table with every row, including those written since.
func TestUpgradeToPartitionedSamplesKeepsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := open(t, monitortest.NewEmptyDB(t))
	m, err := migrate.New(db, nil)
	require.NoError(t, err)
	_, err = m.UpTo(ctx, 20)
	require.NoError(t, err)

	exec := func(q string) {
		t.Helper()
		_, err := db.ExecContext(ctx, q)
		require.NoError(t, err)
	}
	count := func(q string) int64 { return scalar[int64](t, db, q) }
	exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at, scope)
		SELECT 'op' || (g % 7), 100 + g % 997, now() - (g % 14400) * interval '1 minute', CASE WHEN g % 3 = 0 THEN 'eu' ELSE '' END
		FROM generate_series(1, 20000) g`)
	exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
		VALUES ('clock_ahead', 5, now() + interval '9 days')`)
	exec(`CREATE VIEW public.host_counts AS SELECT operation_type, count(*) AS n FROM pggit.performance_metrics GROUP BY 1`)
	const digest = `SELECT md5(string_agg(metric_id || ':' || operation_type || ':' || duration_microseconds || ':' || recorded_at || ':' || scope,
		',' ORDER BY metric_id)) FROM pggit.performance_metrics`
	before := scalar[string](t, db, digest)
	lastID := count(`SELECT max(metric_id) FROM pggit.performance_metrics`)
	hist := count(`SELECT sum(sample_count) FROM pggit.performance_histograms`)
	require.EqualValues(t, 20001, hist)

	_, err = m.UpTo(ctx, 21)
	require.NoError(t, err)
	require.Equal(t, "p", scalar[string](t, db, `SELECT relkind::text FROM pg_class WHERE oid = 'pggit.performance_metrics'::regclass`))
	require.Equal(t, before, scalar[string](t, db, digest), "every row, unchanged")
	require.EqualValues(t, 20001, count(`SELECT count(*) FROM ONLY pggit.performance_metrics_legacy`))
	// The legacy partition reaches past the sample from a clock 9 days ahead;
	// partitions follow it, the default catches nothing.
	require.True(t, scalar[bool](t, db, `SELECT range_start IS NULL AND range_end > now() + interval '9 days'
		FROM pggit.sample_partitions() WHERE partition_name = 'performance_metrics_legacy'`))
	require.EqualValues(t, 0, count(`SELECT pggit.default_partition_rows()`))
	// Its indexes were attached, not rebuilt under other names.
	require.EqualValues(t, 2, count(`SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE c.relname IN ('performance_metrics_legacy_operation_recorded_idx', 'performance_metrics_legacy_recorded_idx')`))

	exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds) VALUES ('op1', 50), ('op1', 60)`)
	require.Equal(t, lastID+2, count(`SELECT max(metric_id) FROM pggit.performance_metrics`), "ids go on from the old sequence")
	require.Equal(t, hist+2, count(`SELECT sum(sample_count) FROM pggit.performance_histograms`), "the trigger moved to the new table")
	require.EqualValues(t, 20003, count(`SELECT sum(n) FROM public.host_counts`), "the host's view reads the new table")
	require.Equal(t, count(`SELECT count(*) FROM pggit.performance_metrics WHERE recorded_at > now() - interval '1 hour'`),
		count(`SELECT samples_last_hour FROM pggit.v_monitoring_system_health`), "our views read it too")

	_, err = m.DownTo(ctx, 20)
	require.NoError(t, err)
	require.Equal(t, "r", scalar[string](t, db, `SELECT relkind::text FROM pg_class WHERE oid = 'pggit.performance_metrics'::regclass`))
	require.EqualValues(t, 20003, count(`SELECT count(*) FROM pggit.performance_metrics`))
	require.EqualValues(t, 20003, count(`SELECT sum(n) FROM public.host_counts`))
	exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds) VALUES ('op1', 70)`)
	require.Equal(t, lastID+3, count(`SELECT max(metric_id) FROM pggit.performance_metrics`))
	require.Equal(t, hist+3, count(`SELECT sum(sample_count) FROM pggit.performance_histograms`))

	// And up again, from the plain table Down left.
	_, err = m.UpTo(ctx, 21)
	require.NoError(t, err)
	require.EqualValues(t, 20004, count(`SELECT count(*) FROM pggit.performance_metrics`))
}
