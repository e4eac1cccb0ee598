// Command pggit-monitor runs pggit-monitor against a PostgreSQL database: the
// demo, migrations, baseline recalculation, and listing baselines. It is a
// thin layer over the library (packages migrate and monitor).
//
// The database comes from DATABASE_URL, or from the PG* environment variables
// (PGHOST, PGPORT, PGUSER, PGDATABASE, ...). `demo` without either starts a
// throwaway PostgreSQL cluster from the local server binaries.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pggit/pggit-monitor/internal/demo"
	"github.com/pggit/pggit-monitor/internal/pgserver"
	"github.com/pggit/pggit-monitor/migrate"
	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/metrics"
	"github.com/pggit/pggit-monitor/monitor/ui"
)

const usage = `pggit-monitor: performance baselines and regression alerts for PostgreSQL operations

Usage:
  pggit-monitor <command> [flags]

Commands:
  demo                      the whole pipeline on a throwaway database (or DATABASE_URL)
  migrate up|down|down-to N|status
                            apply or roll back the pggit schema
  run                       the worker: notification dispatcher + scheduler
                            (detection every minute, daily recalculation,
                            partitions ahead, retention, histogram compaction)
                            until SIGTERM
  detect                    run detection now (the worker does every minute)
  backtest                  replay detection over stored history, writing nothing
  recalc                    recalculate every rolling baseline now
  baselines                 list the active baselines
  status                    health, open alerts, hourly trend and queues (the dashboard views)
  partitions [-from T [-to T]]
                            list the partitions of samples, or create them for a range
  alerts list|ack|resolve|accept
                            look at and act on alerts
  snooze add|list|cancel    silence alerts for a while (recorded, not notified)
  webhook add|list|test|rotate-keys
                            notification channels (secrets encrypted with the
                            key ring in PGGIT_WEBHOOK_KEYS or PGGIT_WEBHOOK_KEYS_FILE)

Database: DATABASE_URL, or the PG* environment variables.
Run 'pggit-monitor <command> -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "pggit-monitor: %v\n", oneLine(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "recalc":
		return cmdRecalc(ctx, args[1:], stdout, stderr)
	case "detect":
		return cmdDetect(ctx, args[1:], stdout, stderr)
	case "backtest":
		return cmdBacktest(ctx, args[1:], stdout, stderr)
	case "baselines":
		return cmdBaselines(ctx, args[1:], stdout, stderr)
	case "status":
		return cmdStatus(ctx, args[1:], stdout, stderr)
	case "partitions":
		return cmdPartitions(ctx, args[1:], stdout, stderr)
	case "alerts":
		return cmdAlerts(ctx, args[1:], stdout, stderr)
	case "snooze":
		return cmdSnooze(ctx, args[1:], stdout, stderr)
	case "webhook":
		return cmdWebhook(ctx, args[1:], stdin, stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pggit-monitor %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// connect opens a pool from DATABASE_URL or the PG* variables.
func connect(ctx context.Context) (*pgxpool.Pool, error) {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" && os.Getenv("PGHOST") == "" && os.Getenv("PGDATABASE") == "" && os.Getenv("PGSERVICE") == "" {
		return nil, errors.New("no database: set DATABASE_URL (postgres://user@host:5432/db) or the PG* variables")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("bad DATABASE_URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	return pool, nil
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "demo [-serve] [-addr host:port]", stderr)
	serve := fs.Bool("serve", false, "after the demo, keep serving the web console of its data until Ctrl-C")
	addr := fs.String("addr", "127.0.0.1:8089", "with -serve, where the console listens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var pool *pgxpool.Pool
	if os.Getenv("DATABASE_URL") != "" {
		p, err := connect(ctx)
		if err != nil {
			return err
		}
		pool = p
		fmt.Fprintln(stdout, "Using DATABASE_URL.")
	} else {
		fmt.Fprintln(stdout, "No DATABASE_URL: starting a throwaway PostgreSQL server (local binaries, else a testcontainers container)...")
		dsn, stop, err := pgserver.Provision(ctx, pgserver.Backend(os.Getenv("PGTEST_BACKEND")), nil, "DATABASE_URL")
		if err != nil {
			return err
		}
		defer stop()
		p, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return err
		}
		pool = p
	}
	defer pool.Close()
	if err := demo.Run(ctx, pool, stdout); err != nil {
		return err
	}
	if !*serve {
		fmt.Fprintf(stdout, "\nWeb console of this data: `go run ./cmd/pggit-monitor demo -serve` keeps it up at http://%s/ui/\n", *addr)
		return nil
	}
	return serveDemoConsole(ctx, pool, *addr, stdout)
}

// serveDemoConsole serves the web console of the demo's data, with a token
// made for the run so every action can be tried, until ctx ends.
func serveDemoConsole(ctx context.Context, pool *pgxpool.Pool, addr string, stdout io.Writer) error {
	client, err := monitor.New(pool, &monitor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	token := "demo-" + hex.EncodeToString(b)
	h, err := ui.New(ui.Config{Client: client, Token: token, BasePath: "/ui"})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", h)
	mux.Handle("/{$}", http.RedirectHandler("/ui/", http.StatusFound))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(stdout, "\nWeb console: http://%s/ui/  (sign in with any name and the token %s; Ctrl-C stops it)\n", ln.Addr(), token)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "migrate up|down|down-to VERSION|status", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("migrate: want one of up, down, down-to VERSION, status")
	}
	pool, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrate.NewFromPool(pool, nil)
	if err != nil {
		return err
	}
	defer m.Close()

	var res []migrate.Result
	switch sub := fs.Arg(0); sub {
	case "up":
		res, err = m.Up(ctx)
	case "down":
		res, err = m.Down(ctx)
	case "down-to":
		if fs.NArg() != 2 {
			return errors.New("migrate down-to: want a VERSION (0 removes the whole schema)")
		}
		v, perr := strconv.ParseInt(fs.Arg(1), 10, 64)
		if perr != nil || v < 0 {
			return fmt.Errorf("migrate down-to: VERSION must be a number >= 0, got %q", fs.Arg(1))
		}
		res, err = m.DownTo(ctx, v)
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED AT")
		for _, s := range st {
			at := "pending"
			if s.Applied {
				at = s.AppliedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Version, s.Name, at)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("migrate: unknown subcommand %q (want up, down, down-to, status)", sub)
	}
	for _, r := range res {
		fmt.Fprintf(stdout, "%s %s (%s)\n", r.Direction, r.Name, r.Duration.Round(time.Millisecond))
	}
	if err != nil {
		return err
	}
	if len(res) == 0 {
		fmt.Fprintln(stdout, "nothing to do")
	}
	return nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "run [flags]", stderr)
	recalcEvery := fs.Duration("recalc-interval", monitor.DefaultRecalcInterval, "how often baselines are recalculated")
	retention := fs.Duration("retention", 0, "deprecated: use -retention-samples-days (how long samples are kept, stored as whole days)")
	retentionEvery := fs.Duration("retention-interval", monitor.DefaultRetentionInterval, "how often retention runs (drops old partitions of samples, deletes old records)")
	partitionWidth := fs.Duration("partition-width", 0, "width of new partitions of samples, whole hours from 1h to 744h (stored as samples_partition_width; 0: keep the stored value, default 24h)")
	partitionAhead := fs.Int("partition-ahead-days", 0, fmt.Sprintf("days ahead partitions of samples are created, 1..%d (stored as samples_partition_ahead_days; 0: keep the stored value, default %d)", monitor.MaxPartitionAheadDays, monitor.DefaultPartitionAheadDays))
	detectEvery := fs.Duration("detect-interval", monitor.DefaultDetectInterval, "how often detection runs")
	minuteHist := fs.Duration("minute-histograms", monitor.DefaultMinuteHistograms, "how long histograms keep minute resolution before compaction into hours")
	concurrency := fs.Int("concurrency", monitor.DefaultDispatcherConcurrency, "deliveries at once")
	poll := fs.Duration("poll-interval", monitor.DefaultDispatcherPollInterval, "dispatcher polling fallback (LISTEN/NOTIFY wakes it sooner)")
	lease := fs.Duration("lease", monitor.DefaultDispatcherLease, "how long a claimed batch belongs to this worker (extended while it sends; another worker takes it over only after a crash)")
	requestTimeout := fs.Duration("request-timeout", monitor.DefaultDispatcherRequestTimeout, "bound of one delivery (HTTP request or SMTP session), at most half the lease")
	pagerduty := fs.String("pagerduty-url", monitor.DefaultPagerDutyURL, "PagerDuty Events API v2 endpoint")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long in-flight deliveries may finish")
	name := fs.String("name", "", "worker name in leases and logs (default <hostname>-<pid>-<random>)")
	metricsAddr := fs.String("metrics-addr", ":9187", "address of the Prometheus /metrics endpoint (empty: none)")
	runbooks := fs.String("runbook-base-url", "", "base URL of the runbooks linked from alert messages (default: keep the stored one)")
	retain := retentionFlags(fs)
	withUI := fs.Bool("ui", false, "serve the web console at /ui/ on the -metrics-addr listener")
	uiTokenFile := fs.String("ui-token-file", "", "file holding the console token that allows actions (default: $PGGIT_UI_TOKEN; none: read-only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *withUI && *metricsAddr == "" {
		return errors.New("-ui needs a listener: set -metrics-addr")
	}
	if err := retain.validate(); err != nil {
		return err
	}
	uiToken, err := consoleToken(*uiTokenFile)
	if err != nil {
		return err
	}
	pool, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	client, err := monitor.New(pool, &monitor.Config{Logger: logger})
	if err != nil {
		return err
	}
	if *runbooks != "" {
		if err := client.SetRunbookBaseURL(ctx, *runbooks); err != nil {
			return err
		}
	}
	if err := client.SetRetentionSettings(ctx, retain.settings()); err != nil {
		return err
	}
	if err := client.SetPartitionSettings(ctx, monitor.PartitionSettings{Width: *partitionWidth, AheadDays: *partitionAhead}); err != nil {
		return err
	}
	m := metrics.New(pool, &metrics.Options{Logger: logger})
	w, err := client.NewWorker(&monitor.WorkerConfig{
		Dispatcher: &monitor.DispatcherConfig{Worker: *name, Concurrency: *concurrency, PollInterval: *poll,
			Lease: *lease, RequestTimeout: *requestTimeout,
			PagerDutyURL: *pagerduty, OnDelivery: m.ObserveDelivery},
		RecalcInterval: *recalcEvery, Retention: *retention, RetentionInterval: *retentionEvery,
		DetectInterval: *detectEvery, MinuteHistograms: *minuteHist,
	})
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics endpoint: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if *withUI {
			h, err := ui.New(ui.Config{Client: client, Token: uiToken, BasePath: "/ui", Logger: logger})
			if err != nil {
				return err
			}
			mux.Handle("/ui/", h)
			mux.Handle("/{$}", http.RedirectHandler("/ui/", http.StatusFound))
			mode := "read-only (no token)"
			if uiToken != "" {
				mode = "actions need the token"
			}
			logger.Info("serving the web console", slog.String("url", "http://"+ln.Addr().String()+"/ui/"), slog.String("mode", mode))
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		logger.Info("serving Prometheus metrics", slog.String("addr", ln.Addr().String()), slog.String("path", "/metrics"))
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	logger.Info("pggit-monitor worker running; SIGTERM or Ctrl-C drains and stops")
	<-ctx.Done()
	logger.Info("pggit-monitor worker stopping: draining in-flight deliveries", slog.Duration("timeout", *drain))
	dctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := w.Stop(dctx); err != nil {
		return fmt.Errorf("drain: %w (undelivered batches go back to the queue)", err)
	}
	st := w.Dispatcher().Stats()
	logger.Info("pggit-monitor worker stopped", slog.Uint64("sent", st.Sent), slog.Uint64("retried", st.Retried), slog.Uint64("dead", st.Dead))
	return nil
}

// consoleToken reads the console token from file, else PGGIT_UI_TOKEN; it
// must be at least 16 characters, so it cannot be guessed.
func consoleToken(file string) (string, error) {
	tok := os.Getenv("PGGIT_UI_TOKEN")
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("-ui-token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok != "" && len(tok) < 16 {
		return "", errors.New("the console token (PGGIT_UI_TOKEN or -ui-token-file) must be at least 16 characters")
	}
	return tok, nil
}

func cmdRecalc(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("recalc", "recalc [flags]", stderr)
	lookback := fs.Int("lookback-days", monitor.DefaultLookbackDays, "window of samples in days, 1..365")
	minSamples := fs.Int("min-samples", monitor.DefaultMinSamples, "fewest samples that make a baseline")
	force := fs.Bool("force", false, "replace baselines even when p99 moved less than 5%")
	maxExec := fs.Duration("max-execution", monitor.DefaultMaxExecution, "wall-clock limit of the run, 1s..24h")
	method := fs.String("method", string(monitor.MethodAuto),
		"auto, exact (every sample) or histogram (merged histograms: quantiles within 1%)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Zero means "default" in RecalculateOpts; on the command line it is a mistake.
	switch {
	case *lookback == 0:
		return errors.New("-lookback-days must be between 1 and 365, got 0")
	case *minSamples == 0:
		return errors.New("-min-samples must be at least 1, got 0")
	case *maxExec == 0:
		return errors.New("-max-execution must be between 1s and 24h, got 0s")
	}
	return withClient(ctx, func(client *monitor.Client) error {
		return recalc(ctx, client, &monitor.RecalculateOpts{
			LookbackDays: *lookback, MinSamples: *minSamples, Force: *force, MaxExecution: *maxExec,
			Method: monitor.Method(*method),
		}, stdout)
	})
}

func recalc(ctx context.Context, client *monitor.Client, opts *monitor.RecalculateOpts, stdout io.Writer) error {
	stop := progress(os.Stderr, isTerminal(os.Stderr), "recalculating baselines")
	res, err := client.RecalculateAllBaselinesRolling(ctx, opts)
	stop()
	if res != nil {
		e := res.Execution
		fmt.Fprintf(stdout, "run %d: %s in %s\n", e.ID, e.Status, e.Duration.Round(time.Microsecond))
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "OPERATION\tSCOPE\tSTATUS\tSAMPLES\tMESSAGE")
		for _, r := range res.Operations {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.OperationType, r.Scope, r.Status, r.SampleCount, r.Message)
		}
		tw.Flush()
	}
	return err
}

func cmdBaselines(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("baselines", "baselines [-operation NAME]", stderr)
	op := fs.String("operation", "", "only this operation")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return withClient(ctx, func(client *monitor.Client) error {
		return printBaselines(ctx, client, *op, stdout)
	})
}

func printBaselines(ctx context.Context, client *monitor.Client, op string, stdout io.Writer) error {
	bs, err := client.Baselines(ctx, op)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATION\tSCOPE\tSAMPLES\tP50_MS\tP95_MS\tP99_MS\tMULTIPLIER\tCALCULATED")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%.2f\t%s\n", b.OperationType, b.Scope, b.SampleCount,
			msf(b.P50), msf(b.P95), msf(b.P99), b.ThresholdMultiplier, b.CalculatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

var flagErrHelp = flag.ErrHelp

// stdin is where -secret-stdin reads; tests replace it.
var stdin io.Reader = os.Stdin

// quietLogger logs warnings and errors to standard error: commands print
// their own results.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func oneLine(err error) string {
	s := err.Error()
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
