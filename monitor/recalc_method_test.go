package monitor_test

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

// heavyTailSQL writes %d samples per (operation, scope) for 3 operations x 2
// scopes, recorded uniformly between 5 days and 3 minutes ago (so both
// compacted hour rows and minute rows are merged, and both methods' windows
// hold every sample): a lognormal body with a Pareto tail (alpha 1.5, 10%) for
// "lognormal_pareto", a two-mode lognormal for "bimodal", and a pure Pareto
// (alpha 1.2) for "pareto". Seeded, so every run sees the same data.
const heavyTailSQL = `
SELECT setseed(0.42);
INSERT INTO pggit.performance_metrics (operation_type, scope, duration_microseconds, recorded_at)
SELECT o.op, s.scope,
       greatest(1, CASE o.op
           WHEN 'lognormal_pareto' THEN CASE WHEN random() < 0.1 THEN 20000 / power(1 - random(), 1 / 1.5)
                                              ELSE exp(8 + 0.6 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) END
           WHEN 'bimodal' THEN CASE WHEN random() < 0.3 THEN exp(10 + 0.3 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
                                    ELSE exp(7 + 0.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) END
           ELSE 500 / power(1 - random(), 1 / 1.2) END)::bigint,
       now() - interval '3 minutes' - random() * (interval '5 days' - interval '3 minutes')
FROM (VALUES ('lognormal_pareto'), ('bimodal'), ('pareto')) o(op)
CROSS JOIN (VALUES (''), ('eu')) s(scope)
CROSS JOIN generate_series(1, %d) g;
`

type baselineStats struct {
	n                       int64
	min, max                int64
	mean, stddev            float64
	p50, p75, p90, p95, p99 float64
	windowStart, windowEnd  time.Time
}

func (e *env) activeBaselines() map[string]baselineStats {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `
SELECT operation_type || CASE WHEN scope = '' THEN '' ELSE '@' || scope END, sample_count, min_microseconds,
       max_microseconds, mean_microseconds, stddev_microseconds, p50_microseconds, p75_microseconds,
       p90_microseconds, p95_microseconds, p99_microseconds, window_start, window_end
FROM pggit.performance_baselines WHERE is_active`)
	require.NoError(e.t, err)
	defer rows.Close()
	m := map[string]baselineStats{}
	for rows.Next() {
		var k string
		var s baselineStats
		require.NoError(e.t, rows.Scan(&k, &s.n, &s.min, &s.max, &s.mean, &s.stddev, &s.p50, &s.p75, &s.p90,
			&s.p95, &s.p99, &s.windowStart, &s.windowEnd))
		m[k] = s
	}
	require.NoError(e.t, rows.Err())
	return m
}

func requireMethod(t *testing.T, res *monitor.RecalculateResult, want monitor.Method) {
	t.Helper()
	require.Equal(t, want, res.Execution.Method, "run record")
	require.NotEmpty(t, res.Operations)
	for _, r := range res.Operations {
		require.Equal(t, want, r.Method, "%s@%s", r.OperationType, r.Scope)
	}
}

// The histogram method agrees with the exact one on heavy-tailed data: every
// quantile within 1%, count, min and max equal, mean equal up to rounding,
// stddev close. The histograms are compacted as the worker leaves them (hours
// older than 48 hours, minutes after), so both kinds of rows are merged.
func TestRecalcMethodsAgree(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec(fmt.Sprintf(heavyTailSQL, 4000))
	e.exec(`SELECT pggit.compact_histograms('-infinity', now(), now() - interval '48 hours')`)
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.performance_histograms WHERE bucket_seconds = 3600`))
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.performance_histograms WHERE bucket_seconds = 60`))

	exact := e.recalc(&monitor.RecalculateOpts{Force: true, Method: monitor.MethodExact})
	requireMethod(t, exact, monitor.MethodExact)
	want := e.activeBaselines()
	require.Len(t, want, 6)

	// Twice: the first run builds the rollups, the second reads them.
	for run := range 2 {
		hist := e.recalc(&monitor.RecalculateOpts{Force: true, Method: monitor.MethodHistogram})
		requireMethod(t, hist, monitor.MethodHistogram)
		require.Equal(t, monitor.RunSuccess, hist.Execution.Status)
		// The window it used is aligned to minutes (hours where compacted).
		require.Zero(t, hist.Execution.WindowStart.Second())
		require.Zero(t, hist.Execution.WindowEnd.Second())
		got := e.activeBaselines()
		require.Len(t, got, 6)
		for k, w := range want {
			g := got[k]
			require.Equal(t, int64(4000), w.n, k)
			require.Equal(t, w.n, g.n, "run %d %s: count", run, k)
			require.Equal(t, w.min, g.min, "run %d %s: min", run, k)
			require.Equal(t, w.max, g.max, "run %d %s: max", run, k)
			require.InEpsilon(t, w.mean, g.mean, 1e-9, "run %d %s: mean", run, k)
			require.InEpsilon(t, w.stddev, g.stddev, 1e-6, "run %d %s: stddev", run, k)
			for _, q := range []struct {
				name string
				w, g float64
			}{{"p50", w.p50, g.p50}, {"p75", w.p75, g.p75}, {"p90", w.p90, g.p90}, {"p95", w.p95, g.p95}, {"p99", w.p99, g.p99}} {
				require.LessOrEqual(t, math.Abs(q.g-q.w)/q.w, 0.01, "run %d %s %s: exact %.1f, histogram %.1f", run, k, q.name, q.w, q.g)
			}
			require.Equal(t, hist.Execution.WindowStart, g.windowStart, k)
			require.Equal(t, hist.Execution.WindowEnd, g.windowEnd, k)
		}
	}
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.histogram_rollups WHERE bucket_seconds = 86400`))

	// A late sample in a rolled-up hour changes that hour: the next run sees it.
	e.exec(`INSERT INTO pggit.performance_metrics (operation_type, scope, duration_microseconds, recorded_at)
	        VALUES ('pareto', '', 999999999, now() - interval '3 days')`)
	e.recalc(&monitor.RecalculateOpts{Force: true, Method: monitor.MethodHistogram})
	got := e.activeBaselines()["pareto"]
	require.Equal(t, want["pareto"].n+1, got.n)
	require.Equal(t, int64(999999999), got.max)
}

// auto is exact while the window holds at most recalc_exact_max_samples
// samples, histograms above; every result and the run record say which ran.
func TestRecalcAutoMethod(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec(fmt.Sprintf(heavyTailSQL, 50)) // 300 samples
	e.exec(`UPDATE pggit.monitor_settings SET setting_value = '300' WHERE setting_name = 'recalc_exact_max_samples'`)
	requireMethod(t, e.recalc(nil), monitor.MethodExact)
	e.exec(`UPDATE pggit.monitor_settings SET setting_value = '299' WHERE setting_name = 'recalc_exact_max_samples'`)
	requireMethod(t, e.recalc(&monitor.RecalculateOpts{Method: monitor.MethodAuto}), monitor.MethodHistogram)
	// Without the row: the default, 1,000,000.
	e.exec(`DELETE FROM pggit.monitor_settings WHERE setting_name = 'recalc_exact_max_samples'`)
	requireMethod(t, e.recalc(nil), monitor.MethodExact)
	require.Equal(t, []string{"exact", "histogram", "exact"},
		e.strings(`SELECT method FROM pggit.baseline_recalc_execution ORDER BY execution_id`))

	// A window reaching past retention_samples_days (30 days: the default,
	// and the fallback without migration 00021's row) needs the histograms.
	requireMethod(t, e.recalc(&monitor.RecalculateOpts{LookbackDays: 31}), monitor.MethodHistogram)
	requireMethod(t, e.recalc(&monitor.RecalculateOpts{LookbackDays: 30}), monitor.MethodExact)

	// RecalculateBaseline is exact; its result says so.
	r, err := e.client.RecalculateBaseline(e.ctx, "pareto", "", &monitor.RecalculateOpts{Force: true})
	require.NoError(t, err)
	require.Equal(t, monitor.MethodExact, r.Method)
}

// A bad method is refused with 22023 naming p_method and the allowed values,
// and nothing is written; so is a bad recalc_exact_max_samples.
func TestRecalcMethodRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.copySamples("op", "", time.Now().Add(-time.Hour), 100, 200, 300)
	for _, m := range []string{"'bogus'", "NULL", "'EXACT'", "''"} {
		_, err := e.pool.Exec(e.ctx, `SELECT * FROM pggit.recalculate_all_baselines_rolling(7, 10, false, 60, 'manual', `+m+`)`)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, m)
		require.Equal(t, "22023", pgErr.Code, m)
		require.Equal(t, "p_method", pgErr.ColumnName, m)
		require.Contains(t, pgErr.Message, "p_method must be one of auto, exact, histogram", m)
	}
	_, err := e.client.RecalculateAllBaselinesRolling(e.ctx, &monitor.RecalculateOpts{Method: "fast"})
	var argErr *monitor.ArgumentError
	require.True(t, errors.As(err, &argErr), "%v", err)
	require.Equal(t, "Method", argErr.Argument)
	require.Contains(t, argErr.Message, "auto, exact, histogram")
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.baseline_recalc_execution`))
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_baselines`))

	for _, v := range []string{"-1", "1.5", "", "1000000000001", "lots"} {
		_, err := e.pool.Exec(e.ctx, `UPDATE pggit.monitor_settings SET setting_value = $1 WHERE setting_name = 'recalc_exact_max_samples'`, v)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, v)
		require.Equal(t, "22023", pgErr.Code, v)
		require.Contains(t, pgErr.Message, "recalc_exact_max_samples must be a whole number", v)
	}
	_, err = e.pool.Exec(e.ctx, `INSERT INTO pggit.monitor_settings (setting_name, setting_value, description) VALUES ('recalc_exact_max', '1', 'typo')`)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "22023", pgErr.Code)
	require.Equal(t, "1000000", e.strings(`SELECT setting_value FROM pggit.monitor_settings WHERE setting_name = 'recalc_exact_max_samples'`)[0])
}

// An operation with an open regression is recalculated without the
// regression's samples under both methods (from histograms, every bucket
// overlapping the regression is left out).
func TestRecalcMethodBoundedOperation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.exec(`SELECT setseed(0.7);
INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
SELECT 'checkout', 900 + (random() * 200)::bigint, now() - interval '2 hours' - random() * interval '3 days'
FROM generate_series(1, 3000);
INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
SELECT 'checkout', 50000 + (random() * 1000)::bigint, now() - interval '50 minutes' + random() * interval '45 minutes'
FROM generate_series(1, 300);`)
	e.exec(`SELECT pggit.compact_histograms('-infinity', now(), now() - interval '48 hours')`)
	e.exec(`SELECT pggit.raise_alert('checkout', '', 'DEGRADATION', 'CRITICAL')`)
	e.exec(`UPDATE pggit.performance_alerts SET first_seen_at = now() - interval '55 minutes' WHERE operation_type = 'checkout'`)

	for _, m := range []monitor.Method{monitor.MethodExact, monitor.MethodHistogram} {
		res := e.recalc(&monitor.RecalculateOpts{Force: true, Method: m})
		requireMethod(t, res, m)
		b := e.activeBaselines()["checkout"]
		require.Equal(t, int64(3000), b.n, m)
		require.Less(t, b.max, int64(1101), m)
		require.Less(t, b.p99, 1101.0*1.01, m)
	}
}
