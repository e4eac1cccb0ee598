package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
)

// The -scale mode loads o.scaleSamples samples (100 M by default) over
// o.scaleDays days into the partitioned pggit.performance_metrics, through
// the samples' trigger (so the histograms are the ones ingestion writes),
// leaves the state a running worker would (minute histograms compacted into
// hours before 48 h, the hourly rollup, detection caught up), and then
// measures what changes with the volume: ingestion, recalculation exact and
// from histograms, detection, the dashboard views, dropping a day against
// deleting it, and the bytes per sample and per operation-hour. Loading is
// not timed.

// Targets of the scale benchmark.
const (
	targetScaleIngest = 100_000 // samples/s through the Recorder at 100 M loaded, at least
)

// scaleServerSettings are added to the throwaway cluster's settings in -scale
// mode: a bulk load of tens of GB, then reads of a table larger than memory.
var scaleServerSettings = map[string]string{
	"shared_buffers":     "1GB",
	"max_wal_size":       "16GB",
	"min_wal_size":       "1GB",
	"checkpoint_timeout": "30min",
	"wal_compression":    "on",
}

// scaleMinFreeBytes stops the load when the disk holding the throwaway
// cluster has less free space than this.
const scaleMinFreeBytes = 4 << 30

// scaleLoadSQL writes samples $1..$2 of a load whose sample g is recorded at
// $3 + (g - 1) * $4 seconds, over $5 operations named op_<lpad(k, $6)>: one
// INSERT ... SELECT into the parent table, so the samples' trigger writes
// their registration and histograms as it does for any batch.
//
// Operation k is drawn log-uniformly (op_0 about 13% of the samples, the
// last about 0.1%); its durations are log-normal with a median of
// 500 * 400^frac(k * phi) µs (0.5 to 200 ms) and sigma 0.3 + 0.9 *
// frac(k * (sqrt 2 - 1)), and 1% of samples are multiplied by a Pareto(1.5)
// factor (a heavy tail), capped at 10 minutes. scaleOp and scaleDuration are
// the same in Go.
const scaleLoadSQL = `INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
SELECT 'op_' || lpad(s.o::text, $6::integer, '0'),
       least(600000000, greatest(1,
           500 * power(400::float8, s.fm)
               * exp(s.sg * sqrt(-2 * ln(1 - s.u1)) * cos(2 * pi() * s.u2))
               * CASE WHEN s.u3 < 0.01 THEN power(1 - s.u4, -1 / 1.5::float8) ELSE 1 END))::bigint,
       $3::timestamptz + make_interval(secs => (s.g - 1) * $4::float8)
FROM (SELECT r.*, r.o * 0.6180339887498949::float8 - floor(r.o * 0.6180339887498949::float8) AS fm,
             0.3::float8 + 0.9::float8 * (r.o * 0.4142135623730950::float8 - floor(r.o * 0.4142135623730950::float8)) AS sg
      FROM (SELECT g, least(floor(exp(random() * ln($5::float8 + 1)))::integer - 1, $5::integer - 1) AS o,
                   random() AS u1, random() AS u2, random() AS u3, random() AS u4
            FROM generate_series($1::integer, $2::integer) g) r) s`

// scaleChunk is the samples one load statement writes.
const scaleChunk = 500_000

func scaleOpMedian(k int) float64 {
	_, f := math.Modf(float64(k) * 0.6180339887498949)
	return 500 * math.Pow(400, f)
}

func scaleOpSigma(k int) float64 {
	_, f := math.Modf(float64(k) * 0.4142135623730950)
	return 0.3 + 0.9*f
}

// scaleOp draws an operation index as scaleLoadSQL does.
func scaleOp(rng *rand.Rand, ops int) int {
	return min(int(math.Floor(math.Exp(rng.Float64()*math.Log(float64(ops)+1))))-1, ops-1)
}

// scaleDuration draws a duration of operation k as scaleLoadSQL does.
func scaleDuration(rng *rand.Rand, k int) time.Duration {
	us := scaleOpMedian(k) * math.Exp(scaleOpSigma(k)*rng.NormFloat64())
	if rng.Float64() < 0.01 {
		us *= math.Pow(1-rng.Float64(), -1/1.5)
	}
	return time.Duration(max(1, min(600_000_000, int64(us)))) * time.Microsecond
}

// scaleCaps says which of issue 10's migrations the database has: the
// partitioned samples (00021) and recalculation methods (00022).
type scaleCaps struct {
	partitions bool
	method     bool
}

func detectScaleCaps(ctx context.Context, e *env) (scaleCaps, error) {
	var c scaleCaps
	err := e.pool.QueryRow(ctx, `SELECT
		to_regprocedure('pggit.create_sample_partitions(timestamptz, timestamptz)') IS NOT NULL
		AND to_regprocedure('pggit.drop_sample_partitions(timestamptz)') IS NOT NULL,
		EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		        WHERE n.nspname = 'pggit' AND p.proname = 'recalculate_all_baselines_rolling'
		          AND 'p_method' = ANY (p.proargnames))`).Scan(&c.partitions, &c.method)
	return c, err
}

// scaleState is what the load left.
type scaleState struct {
	caps    scaleCaps
	names   []string
	start   time.Time // first sample, a UTC midnight
	end     time.Time // the load's "now": samples are spread over [start, end)
	samples int64
	perDay  int64 // samples in each whole day
	loadDur time.Duration
	histMin int64 // minute histogram rows after the worker's jobs
	histHr  int64 // hour histogram rows
}

func benchScale(ctx context.Context, e *env, o *options) ([]*section, error) {
	caps, err := detectScaleCaps(ctx, e)
	if err != nil {
		return nil, err
	}
	if !caps.partitions {
		e.logf("scale: pggit.create_sample_partitions not found (migration 00021 not applied): the samples table is not partitioned; the partition steps are skipped")
	}
	if !caps.method {
		e.logf("scale: recalculate_all_baselines_rolling has no p_method (migration 00022 not applied): recalculation from histograms is skipped")
	}
	st, err := scaleLoad(ctx, e, o, caps)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var out []*section
	storage, err := scaleStorage(ctx, e, st)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	for _, step := range []struct {
		name string
		run  func(context.Context, *env, *options, *scaleState) (*section, error)
	}{
		{"recalc", scaleRecalc},
		{"detect", scaleDetect},
		{"views", scaleViews},
		{"ingest", scaleIngest},
		{"retention", scaleRetention},
	} {
		e.logf("scale: %s", step.name)
		s, err := step.run(ctx, e, o, st)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
		out = append(out, s)
	}
	// Detection's hour summaries exist once detection has run.
	var detBytes, detRows int64
	if err := e.pool.QueryRow(ctx, `SELECT pg_total_relation_size('pggit.detection_hours'), count(*)
		FROM pggit.detection_hours`).Scan(&detBytes, &detRows); err != nil {
		return nil, err
	}
	storage.notes = append(storage.notes, fmt.Sprintf("Detection hour summaries (detection_hours, after the detection step): %s rows, %s bytes a row (table and indexes).",
		fmtInt(detRows), fmtInt(detBytes/max(1, detRows))))
	storage.ratios = append(storage.ratios, ratio{name: "bytes per operation-hour of detection summary",
		value: float64(detBytes) / float64(max(1, detRows)), unit: " B"})
	return append(out, storage), nil
}

// scaleLoad creates the partitions, loads the samples in chunks on two
// connections, and runs what the worker's jobs would have done: compaction of
// the minute histograms before 48 h, the hourly rollup; then VACUUM ANALYZE.
func scaleLoad(ctx context.Context, e *env, o *options, caps scaleCaps) (*scaleState, error) {
	names := opNames(o.scaleOps)
	// The load ends at the last whole minute: whatever is written later
	// (the ingestion benchmark) is told apart by its time.
	now := time.Now().UTC().Truncate(time.Minute)
	start := now.Truncate(24*time.Hour).AddDate(0, 0, -o.scaleDays)
	st := &scaleState{caps: caps, names: names, start: start, end: now, samples: int64(o.scaleSamples)}
	span := now.Sub(start).Seconds()
	step := span / float64(o.scaleSamples)
	st.perDay = int64(math.Round(86400 / step))
	t0 := time.Now()
	if caps.partitions {
		// The migration's partitions start at the day it ran: the days before
		// it are created here, as after a restore or a backfill.
		if err := e.exec(ctx, `SELECT count(*) FROM pggit.create_sample_partitions($1, $2)`,
			start, now.AddDate(0, 0, 3)); err != nil {
			return nil, fmt.Errorf("create_sample_partitions: %w", err)
		}
	}
	e.logf("scale: loading %s samples over %d operations, %s to %s (%.1f samples/s, %s a day)",
		fmtInt(st.samples), len(names), start.Format(time.RFC3339), now.Format("2006-01-02T15:04:05Z"),
		1/step, fmtInt(st.perDay))

	var next atomic.Int64
	var done atomic.Int64
	chunks := (o.scaleSamples + scaleChunk - 1) / scaleChunk
	width := len(names[0]) - len("op_")
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for w := range 2 {
		wg.Go(func() {
			for {
				c := int(next.Add(1)) - 1
				if c >= chunks || lctx.Err() != nil {
					return
				}
				if free, ok := freeDiskBytes(); ok && free < scaleMinFreeBytes {
					errs[w] = fmt.Errorf("only %.1f GB free on the disk of the cluster: stopping the load", float64(free)/(1<<30))
					cancel()
					return
				}
				first := c*scaleChunk + 1
				last := min((c+1)*scaleChunk, o.scaleSamples)
				if err := e.exec(lctx, scaleLoadSQL, first, last, start, step, len(names), width); err != nil {
					errs[w] = fmt.Errorf("chunk %d: %w", c, err)
					cancel()
					return
				}
				n := done.Add(int64(last - first + 1))
				if c%10 == 9 || int(n) == o.scaleSamples {
					free, _ := freeDiskBytes()
					e.logf("scale: %s of %s samples loaded in %s (%.1f GB free)", fmtInt(n), fmtInt(st.samples),
						fmtDuration(time.Since(t0)), float64(free)/(1<<30))
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The worker: compaction (histogram_compaction: minutes of hours that
	// started more than 48 h ago become hour rows) and the rollup
	// (hourly_rollup), a day at a time; detection's hour closings compact
	// the partial rows of the last 48 h (here: compaction without hours).
	hours := now.Add(-monitor.DefaultMinuteHistograms).Truncate(time.Hour)
	q := gen.New(e.pool)
	for d := start; d.Before(now); d = d.Add(24 * time.Hour) {
		to := d.Add(24 * time.Hour)
		if h := now.Truncate(time.Hour); h.Before(to) {
			to = h
		}
		if !d.Before(to) {
			break
		}
		if _, err := q.CompactHistograms(ctx, d, to, hours); err != nil {
			return nil, fmt.Errorf("compacting histograms: %w", err)
		}
		if err := e.exec(ctx, `SELECT pggit.rollup_performance_hours($1, $2)`, d.Add(24*time.Hour), d); err != nil {
			return nil, fmt.Errorf("rollup: %w", err)
		}
		e.logf("scale: worker jobs done through %s (%s)", to.Format(time.RFC3339), fmtDuration(time.Since(t0)))
	}
	if _, err := q.RollupPerformanceHoursWithCurrent(ctx); err != nil {
		return nil, fmt.Errorf("rollup: %w", err)
	}
	// The histogram rollups the hourly histogram_compaction job keeps
	// (migration 00023): built here once, as that job would have built them
	// an hour at a time.
	if _, err := q.RefreshHistogramRollups(ctx); err != nil {
		return nil, fmt.Errorf("histogram rollups: %w", err)
	}
	// Compaction deleted most of the minute rows the load wrote at once; a
	// running worker deletes them an hour at a time and autovacuum lets new
	// rows reuse the space, so the table is rewritten to its steady size.
	e.logf("scale: VACUUM FULL pggit.performance_histograms, VACUUM ANALYZE")
	if err := e.exec(ctx, `VACUUM FULL pggit.performance_histograms`); err != nil {
		return nil, err
	}
	if err := e.exec(ctx, `VACUUM ANALYZE`); err != nil {
		return nil, err
	}
	if err := e.checkpoint(ctx); err != nil {
		return nil, err
	}
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE bucket_seconds = 60), count(*) FILTER (WHERE bucket_seconds = 3600)
		FROM pggit.performance_histograms`).Scan(&st.histMin, &st.histHr); err != nil {
		return nil, err
	}
	var hist int64
	if err := e.pool.QueryRow(ctx, `SELECT coalesce(sum(sample_count), 0) FROM pggit.performance_histograms`).Scan(&hist); err != nil {
		return nil, err
	}
	if hist != st.samples {
		return nil, fmt.Errorf("the histograms count %d samples, want %d", hist, st.samples)
	}
	st.loadDur = time.Since(t0)
	e.logf("scale: loaded and settled in %s: %s minute and %s hour histogram rows", fmtDuration(st.loadDur),
		fmtInt(st.histMin), fmtInt(st.histHr))
	return st, nil
}

// freeDiskBytes is the free space of the disk holding the throwaway cluster
// (under the temporary directory).
func freeDiskBytes() (uint64, bool) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(os.TempDir(), &s); err != nil {
		return 0, false
	}
	return s.Bavail * uint64(s.Bsize), true
}

// partitionOf names the table that holds the samples recorded at t: a
// partition, or pggit.performance_metrics itself when it is not partitioned.
func partitionOf(ctx context.Context, e *env, t time.Time) (string, error) {
	var name string
	err := e.pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM pggit.performance_metrics
		WHERE recorded_at >= $1 ORDER BY recorded_at LIMIT 1`, t).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("no sample at or after %s", t.Format(time.RFC3339))
	}
	return name, err
}

// scaleStorage measures the bytes per sample of a whole day and the bytes per
// operation-hour of histograms and rollups.
func scaleStorage(ctx context.Context, e *env, st *scaleState) (*section, error) {
	day := st.start.AddDate(0, 0, max(1, int(st.end.Sub(st.start)/(24*time.Hour))/2))
	part, err := partitionOf(ctx, e, day)
	if err != nil {
		return nil, err
	}
	var tableBytes, indexBytes, rows int64
	if err := e.pool.QueryRow(ctx, `SELECT pg_table_size($1::regclass), pg_indexes_size($1::regclass),
		(SELECT count(*) FROM ONLY `+part+`)`, part).Scan(&tableBytes, &indexBytes, &rows); err != nil {
		return nil, err
	}
	var histBytes, minuteCol, hourCol, hourRows, minuteRows, hourlyBytes, hourlyRows int64
	if err := e.pool.QueryRow(ctx, `SELECT pg_total_relation_size('pggit.performance_histograms'),
		coalesce(sum(pg_column_size(h.*)) FILTER (WHERE bucket_seconds = 60), 0)::bigint,
		coalesce(sum(pg_column_size(h.*)) FILTER (WHERE bucket_seconds = 3600), 0)::bigint,
		count(*) FILTER (WHERE bucket_seconds = 3600), count(*) FILTER (WHERE bucket_seconds = 60),
		pg_total_relation_size('pggit.performance_hourly'), (SELECT count(*) FROM pggit.performance_hourly)
		FROM pggit.performance_histograms h`).Scan(&histBytes, &minuteCol, &hourCol, &hourRows, &minuteRows,
		&hourlyBytes, &hourlyRows); err != nil {
		return nil, err
	}
	var total int64
	if err := e.pool.QueryRow(ctx, `SELECT coalesce((SELECT sum(pg_total_relation_size(relid))::bigint
		FROM pg_partition_tree('pggit.performance_metrics')), pg_total_relation_size('pggit.performance_metrics'))`).Scan(&total); err != nil {
		return nil, err
	}
	// The histogram table's bytes (heap, indexes, TOAST) shared between
	// minute and hour rows in proportion of their row bytes.
	share := func(col int64) float64 {
		if minuteCol+hourCol == 0 {
			return 0
		}
		return float64(histBytes) * float64(col) / float64(minuteCol+hourCol)
	}
	hourBytes := share(hourCol) / float64(max(1, hourRows))
	// Minute rows per operation-hour: the last 48 h hold minute rows.
	minuteOpHours := float64(minuteRows) / 60
	minuteBytesPerOpHour := share(minuteCol) / math.Max(1, minuteOpHours)
	perSample := float64(tableBytes+indexBytes) / float64(max(1, rows))
	s := &section{
		title: fmt.Sprintf("Storage at %s samples", fmtInt(st.samples)),
		notes: []string{
			fmt.Sprintf("Samples: %s, a whole day of %s rows (%s the table with its TOAST and maps, %s its two indexes).",
				part, fmtInt(rows), fmtBytes(tableBytes), fmtBytes(indexBytes)),
			fmt.Sprintf("All samples: %s on disk for %s rows.", fmtBytes(total), fmtInt(st.samples)),
			fmt.Sprintf("Histograms: %s (table, indexes, TOAST) for %s hour rows and %s minute rows (the last 48 h), shared in proportion of their row bytes (pg_column_size): %s bytes an hour row, %s bytes a row on average.",
				fmtBytes(histBytes), fmtInt(hourRows), fmtInt(minuteRows), fmtInt(int64(hourBytes)), fmtInt((minuteCol+hourCol)/max(1, minuteRows+hourRows))),
			fmt.Sprintf("Hourly rollup (performance_hourly): %s rows, %s bytes a row (table and indexes).",
				fmtInt(hourlyRows), fmtInt(hourlyBytes/max(1, hourlyRows))),
			"The histogram table was rewritten (VACUUM FULL) after the load's compaction, which deleted most of its rows at once: its steady size under a running worker, whose compaction deletes an hour at a time and whose freed space autovacuum lets new rows reuse.",
		},
		ratios: []ratio{
			{name: "bytes per sample (a day's partition: table + indexes / rows)", value: perSample, unit: " B"},
			{name: "bytes per operation-hour of histogram (hour rows, after compaction)", value: hourBytes, unit: " B"},
			{name: "bytes per operation-hour of minute histograms (the last 48 h)", value: minuteBytesPerOpHour, unit: " B"},
			{name: "bytes per operation-hour of hourly rollup", value: float64(hourlyBytes) / float64(max(1, hourlyRows)), unit: " B"},
		},
	}
	return s, nil
}

func fmtBytes(n int64) string {
	switch f := float64(n); {
	case f >= 1<<30:
		return fmt.Sprintf("%.2f GB", f/(1<<30))
	case f >= 1<<20:
		return fmt.Sprintf("%.1f MB", f/(1<<20))
	case f >= 1<<10:
		return fmt.Sprintf("%.1f kB", f/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
