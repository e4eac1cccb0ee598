// Package metrics exposes pggit-monitor to Prometheus: the state of the
// database (open alerts, notification queue, baseline age, recalculation
// runs), read at scrape time, and counters of the dispatcher and of recorders,
// fed as they work.
//
//	m := metrics.New(client)
//	prometheus.MustRegister(m)
//	worker, _ := client.NewWorker(&monitor.WorkerConfig{
//		Dispatcher: &monitor.DispatcherConfig{OnDelivery: m.ObserveDelivery},
//	})
//	m.WatchRecorder(rec)
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pggit/pggit-monitor/monitor"
)

const namespace = "pggit"

// Metrics is a prometheus.Collector for one pggit-monitor database.
type Metrics struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	logger  *slog.Logger

	delivered *prometheus.CounterVec
	latency   *prometheus.HistogramVec

	openAlerts    *prometheus.Desc
	queueDepth    *prometheus.Desc
	queueOldest   *prometheus.Desc
	baselineAge   *prometheus.Desc
	recalcRuns    *prometheus.Desc
	recalcLastDur *prometheus.Desc
	detectLag     *prometheus.Desc
	detectLastDur *prometheus.Desc
	samplesRec    *prometheus.Desc
	samplesDrop   *prometheus.Desc
	strays        *prometheus.Desc
	partsAhead    *prometheus.Desc
	scrapeErrors  prometheus.Counter

	mu        sync.Mutex
	recorders []*monitor.Recorder
}

// Options tune New. A nil *Options means all defaults.
type Options struct {
	// QueryTimeout bounds the database queries of one scrape. Defaults to 5s.
	QueryTimeout time.Duration
	// Logger receives scrape errors. Defaults to slog.Default().
	Logger *slog.Logger
}

// New returns the metrics of the database behind pool.
func New(pool *pgxpool.Pool, opts *Options) *Metrics {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.QueryTimeout == 0 {
		o.QueryTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Metrics{
		pool: pool, timeout: o.QueryTimeout, logger: o.Logger,
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "notification_deliveries_total",
			Help: "Delivery attempts of notification batches by channel and outcome (sent, retry, dead).",
		}, []string{"channel", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "notification_delivery_duration_seconds",
			Help:    "Time to deliver one notification batch (one HTTP request or SMTP session), by channel.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"channel"}),
		openAlerts: prometheus.NewDesc(namespace+"_alerts_open", "Open (unresolved) alerts by severity and type.",
			[]string{"severity", "type"}, nil),
		queueDepth: prometheus.NewDesc(namespace+"_notification_queue_batches", "Notification batches not yet sent, by status.",
			[]string{"status"}, nil),
		queueOldest: prometheus.NewDesc(namespace+"_notification_queue_oldest_age_seconds", "Age of the oldest notification batch not yet sent.",
			nil, nil),
		baselineAge: prometheus.NewDesc(namespace+"_baseline_age_seconds", "Time since the active baseline of an operation was calculated.",
			[]string{"operation", "scope"}, nil),
		recalcRuns: prometheus.NewDesc(namespace+"_baseline_recalculations_total", "Baseline recalculation runs by status.",
			[]string{"status"}, nil),
		recalcLastDur: prometheus.NewDesc(namespace+"_baseline_recalculation_last_duration_seconds", "Duration of the last finished recalculation run.",
			nil, nil),
		detectLag: prometheus.NewDesc(namespace+"_detection_lag_seconds", "Time since the end of the last minute bucket detection judged.",
			nil, nil),
		detectLastDur: prometheus.NewDesc(namespace+"_detection_last_duration_seconds", "Duration of the last detection run that judged new buckets.",
			nil, nil),
		samplesRec: prometheus.NewDesc(namespace+"_samples_recorded_total", "Samples accepted by the watched recorders.", nil, nil),
		samplesDrop: prometheus.NewDesc(namespace+"_samples_dropped_total", "Samples the watched recorders dropped (buffer full, or unwritten at close).",
			nil, nil),
		strays: prometheus.NewDesc(namespace+"_sample_default_partition_rows",
			"Samples in the default partition of pggit.performance_metrics: recorded outside every partition's range (0 when all is well).",
			nil, nil),
		partsAhead: prometheus.NewDesc(namespace+"_sample_partitions_ahead_seconds",
			"Time from now to the end of the last partition of samples (negative: new samples go to the default partition).",
			nil, nil),
		scrapeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "metrics_scrape_errors_total",
			Help: "Scrapes whose database queries failed (their gauges are missing from that scrape).",
		}),
	}
}

// ObserveDelivery counts one delivery attempt; use it as
// DispatcherConfig.OnDelivery.
func (m *Metrics) ObserveDelivery(ev monitor.DeliveryEvent) {
	channel := ev.WebhookType
	if channel == "" {
		channel = "unknown"
	}
	m.delivered.WithLabelValues(channel, ev.Outcome).Inc()
	m.latency.WithLabelValues(channel).Observe(ev.Latency.Seconds())
}

// WatchRecorder adds a recorder's counters to pggit_samples_recorded_total and
// pggit_samples_dropped_total.
func (m *Metrics) WatchRecorder(r *monitor.Recorder) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recorders = append(m.recorders, r)
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.delivered.Describe(ch)
	m.latency.Describe(ch)
	m.scrapeErrors.Describe(ch)
	for _, d := range []*prometheus.Desc{m.openAlerts, m.queueDepth, m.queueOldest, m.baselineAge,
		m.recalcRuns, m.recalcLastDur, m.detectLag, m.detectLastDur, m.samplesRec, m.samplesDrop,
		m.strays, m.partsAhead} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.delivered.Collect(ch)
	m.latency.Collect(ch)

	var recorded, dropped uint64
	m.mu.Lock()
	for _, r := range m.recorders {
		st := r.Stats()
		recorded += st.Recorded
		dropped += st.Dropped
	}
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.samplesRec, prometheus.CounterValue, float64(recorded))
	ch <- prometheus.MustNewConstMetric(m.samplesDrop, prometheus.CounterValue, float64(dropped))

	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	if err := m.collectDB(ctx, ch); err != nil {
		m.scrapeErrors.Inc()
		m.logger.Warn("pggit: metrics scrape failed", slog.String("error", err.Error()))
	}
	m.scrapeErrors.Collect(ch)
}

func (m *Metrics) collectDB(ctx context.Context, ch chan<- prometheus.Metric) error {
	var (
		sev, typ, status, op, scope string
		n                           int64
		age                         float64
	)
	rows, _ := m.pool.Query(ctx, `SELECT severity, alert_type, count(*) FROM pggit.performance_alerts
		WHERE resolved_at IS NULL GROUP BY severity, alert_type`)
	if _, err := pgx.ForEachRow(rows, []any{&sev, &typ, &n}, func() error {
		ch <- prometheus.MustNewConstMetric(m.openAlerts, prometheus.GaugeValue, float64(n), sev, typ)
		return nil
	}); err != nil {
		return err
	}

	depth := map[string]int64{"accumulating": 0, "ready": 0, "sending": 0, "failed": 0}
	var oldest float64
	rows, _ = m.pool.Query(ctx, `SELECT status, count(*), coalesce(extract(epoch FROM clock_timestamp() - min(opened_at)), 0)
		FROM pggit.notification_batch_queue WHERE status IN ('accumulating', 'ready', 'sending', 'failed') GROUP BY status`)
	if _, err := pgx.ForEachRow(rows, []any{&status, &n, &age}, func() error {
		depth[status] = n
		oldest = max(oldest, age)
		return nil
	}); err != nil {
		return err
	}
	for status, n := range depth {
		ch <- prometheus.MustNewConstMetric(m.queueDepth, prometheus.GaugeValue, float64(n), status)
	}
	ch <- prometheus.MustNewConstMetric(m.queueOldest, prometheus.GaugeValue, oldest)

	rows, _ = m.pool.Query(ctx, `SELECT operation_type, scope, extract(epoch FROM clock_timestamp() - calculated_at)
		FROM pggit.performance_baselines WHERE is_active`)
	if _, err := pgx.ForEachRow(rows, []any{&op, &scope, &age}, func() error {
		ch <- prometheus.MustNewConstMetric(m.baselineAge, prometheus.GaugeValue, age, op, scope)
		return nil
	}); err != nil {
		return err
	}

	runs := map[string]int64{monitor.RunSuccess: 0, monitor.RunPartial: 0, monitor.RunTimeout: 0, monitor.RunFailed: 0}
	rows, _ = m.pool.Query(ctx, `SELECT status, count(*) FROM pggit.baseline_recalc_execution
		WHERE status <> 'RUNNING' GROUP BY status`)
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		runs[status] = n
		return nil
	}); err != nil {
		return err
	}
	for status, n := range runs {
		ch <- prometheus.MustNewConstMetric(m.recalcRuns, prometheus.CounterValue, float64(n), status)
	}
	var lastMS *float64
	err := m.pool.QueryRow(ctx, `SELECT duration_ms FROM pggit.baseline_recalc_execution
		WHERE finished_at IS NOT NULL ORDER BY execution_id DESC LIMIT 1`).Scan(&lastMS)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if lastMS != nil {
		ch <- prometheus.MustNewConstMetric(m.recalcLastDur, prometheus.GaugeValue, *lastMS/1000)
	}

	var lag, detectMS *float64
	if err := m.pool.QueryRow(ctx, `SELECT extract(epoch FROM clock_timestamp() - p.evaluated_through),
			(SELECT duration_ms FROM pggit.detection_runs ORDER BY run_id DESC LIMIT 1)
		FROM pggit.detection_progress p`).Scan(&lag, &detectMS); err != nil {
		return err
	}
	if lag != nil {
		ch <- prometheus.MustNewConstMetric(m.detectLag, prometheus.GaugeValue, *lag)
	}
	if detectMS != nil {
		ch <- prometheus.MustNewConstMetric(m.detectLastDur, prometheus.GaugeValue, *detectMS/1000)
	}

	var ahead *float64
	if err := m.pool.QueryRow(ctx, `SELECT pggit.default_partition_rows(),
			(SELECT extract(epoch FROM max(p.range_end) - clock_timestamp()) FROM pggit.sample_partitions() p)`).
		Scan(&n, &ahead); err != nil {
		return err
	}
	ch <- prometheus.MustNewConstMetric(m.strays, prometheus.GaugeValue, float64(n))
	if ahead != nil {
		ch <- prometheus.MustNewConstMetric(m.partsAhead, prometheus.GaugeValue, *ahead)
	}
	return nil
}
