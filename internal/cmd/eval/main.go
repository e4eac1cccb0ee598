// Command eval scores pggit-monitor's detectors on synthetic streams with
// known changes, next to the seed's per-sample rule (one sample >= 2x the
// baseline p99 opens an alert that never closes), and prints the tables of
// docs/DETECTION-QUALITY.md. `make eval` runs it.
//
// Streams (see streams.go): operations with log-uniform medians 0.5-200 ms,
// log-normal sigma 0.3-1.0, 2-20 samples a minute, a daily swing up to 20%,
// 0.1% of samples x20. Half are unchanged; the others get step regressions of
// +10/20/30/50/100/200%, regress-then-recover, 5-minute x5 spikes, gradual
// drifts, correlated pairs and decoys, at known times.
//
// The database sees what a live one would: samples are written by COPY (the
// histograms are built by the trigger), detection runs as the days go by
// (pggit.run_detection at each hour of sample time), and baselines are
// recalculated at the end of each day.
//
// It uses DATABASE_URL when set (in a fresh database pggit_eval_<pid>,
// dropped at the end), or else a throwaway local cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pggit/pggit-monitor/internal/pgserver"
	"github.com/pggit/pggit-monitor/migrate"
	"github.com/pggit/pggit-monitor/monitor"
)

type options struct {
	ops     int
	warmup  int
	days    int
	seed    uint64
	md      bool
	verbose bool
	keep    bool
	rescore string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "eval: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	o := &options{}
	fs.IntVar(&o.ops, "ops", 240, "operations (half unchanged)")
	fs.IntVar(&o.warmup, "warmup", 3, "days of history before the test period")
	fs.IntVar(&o.days, "days", 4, "days of the test period")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed of the streams")
	fs.BoolVar(&o.md, "md", false, "print Markdown tables")
	fs.BoolVar(&o.verbose, "v", false, "progress on stderr")
	fs.BoolVar(&o.keep, "keep", false, "keep the database (with DATABASE_URL) for a look afterwards")
	fs.StringVar(&o.rescore, "rescore", "", "score a database kept by -keep (same -ops, -warmup, -days, -seed) without simulating")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: eval [flags]\n\nScores the detectors on synthetic streams with known changes.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.ops < 20 || o.warmup < 1 || o.days < 1 || o.warmup+o.days > 7 {
		return fmt.Errorf("need -ops >= 20, -warmup >= 1, -days >= 1 and -warmup + -days <= 7 (the detection lookback)")
	}

	db, cleanup, err := openDB(ctx, o)
	if err != nil {
		return err
	}
	defer cleanup()
	client, err := monitor.New(db, &monitor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}

	end := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	if o.rescore != "" {
		var last time.Time
		if err := db.QueryRow(ctx, `SELECT max(bucket_start) FROM pggit.performance_histograms`).Scan(&last); err != nil {
			return err
		}
		end = last.Truncate(time.Hour).Add(time.Hour)
	}
	start := end.Add(-time.Duration(o.warmup+o.days) * 24 * time.Hour)
	testFrom := start.Add(time.Duration(o.warmup) * 24 * time.Hour)
	rng := rand.New(rand.NewPCG(o.seed, 0x9e3779b97f4a7c15))
	streams := plan(rng, o.ops, testFrom, end)
	ev := &evaluation{o: o, db: db, client: client, streams: streams,
		start: start, testFrom: testFrom, end: end, rng: rng}
	began := time.Now()
	if o.rescore == "" {
		if err := ev.simulate(ctx); err != nil {
			return err
		}
	}
	res, err := ev.score(ctx)
	if err != nil {
		return err
	}
	res.elapsed = time.Since(began)
	return res.print(stdout, o)
}

func (e *evaluation) logf(format string, args ...any) {
	if e.o.verbose {
		fmt.Fprintf(os.Stderr, "eval: "+format+"\n", args...)
	}
}

// evaluation is one run: the streams, the database, what was measured.
type evaluation struct {
	o       *options
	db      *pgxpool.Pool
	client  *monitor.Client
	streams []*stream
	rng     *rand.Rand

	start, testFrom, end time.Time
	samples              int64
	// Baseline p99 of operations with an open regression, before and after
	// each recalculation.
	protected []protection
	// Time spent writing samples, detecting and recalculating.
	loadTime, detectTime, recalcTime time.Duration
}

type protection struct {
	op            string
	before, after float64
}

// simulate writes the samples hour by hour, runs detection after each hour
// of samples and recalculates baselines at the end of each day.
func (e *evaluation) simulate(ctx context.Context) error {
	for h := e.start; h.Before(e.end); h = h.Add(time.Hour) {
		t0 := time.Now()
		if err := e.load(ctx, h, h.Add(time.Hour)); err != nil {
			return err
		}
		next := h.Add(time.Hour)
		t1 := time.Now()
		if _, err := e.client.RunDetection(ctx, next); err != nil {
			return fmt.Errorf("run_detection at %s: %w", next, err)
		}
		t2 := time.Now()
		e.loadTime += t1.Sub(t0)
		e.detectTime += t2.Sub(t1)
		if next.Sub(e.start)%(24*time.Hour) == 0 {
			if err := e.recalculate(ctx, next); err != nil {
				return err
			}
			e.recalcTime += time.Since(t2)
		}
		if e.o.verbose && next.Hour() == 0 {
			e.logf("%s: %d samples written", next.Format("2006-01-02 15:04"), e.samples)
		}
	}
	return nil
}

// load writes the samples of [from, to) of every stream with COPY.
func (e *evaluation) load(ctx context.Context, from, to time.Time) error {
	var rows [][]any
	for _, s := range e.streams {
		for m := from; m.Before(to); m = m.Add(time.Minute) {
			for range poisson(e.rng, s.rate) {
				at := m.Add(time.Duration(e.rng.Int64N(int64(time.Minute))))
				d := s.sampleAt(e.rng, at)
				rows = append(rows, []any{s.name, d, at})
			}
		}
	}
	n, err := e.db.CopyFrom(ctx, pgx.Identifier{"pggit", "performance_metrics"},
		[]string{"operation_type", "duration_microseconds", "recorded_at"}, pgx.CopyFromRows(rows))
	e.samples += n
	return err
}

// recalculate runs the daily recalculation and notes how it moved the
// baselines of operations with an open regression alert.
func (e *evaluation) recalculate(ctx context.Context, at time.Time) error {
	open, err := e.client.ListAlerts(ctx, &monitor.AlertFilter{OpenOnly: true, Limit: 10000})
	if err != nil {
		return err
	}
	regressed := map[string]bool{}
	for _, a := range open {
		if a.Type != monitor.AlertCorrelation && a.Type != monitor.AlertBaselineRecalcError {
			regressed[a.OperationType] = true
		}
	}
	before := map[string]float64{}
	for op := range regressed {
		if b, err := e.client.Baseline(ctx, op, ""); err == nil {
			before[op] = float64(b.P99)
		}
	}
	if _, err := e.client.RecalculateAllBaselinesRolling(ctx, &monitor.RecalculateOpts{MaxExecution: 10 * time.Minute}); err != nil {
		return fmt.Errorf("recalculation at %s: %w", at, err)
	}
	for op, p := range before {
		b, err := e.client.Baseline(ctx, op, "")
		if err != nil {
			return err
		}
		e.protected = append(e.protected, protection{op: op, before: p, after: float64(b.P99)})
	}
	return nil
}

func openDB(ctx context.Context, o *options) (*pgxpool.Pool, func(), error) {
	var cfg *pgxpool.Config
	var srv *pgserver.Server
	var err error
	if url := os.Getenv("DATABASE_URL"); url != "" {
		if cfg, err = pgxpool.ParseConfig(url); err != nil {
			return nil, nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
	} else {
		if srv, err = pgserver.Start(ctx, nil); err != nil {
			return nil, nil, err
		}
		if cfg, err = pgxpool.ParseConfig(srv.DSN("postgres")); err != nil {
			_ = srv.Stop()
			return nil, nil, err
		}
	}
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if o.rescore != "" {
		if srv != nil {
			_ = srv.Stop()
			return nil, nil, errors.New("-rescore needs DATABASE_URL")
		}
		dcfg := cfg.Copy()
		dcfg.ConnConfig.Database = o.rescore
		dcfg.ConnConfig.RuntimeParams["search_path"] = ""
		db, err := pgxpool.NewWithConfig(ctx, dcfg)
		if err != nil {
			return nil, nil, err
		}
		return db, func() { db.Close(); admin.Close() }, nil
	}
	name := fmt.Sprintf("pggit_eval_%d", os.Getpid())
	stopAll := func() {
		admin.Close()
		if srv != nil {
			_ = srv.Stop()
		}
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		stopAll()
		return nil, nil, err
	}
	dcfg := cfg.Copy()
	dcfg.ConnConfig.Database = name
	// The migrations' version table goes to the default search_path; the
	// evaluation itself runs with an empty one.
	var db *pgxpool.Pool
	mpool, err := pgxpool.NewWithConfig(ctx, dcfg.Copy())
	if err == nil {
		_, err = migrate.Up(ctx, mpool, nil)
		mpool.Close()
	}
	if err == nil {
		dcfg.ConnConfig.RuntimeParams["search_path"] = ""
		db, err = pgxpool.NewWithConfig(ctx, dcfg)
	}
	cleanup := func() {
		if db != nil {
			db.Close()
		}
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if o.keep && srv == nil {
			fmt.Fprintf(os.Stderr, "eval: kept database %s\n", name)
		} else {
			_, _ = admin.Exec(c, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
		stopAll()
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return db, cleanup, nil
}

// label shortens a duration for tables: 7m, 1h05m, "-" for none.
func label(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	d = d.Round(time.Minute)
	if d < time.Hour {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
}
