// Command bench measures pggit-monitor against references measured in the
// same run, on the same database, and prints the results as ratios:
//
//   - recalc: RecalculateAllBaselinesRolling against the bare grouped
//     statistics query it is built on, and the original per-operation loop;
//   - recorder: the Recorder against one raw COPY of the same rows, and one
//     INSERT per sample;
//   - histograms: the Recorder with the histograms maintained by the samples'
//     trigger against the trigger without them;
//   - detect: run_detection per minute and catching up a day, on 1,000
//     operations, and the storage of the histograms;
//   - snooze: is_alert_snoozed with 10,000 snoozes against a bare round trip;
//   - delivery: alerts delivered per second by the dispatcher, and the latency
//     from an alert's insert to its receipt with batching off;
//   - ui: the server time of every page of the web console at 10 M samples,
//     1,000 operations and 100,000 alerts;
//   - tracer: a loop of one-row queries through pgxpool with the pgx tracer
//     recording every query against the same loop without it.
//
// It uses DATABASE_URL when set (in a fresh database pggit_bench_<pid>, dropped
// at the end), or else a throwaway local cluster (package pgserver). Run it as
//
//	go run ./internal/cmd/bench [-md] [-samples N] [-ops K] [-runs R] ...
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/internal/pgserver"
	"github.com/pggit/pggit-monitor/migrate"
	"github.com/pggit/pggit-monitor/monitor"
)

// Targets of the ratios.
const (
	targetRecalc         = 1.30 // RecalculateAllBaselinesRolling / bare grouped query, at most
	targetRecorderCopy   = 0.75 // Recorder / raw COPY throughput, at least
	targetRecorderInsert = 20.0 // Recorder / one-INSERT-per-sample throughput, at least
	targetRecalcMethod   = 50.0 // recalculation exact / from histograms, at least
)

// benchSettings keep runs comparable: on the throwaway cluster they are server
// settings, and every connection sets them for its session too (so a
// DATABASE_URL server runs with the same ones).
var benchSettings = map[string]string{
	"work_mem":                        "64MB",
	"maintenance_work_mem":            "512MB",
	"max_parallel_workers_per_gather": "0",
}

// reportedSettings are printed with the machine.
var reportedSettings = []string{
	"shared_buffers", "work_mem", "maintenance_work_mem", "max_parallel_workers_per_gather",
	"jit", "fsync", "synchronous_commit", "autovacuum",
}

// recorderGoroutines call Record concurrently in the recorder benchmark.
const recorderGoroutines = 2

// statsSelect is the grouped statistics of a baseline, as computed by
// pggit.recalculate_all_baselines_rolling.
const statsSelect = `SELECT operation_type, scope, count(*), min(duration_microseconds),
       max(duration_microseconds), avg(duration_microseconds), stddev_samp(duration_microseconds),
       percentile_cont(ARRAY[0.5,0.75,0.9,0.95,0.99]::double precision[])
           WITHIN GROUP (ORDER BY duration_microseconds)
FROM pggit.performance_metrics
WHERE `

// referenceSQL is the reference of the recalculation benchmark: one grouped
// pass over the window.
const referenceSQL = statsSelect + `recorded_at > now() - interval '7 days' AND recorded_at <= now()
GROUP BY operation_type, scope`

// perOperationSQL is the original system's approach, run once per operation.
const perOperationSQL = statsSelect + `operation_type = $1
  AND recorded_at > now() - interval '7 days' AND recorded_at <= now()
GROUP BY operation_type, scope`

const generateSQL = `INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
SELECT 'op_' || lpad((g % $2::integer)::text, $3::integer, '0'),
       (exp(random() * 2 + 8))::bigint + 1,
       now() - random() * interval '6 days'
FROM generate_series(1, $1::integer) g`

const insertSQL = `INSERT INTO pggit.performance_metrics
    (operation_type, duration_microseconds, recorded_at, scope, user_name, metadata)
VALUES ($1, $2, $3, $4, $5, $6)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second signal, while cleaning up, kills the process.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s\n", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

type options struct {
	samples         int
	ops             int
	recorderSamples int
	insertSamples   int
	runs            int
	recalc          bool
	recorder        bool
	histograms      bool
	detect          bool
	detectOps       int
	detectRate      int
	detectHours     int
	snooze          bool
	delivery        bool
	views           bool
	tracer          bool
	ui              bool
	md              bool
	explain         bool
	verbose         bool
	keep            bool
	scale           bool
	scaleSamples    int
	scaleOps        int
	scaleDays       int
	scaleIngest     int
	scaleAlerts     int
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.samples, "samples", 10_000_000, "recalc, views, ui: samples")
	fs.IntVar(&o.ops, "ops", 50, "recalc: operations the samples are spread over")
	fs.IntVar(&o.recorderSamples, "recorder-samples", 500_000, "recorder: samples written by raw COPY and by the Recorder")
	fs.IntVar(&o.insertSamples, "insert-samples", 20_000, "recorder: samples written one INSERT each (the reference is extrapolated)")
	fs.IntVar(&o.runs, "runs", 3, "runs of each measurement; the median is reported")
	only := fs.String("only", "recalc,views,ui,recorder,histograms,detect,snooze,delivery,tracer", "benchmarks to run, comma-separated: recalc, views, ui, recorder, histograms, detect, snooze, delivery, tracer")
	fs.IntVar(&o.detectOps, "detect-ops", 1000, "histograms, detect, ui: operations")
	fs.IntVar(&o.detectRate, "detect-rate", 10, "detect: samples a minute per operation")
	fs.IntVar(&o.detectHours, "detect-hours", 25, "detect: hours judged (the catch-up covers all but the last)")
	fs.BoolVar(&o.md, "md", false, "print Markdown (for docs/BENCHMARKS.md)")
	fs.BoolVar(&o.explain, "explain", false, "recalc: also print EXPLAIN (ANALYZE, BUFFERS) of the reference query")
	fs.BoolVar(&o.verbose, "v", false, "print progress to stderr")
	fs.BoolVar(&o.scale, "scale", false, "run the scale benchmark alone (see scale.go): load -scale-samples samples into the partitioned table, then ingestion, recalculation, detection, views, retention and storage at that size")
	fs.IntVar(&o.scaleSamples, "scale-samples", 100_000_000, "scale: samples loaded (not timed)")
	fs.IntVar(&o.scaleOps, "scale-ops", 200, "scale: operations the samples are spread over (log-uniform frequencies)")
	fs.IntVar(&o.scaleDays, "scale-days", 30, "scale: whole days before today the samples are spread over (and today until now)")
	fs.IntVar(&o.scaleIngest, "scale-ingest", 2_000_000, "scale: samples written by raw COPY and by the Recorder in each ingestion run")
	fs.IntVar(&o.scaleAlerts, "scale-alerts", 100_000, "scale: alerts stored for the dashboard views")
	fs.BoolVar(&o.keep, "keep", false, "with DATABASE_URL: keep the benchmark database (its name is printed to stderr) to inspect it")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, b := range strings.Split(*only, ",") {
		switch strings.TrimSpace(b) {
		case "recalc":
			o.recalc = true
		case "recorder":
			o.recorder = true
		case "histograms":
			o.histograms = true
		case "detect":
			o.detect = true
		case "snooze":
			o.snooze = true
		case "delivery":
			o.delivery = true
		case "views":
			o.views = true
		case "tracer":
			o.tracer = true
		case "ui":
			o.ui = true
		case "":
		default:
			return nil, fmt.Errorf("-only: unknown benchmark %q (want recalc, views, ui, recorder, histograms, detect, snooze, delivery, tracer)", b)
		}
	}
	if o.scale {
		switch {
		case o.scaleOps < 2 || o.scaleOps > 100_000:
			return nil, fmt.Errorf("-scale-ops must be between 2 and 100000, got %d", o.scaleOps)
		case o.scaleDays < 4 || o.scaleDays > 365:
			return nil, fmt.Errorf("-scale-days must be between 4 and 365, got %d", o.scaleDays)
		case o.scaleSamples < 100*o.scaleOps || o.scaleSamples > math.MaxInt32:
			return nil, fmt.Errorf("-scale-samples must be between 100 per operation (%d) and %d, got %d", 100*o.scaleOps, math.MaxInt32, o.scaleSamples)
		case o.scaleAlerts < 100 || o.scaleAlerts > 10_000_000:
			return nil, fmt.Errorf("-scale-alerts must be between 100 and 10000000, got %d", o.scaleAlerts)
		case o.scaleIngest < 1:
			return nil, fmt.Errorf("-scale-ingest must be at least 1, got %d", o.scaleIngest)
		}
	}
	switch {
	case !o.recalc && !o.views && !o.recorder && !o.histograms && !o.detect && !o.snooze && !o.delivery && !o.tracer && !o.ui:
		return nil, errors.New("-only: nothing to run")
	case o.ops < 1:
		return nil, fmt.Errorf("-ops must be at least 1, got %d", o.ops)
	case o.samples < 10*o.ops:
		return nil, fmt.Errorf("-samples must be at least 10 per operation (%d), got %d", 10*o.ops, o.samples)
	case o.samples > math.MaxInt32:
		return nil, fmt.Errorf("-samples must be at most %d, got %d", math.MaxInt32, o.samples)
	case o.recorderSamples < 1:
		return nil, fmt.Errorf("-recorder-samples must be at least 1, got %d", o.recorderSamples)
	case o.insertSamples < 1:
		return nil, fmt.Errorf("-insert-samples must be at least 1, got %d", o.insertSamples)
	case o.detectOps < 1 || o.detectRate < 1 || o.detectHours < 2:
		return nil, fmt.Errorf("-detect-ops and -detect-rate must be at least 1 and -detect-hours at least 2")
	case o.runs < 1:
		return nil, fmt.Errorf("-runs must be at least 1, got %d", o.runs)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	e, err := setup(ctx, o)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := e.close(); err == nil {
			err = cerr
		}
	}()

	m, err := describeMachine(ctx, e)
	if err != nil {
		return err
	}
	var results []*section
	if o.scale {
		if results, err = benchScale(ctx, e, o); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		return report(stdout, o, m, results)
	}
	if o.recalc {
		s, err := benchRecalc(ctx, e, o)
		if err != nil {
			return fmt.Errorf("recalc: %w", err)
		}
		results = append(results, s)
	}
	for _, b := range []struct {
		on   bool
		name string
		run  func(context.Context, *env, *options) (*section, error)
	}{
		{o.views, "views", benchViews},
		{o.ui, "ui", benchUI},
		{o.recorder, "recorder", benchRecorder},
		{o.histograms, "histograms", benchHistograms},
		{o.detect, "detect", benchDetect},
		{o.snooze, "snooze", benchSnooze},
		{o.delivery, "delivery", benchDelivery},
		{o.tracer, "tracer", benchTracer},
	} {
		if !b.on {
			continue
		}
		e.logf("%s: starting", b.name)
		s, err := b.run(ctx, e, o)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		results = append(results, s)
	}
	return report(stdout, o, m, results)
}

// env is the database under test.
type env struct {
	verbose bool
	keep    bool
	srv     *pgserver.Server
	admin   *pgxpool.Pool // the server's maintenance database: creates and drops dbName
	dbName  string
	pool    *pgxpool.Pool // dbName, empty search_path
	client  *monitor.Client
}

func (e *env) logf(format string, args ...any) {
	if e.verbose {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}
}

func setup(ctx context.Context, o *options) (_ *env, err error) {
	e := &env{verbose: o.verbose, keep: o.keep}
	defer func() {
		if err != nil {
			_ = e.close()
		}
	}()

	var cfg *pgxpool.Config
	if url := os.Getenv("DATABASE_URL"); url != "" {
		cfg, err = pgxpool.ParseConfig(url)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
	} else {
		e.logf("starting a throwaway PostgreSQL cluster")
		settings := map[string]string{"autovacuum": "off"}
		for k, v := range benchSettings {
			settings[k] = v
		}
		if o.scale {
			for k, v := range scaleServerSettings {
				settings[k] = v
			}
		}
		e.srv, err = pgserver.Start(ctx, &pgserver.Options{Settings: settings})
		if err != nil {
			return nil, err
		}
		if cfg, err = pgxpool.ParseConfig(e.srv.DSN("postgres")); err != nil {
			return nil, err
		}
	}
	cfg.MaxConns = 2
	if e.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	name := fmt.Sprintf("pggit_bench_%d", os.Getpid())
	if _, err := e.admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("creating database %s: %w", name, err)
	}
	e.dbName = name

	dbCfg := cfg.Copy()
	dbCfg.ConnConfig.Database = name
	// The migrations' version table goes to the default search_path.
	mpool, err := pgxpool.NewWithConfig(ctx, dbCfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", name, err)
	}
	_, err = migrate.Up(ctx, mpool, nil)
	mpool.Close()
	if err != nil {
		return nil, err
	}

	pcfg := dbCfg.Copy()
	pcfg.MaxConns = 4
	pcfg.ConnConfig.RuntimeParams["search_path"] = ""
	for k, v := range benchSettings {
		pcfg.ConnConfig.RuntimeParams[k] = v
	}
	if e.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", name, err)
	}
	if err := e.pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", name, err)
	}
	e.client, err = monitor.New(e.pool, &monitor.Config{Logger: slog.New(slog.DiscardHandler)})
	return e, err
}

// close drops the benchmark database and stops the cluster. It runs on its
// own context: the run's may be cancelled already.
func (e *env) close() error {
	if e.pool != nil {
		e.pool.Close()
	}
	var errs []error
	if e.admin != nil {
		// A throwaway cluster goes as a whole.
		if e.dbName != "" && e.srv == nil && e.keep {
			fmt.Fprintf(os.Stderr, "bench: kept database %s\n", e.dbName)
		} else if e.dbName != "" && e.srv == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := e.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+e.dbName+" WITH (FORCE)"); err != nil {
				errs = append(errs, fmt.Errorf("dropping database %s: %w", e.dbName, err))
			}
			cancel()
		}
		e.admin.Close()
	}
	if err := e.srv.Stop(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (e *env) exec(ctx context.Context, sql string, args ...any) error {
	_, err := e.pool.Exec(ctx, sql, args...)
	return err
}

// resetAlerts empties the alerts, snoozes and notification queue a
// benchmark left (TRUNCATE: no dead rows for the next benchmark to wade
// through, with autovacuum off).
// copyVariant is one raw COPY of rows (gen.CopyMetrics, one call), timed to
// the end of the COPY, then checked (untimed) by check.
func copyVariant(e *env, name string, rows []gen.CopyMetricsParams, check func(context.Context) error) *variant {
	return &variant{name: name, samples: len(rows), run: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		n, err := gen.New(e.pool).CopyMetrics(ctx, rows)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if n != int64(len(rows)) {
			return 0, fmt.Errorf("copied %d rows, want %d", n, len(rows))
		}
		return d, check(ctx)
	}}
}

// primeDetection leaves detection as a worker that ran until judged would:
// progress at judged, hour summaries of [from, judged), references built.
func (e *env) primeDetection(ctx context.Context, from, judged time.Time) error {
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE pggit.detection_progress SET evaluated_through = $1`, []any{judged}},
		{`SELECT pggit.detection_summarize_hours($1, $2, NULL, false)`, []any{from, judged}},
		{`SELECT pggit.detection_build_references($1, NULL, true)`, []any{judged}},
	} {
		if err := e.exec(ctx, q.sql, q.args...); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) resetAlerts(ctx context.Context) error {
	return e.exec(ctx, `TRUNCATE pggit.performance_alerts, pggit.alert_snooze, pggit.notification_batch_queue,
		pggit.notification_batch_open, pggit.alert_notification_log CASCADE`)
}

func (e *env) countMetrics(ctx context.Context) (int64, error) {
	var n int64
	err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pggit.performance_metrics`).Scan(&n)
	return n, err
}

// checkpoint flushes dirty buffers so that the next measurement does not pay
// for the previous one; without the privilege (a DATABASE_URL server) it is
// skipped.
func (e *env) checkpoint(ctx context.Context) error {
	err := e.exec(ctx, "CHECKPOINT")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return nil
	}
	return err
}

// machine describes where the benchmark ran.
type machine struct {
	command  string
	cpus     string
	platform string
	goVer    string
	postgres string
	server   string
	settings string
}

func describeMachine(ctx context.Context, e *env) (*machine, error) {
	m := &machine{
		command:  commandLine(),
		cpus:     strconv.Itoa(runtime.NumCPU()),
		platform: runtime.GOOS + "/" + runtime.GOARCH,
		goVer:    runtime.Version(),
	}
	if model := cpuModel(); model != "" {
		m.cpus += " (" + model + ")"
	}
	if e.srv != nil {
		m.server = "throwaway local cluster (internal/pgserver: fsync off, synchronous_commit off)"
		if bin, err := pgserver.FindBinDir(); err == nil {
			if out, err := exec.CommandContext(ctx, filepath.Join(bin, "postgres"), "--version").Output(); err == nil {
				m.postgres = strings.TrimSpace(string(out))
			}
		}
	} else {
		m.server = "DATABASE_URL, database " + e.dbName
	}
	if m.postgres == "" {
		if err := e.pool.QueryRow(ctx, "SELECT pg_catalog.version()").Scan(&m.postgres); err != nil {
			return nil, err
		}
	}
	var settings []string
	for _, name := range reportedSettings {
		var v string
		if err := e.pool.QueryRow(ctx, "SELECT pg_catalog.current_setting($1)", name).Scan(&v); err != nil {
			return nil, err
		}
		settings = append(settings, name+"="+v)
	}
	m.settings = strings.Join(settings, " ")
	return m, nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// commandLine is the command as typed: "go run ./internal/cmd/bench" for a
// binary that go run built.
func commandLine() string {
	name := os.Args[0]
	if strings.Contains(name, "go-build") {
		name = "go run ./internal/cmd/bench"
	}
	parts := []string{name}
	for _, a := range os.Args[1:] {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=.,/:+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// variant is one measured way of doing the work; runs returns the time of the
// measured part.
type variant struct {
	name    string
	samples int // samples per run, for throughput; 0 reports time only
	run     func(ctx context.Context) (time.Duration, error)
	times   []time.Duration
}

func (v *variant) median() time.Duration {
	t := slices.Clone(v.times)
	slices.Sort(t)
	n := len(t)
	if n%2 == 1 {
		return t[n/2]
	}
	return (t[n/2-1] + t[n/2]) / 2
}

// rate is the median throughput in samples per second.
func (v *variant) rate() float64 {
	return float64(v.samples) / v.median().Seconds()
}

// measure runs every variant runs times, rotating their order from run to
// run so that none always goes first; before runs ahead of each measurement.
func measure(ctx context.Context, e *env, runs int, variants []*variant, before func(context.Context) error) error {
	for r := range runs {
		for i := range variants {
			v := variants[(r+i)%len(variants)]
			if before != nil {
				if err := before(ctx); err != nil {
					return err
				}
			}
			d, err := v.run(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			e.logf("run %d/%d: %s: %s", r+1, runs, v.name, fmtDuration(d))
			v.times = append(v.times, d)
		}
	}
	return nil
}

// ratio is one result compared with its reference.
type ratio struct {
	name   string
	value  float64
	unit   string // empty: a ratio ("1.23x"); else an absolute figure in unit
	target string // empty: informational
	pass   bool
}

// section is the outcome of one benchmark.
type section struct {
	title    string
	notes    []string
	variants []*variant
	ratios   []ratio
	plan     []string
	planOf   string // what plan shows; defaults to the reference query
}

// underTarget reports each variant's median in milliseconds against an
// absolute target.
func underTarget(variants []*variant, target time.Duration) []ratio {
	var rs []ratio
	for _, v := range variants {
		rs = append(rs, ratio{name: v.name + " (ms)", value: float64(v.median()) / float64(time.Millisecond), unit: " ms",
			target: fmt.Sprintf("< %d ms", target/time.Millisecond), pass: v.median() < target})
	}
	return rs
}

func opNames(k int) []string {
	width := max(2, len(strconv.Itoa(k-1)))
	names := make([]string, k)
	for i := range names {
		names[i] = fmt.Sprintf("op_%0*d", width, i)
	}
	return names
}

func benchRecalc(ctx context.Context, e *env, o *options) (*section, error) {
	names := opNames(o.ops)
	e.logf("recalc: generating %d samples over %d operations", o.samples, o.ops)
	start := time.Now()
	if err := e.exec(ctx, `TRUNCATE pggit.performance_metrics`); err != nil {
		return nil, err
	}
	if err := e.exec(ctx, generateSQL, o.samples, o.ops, len(names[0])-len("op_")); err != nil {
		return nil, fmt.Errorf("generating samples: %w", err)
	}
	if err := e.exec(ctx, `VACUUM ANALYZE pggit.performance_metrics`); err != nil {
		return nil, err
	}
	if err := e.checkpoint(ctx); err != nil {
		return nil, err
	}
	e.logf("recalc: samples ready in %s", fmtDuration(time.Since(start)))

	checkStats := func(groups int, samples int64) error {
		if groups != o.ops || samples != int64(o.samples) {
			return fmt.Errorf("got %d groups of %d samples, want %d of %d", groups, samples, o.ops, o.samples)
		}
		return nil
	}
	reference := &variant{name: "reference: one grouped query (bare SQL)", run: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		groups, samples, err := queryStats(ctx, e.pool, referenceSQL)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		return d, checkStats(groups, samples)
	}}
	// Method exact: the function's cost over the bare query it runs (auto
	// would go to the histograms above recalc_exact_max_samples).
	measured := &variant{name: "RecalculateAllBaselinesRolling (Force, Method exact)", run: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		res, err := e.client.RecalculateAllBaselinesRolling(ctx, &monitor.RecalculateOpts{Force: true, MaxExecution: 10 * time.Minute,
			Method: monitor.MethodExact})
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if ex := res.Execution; ex.Status != monitor.RunSuccess || ex.Updated != o.ops {
			return 0, fmt.Errorf("execution %d: status %s, %d of %d operations updated", ex.ID, ex.Status, ex.Updated, o.ops)
		}
		return d, nil
	}}
	perOperation := &variant{name: "original: one query per operation", run: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		var groups int
		var samples int64
		for _, op := range names {
			g, n, err := queryStats(ctx, e.pool, perOperationSQL, op)
			if err != nil {
				return 0, err
			}
			groups += g
			samples += n
		}
		d := time.Since(start)
		return d, checkStats(groups, samples)
	}}

	// Untimed warm-up: caches, the function's plan, the first baselines.
	e.logf("recalc: warming up")
	if _, err := reference.run(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", reference.name, err)
	}
	if _, err := measured.run(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", measured.name, err)
	}

	variants := []*variant{reference, measured, perOperation}
	if err := measure(ctx, e, o.runs, variants, nil); err != nil {
		return nil, err
	}

	s := &section{
		title: fmt.Sprintf("Baseline recalculation: %s samples, %d operations, 7-day window",
			fmtInt(int64(o.samples)), o.ops),
		notes: []string{
			"Samples: INSERT ... SELECT FROM generate_series, durations exp(U(8,10)) µs, recorded_at uniform over the last 6 days; then VACUUM ANALYZE.",
			"reference: the grouped statistics query alone (count, min, max, avg, stddev_samp, 5 percentiles), all rows read by the client.",
			"RecalculateAllBaselinesRolling with Force and Method exact, so every run replaces all baselines (history, results, execution record) from the samples.",
			"original: the same aggregate once per operation (WHERE operation_type = $1), looping in Go.",
			fmt.Sprintf("Times are the median of %d runs; the order of the variants rotates from run to run; one untimed warm-up of the first two.", o.runs),
		},
		variants: variants,
	}
	r := measured.median().Seconds() / reference.median().Seconds()
	s.ratios = append(s.ratios,
		ratio{name: "RecalculateAllBaselinesRolling / reference", value: r,
			target: fmt.Sprintf("<= %.2fx", targetRecalc), pass: r <= targetRecalc},
		ratio{name: "original per-operation loop / reference",
			value: perOperation.median().Seconds() / reference.median().Seconds()},
		ratio{name: "original per-operation loop / RecalculateAllBaselinesRolling",
			value: perOperation.median().Seconds() / measured.median().Seconds()},
	)

	if err := benchRecalcMethods(ctx, e, o, s); err != nil {
		return nil, err
	}

	if o.explain {
		plan, err := explain(ctx, e.pool, referenceSQL)
		if err != nil {
			return nil, fmt.Errorf("explain: %w", err)
		}
		s.plan = plan
	}
	return s, nil
}

// compactSQL leaves the histograms as a running worker does: hours older
// than 48 hours compacted (runCompact), the minutes of each closed hour
// merged (detection_close_hour).
const compactSQL = `SELECT pggit.compact_histograms('-infinity', now(), now() - interval '48 hours')`

// benchRecalcMethods compares the exact recalculation with the one from
// histograms on the samples benchRecalc generated, then on a fifth of them
// (regenerated), where the histogram time should be the same.
func benchRecalcMethods(ctx context.Context, e *env, o *options, s *section) error {
	method := func(m monitor.Method) func(context.Context) (time.Duration, error) {
		return func(ctx context.Context) (time.Duration, error) {
			start := time.Now()
			res, err := e.client.RecalculateAllBaselinesRolling(ctx, &monitor.RecalculateOpts{
				Force: true, MaxExecution: 10 * time.Minute, Method: m})
			d := time.Since(start)
			if err != nil {
				return 0, err
			}
			if ex := res.Execution; ex.Status != monitor.RunSuccess || ex.Updated != o.ops || ex.Method != m {
				return 0, fmt.Errorf("execution %d: status %s, method %s, %d of %d operations updated",
					ex.ID, ex.Status, ex.Method, ex.Updated, o.ops)
			}
			return d, nil
		}
	}
	// prepare leaves the state a running worker leaves: minutes older than
	// 48 hours compacted and the rollups refreshed, as its hourly
	// histogram_compaction job does (untimed; the first refresh builds every
	// hour and day). It returns the time of that first build.
	prepare := func(ctx context.Context) (time.Duration, error) {
		if err := e.exec(ctx, compactSQL); err != nil {
			return 0, err
		}
		// From nothing (the warm-up's run from histograms built them).
		if err := e.exec(ctx, `TRUNCATE pggit.histogram_rollups, pggit.histogram_rollup_dirty`); err != nil {
			return 0, err
		}
		if err := e.exec(ctx, `UPDATE pggit.histogram_rollup_state SET rolled_through = NULL`); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := e.exec(ctx, `SELECT pggit.refresh_histogram_rollups()`); err != nil {
			return 0, err
		}
		d := time.Since(start)
		if err := e.exec(ctx, `VACUUM ANALYZE pggit.performance_histograms, pggit.histogram_rollups, pggit.histogram_rollup_dirty`); err != nil {
			return 0, err
		}
		return d, nil
	}
	// hourly is the worker's hourly refresh when one new hour is due: the
	// last rolled hour is taken back (untimed), then rebuilt from its minute
	// rows, with its day when the hour closed one.
	hourly := func(ctx context.Context) (time.Duration, error) {
		if err := e.exec(ctx, `
WITH st AS (UPDATE pggit.histogram_rollup_state SET rolled_through = rolled_through - interval '1 hour'
            RETURNING rolled_through)
DELETE FROM pggit.histogram_rollups r USING st
WHERE (r.bucket_seconds = 3600 AND r.bucket_start >= st.rolled_through)
   OR (r.bucket_seconds = 86400 AND r.bucket_start + interval '1 day' > st.rolled_through)`); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := e.exec(ctx, `SELECT pggit.refresh_histogram_rollups()`); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	cold, err := prepare(ctx)
	if err != nil {
		return err
	}
	exact := &variant{name: fmt.Sprintf("exact (Method exact), %s samples", fmtInt(int64(o.samples))), run: method(monitor.MethodExact)}
	hist := &variant{name: fmt.Sprintf("from histograms (Method histogram), %s samples", fmtInt(int64(o.samples))), run: method(monitor.MethodHistogram)}
	refresh := &variant{name: fmt.Sprintf("worker's hourly rollup refresh, one hour due, %d operations", o.ops), run: hourly}
	if err := measure(ctx, e, o.runs, []*variant{exact, hist, refresh}, nil); err != nil {
		return err
	}

	small := o.samples / 5
	e.logf("recalc: regenerating %d samples", small)
	if err := e.exec(ctx, `TRUNCATE pggit.performance_metrics, pggit.performance_histograms, pggit.histogram_rollups`); err != nil {
		return err
	}
	if err := e.exec(ctx, generateSQL, small, o.ops, len(opNames(o.ops)[0])-len("op_")); err != nil {
		return fmt.Errorf("generating samples: %w", err)
	}
	if err := e.exec(ctx, `VACUUM ANALYZE pggit.performance_metrics`); err != nil {
		return err
	}
	if _, err := prepare(ctx); err != nil {
		return err
	}
	histSmall := &variant{name: fmt.Sprintf("from histograms (Method histogram), %s samples", fmtInt(int64(small))), run: method(monitor.MethodHistogram)}
	exactSmall := &variant{name: fmt.Sprintf("exact (Method exact), %s samples", fmtInt(int64(small))), run: method(monitor.MethodExact)}
	if err := measure(ctx, e, o.runs, []*variant{exactSmall, histSmall}, nil); err != nil {
		return err
	}

	s.variants = append(s.variants, exact, hist, refresh, exactSmall, histSmall)
	s.notes = append(s.notes,
		"exact / from histograms: RecalculateAllBaselinesRolling with Force and Method exact or histogram, in the state a running worker leaves: hours older than 48 h compacted (one row per operation-minute after), rollups refreshed by its hourly histogram_compaction job. Each run from histograms includes its own refresh (usually nothing due: two probes).",
		fmt.Sprintf("The first refresh (untimed above; the worker's first hourly job, or the first run from histograms without a worker) builds the hour and day rollups: %s at %s samples. Afterwards the worker's hourly refresh builds the hour that became due (timed above: the last rolled hour taken back, then rebuilt from its minute rows).",
			fmtDuration(cold), fmtInt(int64(o.samples))),
		fmt.Sprintf("The smaller size regenerates %s samples over the same 6 days and operations.", fmtInt(int64(small))),
	)
	r := exact.median().Seconds() / hist.median().Seconds()
	s.ratios = append(s.ratios,
		ratio{name: fmt.Sprintf("exact / from histograms at %s samples", fmtInt(int64(o.samples))), value: r,
			target: fmt.Sprintf(">= %.0fx", targetRecalcMethod), pass: r >= targetRecalcMethod},
		ratio{name: fmt.Sprintf("from histograms: %s / %s samples (flat: about 1)", fmtInt(int64(o.samples)), fmtInt(int64(small))),
			value: hist.median().Seconds() / histSmall.median().Seconds()},
		ratio{name: fmt.Sprintf("exact / from histograms at %s samples", fmtInt(int64(small))),
			value: exactSmall.median().Seconds() / histSmall.median().Seconds()},
	)
	return nil
}

// queryStats runs a statistics query and reads every row; it returns the
// number of groups and of samples in them.
func queryStats(ctx context.Context, db *pgxpool.Pool, sql string, args ...any) (int, int64, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return 0, 0, err
	}
	var (
		op, scope       string
		n, minUs, maxUs int64
		mean            float64
		stddev          *float64
		pct             []float64
		groups          int
		samples         int64
	)
	_, err = pgx.ForEachRow(rows, []any{&op, &scope, &n, &minUs, &maxUs, &mean, &stddev, &pct}, func() error {
		if len(pct) != 5 {
			return fmt.Errorf("%s: %d percentiles, want 5", op, len(pct))
		}
		groups++
		samples += n
		return nil
	})
	return groups, samples, err
}

func explain(ctx context.Context, db *pgxpool.Pool, sql string) ([]string, error) {
	rows, err := db.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func benchRecorder(ctx context.Context, e *env, o *options) (*section, error) {
	m := o.recorderSamples
	names := opNames(o.ops)
	// The same samples for every variant: durations log-uniform over
	// e^8..e^10 µs; raw COPY and the INSERTs get them as rows.
	rng := rand.New(rand.NewPCG(1, 2))
	durations := make([]time.Duration, m)
	rows := make([]gen.CopyMetricsParams, m)
	base := time.Now()
	for i := range durations {
		us := int64(math.Exp(rng.Float64()*2+8)) + 1
		durations[i] = time.Duration(us) * time.Microsecond
		rows[i] = gen.CopyMetricsParams{
			OperationType:        names[i%len(names)],
			DurationMicroseconds: us,
			RecordedAt:           base.Add(time.Duration(i) * time.Microsecond),
		}
	}
	insertN := o.insertSamples // cycling through rows if there are more

	checkCount := func(ctx context.Context, want int) error {
		n, err := e.countMetrics(ctx)
		if err != nil {
			return err
		}
		if n != int64(want) {
			return fmt.Errorf("%d rows in pggit.performance_metrics, want %d", n, want)
		}
		return nil
	}

	rawCopy := copyVariant(e, "raw COPY: one CopyFrom of all rows", rows, func(ctx context.Context) error {
		return checkCount(ctx, m)
	})

	var waits int
	recorder := &variant{name: fmt.Sprintf("Recorder: Record from %d goroutines, then Close", recorderGoroutines), samples: m, run: func(ctx context.Context) (time.Duration, error) {
		rec, err := e.client.NewRecorder(nil)
		if err != nil {
			return 0, err
		}
		var wg sync.WaitGroup
		errs := make([]error, recorderGoroutines)
		w := make([]int, recorderGoroutines)
		start := time.Now()
		for g := range recorderGoroutines {
			wg.Go(func() {
				w[g], errs[g] = produce(ctx, rec, names, durations, g, recorderGoroutines)
			})
		}
		wg.Wait()
		cerr := rec.Close(ctx)
		d := time.Since(start)
		if err := errors.Join(append(errs, cerr)...); err != nil {
			return 0, err
		}
		for _, n := range w {
			waits += n
		}
		st := rec.Stats()
		if st.Written != uint64(m) || st.Dropped != 0 || st.Rejected != 0 || st.FlushErrors != 0 {
			return 0, fmt.Errorf("recorder stats %+v, want %d written and nothing dropped, rejected or failed", st, m)
		}
		return d, checkCount(ctx, m)
	}}

	insert := &variant{name: "one INSERT per sample (pool.Exec, sequential)", samples: insertN, run: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		for i := range insertN {
			r := &rows[i%m]
			if _, err := e.pool.Exec(ctx, insertSQL, r.OperationType, r.DurationMicroseconds, r.RecordedAt,
				r.Scope, r.UserName, r.Metadata); err != nil {
				return 0, err
			}
		}
		d := time.Since(start)
		return d, checkCount(ctx, insertN)
	}}

	if err := e.checkpoint(ctx); err != nil {
		return nil, err
	}
	variants := []*variant{rawCopy, recorder, insert}
	truncate := func(ctx context.Context) error {
		return e.exec(ctx, `TRUNCATE pggit.performance_metrics`)
	}
	if err := measure(ctx, e, o.runs, variants, truncate); err != nil {
		return nil, err
	}

	s := &section{
		title: fmt.Sprintf("Sample ingestion: %s samples (one-INSERT reference: %s, extrapolated)",
			fmtInt(int64(m)), fmtInt(int64(insertN))),
		notes: []string{
			"pggit.performance_metrics is truncated before each measurement; every variant writes the same 6 columns through the statement-level trigger.",
			"raw COPY: gen.CopyMetrics of pre-built rows in one call (one COPY, one transaction).",
			fmt.Sprintf("Recorder: client.NewRecorder(nil) (batch %d, max buffered %s); timed from the first Record to the return of Close; Written, Dropped and the row count are checked.",
				monitor.DefaultRecorderBatchSize, fmtInt(monitor.DefaultRecorderMaxBuffered)),
			fmt.Sprintf("Record never blocks, so the producers hold back while the buffer is within %s samples of its bound (%d waits in all), instead of having samples dropped.",
				fmtInt(int64(recorderSlack())), waits),
			fmt.Sprintf("Throughput is the median of %d runs; the order of the variants rotates from run to run.", o.runs),
		},
		variants: variants,
	}
	rc := recorder.rate() / rawCopy.rate()
	ri := recorder.rate() / insert.rate()
	s.ratios = append(s.ratios,
		ratio{name: "Recorder / raw COPY (throughput)", value: rc,
			target: fmt.Sprintf(">= %.2fx", targetRecorderCopy), pass: rc >= targetRecorderCopy},
		ratio{name: "Recorder / one INSERT per sample (throughput)", value: ri,
			target: fmt.Sprintf(">= %.0fx", targetRecorderInsert), pass: ri >= targetRecorderInsert},
	)
	return s, nil
}

// recorderCheckEvery is how many samples a producer records between looks at
// the Recorder's buffer.
const recorderCheckEvery = 1000

// recorderSlack is how close to MaxBuffered the producers let the buffer get:
// each may add recorderCheckEvery samples between two looks.
func recorderSlack() int { return 2 * recorderGoroutines * recorderCheckEvery }

// produce records every stride-th sample from first on, and returns how many
// times it waited for the Recorder to catch up.
func produce(ctx context.Context, rec *monitor.Recorder, names []string, durations []time.Duration, first, stride int) (int, error) {
	limit := monitor.DefaultRecorderMaxBuffered - recorderSlack()
	waits := 0
	for i, k := first, 0; i < len(durations); i, k = i+stride, k+1 {
		if k%recorderCheckEvery == 0 {
			for rec.Stats().Buffered > limit {
				if err := ctx.Err(); err != nil {
					return waits, err
				}
				waits++
				time.Sleep(500 * time.Microsecond)
			}
		}
		if err := rec.Record(names[i%len(names)], durations[i]); err != nil {
			return waits, err
		}
	}
	return waits, nil
}

func report(w io.Writer, o *options, m *machine, sections []*section) error {
	var b strings.Builder
	info := [][2]string{
		{"Command", m.command},
		{"CPUs", m.cpus},
		{"Platform", m.platform},
		{"Go", m.goVer},
		{"PostgreSQL", m.postgres},
		{"Server", m.server},
		{"Settings", m.settings},
	}
	if o.md {
		for _, kv := range info {
			fmt.Fprintf(&b, "- **%s**: `%s`\n", kv[0], kv[1])
		}
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, kv := range info {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
		}
		tw.Flush()
	}

	var ratios [][]string
	for _, s := range sections {
		if o.md {
			fmt.Fprintf(&b, "\n### %s\n\n", s.title)
			for _, n := range s.notes {
				fmt.Fprintf(&b, "- %s\n", n)
			}
			b.WriteString("\n")
		} else {
			fmt.Fprintf(&b, "\n%s\n", s.title)
			for _, n := range s.notes {
				fmt.Fprintf(&b, "  %s\n", n)
			}
			b.WriteString("\n")
		}
		header := []string{"Variant", "Median", "Runs"}
		if len(s.variants) > 0 && s.variants[0].samples > 0 {
			header = []string{"Variant", "Samples/s (median)", "Median time", "Runs"}
		}
		var rows [][]string
		for _, v := range s.variants {
			runs := make([]string, len(v.times))
			for i, t := range v.times {
				runs[i] = fmtDuration(t)
			}
			if v.samples > 0 {
				rows = append(rows, []string{v.name, fmtInt(int64(math.Round(v.rate()))), fmtDuration(v.median()), strings.Join(runs, ", ")})
			} else {
				rows = append(rows, []string{v.name, fmtDuration(v.median()), strings.Join(runs, ", ")})
			}
		}
		if len(rows) > 0 {
			writeTable(&b, o.md, header, rows)
		}
		if len(s.plan) > 0 {
			of := s.planOf
			if of == "" {
				of = "the reference query"
			}
			if o.md {
				fmt.Fprintf(&b, "\nEXPLAIN (ANALYZE, BUFFERS) of %s:\n\n```text\n", of)
			} else {
				fmt.Fprintf(&b, "\nEXPLAIN (ANALYZE, BUFFERS) of %s:\n", of)
			}
			for _, l := range s.plan {
				fmt.Fprintf(&b, "%s\n", l)
			}
			if o.md {
				b.WriteString("```\n")
			}
		}
		for _, r := range s.ratios {
			target, result := "(info)", "-"
			if r.target != "" {
				target, result = r.target, "FAIL"
				if r.pass {
					result = "PASS"
				}
			}
			value := fmt.Sprintf("%.2fx", r.value)
			if r.unit != "" {
				value = fmtInt(int64(r.value+0.5)) + r.unit
			}
			ratios = append(ratios, []string{r.name, value, target, result})
		}
	}
	if o.md {
		b.WriteString("\n### Ratios\n\n")
	} else {
		b.WriteString("\nRatios\n\n")
	}
	writeTable(&b, o.md, []string{"Ratio", "Value", "Target", "Result"}, ratios)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTable(b *strings.Builder, md bool, header []string, rows [][]string) {
	if md {
		fmt.Fprintf(b, "| %s |\n", strings.Join(header, " | "))
		seps := make([]string, len(header))
		for i := range seps {
			seps[i] = "---"
			if i > 0 {
				seps[i] = "---:"
			}
		}
		fmt.Fprintf(b, "| %s |\n", strings.Join(seps, " | "))
		for _, r := range rows {
			fmt.Fprintf(b, "| %s |\n", strings.Join(r, " | "))
		}
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func fmtDuration(d time.Duration) string {
	switch s := d.Seconds(); {
	case s >= 100:
		return fmt.Sprintf("%.0f s", s)
	case s >= 10:
		return fmt.Sprintf("%.1f s", s)
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 0.01:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s >= 0.001:
		return fmt.Sprintf("%.1f ms", s*1000)
	default:
		return fmt.Sprintf("%.1f µs", s*1e6)
	}
}

// fmtInt formats n with thousands separators.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
