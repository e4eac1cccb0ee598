package monitor_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
)

// rollupMismatchSQL lists every rollup that differs from a merge from scratch
// of pggit.performance_histograms: the hours before rolled_through and the
// days before its day, with their bins, counts, count, min and max equal and
// sums equal up to rounding (the order of additions depends on the rows).
const rollupMismatchSQL = `
WITH st AS (SELECT s.rolled_through AS r FROM pggit.histogram_rollup_state s),
parts AS (
    SELECT h.operation_type, h.scope, pggit.utc_hour(h.bucket_start) AS b, 3600 AS w, h.sample_count, h.sum_us,
           h.sum_sq_us, h.min_us, h.max_us, h.bins, h.counts
    FROM pggit.performance_histograms h, st WHERE h.bucket_start < st.r
    UNION ALL
    SELECT h.operation_type, h.scope, pggit.utc_day(h.bucket_start), 86400, h.sample_count, h.sum_us,
           h.sum_sq_us, h.min_us, h.max_us, h.bins, h.counts
    FROM pggit.performance_histograms h, st WHERE h.bucket_start < pggit.utc_day(st.r)
),
b AS (
    SELECT u.operation_type, u.scope, u.b, u.w, u.bin, sum(u.cnt)::bigint AS cnt
    FROM (SELECT p.operation_type, p.scope, p.b, p.w, unnest(p.bins) AS bin, unnest(p.counts) AS cnt FROM parts p) u
    GROUP BY 1, 2, 3, 4, 5
),
scratch AS (
    SELECT s.operation_type, s.scope, s.b, s.w, s.n, s.su, s.ss, s.mn, s.mx, a.bins, a.counts
    FROM (SELECT p.operation_type, p.scope, p.b, p.w, sum(p.sample_count)::bigint AS n, sum(p.sum_us) AS su,
                 sum(p.sum_sq_us) AS ss, min(p.min_us) AS mn, max(p.max_us) AS mx
          FROM parts p GROUP BY 1, 2, 3, 4) s
    JOIN (SELECT b.operation_type, b.scope, b.b, b.w, array_agg(b.bin ORDER BY b.bin) AS bins,
                 array_agg(b.cnt ORDER BY b.bin) AS counts
          FROM b GROUP BY 1, 2, 3, 4) a USING (operation_type, scope, b, w)
)
SELECT format('%s@%s %s/%s: scratch n=%s min=%s max=%s, rollup n=%s min=%s max=%s',
              coalesce(s.operation_type, r.operation_type), coalesce(s.scope, r.scope),
              coalesce(s.b, r.bucket_start), coalesce(s.w, r.bucket_seconds), s.n, s.mn, s.mx,
              r.sample_count, r.min_us, r.max_us)
FROM scratch s
FULL JOIN pggit.histogram_rollups r
  ON r.operation_type = s.operation_type AND r.scope = s.scope AND r.bucket_start = s.b AND r.bucket_seconds = s.w
WHERE s.n IS DISTINCT FROM r.sample_count OR s.mn IS DISTINCT FROM r.min_us OR s.mx IS DISTINCT FROM r.max_us
   OR s.bins IS DISTINCT FROM r.bins OR s.counts IS DISTINCT FROM r.counts
   OR abs(s.su - r.sum_us) > 1e-9 * abs(s.su) OR abs(s.ss - r.sum_sq_us) > 1e-9 * abs(s.ss)
ORDER BY 1`

// requireRollupsCurrent refreshes the rollups and checks them against a merge
// from scratch; it returns how many there are.
func (e *env) requireRollupsCurrent(msg string) int64 {
	e.t.Helper()
	e.exec(`SELECT pggit.refresh_histogram_rollups()`)
	require.Zero(e.t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`), "%s: marks left", msg)
	rows, err := e.pool.Query(e.ctx, rollupMismatchSQL)
	require.NoError(e.t, err)
	bad, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(e.t, err)
	require.Empty(e.t, bad, msg)
	return e.count(`SELECT count(*) FROM pggit.histogram_rollups`)
}

// rollupSnapshot is every rollup's exact columns, as text.
func (e *env) rollupSnapshot() []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `
SELECT format('%s@%s %s/%s n=%s min=%s max=%s bins=%s counts=%s', operation_type, scope, bucket_start, bucket_seconds,
              sample_count, min_us, max_us, bins, counts)
FROM pggit.histogram_rollups ORDER BY 1`)
	require.NoError(e.t, err)
	s, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(e.t, err)
	return s
}

// pastHour is the start of the UTC hour h hours before the current one.
func pastHour(h int) time.Time {
	return time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(h) * time.Hour)
}

// A late sample (into an hour that has ended) marks its operation-hour; the
// next histogram run counts it. Samples of the open hour mark nothing.
func TestRollupLateSampleMarksItsHour(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec(fmt.Sprintf(heavyTailSQL, 500))
	e.exec(`SELECT pggit.compact_histograms('-infinity', now(), now() - interval '48 hours')`)
	require.Positive(t, e.requireRollupsCurrent("first build"))
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.histogram_rollups WHERE bucket_seconds = 86400`))
	first := e.recalc(&monitor.RecalculateOpts{Force: true, Method: monitor.MethodHistogram})
	requireMethod(t, first, monitor.MethodHistogram)
	before := e.activeBaselines()["bimodal@eu"]
	require.EqualValues(t, 500, before.n)

	// Samples now: the open hour, no mark.
	e.copySamples("bimodal", "eu", time.Now(), 1000, 2000)
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`))

	// Late samples 3 days back (an hour row there) and 5 hours back (minutes).
	late := []time.Time{pastHour(72).Add(17 * time.Minute), pastHour(5).Add(42 * time.Minute)}
	for _, at := range late {
		e.copySamples("bimodal", "eu", at, 77_777_777)
	}
	for _, at := range late {
		require.EqualValues(t, 1, e.count(`SELECT count(DISTINCT hour) FROM pggit.histogram_rollup_dirty
		    WHERE operation_type = 'bimodal' AND scope = 'eu' AND hour = $1`, at.Truncate(time.Hour)), at)
	}
	require.EqualValues(t, 2, e.count(`SELECT count(DISTINCT (operation_type, scope, hour)) FROM pggit.histogram_rollup_dirty`))

	hist := e.recalc(&monitor.RecalculateOpts{Force: true, Method: monitor.MethodHistogram})
	requireMethod(t, hist, monitor.MethodHistogram)
	got := e.activeBaselines()["bimodal@eu"]
	// The samples of the current minute wait for the next run (the window
	// ends at the last whole minute); the late ones are all counted.
	require.GreaterOrEqual(t, got.n, before.n+2)
	require.Equal(t, int64(77_777_777), got.max)
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`), "the run consumed the marks")
	e.requireRollupsCurrent("after late samples")

	// And exactly as the exact method counts them.
	exact := e.recalc(&monitor.RecalculateOpts{Force: true, Method: monitor.MethodExact})
	requireMethod(t, exact, monitor.MethodExact)
	require.Equal(t, int64(77_777_777), e.activeBaselines()["bimodal@eu"].max)
}

// Compaction merges rows without changing any hour's totals: it marks
// nothing and leaves every rollup as it was.
func TestRollupCompactionMarksNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec(fmt.Sprintf(heavyTailSQL, 500))
	// Split rows: a second batch into minutes that already have a row.
	for h := 60; h <= 64; h++ {
		e.copySamples("pareto", "", pastHour(h).Add(90*time.Second), 123, 456_789)
	}
	e.exec(`DELETE FROM pggit.histogram_rollup_dirty`)
	e.requireRollupsCurrent("first build")
	before := e.rollupSnapshot()
	require.NotEmpty(t, before)
	minutes := e.count(`SELECT count(*) FROM pggit.performance_histograms WHERE bucket_seconds = 60`)

	// As the worker does: hours older than 48 hours, then the split rows of
	// the last hour (detection_close_hour).
	e.exec(`SELECT pggit.compact_histograms('-infinity', now(), now() - interval '48 hours')`)
	e.exec(`SELECT pggit.compact_histograms(date_bin('1 hour', now(), '2000-01-01Z') - interval '1 hour', now())`)
	require.Less(t, e.count(`SELECT count(*) FROM pggit.performance_histograms WHERE bucket_seconds = 60`), minutes)
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.performance_histograms WHERE bucket_seconds = 3600`))
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`))
	require.Equal(t, before, e.rollupSnapshot())
	e.requireRollupsCurrent("after compaction")
	require.Equal(t, before, e.rollupSnapshot())

	// The setting is the function's own: a write after it marks again.
	e.copySamples("pareto", "", pastHour(30), 5)
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`))
}

// rebuild_histograms (after samples were deleted) and histogram retention
// delete rows of closed hours: both are caught at the next refresh.
func TestRollupRebuildAndRetentionAreCaught(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec(fmt.Sprintf(heavyTailSQL, 500))
	e.exec(`SELECT pggit.compact_histograms('-infinity', now(), now() - interval '48 hours')`)
	e.requireRollupsCurrent("first build")
	total := func() int64 {
		return e.count(`SELECT coalesce(sum(sample_count), 0) FROM pggit.histogram_rollups
		                WHERE bucket_seconds = 3600 AND operation_type = 'pareto' AND scope = ''`)
	}
	require.EqualValues(t, 500, total()+e.count(`SELECT coalesce(sum(sample_count), 0) FROM pggit.performance_histograms
	    WHERE operation_type = 'pareto' AND scope = '' AND bucket_start >= (SELECT rolled_through FROM pggit.histogram_rollup_state)`))

	// Samples of hours 3 to 4 days ago deleted by hand, their histograms rebuilt.
	from, to := pastHour(96), pastHour(72)
	var deleted int64
	require.NoError(t, e.pool.QueryRow(e.ctx, `WITH d AS (DELETE FROM pggit.performance_metrics
	    WHERE operation_type = 'pareto' AND scope = '' AND recorded_at >= $1 AND recorded_at < $2 RETURNING 1)
	    SELECT count(*) FROM d`, from, to).Scan(&deleted))
	require.Positive(t, deleted)
	before := total()
	e.exec(`SELECT pggit.rebuild_histograms($1, $2)`, from, to)
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty WHERE hour >= $1 AND hour < $2`, from, to))
	e.requireRollupsCurrent("after rebuild_histograms")
	require.Equal(t, before-deleted, total())

	// Retention of histograms at 2 days: the rows (and so the rollups) of
	// older hours and days go.
	require.NoError(t, e.client.SetRetentionSettings(e.ctx, monitor.RetentionSettings{HistogramsDays: 2}))
	_, err := e.client.ApplyRetention(e.ctx, 100)
	require.NoError(t, err)
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`))
	e.requireRollupsCurrent("after retention")
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.histogram_rollups WHERE bucket_start < now() - interval '3 days'`))
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.histogram_rollups`))

	// TRUNCATE (no row trigger fires) drops every rollup; the next refresh
	// builds from the oldest row again.
	e.exec(`TRUNCATE pggit.performance_histograms`)
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.histogram_rollups`))
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_state WHERE rolled_through IS NOT NULL`))
	e.copySamples("pareto", "", pastHour(30), 5, 6, 7)
	e.requireRollupsCurrent("after truncate")
	require.EqualValues(t, 3, total())
}

// After a random mix of samples into past hours, compactions and rebuilds,
// refreshed now and then, the rollups equal a merge from scratch.
func TestRollupsEqualScratchAfterRandomMix(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rng := rand.New(rand.NewPCG(7, 11))
	ops := []string{"a", "b", "c"}
	scopes := []string{"", "eu"}
	// Somewhere in the last 4 days, never in the open hour.
	past := func() time.Time {
		return pastHour(1 + rng.IntN(96)).Add(time.Duration(rng.IntN(3600)) * time.Second)
	}
	for i := range 40 {
		at := past()
		e.copySamples(ops[i%3], scopes[i%2], at, int64(100+rng.IntN(100_000)), int64(1+rng.IntN(10_000)))
	}
	e.requireRollupsCurrent("first build")
	for step := range 60 {
		switch k := rng.IntN(10); {
		case k < 5:
			n := 1 + rng.IntN(4)
			d := make([]int64, n)
			for i := range d {
				d[i] = int64(1 + rng.IntN(1_000_000))
			}
			e.copySamples(ops[rng.IntN(3)], scopes[rng.IntN(2)], past(), d...)
		case k < 7:
			from := pastHour(rng.IntN(100))
			e.exec(`SELECT pggit.compact_histograms($1, $2, $3)`, from.Add(-time.Duration(rng.IntN(30))*time.Hour),
				from.Add(time.Hour), pastHour(rng.IntN(60)))
		case k < 8:
			from := past()
			e.exec(`SELECT pggit.rebuild_histograms($1, $2)`, from, from.Add(time.Duration(1+rng.IntN(5))*time.Hour))
		default:
			e.requireRollupsCurrent(fmt.Sprintf("step %d", step))
		}
	}
	n := e.requireRollupsCurrent("end")
	require.Positive(t, n)
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.histogram_rollups WHERE bucket_seconds = 86400`))
}

// A mark committed by a transaction the refresh could not see stays for the
// next refresh, which then counts that transaction's samples. Even when the
// same hour was already marked (committed) when the writer wrote: the
// refresh consumes that mark, the writer's own stays (with a unique key and
// ON CONFLICT DO NOTHING the writer would have written none, and its sample
// would be missing from the rollup for good).
func TestRollupMarkOfAConcurrentWriterStays(t *testing.T) {
	t.Parallel()
	e := setup(t)
	at := pastHour(5).Add(10 * time.Minute)
	e.copySamples("checkout", "", at.Add(-2*time.Hour), 50)
	e.requireRollupsCurrent("first build")
	e.copySamples("checkout", "", at, 100, 200) // late: marked, committed
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`))

	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	n, err := gen.New(tx).CopyMetrics(e.ctx, []gen.CopyMetricsParams{
		{OperationType: "checkout", DurationMicroseconds: 9_999, RecordedAt: at},
	})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// The refresh runs while the writer is open: it cannot see the mark.
	e.exec(`SELECT pggit.refresh_histogram_rollups()`)
	hour := `SELECT sample_count FROM pggit.histogram_rollups
	         WHERE bucket_seconds = 3600 AND operation_type = 'checkout' AND bucket_start = $1`
	require.EqualValues(t, 2, e.count(hour, at.Truncate(time.Hour)))

	require.NoError(t, tx.Commit(e.ctx))
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`), "the writer's mark")
	e.requireRollupsCurrent("after the writer committed")
	require.EqualValues(t, 3, e.count(hour, at.Truncate(time.Hour)))
}

// The worker's hourly compaction job also brings the rollups up to date, so a
// recalculation finds nothing due.
func TestRollupWorkerCompactionJobRefreshes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec(fmt.Sprintf(heavyTailSQL, 200))
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.histogram_rollups`))
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`))

	w, err := e.client.NewWorker(nil)
	require.NoError(t, err)
	ran, err := w.RunDueJob(e.ctx, monitor.JobCompact)
	require.NoError(t, err)
	require.True(t, ran)
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.performance_histograms WHERE bucket_seconds = 3600`))
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.histogram_rollup_dirty`))
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.histogram_rollup_state
	    WHERE rolled_through = date_bin('1 hour', clock_timestamp() - interval '10 minutes', '2000-01-01Z')
	       OR rolled_through = date_bin('1 hour', clock_timestamp() - interval '70 minutes', '2000-01-01Z')`))
	built := e.rollupSnapshot()
	require.NotEmpty(t, built)
	e.requireRollupsCurrent("after the worker's job")
}
