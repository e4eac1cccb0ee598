package monitor_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
)

// quantile7 is the Hyndman-Fan type 7 sample quantile (R's default, and
// PostgreSQL's percentile_cont) of sorted x.
func quantile7(sorted []int64, p float64) float64 {
	h := float64(len(sorted)-1) * p
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(sorted) {
		return float64(sorted[len(sorted)-1])
	}
	return float64(sorted[i]) + (h-lo)*float64(sorted[i+1]-sorted[i])
}

func requireRel(t *testing.T, want, got float64, what string) {
	t.Helper()
	if want == got {
		return
	}
	rel := math.Abs(got-want) / math.Max(math.Abs(want), 1e-300)
	require.Less(t, rel, 1e-9, "%s: want %v, got %v", what, want, got)
}

func TestRecalculateStatisticsMatchGo(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rng := rand.New(rand.NewPCG(1, 2))
	type key struct{ op, scope string }
	samples := map[key][]int64{}
	sizes := map[key]int{
		{"merge_branches", ""}:     1000,
		{"merge_branches", "main"}: 37,
		{"commit", ""}:             10,
		{"get_history", ""}:        2501,
		{"rollback_commit", "dev"}: 11,
	}
	for k, n := range sizes {
		xs := make([]int64, n)
		for i := range xs {
			// Log-normal-ish latencies with ties and outliers.
			xs[i] = 1 + int64(math.Exp(rng.NormFloat64()*0.8+9))
			if i%97 == 0 {
				xs[i] = xs[i/2]
			}
		}
		samples[k] = xs
		e.copySamples(k.op, k.scope, time.Now().Add(-time.Duration(rng.IntN(6*24))*time.Hour), xs...)
	}

	res := e.recalc(nil)
	require.Equal(t, monitor.RunSuccess, res.Execution.Status)
	require.Len(t, res.Operations, len(sizes))

	q := gen.New(e.pool)
	for k, xs := range samples {
		t.Run(k.op+"@"+k.scope, func(t *testing.T) {
			b, err := q.GetActiveBaseline(e.ctx, k.op, k.scope)
			require.NoError(t, err)
			sorted := slices.Clone(xs)
			slices.Sort(sorted)
			var sum int64
			for _, x := range xs {
				sum += x
			}
			n := float64(len(xs))
			mean := float64(sum) / n
			var ss float64
			for _, x := range xs {
				ss += (float64(x) - mean) * (float64(x) - mean)
			}
			require.EqualValues(t, len(xs), b.SampleCount)
			require.Equal(t, sorted[0], b.MinMicroseconds)
			require.Equal(t, sorted[len(sorted)-1], b.MaxMicroseconds)
			requireRel(t, mean, b.MeanMicroseconds, "mean")
			requireRel(t, math.Sqrt(ss/(n-1)), b.StddevMicroseconds, "stddev")
			requireRel(t, quantile7(sorted, 0.50), b.P50Microseconds, "p50")
			requireRel(t, quantile7(sorted, 0.75), b.P75Microseconds, "p75")
			requireRel(t, quantile7(sorted, 0.90), b.P90Microseconds, "p90")
			requireRel(t, quantile7(sorted, 0.95), b.P95Microseconds, "p95")
			requireRel(t, quantile7(sorted, 0.99), b.P99Microseconds, "p99")
			require.EqualValues(t, 7, b.LookbackDays)
			require.EqualValues(t, 2.0, b.AlertThresholdMultiplier)
			require.True(t, b.IsActive)
		})
	}

	// The Go API reports the same baseline in time.Duration.
	bl, err := e.client.Baseline(e.ctx, "commit", "")
	require.NoError(t, err)
	sorted := slices.Clone(samples[key{"commit", ""}])
	slices.Sort(sorted)
	require.Equal(t, time.Duration(math.Round(quantile7(sorted, 0.99)*1000)), bl.P99)
	_, err = e.client.Baseline(e.ctx, "commit", "no-such-scope")
	require.ErrorIs(t, err, monitor.ErrNotFound)
}

func TestRecalculateWindowEdges(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	e.copySamples("edge", "", now.Add(-7*24*time.Hour+2*time.Minute), 100, 100, 100, 100, 100)
	e.copySamples("edge", "", now.Add(-7*24*time.Hour-2*time.Minute), 900000, 900000)
	e.copySamples("edge", "", now.Add(-time.Minute), 200, 200, 200, 200, 200)
	e.copySamples("edge", "", now.Add(time.Hour), 700000) // future: not yet in any window

	res := e.recalc(nil)
	r := byOp(res)["edge"]
	require.Equal(t, monitor.StatusUpdated, r.Status, r.Message)
	require.EqualValues(t, 10, r.SampleCount)
	b, err := e.client.Baseline(e.ctx, "edge", "")
	require.NoError(t, err)
	require.Equal(t, 200*time.Microsecond, b.Max)
	require.Equal(t, 100*time.Microsecond, b.Min)
	require.WithinDuration(t, b.WindowEnd.Add(-7*24*time.Hour), b.WindowStart, 0)

	// A one-day window sees only the recent five: fewer than 10.
	res = e.recalc(&monitor.RecalculateOpts{LookbackDays: 1})
	r = byOp(res)["edge"]
	require.Equal(t, monitor.StatusInsufficientData, r.Status)
	require.EqualValues(t, 5, r.SampleCount)
	// With MinSamples 5 it is enough: p99 = 200 vs 200 (unchanged, not forced).
	res = e.recalc(&monitor.RecalculateOpts{LookbackDays: 1, MinSamples: 5})
	r = byOp(res)["edge"]
	require.Equal(t, monitor.StatusUnchanged, r.Status, r.Message)
}

func TestRecalculateMinSamples(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now().Add(-time.Hour)
	e.copySamples("nine", "", now, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	e.copySamples("ten", "", now, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)

	res := e.recalc(nil)
	ops := byOp(res)
	require.Equal(t, monitor.StatusInsufficientData, ops["nine"].Status)
	require.EqualValues(t, 9, ops["nine"].SampleCount)
	require.Contains(t, ops["nine"].Message, "9 samples in the last 7 days, 10 required")
	require.Zero(t, ops["nine"].BaselineID)
	require.Equal(t, monitor.StatusUpdated, ops["ten"].Status)
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_baselines WHERE operation_type = 'nine'`))

	// An operation whose samples aged out keeps its baseline and says why.
	e.exec(`DELETE FROM pggit.performance_metrics WHERE operation_type = 'ten'`)
	res = e.recalc(nil)
	ten := byOp(res)["ten"]
	require.Equal(t, monitor.StatusInsufficientData, ten.Status)
	require.EqualValues(t, 0, ten.SampleCount)
	require.NotZero(t, ten.BaselineID)
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.performance_baselines WHERE operation_type = 'ten' AND is_active`))
}

// setP99 replaces the samples of op so that every percentile equals us.
func (e *env) setSamples(op string, us int64) {
	e.t.Helper()
	e.exec(`DELETE FROM pggit.performance_metrics WHERE operation_type = $1`, op)
	d := make([]int64, 20)
	for i := range d {
		d[i] = us
	}
	e.copySamples(op, "", time.Now().Add(-time.Hour), d...)
}

func TestRecalculateFivePercentRuleAndForce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.setSamples("op", 100000)
	first := byOp(e.recalc(nil))["op"]
	require.Equal(t, monitor.StatusUpdated, first.Status)
	require.Nil(t, first.PercentChange)

	steps := []struct {
		us      int64
		force   bool
		status  string
		percent float64
	}{
		{104999, false, monitor.StatusUnchanged, 4.999},
		{95001, false, monitor.StatusUnchanged, -4.999},
		{105000, false, monitor.StatusUpdated, 5.0},    // exactly 5%: replaced
		{105001, true, monitor.StatusUpdated, 0.00095}, // forced, though tiny
		{99750, false, monitor.StatusUpdated, -5.0009},
	}
	for i, s := range steps {
		e.setSamples("op", s.us)
		r := byOp(e.recalc(&monitor.RecalculateOpts{Force: s.force}))["op"]
		require.Equal(t, s.status, r.Status, "step %d: %s", i, r.Message)
		require.NotNil(t, r.PercentChange)
		require.InDelta(t, s.percent, *r.PercentChange, 0.001, "step %d", i)
		require.Equal(t, time.Duration(s.us)*time.Microsecond, r.NewP99)
	}

	// History: one row per change, with old/new p99, percent and reason.
	hist, err := gen.New(e.pool).ListBaselineHistory(e.ctx, "op", "")
	require.NoError(t, err)
	require.Len(t, hist, 4)
	require.Nil(t, hist[0].OldP99Microseconds)
	require.Equal(t, "manual", hist[0].Reason)
	require.Equal(t, 100000.0, *hist[1].OldP99Microseconds)
	require.Equal(t, 105000.0, hist[1].NewP99Microseconds)
	require.InDelta(t, 5.0, *hist[1].PercentChange, 1e-9)
	require.Equal(t, "force", hist[2].Reason)
	require.Equal(t, "manual", hist[3].Reason)
	require.Equal(t, hist[2].BaselineID, *hist[3].PreviousBaselineID)
	require.EqualValues(t, 20, hist[3].SampleCount)
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.performance_baselines WHERE is_active`))
	require.EqualValues(t, 4, e.count(`SELECT count(*) FROM pggit.performance_baselines`))
}

func TestRecalculateExecutionRecord(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now().Add(-time.Hour)
	e.copySamples("a", "", now, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	e.copySamples("b", "", now, 1, 2)
	_, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "c", ThresholdMultiplier: ptr(3.5)})
	require.NoError(t, err)
	e.copySamples("c", "", now, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5)
	_, err = e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "untracked", Tracked: ptr(false)})
	require.NoError(t, err)
	e.copySamples("untracked", "", now, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5)

	res := e.recalc(&monitor.RecalculateOpts{Reason: monitor.ReasonScheduled})
	ex := res.Execution
	require.Equal(t, monitor.RunSuccess, ex.Status)
	require.Equal(t, "scheduled", ex.Reason)
	require.Equal(t, 3, ex.Total) // untracked is skipped
	require.Equal(t, 2, ex.Updated)
	require.Equal(t, 1, ex.Insufficient)
	require.False(t, ex.FinishedAt.Before(ex.StartedAt))
	require.Empty(t, ex.Error)

	rows, err := gen.New(e.pool).ListRecalcResults(e.ctx, ex.ID)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	for i, r := range rows {
		require.Equal(t, res.Operations[i].OperationType, r.OperationType)
		require.Equal(t, res.Operations[i].Status, r.Status)
	}
	c, err := e.client.Baseline(e.ctx, "c", "")
	require.NoError(t, err)
	require.Equal(t, 3.5, c.ThresholdMultiplier)

	got, err := e.client.RecalcExecution(e.ctx, ex.ID)
	require.NoError(t, err)
	require.Equal(t, ex, got)
	_, err = e.client.RecalcExecution(e.ctx, ex.ID+100)
	require.ErrorIs(t, err, monitor.ErrNotFound)
}

func ptr[T any](v T) *T { return &v }

func TestRecalculateFailureIsolation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now().Add(-time.Hour)
	for _, op := range []string{"a_ok", "b_broken", "c_ok"} {
		e.copySamples(op, "", now, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
	}
	// A real failure inside one operation's update: a trigger that refuses it.
	e.exec(`CREATE FUNCTION pggit.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.operation_type = 'b_broken' THEN
				RAISE EXCEPTION 'disk on fire for %', NEW.operation_type USING ERRCODE = '53100';
			END IF;
			RETURN NEW;
		END $$`)
	e.exec(`CREATE TRIGGER test_refuse BEFORE INSERT ON pggit.performance_baselines
		FOR EACH ROW EXECUTE FUNCTION pggit.test_refuse()`)

	res := e.recalc(nil)
	ops := byOp(res)
	require.Equal(t, monitor.StatusUpdated, ops["a_ok"].Status)
	require.Equal(t, monitor.StatusUpdated, ops["c_ok"].Status)
	require.Equal(t, monitor.StatusFailed, ops["b_broken"].Status)
	require.Equal(t, "disk on fire for b_broken (SQLSTATE 53100)", ops["b_broken"].Message)
	require.Zero(t, ops["b_broken"].BaselineID)
	require.Equal(t, monitor.RunPartial, res.Execution.Status)
	require.Equal(t, 1, res.Execution.Failed)
	require.Contains(t, res.Execution.Error, "b_broken: disk on fire")
	require.EqualValues(t, 2, e.count(`SELECT count(*) FROM pggit.performance_baselines WHERE is_active`))
	require.EqualValues(t, 0, e.count(`SELECT count(*) FROM pggit.performance_baseline_history WHERE operation_type = 'b_broken'`))
}

func TestRecalculateTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now().Add(-time.Hour)
	for _, op := range []string{"a_fast", "b_slow", "c_late", "d_late"} {
		e.copySamples(op, "", now, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
	}
	// b_slow takes longer than the whole budget; wall-clock time must notice
	// inside the one transaction of the call.
	e.exec(`CREATE FUNCTION pggit.test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.operation_type = 'b_slow' THEN PERFORM pg_catalog.pg_sleep(1.2); END IF;
			RETURN NEW;
		END $$`)
	e.exec(`CREATE TRIGGER test_slow BEFORE INSERT ON pggit.performance_baselines
		FOR EACH ROW EXECUTE FUNCTION pggit.test_slow()`)

	res := e.recalc(&monitor.RecalculateOpts{MaxExecution: time.Second})
	ops := byOp(res)
	require.Equal(t, monitor.StatusUpdated, ops["a_fast"].Status)
	require.Equal(t, monitor.StatusUpdated, ops["b_slow"].Status) // finished ones stay
	require.Equal(t, monitor.StatusTimeout, ops["c_late"].Status)
	require.Equal(t, monitor.StatusTimeout, ops["d_late"].Status)
	require.Equal(t, "not reached within the 1 s limit; baseline kept", ops["c_late"].Message)
	require.Equal(t, monitor.RunTimeout, res.Execution.Status)
	require.Equal(t, 2, res.Execution.TimedOut)
	require.EqualValues(t, 2, e.count(`SELECT count(*) FROM pggit.performance_baselines WHERE is_active`))
}

func TestRecalculateRunFailureIsRecorded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.copySamples("a", "", time.Now().Add(-time.Hour), 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
	// The grouped statistics query itself cannot run.
	e.exec(`ALTER TABLE pggit.performance_metrics RENAME TO performance_metrics_gone`)

	res, err := e.client.RecalculateAllBaselinesRolling(e.ctx, nil)
	require.ErrorIs(t, err, monitor.ErrRecalcFailed)
	require.Contains(t, err.Error(), `relation "pggit.performance_metrics" does not exist`)
	require.NotNil(t, res)
	require.Equal(t, monitor.RunFailed, res.Execution.Status)
	require.Contains(t, res.Execution.Error, "SQLSTATE 42P01")
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.baseline_recalc_execution WHERE status = 'FAILED'`))
}

func TestRecalculateConcurrentRunsKeepOneActiveBaseline(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now().Add(-time.Hour)
	for i := range 20 {
		e.copySamples(fmt.Sprintf("op%02d", i), "", now, 10, 20, 30, 40, 50, 60, 70, 80, 90, int64(100+i))
	}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	results := make([]*monitor.RecalculateResult, 6)
	for i := range errs {
		wg.Go(func() {
			results[i], errs[i] = e.client.RecalculateAllBaselinesRolling(context.Background(), &monitor.RecalculateOpts{Force: true})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err)
		require.Equal(t, monitor.RunSuccess, results[i].Execution.Status)
		require.Equal(t, 20, results[i].Execution.Updated)
	}
	require.Zero(t, e.count(`SELECT count(*) FROM (SELECT 1 FROM pggit.performance_baselines
		WHERE is_active GROUP BY operation_type, scope HAVING count(*) > 1) d`))
	require.EqualValues(t, 20, e.count(`SELECT count(*) FROM pggit.performance_baselines WHERE is_active`))
	require.EqualValues(t, 120, e.count(`SELECT count(*) FROM pggit.performance_baselines`))

	// The database itself refuses a second active baseline.
	_, err := e.pool.Exec(e.ctx, `INSERT INTO pggit.performance_baselines
		(operation_type, scope, sample_count, min_microseconds, max_microseconds, mean_microseconds,
		 stddev_microseconds, p50_microseconds, p75_microseconds, p90_microseconds, p95_microseconds,
		 p99_microseconds, lookback_days, window_start, window_end)
		VALUES ('op00', '', 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 7, now(), now())`)
	requirePgError(t, err, "23505", "performance_baselines_one_active_idx")
}

func TestRecalculateSingleBaseline(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now().Add(-time.Hour)
	e.copySamples("merge", "main", now, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
	e.copySamples("merge", "", now, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)

	r, err := e.client.RecalculateBaseline(e.ctx, "merge", "main", nil)
	require.NoError(t, err)
	require.Equal(t, monitor.StatusUpdated, r.Status)
	require.EqualValues(t, 10, r.SampleCount)
	require.Equal(t, time.Duration(99.1*1000), r.NewP99) // 90 + 0.91 * 10
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.performance_baselines`))
	var filter string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT operation_filter FROM pggit.baseline_recalc_execution`).Scan(&filter))
	require.Equal(t, "merge", filter)

	r, err = e.client.RecalculateBaseline(e.ctx, "merge", "main", nil)
	require.NoError(t, err)
	require.Equal(t, monitor.StatusUnchanged, r.Status)

	r, err = e.client.RecalculateBaseline(e.ctx, "never-seen", "", nil)
	require.NoError(t, err)
	require.Equal(t, monitor.StatusInsufficientData, r.Status)
	require.EqualValues(t, 0, r.SampleCount)
}

func TestRecalculateBadInputs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.copySamples("a", "", time.Now().Add(-time.Hour), 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)

	goCases := []struct {
		name string
		opts monitor.RecalculateOpts
		arg  string
		msg  string
	}{
		{"lookback 366", monitor.RecalculateOpts{LookbackDays: 366}, "p_lookback_days", "p_lookback_days must be between 1 and 365, got 366"},
		{"lookback -1", monitor.RecalculateOpts{LookbackDays: -1}, "p_lookback_days", "p_lookback_days must be between 1 and 365, got -1"},
		{"min samples -3", monitor.RecalculateOpts{MinSamples: -3}, "p_min_samples", "p_min_samples must be at least 1, got -3"},
		{"max execution -1s", monitor.RecalculateOpts{MaxExecution: -time.Second}, "p_max_execution_seconds", "p_max_execution_seconds must be between 1 and 86400, got -1"},
		{"max execution 2 days", monitor.RecalculateOpts{MaxExecution: 48 * time.Hour}, "p_max_execution_seconds", "between 1 and 86400, got 172800"},
		{"reason", monitor.RecalculateOpts{Reason: "whim"}, "p_reason", "p_reason must be one of scheduled, manual, got 'whim'"},
	}
	for _, c := range goCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.client.RecalculateAllBaselinesRolling(e.ctx, &c.opts)
			var argErr *monitor.ArgumentError
			require.ErrorAs(t, err, &argErr)
			require.ErrorIs(t, err, monitor.ErrInvalidArgument)
			require.Equal(t, c.arg, argErr.Argument)
			require.Equal(t, "22023", argErr.SQLState)
			require.Contains(t, argErr.Message, c.msg)
			require.Contains(t, err.Error(), "SQLSTATE 22023")
		})
	}

	sqlCases := []struct {
		call, arg, msg string
	}{
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(0)`, "p_lookback_days", "between 1 and 365, got 0"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(366)`, "p_lookback_days", "between 1 and 365, got 366"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(-1)`, "p_lookback_days", "between 1 and 365, got -1"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(NULL)`, "p_lookback_days", "between 1 and 365, got NULL"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(7, 0)`, "p_min_samples", "at least 1, got 0"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(7, NULL)`, "p_min_samples", "at least 1, got NULL"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(7, 10, NULL)`, "p_force", "true or false, got NULL"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(7, 10, false, 0)`, "p_max_execution_seconds", "between 1 and 86400, got 0"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(7, 10, false, NULL)`, "p_max_execution_seconds", "got NULL"},
		{`SELECT * FROM pggit.recalculate_all_baselines_rolling(p_reason => 'force')`, "p_reason", "one of scheduled, manual, got 'force'"},
		{`SELECT * FROM pggit.recalculate_single_baseline_safe('')`, "p_operation_type", "non-empty name"},
		{`SELECT * FROM pggit.recalculate_single_baseline_safe(NULL)`, "p_operation_type", "got NULL"},
		{`SELECT * FROM pggit.recalculate_single_baseline_safe('a', NULL)`, "p_scope", "got NULL"},
		{`SELECT * FROM pggit.recalculate_single_baseline_safe('a', '', 0)`, "p_lookback_days", "got 0"},
		{`SELECT * FROM pggit.recalculate_single_baseline_safe('a', '', 7, 0)`, "p_min_samples", "got 0"},
		{`SELECT pggit.record_performance_metric('', 5)`, "p_operation_type", "non-empty name of at most 200 characters, got ''"},
		{`SELECT pggit.record_performance_metric('   ', 5)`, "p_operation_type", "non-empty name"},
		{`SELECT pggit.record_performance_metric(repeat('x', 201), 5)`, "p_operation_type", "at most 200"},
		{`SELECT pggit.record_performance_metric('a', 0)`, "p_duration_microseconds", "greater than 0, got 0"},
		{`SELECT pggit.record_performance_metric('a', -7)`, "p_duration_microseconds", "greater than 0, got -7"},
		{`SELECT pggit.record_performance_metric('a', NULL)`, "p_duration_microseconds", "got NULL"},
		{`SELECT pggit.record_performance_metric('a', 5, NULL)`, "p_scope", "got NULL"},
	}
	for _, c := range sqlCases {
		t.Run(c.call, func(t *testing.T) {
			_, err := e.pool.Exec(e.ctx, c.call)
			pgErr := requirePgError(t, err, "22023", c.arg, c.msg)
			require.Equal(t, c.arg, pgErr.ColumnName)
		})
	}
	// Nothing half-written: no run was recorded, no sample added.
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.baseline_recalc_execution`))
	require.EqualValues(t, 10, e.count(`SELECT count(*) FROM pggit.performance_metrics`))

	// Table constraints back the functions for direct writes.
	_, err := e.pool.Exec(e.ctx, `INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds) VALUES ('a', 0)`)
	requirePgError(t, err, "23514", "performance_metrics_duration_check")
}

func TestOperationRegistry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// A plain INSERT of the three columns registers the operation.
	e.exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
		VALUES ('merge_branches', 41000, now()), ('merge_branches', 42000, now()), ('commit', 900, now())`)
	id, err := e.client.RecordSample(e.ctx, monitor.Sample{OperationType: "get_history", Duration: 1500 * time.Nanosecond, Scope: "main", UserName: "alice", Metadata: []byte(`{"rows": 3}`)})
	require.NoError(t, err)
	require.Positive(t, id)
	var us int64
	var scope, user, meta string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT duration_microseconds, scope, user_name, metadata::text
		FROM pggit.performance_metrics WHERE metric_id = $1`, id).Scan(&us, &scope, &user, &meta))
	require.EqualValues(t, 2, us) // 1.5µs rounds up
	require.Equal(t, "main", scope)
	require.Equal(t, "alice", user)
	require.JSONEq(t, `{"rows": 3}`, meta)

	ops, err := gen.New(e.pool).ListOperationTypes(e.ctx)
	require.NoError(t, err)
	names := []string{}
	for _, o := range ops {
		names = append(names, o.OperationType)
		require.Equal(t, 2.0, o.AlertThresholdMultiplier)
		require.True(t, o.IsTracked)
		require.Equal(t, "general", o.Category)
	}
	require.Equal(t, []string{"commit", "get_history", "merge_branches"}, names)

	op, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "commit", Category: ptr("write"), ThresholdMultiplier: ptr(3.0)})
	require.NoError(t, err)
	require.Equal(t, "write", op.Category)
	require.Equal(t, 3.0, op.ThresholdMultiplier)
	require.True(t, op.Tracked)

	for _, c := range []struct {
		p   monitor.OperationParams
		arg string
	}{
		{monitor.OperationParams{OperationType: ""}, "OperationType"},
		{monitor.OperationParams{OperationType: "x", ThresholdMultiplier: ptr(0.5)}, "ThresholdMultiplier"},
		{monitor.OperationParams{OperationType: "x", ThresholdMultiplier: ptr(math.NaN())}, "ThresholdMultiplier"},
		{monitor.OperationParams{OperationType: "x", Category: ptr("")}, "Category"},
	} {
		_, err := e.client.ConfigureOperation(e.ctx, c.p)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr)
		require.Equal(t, c.arg, argErr.Argument)
	}
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_operation_types WHERE operation_type = 'x'`))

	// Tx twin: rolled back, nothing remains.
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = e.client.RecordSampleTx(e.ctx, tx, monitor.Sample{OperationType: "in_tx", Duration: time.Millisecond})
	require.NoError(t, err)
	_, err = e.client.ConfigureOperationTx(e.ctx, tx, monitor.OperationParams{OperationType: "in_tx", Tracked: ptr(false)})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(e.ctx))
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = 'in_tx'`))
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_operation_types WHERE operation_type = 'in_tx'`))
}

func TestConnectionsRunWithEmptySearchPath(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var sp string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SHOW search_path`).Scan(&sp))
	require.Empty(t, sp)
	_, err := e.pool.Exec(e.ctx, `SELECT count(*) FROM performance_metrics`)
	requirePgError(t, err, "42P01")
}

func TestEveryFunctionPinsSearchPath(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rows, err := e.pool.Query(e.ctx, `SELECT p.proname FROM pg_catalog.pg_proc p
		JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'pggit'
		  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c = 'search_path=pggit, pg_catalog')
		  -- Inlined helpers: a SET clause would stop the planner inlining
		  -- them, so their bodies qualify every name instead.
		  AND NOT (p.proname IN ('utc_minute', 'utc_hour') AND p.prosrc LIKE '%pg_catalog.date_bin(%')
		  AND NOT (p.proname = 'is_valid_name' AND p.prosrc LIKE '%OPERATOR(pg_catalog.!~)%')`)
	require.NoError(t, err)
	var bad []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		bad = append(bad, name)
	}
	require.NoError(t, rows.Err())
	require.Empty(t, bad, "functions without a pinned search_path")
}
