package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Targets of the histogram and detection benchmarks.
const (
	targetHistograms = 0.80                   // Recorder with histograms / without, at least
	targetDetectMin  = 250 * time.Millisecond // run_detection, one minute of 1,000 operations, at most
	targetCatchUp    = 30 * time.Second       // run_detection catching up 24 h of 1,000 operations, at most
)

// registrationOnly is the samples' trigger without histograms: what it was
// before they existed (migration 00002), for the reference of the
// histograms benchmark.
const registrationOnly = `CREATE OR REPLACE FUNCTION pggit.performance_metrics_after_insert()
RETURNS trigger LANGUAGE plpgsql SET search_path = pggit, pg_catalog AS $$
BEGIN
    INSERT INTO pggit.performance_operation_types (operation_type)
    SELECT DISTINCT n.operation_type FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM pggit.performance_operation_types t WHERE t.operation_type = n.operation_type)
    ON CONFLICT (operation_type) DO NOTHING;
    RETURN NULL;
END $$`

// benchHistograms compares the Recorder's throughput with the histograms
// maintained by the samples' trigger against the same trigger without them.
func benchHistograms(ctx context.Context, e *env, o *options) (*section, error) {
	m := o.recorderSamples
	names := opNames(o.detectOps)
	rng := rand.New(rand.NewPCG(3, 4))
	durations := make([]time.Duration, m)
	for i := range durations {
		durations[i] = time.Duration(5000*math.Exp(0.7*rng.NormFloat64())) * time.Microsecond
	}
	var withTrigger string
	if err := e.pool.QueryRow(ctx, `SELECT pg_get_functiondef('pggit.performance_metrics_after_insert()'::regprocedure)`).Scan(&withTrigger); err != nil {
		return nil, err
	}
	var rows int64
	mk := func(name, trigger string, histograms bool) *variant {
		return &variant{name: name, samples: m, run: func(ctx context.Context) (time.Duration, error) {
			if err := e.exec(ctx, trigger); err != nil {
				return 0, err
			}
			rec, err := e.client.NewRecorder(nil)
			if err != nil {
				return 0, err
			}
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, recorderGoroutines)
			for g := range recorderGoroutines {
				wg.Go(func() { _, errs[g] = produce(ctx, rec, names, durations, g, recorderGoroutines) })
			}
			wg.Wait()
			cerr := rec.Close(ctx)
			d := time.Since(start)
			if err := errors.Join(append(errs, cerr)...); err != nil {
				return 0, err
			}
			if st := rec.Stats(); st.Written != uint64(m) || st.Dropped != 0 {
				return 0, fmt.Errorf("recorder stats %+v, want %d written, none dropped", st, m)
			}
			var n int64
			if err := e.pool.QueryRow(ctx, `SELECT coalesce(sum(sample_count), 0) FROM pggit.performance_histograms`).Scan(&n); err != nil {
				return 0, err
			}
			if histograms && n != int64(m) {
				return 0, fmt.Errorf("histograms count %d samples, want %d", n, m)
			}
			if histograms {
				if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pggit.performance_histograms`).Scan(&rows); err != nil {
					return 0, err
				}
			}
			return d, nil
		}}
	}
	off := mk("Recorder, trigger without histograms (registration only)", registrationOnly, false)
	on := mk("Recorder, trigger with histograms (as shipped)", withTrigger, true)
	variants := []*variant{off, on}
	reset := func(ctx context.Context) error {
		if err := e.exec(ctx, `TRUNCATE pggit.performance_metrics, pggit.performance_histograms`); err != nil {
			return err
		}
		return e.checkpoint(ctx)
	}
	err := measure(ctx, e, o.runs, variants, reset)
	if rerr := e.exec(ctx, withTrigger); err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	r := on.rate() / off.rate()
	return &section{
		title: fmt.Sprintf("Histograms on ingestion: %s samples over %d operations", fmtInt(int64(m)), len(names)),
		notes: []string{
			"Both variants write the same samples through client.NewRecorder(nil) from 2 goroutines (batched COPY); pggit.performance_metrics and pggit.performance_histograms are truncated before each run.",
			"With histograms the statement trigger also appends, per COPY, one partial histogram row per (operation, scope, minute) it touches: bins, count, sums, min, max, in the samples' transaction. Each run checks the histograms count every sample.",
			fmt.Sprintf("The last run left %s histogram rows for %s samples (partial rows merge when their hour closes).", fmtInt(rows), fmtInt(int64(m))),
		},
		variants: variants,
		ratios: []ratio{{name: "Recorder with histograms / without (throughput)", value: r,
			target: fmt.Sprintf(">= %.2fx", targetHistograms), pass: r >= targetHistograms}},
	}, nil
}

// benchDetect measures pggit.run_detection on o.detectOps operations of
// o.detectRate samples a minute: the call that judges one new minute (the
// worker's every minute), the call that also closes an hour, and a catch-up
// over o.detectHours hours; and the storage of the histograms per active
// operation-hour. Loading is not timed.
func benchDetect(ctx context.Context, e *env, o *options) (*section, error) {
	names := opNames(o.detectOps)
	hours := o.detectHours
	end := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	start := end.Add(-time.Duration(hours+4) * time.Hour) // 4 hours of history before the judged span
	judged := end.Add(-time.Duration(hours) * time.Hour)
	e.logf("detect: loading %d operations x %d hours at %d samples a minute", len(names), hours+4, o.detectRate)
	if err := e.exec(ctx, `TRUNCATE pggit.performance_metrics, pggit.performance_histograms, pggit.detection_hours,
		pggit.detection_references, pggit.detection_state, pggit.detection_blocks, pggit.detection_runs`); err != nil {
		return nil, err
	}
	if err := e.resetAlerts(ctx); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(5, 6))
	medians := make([]float64, len(names))
	sigmas := make([]float64, len(names))
	for i := range names {
		medians[i] = 500 * math.Pow(400, rng.Float64())
		sigmas[i] = 0.3 + 0.7*rng.Float64()
	}
	var samples int64
	for h := start; h.Before(end); h = h.Add(time.Hour) {
		var rows [][]any
		for i, n := range names {
			for k := range 60 * o.detectRate {
				at := h.Add(time.Duration(k) * time.Hour / time.Duration(60*o.detectRate))
				rows = append(rows, []any{n, int64(medians[i]*math.Exp(sigmas[i]*rng.NormFloat64())) + 1, at})
			}
		}
		c, err := e.pool.CopyFrom(ctx, pgx.Identifier{"pggit", "performance_metrics"},
			[]string{"operation_type", "duration_microseconds", "recorded_at"}, pgx.CopyFromRows(rows))
		if err != nil {
			return nil, err
		}
		samples += c
	}
	// Storage, before anything compacts: minute rows, one per COPY per
	// operation-minute here (COPY of an hour at a time).
	var minuteBytes, sampleBytes, minuteRows int64
	if err := e.pool.QueryRow(ctx, `SELECT pg_total_relation_size('pggit.performance_histograms'),
		pg_total_relation_size('pggit.performance_metrics'), (SELECT count(*) FROM pggit.performance_histograms)`).Scan(
		&minuteBytes, &sampleBytes, &minuteRows); err != nil {
		return nil, err
	}
	opHours := int64(len(names) * (hours + 4))

	// History before the judged span: references from its 4 hours.
	if _, err := e.client.RecalculateAllBaselinesRolling(ctx, nil); err != nil {
		return nil, err
	}
	if err := e.primeDetection(ctx, start, judged); err != nil {
		return nil, err
	}
	// Catch-up over the judged span, in one call.
	e.logf("detect: catch-up over %d hours", hours)
	t0 := time.Now()
	if _, err := e.client.RunDetection(ctx, end.Add(-time.Hour)); err != nil {
		return nil, err
	}
	catchUp := time.Since(t0)
	// Then minute by minute over the last hour: the call that closes the
	// hour, then 59 ordinary ones.
	e.logf("detect: minute by minute")
	var minutes []time.Duration
	var closing time.Duration
	for k := 1; k <= 60; k++ {
		t := time.Now()
		if _, err := e.client.RunDetection(ctx, end.Add(-time.Hour+time.Duration(k)*time.Minute)); err != nil {
			return nil, err
		}
		d := time.Since(t)
		if k == 1 {
			closing = d
		} else {
			minutes = append(minutes, d)
		}
	}
	// The reference: one grouped read of the minute's histogram rows.
	ref := &variant{name: fmt.Sprintf("reference: one grouped read of a minute's histograms (%d operations)", len(names)), run: func(ctx context.Context) (time.Duration, error) {
		t := time.Now()
		var n int64
		err := e.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT operation_type, scope, sum(sample_count), sum(sum_ln)
			FROM pggit.performance_histograms WHERE bucket_start >= $1 AND bucket_start < $2 GROUP BY 1, 2) x`,
			end.Add(-2*time.Minute), end.Add(-time.Minute)).Scan(&n)
		return time.Since(t), err
	}}
	if err := measure(ctx, e, o.runs, []*variant{ref}, nil); err != nil {
		return nil, err
	}
	med := medianOf(minutes)
	worst := maxOf(minutes)
	plan, err := nestedPlan(ctx, e, fmt.Sprintf(`SELECT count(*) FROM pggit.detection_series('%s', '%s', NULL, NULL, 0.001)`,
		end.Add(-2*time.Minute).Format(time.RFC3339), end.Add(-time.Minute).Format(time.RFC3339)), "WITH par AS")
	if err != nil {
		return nil, err
	}
	// Hour rows, after compaction of everything but the last 2 hours.
	if err := e.exec(ctx, `SELECT pggit.compact_histograms('-infinity', $1, $1)`, end.Add(-2*time.Hour)); err != nil {
		return nil, err
	}
	var hourBytes, hourRows int64
	if err := e.pool.QueryRow(ctx, `SELECT sum(pg_column_size(h.*)), count(*) FROM pggit.performance_histograms h WHERE bucket_seconds = 3600`).Scan(&hourBytes, &hourRows); err != nil {
		return nil, err
	}
	var minuteRowBytes int64
	if err := e.pool.QueryRow(ctx, `SELECT coalesce(avg(pg_column_size(h.*)), 0)::bigint FROM pggit.performance_histograms h WHERE bucket_seconds = 60`).Scan(&minuteRowBytes); err != nil {
		return nil, err
	}

	s := &section{
		title: fmt.Sprintf("Detection: %d operations at %d samples a minute (%s samples, not timed to load)", len(names), o.detectRate, fmtInt(samples)),
		notes: []string{
			fmt.Sprintf("Operations with log-uniform medians 0.5-200 ms and log-normal sigma 0.3-1.0, steady; active baselines; references built from 4 hours of history before the judged %d hours.", hours),
			fmt.Sprintf("Catch-up: one client.RunDetection call judging %d hours (%d hour chunks, each closing its hour: hour summaries, compaction of the hour's partial rows, references due).", hours-1, hours-1),
			"Per minute: the next 60 calls, one minute of new buckets each, as the worker runs it; the first of them also closes an hour.",
			fmt.Sprintf("Storage per active operation-hour at %d samples a minute: samples %s bytes (table and indexes); minute histograms %s bytes (table and indexes, one row per operation-minute, %s bytes a row); hour histograms %s bytes a row (after compaction, from 48 h by default).",
				o.detectRate, fmtInt(sampleBytes/opHours), fmtInt(minuteBytes/opHours), fmtInt(minuteRowBytes), fmtInt(hourBytes/max(1, hourRows))),
			fmt.Sprintf("%s minute histogram rows for %s operation-minutes before compaction.", fmtInt(minuteRows), fmtInt(opHours*60)),
		},
		variants: []*variant{ref},
		ratios: []ratio{
			{name: "run_detection, one minute of new buckets (median of 59 calls)", value: millis(med), unit: " ms",
				target: fmt.Sprintf("< %s", targetDetectMin), pass: med < targetDetectMin},
			{name: "run_detection, one minute, slowest of 59 calls", value: millis(worst), unit: " ms"},
			{name: "run_detection, one minute / reference read", value: float64(med) / float64(ref.median())},
			{name: "run_detection, one minute that also closes an hour", value: millis(closing), unit: " ms"},
			{name: fmt.Sprintf("run_detection catch-up over %d h", hours-1), value: millis(catchUp), unit: " ms",
				target: fmt.Sprintf("< %s (24 h)", targetCatchUp), pass: catchUp*24 < targetCatchUp*time.Duration(hours-1)},
		},
		plan:   plan,
		planOf: "pggit.detection_series for one minute of every operation (the main query of a run)",
	}
	return s, nil
}

func medianOf(ds []time.Duration) time.Duration {
	v := variant{times: ds}
	return v.median()
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// nestedPlan returns the EXPLAIN ANALYZE of the statement starting with
// prefix that runs inside sql (a function's query), through auto_explain on a
// connection of its own; a note instead when auto_explain cannot be loaded
// (it needs a superuser).
func nestedPlan(ctx context.Context, e *env, sql, prefix string) ([]string, error) {
	cfg := e.pool.Config().ConnConfig.Copy()
	var mu sync.Mutex
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		notices = append(notices, n.Message)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	for _, set := range []string{`LOAD 'auto_explain'`, `SET auto_explain.log_min_duration = 0`,
		`SET auto_explain.log_nested_statements = on`, `SET auto_explain.log_analyze = on`,
		`SET auto_explain.log_buffers = on`, `SET client_min_messages = log`} {
		if _, err := conn.Exec(ctx, set); err != nil {
			return []string{"(auto_explain is not available to this user: " + oneLine(err) + ")"}, nil
		}
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range notices {
		_, body, ok := strings.Cut(n, "Query Text: ")
		if !ok || !strings.HasPrefix(strings.TrimSpace(body), prefix) {
			continue
		}
		var out []string
		inPlan := false
		for _, l := range strings.Split(body, "\n") {
			// The plan starts at the first line that is not the query's.
			if !inPlan && (strings.Contains(l, "(cost=") || strings.Contains(l, "(actual")) {
				inPlan = true
			}
			if inPlan {
				out = append(out, l)
			}
		}
		return out, nil
	}
	return []string{"(no plan of the statement was logged)"}, nil
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
