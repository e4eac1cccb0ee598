package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
)

// traffic describes a synthetic operation: log-normal latency around median
// (microseconds) with spread sigma, rate samples a minute, and a multiplier
// of the latency over time (the change under test).
type traffic struct {
	op     string
	median float64
	sigma  float64
	rate   int
	mult   func(time.Time) float64
	// outliers is the share of samples x20 (a GC pause, a lock wait).
	outliers float64
}

// write records tr's samples for every minute of [from, to), rate per minute
// at even offsets, with the rng's noise, and returns how many.
func (e *env) write(tr traffic, from, to time.Time, rng *rand.Rand) int {
	e.t.Helper()
	var rows []gen.CopyMetricsParams
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		f := 1.0
		if tr.mult != nil {
			f = tr.mult(m)
		}
		for i := range tr.rate {
			d := tr.median * f * math.Exp(tr.sigma*rng.NormFloat64())
			if rng.Float64() < tr.outliers {
				d *= 20
			}
			rows = append(rows, gen.CopyMetricsParams{OperationType: tr.op, DurationMicroseconds: max(1, int64(d)),
				RecordedAt: m.Add(time.Duration(i) * time.Minute / time.Duration(tr.rate))})
		}
	}
	for len(rows) > 0 {
		n := min(len(rows), 20000)
		_, err := gen.New(e.pool).CopyMetrics(e.ctx, rows[:n])
		require.NoError(e.t, err)
		rows = rows[n:]
	}
	return int(to.Sub(from)/time.Minute) * tr.rate
}

// step is a lasting change by factor from at on.
func step(at time.Time, factor float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		if t.Before(at) {
			return 1
		}
		return factor
	}
}

// between is a change by factor in [from, to).
func between(from, to time.Time, factor float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		if t.Before(from) || !t.Before(to) {
			return 1
		}
		return factor
	}
}

// alertsOf lists every alert of op, oldest first.
func (e *env) alertsOf(op string) []*monitor.Alert {
	e.t.Helper()
	as := e.alerts(&monitor.AlertFilter{OperationType: op, Limit: 10000})
	slices.Reverse(as)
	return as
}

func ofType(as []*monitor.Alert, typ string) []*monitor.Alert {
	var out []*monitor.Alert
	for _, a := range as {
		if a.Type == typ {
			out = append(out, a)
		}
	}
	return out
}

// hoursAgo is the start of the hour h hours before the current one.
func hoursAgo(h int) time.Time {
	return time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(h) * time.Hour)
}

func TestHistogramsCountEverySample(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := hoursAgo(60)
	// COPY (in several statements per minute), INSERT, the record function,
	// and concurrent writers, over 60 hours and two scopes.
	n := e.write(traffic{op: "a", median: 5000, sigma: 0.8, rate: 7}, t0, t0.Add(60*time.Hour), rng)
	e.copySamples("a", "main", t0.Add(30*time.Minute), 1, 2, 3, 1<<40)
	e.exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at, scope)
		SELECT 'a', g, $1::timestamptz + g * interval '1 second', 'main' FROM generate_series(1, 500) g`, t0)
	e.exec(`SELECT pggit.record_performance_metric('a', 77, 'main', p_recorded_at => $1)`, t0)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rows := make([]gen.CopyMetricsParams, 250)
			for i := range rows {
				rows[i] = gen.CopyMetricsParams{OperationType: "b", DurationMicroseconds: int64(100 + w*i), RecordedAt: t0.Add(time.Duration(i) * time.Second)}
			}
			_, err := gen.New(e.pool).CopyMetrics(context.Background(), rows)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	n += 4 + 500 + 1 + 1000

	check := func(stage string) {
		t.Helper()
		require.EqualValues(t, n, e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms`), stage)
		require.EqualValues(t, n, e.count(`SELECT sum(c) FROM pggit.performance_histograms, unnest(counts) c`), stage)
		// Per operation, scope and hour, every aggregate matches the samples.
		// Hours are UTC hours, as compacted buckets are: date_trunc('hour')
		// would cut them in two in a session TimeZone of Asia/Kolkata (UTC+5:30).
		require.Zero(t, e.count(`
			WITH s AS (
				SELECT operation_type, scope, pggit.utc_hour(recorded_at) AS h, count(*) AS n,
				       sum(duration_microseconds)::float8 AS s, min(duration_microseconds) AS mn, max(duration_microseconds) AS mx,
				       sum(ln(duration_microseconds::float8)) AS sl
				FROM pggit.performance_metrics GROUP BY 1, 2, 3),
			h AS (
				SELECT operation_type, scope, pggit.utc_hour(bucket_start) AS h, sum(sample_count) AS n,
				       sum(sum_us) AS s, min(min_us) AS mn, max(max_us) AS mx, sum(sum_ln) AS sl
				FROM pggit.performance_histograms GROUP BY 1, 2, 3)
			SELECT count(*) FROM s FULL JOIN h USING (operation_type, scope, h)
			WHERE s.n IS DISTINCT FROM h.n OR s.mn IS DISTINCT FROM h.mn OR s.mx IS DISTINCT FROM h.mx
			   OR abs(s.s - h.s) > 1e-6 * s.s OR abs(s.sl - h.sl) > 1e-6 * abs(s.sl)`), stage)
	}
	check("as written")
	minuteRows := e.count(`SELECT count(*) FROM pggit.performance_histograms`)

	// Compaction: partial rows of a minute merge; minutes older than 48 hours
	// become hours. Counts stay exact.
	var removed int64
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT pggit.compact_histograms('-infinity', $1, $2)`,
		time.Now(), time.Now().Add(-48*time.Hour)).Scan(&removed))
	require.Positive(t, removed)
	check("compacted")
	require.Less(t, e.count(`SELECT count(*) FROM pggit.performance_histograms`), minuteRows)
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_histograms
		WHERE bucket_seconds = 60 AND bucket_start < pggit.utc_hour(now() - interval '48 hours')`))
	require.Positive(t, e.count(`SELECT count(*) FROM pggit.performance_histograms WHERE bucket_seconds = 3600`))
	// Late samples in a compacted hour are rows of their own, and count.
	e.copySamples("a", "", t0.Add(5*time.Minute), 4242)
	n++
	check("late sample")
	// After samples are deleted by hand, a range is rebuilt from what is left.
	e.exec(`DELETE FROM pggit.performance_metrics WHERE operation_type = 'b'`)
	n -= 1000
	var rebuilt int64
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT pggit.rebuild_histograms($1, $2)`, t0, t0.Add(time.Hour)).Scan(&rebuilt))
	require.Positive(t, rebuilt)
	check("rebuilt")
}

// Buckets are UTC minutes and hours whatever the session's TimeZone: in
// Asia/Kolkata (UTC+5:30) date_trunc('hour') would start hours at :30 UTC,
// and a session there would not agree with one in UTC on a bucket.
func TestHistogramBucketsAreUTCInAnyTimeZone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	conn, err := e.pool.Acquire(e.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(e.ctx, `SET TimeZone = 'Asia/Kolkata'`)
	require.NoError(t, err)
	h := time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour)
	_, err = conn.Exec(e.ctx, `INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
		VALUES ('tz', 100, $1), ('tz', 200, $2), ('tz', 300, $3)`,
		h.Add(20*time.Minute+30*time.Second), h.Add(40*time.Minute), h.Add(time.Hour+10*time.Minute))
	require.NoError(t, err)
	// Roll everything up to hours, from the Kolkata session.
	_, err = conn.Exec(e.ctx, `SELECT pggit.compact_histograms('-infinity', 'infinity', now())`)
	require.NoError(t, err)
	rows, err := e.pool.Query(e.ctx, `SELECT bucket_start, sample_count FROM pggit.performance_histograms
		WHERE operation_type = 'tz' ORDER BY bucket_start`)
	require.NoError(t, err)
	type bucket struct {
		Start time.Time
		N     int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[bucket])
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.True(t, got[0].Start.Equal(h), "first hour starts at %s, want %s", got[0].Start.UTC(), h)
	require.EqualValues(t, 2, got[0].N)
	require.True(t, got[1].Start.Equal(h.Add(time.Hour)))
	require.EqualValues(t, 1, got[1].N)
}

func TestHistogramQuantilesWithinOnePercent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rng := rand.New(rand.NewPCG(3, 4))
	t0 := hoursAgo(3)
	qs := []float64{0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}
	for i, c := range []struct {
		n     int
		sigma float64
		tail  float64 // share of samples x20
	}{{1, 0.5, 0}, {2, 0.5, 0}, {7, 1, 0}, {100, 0.3, 0}, {1000, 1, 0.01}, {20000, 0.7, 0.001}, {5000, 2.5, 0.05}} {
		op := fmt.Sprintf("q%d", i)
		d := make([]int64, c.n)
		rows := make([]gen.CopyMetricsParams, c.n)
		for j := range d {
			v := 3000 * math.Exp(c.sigma*rng.NormFloat64())
			if rng.Float64() < c.tail {
				v *= 20
			}
			d[j] = max(1, int64(v))
			rows[j] = gen.CopyMetricsParams{OperationType: op, DurationMicroseconds: d[j],
				RecordedAt: t0.Add(time.Duration(rng.Int64N(int64(2 * time.Hour))))}
		}
		_, err := gen.New(e.pool).CopyMetrics(e.ctx, rows)
		require.NoError(t, err)
		got, err := e.client.LatencyQuantiles(e.ctx, op, "", t0, t0.Add(2*time.Hour), qs...)
		require.NoError(t, err)
		var exact []float64
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT percentile_cont($2::float8[]) WITHIN GROUP (ORDER BY duration_microseconds)
			FROM pggit.performance_metrics WHERE operation_type = $1`, op, qs).Scan(&exact))
		for k, q := range qs {
			g := float64(got[k]) / float64(time.Microsecond)
			require.InEpsilon(t, exact[k], g, 0.01+1e-9, "n=%d sigma=%v q=%v", c.n, c.sigma, q)
			require.InEpsilon(t, type7(d, q), exact[k], 1e-9)
		}
	}
	// A window without samples has zero quantiles; bad quantiles are refused.
	got, err := e.client.LatencyQuantiles(e.ctx, "q1", "", t0.Add(-time.Hour), t0, 0.5)
	require.NoError(t, err)
	require.Zero(t, got[0])
	_, err = e.client.LatencyQuantiles(e.ctx, "q1", "", t0, t0.Add(time.Hour), 1.5)
	require.ErrorIs(t, err, monitor.ErrInvalidArgument)
	_, err = e.pool.Exec(e.ctx, `SELECT pggit.histogram_window_quantiles('q1', '', now(), now() - interval '1 hour')`)
	requirePgError(t, err, "22023", "p_from must be before p_to")
	_, err = e.pool.Exec(e.ctx, `SELECT pggit.histogram_quantiles('{1}', '{1}', 1, 1, '{2}')`)
	requirePgError(t, err, "22023", "p_qs must hold quantiles between 0 and 1, got 2")
}

// degradationScenario writes 8 hours of history of a steady operation, then
// a change by factor for 90 minutes and a return to normal, and runs
// detection to the end. It returns the time of the change and of the return.
func degradationScenario(e *env, op string, factor float64, rate int) (time.Time, time.Time, time.Time) {
	e.t.Helper()
	rng := rand.New(rand.NewPCG(5, uint64(len(op))))
	start := hoursAgo(12)
	change := start.Add(8*time.Hour + 17*time.Minute)
	back := change.Add(90 * time.Minute)
	end := start.Add(11 * time.Hour)
	e.write(traffic{op: op, median: 20000, sigma: 0.5, rate: rate, mult: between(change, back, factor)}, start, end, rng)
	e.detect(end.Add(-time.Minute))
	return change, back, end
}

func TestDegradationOpensWithItsChangePointAndResolvesItself(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	hook := n.webhook("webhook", "all", "http://127.0.0.1:9/x", "")
	n.route(hook, monitor.All, monitor.SeverityWarning)
	change, back, _ := degradationScenario(n.env, "merge", 2.0, 10)

	as := n.alertsOf("merge")
	deg := ofType(as, monitor.AlertDegradation)
	require.Len(t, deg, 1, "%+v", as)
	a := deg[0]
	// The change point is the start of the shift, to the minute or two.
	require.WithinDuration(t, change, a.FirstSeenAt, 3*time.Minute)
	require.True(t, a.DetectedAt.After(change))
	require.Less(t, a.DetectedAt.Sub(change), 15*time.Minute, "detection delay")
	require.Equal(t, monitor.SeverityCritical, a.Severity) // x2: p99 ratio >= 1.5
	var d map[string]any
	require.NoError(t, json.Unmarshal(a.Details, &d))
	for _, k := range []string{"change_point", "p50_before_ms", "p50_after_ms", "p99_before_ms", "p99_after_ms", "mann_whitney_z", "cusum", "ratio", "message"} {
		require.Contains(t, d, k)
	}
	require.Greater(t, d["mann_whitney_z"].(float64), 3.09)
	require.InDelta(t, 2.0, d["p50_after_ms"].(float64)/d["p50_before_ms"].(float64), 0.5)
	require.Contains(t, d["message"], "latency up")
	// It resolved itself after 30 healthy minutes, within an hour of the
	// return to normal, by 'pggit'; the resolved notification was queued.
	require.False(t, a.Open())
	require.Equal(t, "pggit", a.ResolvedBy)
	require.False(t, a.ResolvedAt.Before(back.Add(30*time.Minute)), "resolved at %s, back at %s", a.ResolvedAt, back)
	require.True(t, a.ResolvedAt.Before(back.Add(time.Hour)), "resolved at %s, back at %s", a.ResolvedAt, back)
	events := map[string]bool{}
	for _, q := range n.queue() {
		if q.AlertID == a.ID {
			events[q.Event] = true
		}
	}
	require.Equal(t, map[string]bool{"opened": true, "resolved": true}, events)
	// The big step is an ANOMALY too; nothing is open an hour after.
	require.NotEmpty(t, ofType(as, monitor.AlertAnomaly))
	for _, x := range as {
		require.False(t, x.Open(), "%s %d still open", x.Type, x.ID)
		require.False(t, x.DetectedAt.Before(change), "%s %d before the change", x.Type, x.ID)
	}
	// The baseline leaves out the regression's span, resolved or not: with
	// it, the p99 would be another one.
	n.recalc(nil)
	b, err := n.client.Baseline(n.ctx, "merge", "")
	require.NoError(t, err)
	var clean, all float64
	require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT
			percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_microseconds) FILTER (WHERE recorded_at < $1 OR recorded_at >= $2),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_microseconds)
		FROM pggit.performance_metrics WHERE operation_type = 'merge'`, change, back).Scan(&clean, &all))
	require.InEpsilon(t, clean, float64(b.P99/time.Microsecond), 0.05)
	require.Greater(t, all/clean, 1.15)
}

func TestSteadyTrafficRaisesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rng := rand.New(rand.NewPCG(9, 9))
	start := hoursAgo(26)
	for i, sigma := range []float64{0.3, 0.6, 1.0} {
		op := fmt.Sprintf("steady_%d", i)
		// A daily swing of +-15% and one sample in 1,000 x20.
		e.write(traffic{op: op, median: 8000, sigma: sigma, rate: 12, outliers: 0.001, mult: func(t time.Time) float64 {
			return 1 + 0.15*math.Sin(2*math.Pi*float64(t.Unix()%86400)/86400)
		}}, start, start.Add(25*time.Hour), rng)
	}
	e.recalc(nil)
	e.detect(start.Add(25*time.Hour - time.Minute))
	require.Empty(t, e.alerts(nil))
	run, err := e.client.LastDetectionRun(e.ctx)
	require.NoError(t, err)
	require.True(t, start.Add(25*time.Hour).Equal(run.To), "%s", run.To)
}

func TestThresholdAnomalyAndCorrelation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rng := rand.New(rand.NewPCG(11, 12))
	start := hoursAgo(12)
	change := start.Add(9*time.Hour + 3*time.Minute)
	end := start.Add(10 * time.Hour)
	// Two operations that slow down x3 together, and one whose tail blows up
	// (5% of requests x20) while its median stays. Baselines come from
	// before.
	ops := []traffic{
		{op: "db_read", median: 3000, sigma: 0.4, rate: 15},
		{op: "db_write", median: 3000, sigma: 0.4, rate: 15},
		{op: "tail", median: 3000, sigma: 0.3, rate: 20, outliers: 0.001},
	}
	for _, tr := range ops {
		e.write(tr, start, change, rng)
	}
	e.recalc(nil)
	ops[0].mult, ops[1].mult, ops[2].outliers = step(change, 3), step(change, 3), 0.05
	for _, tr := range ops {
		e.write(tr, change, end, rng)
	}
	e.detect(end.Add(-time.Minute))

	for _, op := range []string{"db_read", "db_write"} {
		as := e.alertsOf(op)
		an := ofType(as, monitor.AlertAnomaly)
		require.NotEmpty(t, an, op)
		require.Equal(t, monitor.SeverityCritical, an[0].Severity, op)
		require.WithinDuration(t, change, an[0].FirstSeenAt, 10*time.Minute)
		require.Less(t, an[0].DetectedAt.Sub(change), 15*time.Minute)
		require.NotEmpty(t, ofType(as, monitor.AlertDegradation), op)
	}
	thr := ofType(e.alertsOf("tail"), monitor.AlertThresholdExceeded)
	require.NotEmpty(t, thr)
	require.True(t, thr[0].ViolationMultiplier >= 2, "%v", thr[0].ViolationMultiplier)
	require.Less(t, thr[0].DetectedAt.Sub(change), 15*time.Minute)

	corr := e.alerts(&monitor.AlertFilter{Type: monitor.AlertCorrelation})
	require.Len(t, corr, 1)
	var d struct {
		Members []struct {
			OperationType string `json:"operation_type"`
		} `json:"members"`
		MinR float64 `json:"min_r"`
	}
	require.NoError(t, json.Unmarshal(corr[0].Details, &d))
	var members []string
	for _, m := range d.Members {
		members = append(members, m.OperationType)
	}
	require.Contains(t, members, "db_read")
	require.Contains(t, members, "db_write")
	require.GreaterOrEqual(t, d.MinR, 0.75)
	require.Equal(t, monitor.SeverityCritical, corr[0].Severity)
}

// snapshot is every detection-visible row, to compare two runs.
func (e *env) snapshot() []string {
	e.t.Helper()
	var out []string
	rows, err := e.pool.Query(e.ctx, `SELECT format('%s %s %s %s first %s detected %s last %s resolved %s occ %s',
			operation_type, scope, alert_type, severity, first_seen_at, detected_at, last_seen_at, resolved_at, occurrence_count)
		FROM pggit.performance_alerts ORDER BY operation_type, scope, alert_type, first_seen_at`)
	require.NoError(e.t, err)
	for rows.Next() {
		var s string
		require.NoError(e.t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(e.t, rows.Err())
	rows, err = e.pool.Query(e.ctx, `SELECT format('%s %s cusum %s since %s', operation_type, scope, cusum, cusum_since)
		FROM pggit.detection_state ORDER BY 1`)
	require.NoError(e.t, err)
	for rows.Next() {
		var s string
		require.NoError(e.t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(e.t, rows.Err())
	return out
}

func TestCatchUpGivesTheAlertsOfFrequentRuns(t *testing.T) {
	t.Parallel()
	load := func(e *env) time.Time {
		rng := rand.New(rand.NewPCG(21, 22))
		start := hoursAgo(10)
		change := start.Add(8*time.Hour + 11*time.Minute)
		e.write(traffic{op: "x", median: 9000, sigma: 0.6, rate: 8, mult: between(change, change.Add(40*time.Minute), 2.5)}, start, start.Add(10*time.Hour), rng)
		e.write(traffic{op: "y", median: 500, sigma: 0.9, rate: 4, mult: step(change.Add(3*time.Minute), 1.8)}, start, start.Add(10*time.Hour), rng)
		e.write(traffic{op: "z", median: 70000, sigma: 0.3, rate: 3}, start, start.Add(10*time.Hour), rng)
		e.recalc(nil)
		// Both start from the same watermark.
		e.detect(start.Add(8*time.Hour - time.Minute))
		return start.Add(8 * time.Hour)
	}
	late, frequent := setup(t), setup(t)
	from := load(late)
	require.Equal(t, from, load(frequent))
	// One call two hours later against calls every 5 minutes.
	late.detect(from.Add(2*time.Hour - time.Minute))
	for at := from.Add(5 * time.Minute); !at.After(from.Add(2 * time.Hour)); at = at.Add(5 * time.Minute) {
		_, err := frequent.client.RunDetection(frequent.ctx, at)
		require.NoError(t, err)
	}
	a, b := late.snapshot(), frequent.snapshot()
	require.NotEmpty(t, ofType(late.alertsOf("x"), monitor.AlertDegradation), "the scenario must raise something")
	require.Equal(t, a, b)
}

func TestConcurrentDetectionGivesOneResult(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("hot", 1000)
	now := time.Now()
	e.copySamples("hot", "", now, 5000, 6000)
	var wg sync.WaitGroup
	results := make([][]*monitor.Alert, 4)
	for i := range results {
		wg.Go(func() {
			as, err := e.client.RunDetection(context.Background(), now.Truncate(time.Minute).Add(time.Minute))
			require.NoError(t, err)
			results[i] = as
		})
	}
	wg.Wait()
	total := 0
	for _, r := range results {
		total += len(r)
	}
	require.Equal(t, 1, total, "one call does the work, the others find it done")
	require.Len(t, e.alerts(nil), 1)
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.detection_runs`))
}

func TestBaselinesDoNotAbsorbRegressionsUntilAccepted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rng := rand.New(rand.NewPCG(31, 32))
	start := hoursAgo(12)
	change := start.Add(8*time.Hour + 5*time.Minute)
	end := start.Add(11 * time.Hour)
	tr := traffic{op: "slow", median: 10000, sigma: 0.4, rate: 10}
	e.write(tr, start, change, rng)
	// A baseline from before the change.
	before := e.recalc(&monitor.RecalculateOpts{Force: true})
	require.Equal(t, monitor.StatusUpdated, byOp(before)["slow"].Status)
	tr.mult = step(change, 2.5)
	e.write(tr, change, end, rng)
	e.detect(end.Add(-time.Minute))
	deg := ofType(e.alertsOf("slow"), monitor.AlertDegradation)
	require.Len(t, deg, 1)
	require.True(t, deg[0].Open())
	// Recalculations leave out the samples from the alert's first_seen_at on.
	b0, err := e.client.Baseline(e.ctx, "slow", "")
	require.NoError(t, err)
	r := byOp(e.recalc(&monitor.RecalculateOpts{Force: true}))["slow"]
	b1, err := e.client.Baseline(e.ctx, "slow", "")
	require.NoError(t, err)
	require.InEpsilon(t, float64(b0.P99), float64(b1.P99), 0.15, "a detected regression moved the baseline")
	require.EqualValues(t, e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = 'slow' AND recorded_at < $1`, deg[0].FirstSeenAt), r.SampleCount)

	// Accepting it resolves the alert and re-baselines from the change point.
	acc, err := e.client.AcceptRegression(e.ctx, deg[0].ID, "alice")
	require.NoError(t, err)
	require.False(t, acc.Open())
	require.Equal(t, "alice", acc.ResolvedBy)
	require.Contains(t, string(acc.Details), `"accepted": true`)
	b2, err := e.client.Baseline(e.ctx, "slow", "")
	require.NoError(t, err)
	require.InDelta(t, 2.5, float64(b2.P50)/float64(b0.P50), 0.3)
	require.WithinDuration(t, deg[0].FirstSeenAt, b2.WindowStart, time.Second)
	hist, err := e.client.Queries().ListBaselineHistory(e.ctx, "slow", "")
	require.NoError(t, err)
	require.Equal(t, "accepted", hist[len(hist)-1].Reason)
	// Later recalculations keep starting at the change point.
	e.recalc(&monitor.RecalculateOpts{Force: true})
	b3, err := e.client.Baseline(e.ctx, "slow", "")
	require.NoError(t, err)
	require.InEpsilon(t, float64(b2.P99), float64(b3.P99), 0.05)

	// Bad calls: resolved, wrong type, unknown, no actor.
	_, err = e.client.AcceptRegression(e.ctx, deg[0].ID, "bob")
	require.ErrorIs(t, err, monitor.ErrAlreadyResolved)
	other, err := e.client.Queries().RaiseAlert(e.ctx, gen.RaiseAlertParams{OperationType: "x", AlertType: monitor.AlertBaselineRecalcError,
		Severity: monitor.SeverityWarning, Details: []byte(`{}`)})
	require.NoError(t, err)
	_, err = e.client.AcceptRegression(e.ctx, other.AlertID, "bob")
	var argErr *monitor.ArgumentError
	require.ErrorAs(t, err, &argErr)
	require.Equal(t, "p_alert_id", argErr.Argument)
	require.Contains(t, argErr.Message, "must name a THRESHOLD_EXCEEDED, ANOMALY or DEGRADATION alert")
	_, err = e.client.AcceptRegression(e.ctx, 424242, "bob")
	require.ErrorIs(t, err, monitor.ErrNotFound)
	_, err = e.pool.Exec(e.ctx, `SELECT pggit.accept_regression($1, ' ')`, other.AlertID)
	requirePgError(t, err, "22023", "p_accepted_by must be a non-empty name")
}

// tableCounts counts the rows of every table of the pggit schema.
func (e *env) tableCounts() map[string]int64 {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'pggit' AND c.relkind = 'r' ORDER BY 1`)
	require.NoError(e.t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(e.t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(e.t, rows.Err())
	out := map[string]int64{}
	for _, n := range names {
		out[n] = e.count(`SELECT count(*) FROM pggit.` + n)
	}
	var wm *time.Time
	require.NoError(e.t, e.pool.QueryRow(e.ctx, `SELECT evaluated_through FROM pggit.detection_progress`).Scan(&wm))
	if wm != nil {
		out["watermark"] = wm.Unix()
	}
	return out
}

func TestBacktestReplaysAndLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rng := rand.New(rand.NewPCG(41, 42))
	start := hoursAgo(12)
	change := start.Add(9*time.Hour + 2*time.Minute)
	end := start.Add(11 * time.Hour)
	e.write(traffic{op: "api", median: 4000, sigma: 0.5, rate: 12, mult: step(change, 3)}, start, end, rng)
	e.write(traffic{op: "calm", median: 4000, sigma: 0.5, rate: 12}, start, end, rng)
	e.recalc(nil)
	// Live detection ran up to the change only.
	e.detect(change.Add(-2 * time.Minute))
	before := e.tableCounts()
	live := e.snapshot()

	res, err := e.client.Backtest(e.ctx, monitor.BacktestParams{From: start.Add(6 * time.Hour), To: end, Step: 5 * time.Minute})
	require.NoError(t, err)
	require.Equal(t, before, e.tableCounts(), "the backtest wrote something")
	require.Equal(t, live, e.snapshot())
	var types []string
	for _, a := range res.Alerts {
		require.Equal(t, "api", a.OperationType)
		require.False(t, a.DetectedAt.Before(change))
		types = append(types, a.Type)
	}
	require.Contains(t, types, monitor.AlertDegradation)
	require.Contains(t, types, monitor.AlertAnomaly)
	require.NotEmpty(t, res.Summary)
	// One operation only.
	res, err = e.client.Backtest(e.ctx, monitor.BacktestParams{From: start.Add(6 * time.Hour), To: end, OperationType: "calm"})
	require.NoError(t, err)
	require.Empty(t, res.Alerts)
	require.Equal(t, before, e.tableCounts())
	// Detection goes on where it was.
	e.detect(end.Add(-time.Minute))
	require.NotEmpty(t, ofType(e.alertsOf("api"), monitor.AlertDegradation))

	// Bad input.
	for _, c := range []struct {
		p   monitor.BacktestParams
		arg string
	}{
		{monitor.BacktestParams{}, "From"},
		{monitor.BacktestParams{From: end, To: start}, "From"},
		{monitor.BacktestParams{From: start.Add(-40 * 24 * time.Hour), To: start}, "To"},
		{monitor.BacktestParams{From: start, To: end, Step: 30 * time.Second}, "Step"},
		{monitor.BacktestParams{From: start, To: end, OperationType: "nope"}, "p_operation"},
	} {
		_, err := e.client.Backtest(e.ctx, c.p)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr, "%+v", c.p)
		require.Equal(t, c.arg, argErr.Argument)
	}
	_, err = e.pool.Exec(e.ctx, `SELECT pggit.backtest_detection(now() - interval '1 hour', now(), NULL, 30)`)
	requirePgError(t, err, "22023", "p_step_seconds must be between 60 and 86400, got 30")
}

func TestDetectionSettingsAndBadInputs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	op, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "tuned",
		MinWindowCount: ptr(50), AnomalyWarningZ: ptr(4.0), AnomalyCriticalZ: ptr(6.0), AnomalyConfirmK: ptr(3),
		AnomalyConfirmN: ptr(4), DegradationWarningRatio: ptr(1.2), DegradationCriticalRatio: ptr(2.0),
		DegradationThreshold: ptr(20.0), ResolveAfter: ptr(45 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, 50, op.MinWindowCount)
	require.Equal(t, 45*time.Minute, op.ResolveAfter)
	require.Equal(t, 3, op.AnomalyConfirmK)
	got, err := e.client.Operation(e.ctx, "tuned")
	require.NoError(t, err)
	require.Equal(t, op, got)
	// Defaults of a new operation.
	def, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "plain"})
	require.NoError(t, err)
	require.Equal(t, 20, def.MinWindowCount)
	require.Equal(t, 3.5, def.AnomalyWarningZ)
	require.Equal(t, 5.0, def.AnomalyCriticalZ)
	require.Equal(t, 1.3, def.DegradationWarningRatio)
	require.Equal(t, 1.5, def.DegradationCriticalRatio)
	require.Equal(t, 30*time.Minute, def.ResolveAfter)

	for _, c := range []struct {
		p   monitor.OperationParams
		arg string
	}{
		{monitor.OperationParams{MinWindowCount: ptr(0)}, "MinWindowCount"},
		{monitor.OperationParams{AnomalyWarningZ: ptr(0.5)}, "AnomalyWarningZ"},
		{monitor.OperationParams{AnomalyCriticalZ: ptr(math.NaN())}, "AnomalyCriticalZ"},
		{monitor.OperationParams{AnomalyCriticalZ: ptr(3.0)}, "AnomalyCriticalZ"}, // below the warning z (4)
		{monitor.OperationParams{AnomalyConfirmK: ptr(5)}, "AnomalyConfirmK"},     // above n (4)
		{monitor.OperationParams{AnomalyConfirmN: ptr(21)}, "AnomalyConfirmN"},
		{monitor.OperationParams{DegradationWarningRatio: ptr(1.0)}, "DegradationWarningRatio"},
		{monitor.OperationParams{DegradationCriticalRatio: ptr(1.1)}, "DegradationCriticalRatio"}, // below 1.2
		{monitor.OperationParams{DegradationThreshold: ptr(0.0)}, "DegradationThreshold"},
		{monitor.OperationParams{ResolveAfter: ptr(90 * time.Second)}, "ResolveAfter"},
		{monitor.OperationParams{ResolveAfter: ptr(8 * 24 * time.Hour)}, "ResolveAfter"},
	} {
		c.p.OperationType = "tuned"
		_, err := e.client.ConfigureOperation(e.ctx, c.p)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr, "%+v", c.p)
		require.Equal(t, c.arg, argErr.Argument)
	}
	after, err := e.client.Operation(e.ctx, "tuned")
	require.NoError(t, err)
	require.Equal(t, op.AnomalyWarningZ, after.AnomalyWarningZ, "a refused change wrote nothing")

	_, err = e.client.RunDetection(e.ctx, time.Now().Add(30*24*time.Hour))
	var argErr *monitor.ArgumentError
	require.ErrorAs(t, err, &argErr)
	require.Equal(t, "p_as_of", argErr.Argument)
	require.Contains(t, argErr.Message, "no more than 7 days from now")
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.detection_runs`))
	for _, c := range []struct{ call, msg string }{
		{`SELECT pggit.compact_histograms(now(), now() - interval '1 hour')`, "p_from must be before p_to"},
		{`SELECT pggit.rebuild_histograms(NULL, now())`, "p_from must be before p_to"},
		{`SELECT pggit.merge_histograms(NULL, '', now() - interval '1 hour', now())`, "p_operation_type must not be NULL"},
		{`SELECT pggit.threshold_min_exceedances(0, 0.01)`, "p_n must be at least 1, got 0"},
		{`SELECT pggit.threshold_min_exceedances(10, 1.5)`, "p_alpha must be between 0 and 1"},
	} {
		_, err := e.pool.Exec(e.ctx, c.call)
		requirePgError(t, err, "22023", c.msg)
	}
}
