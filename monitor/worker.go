package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// Defaults of WorkerConfig.
const (
	DefaultRecalcInterval    = 24 * time.Hour
	DefaultPartitionInterval = time.Hour
	// DefaultRetention is the default of retention_samples_days (30 days).
	DefaultRetention         = 30 * 24 * time.Hour
	DefaultRetentionInterval = time.Hour
	DefaultRetentionBatch    = 10_000
	DefaultSchedulerTick     = time.Minute
	DefaultRollupInterval    = 5 * time.Minute
	DefaultDetectInterval    = time.Minute
	DefaultCompactInterval   = time.Hour
	DefaultMinuteHistograms  = 48 * time.Hour
)

// Scheduled job names (pggit.scheduled_jobs).
const (
	JobRecalculate = "recalculate_baselines"
	JobRetention   = "sample_retention"
	JobRollup      = "hourly_rollup"
	JobDetect      = "detection"
	JobCompact     = "histogram_compaction"
	JobPartitions  = "sample_partitions"
)

// WorkerConfig configures a Worker. A nil *WorkerConfig means all defaults.
type WorkerConfig struct {
	// Dispatcher configures the notification dispatcher. Its Worker name also
	// names this worker in pggit.scheduled_jobs.
	Dispatcher *DispatcherConfig
	// RecalcInterval is how often baselines are recalculated. Defaults to
	// DefaultRecalcInterval (daily).
	RecalcInterval time.Duration
	// Recalc are the options of the scheduled recalculation; its Reason is
	// always ReasonScheduled.
	Recalc *RecalculateOpts
	// Retention is how long samples are kept, rounded up to whole days and
	// stored as retention_samples_days when the worker starts; at least the
	// recalculation's lookback.
	//
	// Deprecated: set RetentionSettings.SamplesDays (Client.SetRetentionSettings)
	// instead; zero (the default) leaves the setting alone.
	Retention time.Duration
	// RetentionInterval is how often retention runs: partitions of samples
	// older than retention_samples_days are dropped, then finished records
	// past their settings deleted. Defaults to DefaultRetentionInterval
	// (hourly).
	RetentionInterval time.Duration
	// PartitionInterval is how often partitions of samples are created ahead
	// (PartitionSettings.AheadDays). Defaults to DefaultPartitionInterval
	// (hourly).
	PartitionInterval time.Duration
	// RetentionBatch bounds one DELETE of samples, and the rows of each table
	// one step of Client.ApplyRetention deletes, so retention never holds
	// long locks. Defaults to DefaultRetentionBatch (10,000).
	RetentionBatch int
	// RollupInterval is how often the hourly rollup behind
	// v_operation_performance_trend is refreshed, the current hour included
	// (the view's current hour is as old as the last refresh). Defaults to
	// DefaultRollupInterval (5 minutes).
	RollupInterval time.Duration
	// DetectInterval is how often detection runs (Client.RunDetection).
	// Defaults to DefaultDetectInterval (every minute).
	DetectInterval time.Duration
	// CompactInterval is how often minute histograms older than
	// MinuteHistograms are compacted into hour histograms, and the
	// histogram rollups of recalculation brought up to date. Defaults to
	// DefaultCompactInterval (hourly).
	CompactInterval time.Duration
	// MinuteHistograms is how long histograms keep their minute resolution.
	// Defaults to DefaultMinuteHistograms (48 hours); at least 2 hours
	// (detection reads the last hour by minute).
	MinuteHistograms time.Duration
	// Tick is how often the scheduler looks for due jobs. Defaults to
	// DefaultSchedulerTick (1 minute).
	Tick time.Duration
}

// Worker is the long-lived process of pggit-monitor: the notification
// dispatcher plus a scheduler that runs detection every minute, recalculates
// baselines, deletes old samples and finished records past their retention
// settings (Client.ApplyRetention), compacts old minute histograms into hours
// and refreshes the hourly rollup of the trend view. Several workers may
// share a database: each scheduled job is claimed
// by one UPDATE that succeeds once per period (pggit.claim_scheduled_job), so it
// runs once per period whichever worker claims it.
type Worker struct {
	client     *Client
	cfg        WorkerConfig
	recalc     RecalculateOpts
	dispatcher *Dispatcher
	name       string
	logger     *slog.Logger

	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewWorker returns a Worker; Start runs it.
func (c *Client) NewWorker(cfg *WorkerConfig) (*Worker, error) {
	var v WorkerConfig
	if cfg != nil {
		v = *cfg
	}
	if v.RecalcInterval == 0 {
		v.RecalcInterval = DefaultRecalcInterval
	}
	if v.PartitionInterval == 0 {
		v.PartitionInterval = DefaultPartitionInterval
	}
	if v.RetentionInterval == 0 {
		v.RetentionInterval = DefaultRetentionInterval
	}
	if v.RetentionBatch == 0 {
		v.RetentionBatch = DefaultRetentionBatch
	}
	if v.Tick == 0 {
		v.Tick = DefaultSchedulerTick
	}
	if v.RollupInterval == 0 {
		v.RollupInterval = DefaultRollupInterval
	}
	if v.DetectInterval == 0 {
		v.DetectInterval = DefaultDetectInterval
	}
	if v.CompactInterval == 0 {
		v.CompactInterval = DefaultCompactInterval
	}
	if v.MinuteHistograms == 0 {
		v.MinuteHistograms = DefaultMinuteHistograms
	}
	recalc := v.Recalc.withDefaults()
	recalc.Reason = ReasonScheduled
	switch {
	case v.RecalcInterval < time.Second || v.RecalcInterval > 365*24*time.Hour:
		return nil, argError("RecalcInterval", "must be between 1s and 365 days, got %s", v.RecalcInterval)
	case v.RetentionInterval < time.Second || v.RetentionInterval > 365*24*time.Hour:
		return nil, argError("RetentionInterval", "must be between 1s and 365 days, got %s", v.RetentionInterval)
	case v.RollupInterval < time.Second || v.RollupInterval > 24*time.Hour:
		return nil, argError("RollupInterval", "must be between 1s and 24h, got %s", v.RollupInterval)
	case v.DetectInterval < time.Second || v.DetectInterval > time.Hour:
		return nil, argError("DetectInterval", "must be between 1s and 1h, got %s", v.DetectInterval)
	case v.CompactInterval < time.Second || v.CompactInterval > 24*time.Hour:
		return nil, argError("CompactInterval", "must be between 1s and 24h, got %s", v.CompactInterval)
	case v.MinuteHistograms < 2*time.Hour || v.MinuteHistograms > 365*24*time.Hour:
		return nil, argError("MinuteHistograms", "must be between 2h and 365 days, got %s", v.MinuteHistograms)
	case v.PartitionInterval < time.Second || v.PartitionInterval > 24*time.Hour:
		return nil, argError("PartitionInterval", "must be between 1s and 24h, got %s", v.PartitionInterval)
	case v.Retention != 0 && v.Retention < time.Duration(recalc.LookbackDays)*24*time.Hour:
		return nil, argError("Retention", "must be at least the recalculation lookback (%d days), got %s", recalc.LookbackDays, v.Retention)
	case v.RetentionBatch < 1 || v.RetentionBatch > 1_000_000:
		return nil, argError("RetentionBatch", "must be between 1 and 1000000, got %d", v.RetentionBatch)
	case v.Tick < time.Millisecond:
		return nil, argError("Tick", "must be at least 1ms, got %s", v.Tick)
	}
	d, err := c.NewDispatcher(v.Dispatcher)
	if err != nil {
		return nil, err
	}
	return &Worker{client: c, cfg: v, recalc: recalc, dispatcher: d, name: d.cfg.Worker,
		logger: c.logger.With(slog.String("worker", d.cfg.Worker))}, nil
}

// Dispatcher returns the worker's dispatcher (for its Stats).
func (w *Worker) Dispatcher() *Dispatcher { return w.dispatcher }

// Start runs the dispatcher and the scheduler in the background until Stop.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return errors.New("pggit: worker already started")
	}
	if w.cfg.Retention != 0 {
		days := int((w.cfg.Retention + 24*time.Hour - 1) / (24 * time.Hour))
		if err := w.client.SetRetentionSettings(ctx, RetentionSettings{SamplesDays: days}); err != nil {
			return fmt.Errorf("storing WorkerConfig.Retention: %w", err)
		}
	}
	if err := w.dispatcher.Start(ctx); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(WithoutTracing(context.WithoutCancel(ctx)))
	w.running, w.cancel, w.done = true, cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		w.schedule(sctx)
	}()
	return nil
}

// Stop stops the scheduler (a job in progress is cancelled and recorded as
// failed) and drains the dispatcher's in-flight deliveries; see
// Dispatcher.Stop.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.running {
		w.mu.Unlock()
		return nil
	}
	w.running = false
	w.mu.Unlock()
	w.cancel()
	<-w.done
	return w.dispatcher.Stop(ctx)
}

func (w *Worker) schedule(ctx context.Context) {
	ticker := time.NewTicker(w.cfg.Tick)
	defer ticker.Stop()
	for {
		for _, job := range []string{JobPartitions, JobDetect, JobRecalculate, JobRetention, JobRollup, JobCompact} {
			if _, err := w.RunDueJob(ctx, job); err != nil && ctx.Err() == nil {
				w.logger.Error("pggit: scheduled job failed", slog.String("job", job), slog.String("error", err.Error()))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// RunDueJob runs job (JobPartitions, JobDetect, JobRecalculate, JobRetention,
// JobRollup or JobCompact) if its period has passed since it last started on any worker,
// and reports whether it ran.
func (w *Worker) RunDueJob(ctx context.Context, job string) (bool, error) {
	period := w.cfg.RecalcInterval
	run := w.runRecalc
	switch job {
	case JobRecalculate:
	case JobRetention:
		period, run = w.cfg.RetentionInterval, w.runRetention
	case JobRollup:
		period, run = w.cfg.RollupInterval, w.runRollup
	case JobDetect:
		period, run = w.cfg.DetectInterval, w.runDetect
	case JobCompact:
		period, run = w.cfg.CompactInterval, w.runCompact
	case JobPartitions:
		period, run = w.cfg.PartitionInterval, w.runPartitions
	default:
		return false, argError("job", "must be %s, %s, %s, %s, %s or %s, got %q",
			JobPartitions, JobDetect, JobRecalculate, JobRetention, JobRollup, JobCompact, job)
	}
	claimed, err := w.client.queries.ClaimScheduledJob(ctx, job, w.name, int32(period/time.Second))
	if err != nil || !claimed {
		return false, mapError(err)
	}
	jobErr := run(ctx)
	var msg *string
	if jobErr != nil {
		m := jobErr.Error()
		msg = &m
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.client.queries.FinishScheduledJob(fctx, job, w.name, msg); err != nil {
		return true, errors.Join(jobErr, mapError(err))
	}
	return true, jobErr
}

func (w *Worker) runRecalc(ctx context.Context) error {
	opts := w.recalc
	_, err := w.client.RecalculateAllBaselinesRolling(ctx, &opts)
	return err
}

func (w *Worker) runDetect(ctx context.Context) error {
	changed, err := w.client.RunDetection(ctx, time.Time{})
	for _, a := range changed {
		w.logger.Info("pggit: alert", slog.Int64("alert_id", a.ID), slog.String("operation", a.OperationType),
			slog.String("scope", a.Scope), slog.String("type", a.Type), slog.String("severity", a.Severity),
			slog.Bool("open", a.Open()))
	}
	return err
}

// runCompact merges the minute histograms of hours that started more than
// MinuteHistograms ago into hour histograms, looking 6 hours further back
// than that (minute rows a long-stopped worker left behind stay minute rows:
// sums over them are just as exact). Then it brings the histogram rollups up
// to date (the hours that ended at least 10 minutes ago, and those changed
// since they were built), so a recalculation from histograms finds them
// built.
func (w *Worker) runCompact(ctx context.Context) error {
	hours := time.Now().Add(-w.cfg.MinuteHistograms).Truncate(time.Hour)
	n, err := w.client.queries.CompactHistograms(ctx, hours.Add(-6*time.Hour), hours, hours)
	if err != nil {
		return mapError(err)
	}
	w.logger.Info("pggit: histograms compacted", slog.Int64("rows_removed", n))
	built, err := w.client.queries.RefreshHistogramRollups(ctx)
	if err != nil {
		return mapError(err)
	}
	w.logger.Info("pggit: histogram rollups refreshed", slog.Int64("rollups_written", built))
	return nil
}

// runRollup rolls the hours of v_operation_performance_trend up to now,
// the current hour included, so the view reads only the rollup: computing an
// hour's p99 from its samples costs a sort of every sample of the hour (143 ms
// at 140,000 samples an hour in the 100 M benchmark), the rollup's row one
// index probe. The current hour is as old as the last run (RollupInterval);
// the next run recomputes it, and the one after the hour ends completes it.
func (w *Worker) runRollup(ctx context.Context) error {
	_, err := w.client.queries.RollupPerformanceHoursWithCurrent(ctx)
	return mapError(err)
}

// runPartitions creates the partitions of samples for the days ahead
// (PartitionSettings.AheadDays), and any missing since now.
func (w *Worker) runPartitions(ctx context.Context) error {
	created, err := w.client.CreateSamplePartitions(ctx, time.Now(), time.Time{})
	if err != nil {
		return err
	}
	for _, p := range created {
		w.logger.Info("pggit: sample partition created", slog.String("partition", p.Name),
			slog.Time("from", p.Start), slog.Time("to", p.End), slog.Int64("moved_rows", p.MovedRows))
	}
	return nil
}

// runRetention drops the partitions of samples older than
// retention_samples_days, deletes the older samples partitions leave (the
// default partition's strays, a partition straddling the cutoff) in batches
// of RetentionBatch, each in its own transaction, then the finished records
// and histograms older than their settings (Client.ApplyRetention, the same
// batch per table). The settings are checked first: a bad one deletes
// nothing.
func (w *Worker) runRetention(ctx context.Context) error {
	settings, err := w.client.RetentionSettings(ctx)
	if err != nil {
		return fmt.Errorf("retention settings: %w", err)
	}
	dropped, err := w.client.DropExpiredSamplePartitions(ctx)
	if err != nil {
		return fmt.Errorf("dropping sample partitions: %w", err)
	}
	for _, p := range dropped {
		w.logger.Info("pggit: sample partition dropped", slog.String("partition", p.Name),
			slog.Time("to", p.End), slog.Int64("bytes", p.Bytes))
	}
	before := time.Now().AddDate(0, 0, -settings.SamplesDays)
	total := 0
	for {
		n, err := w.client.queries.DeleteOldSamples(ctx, before, int32(w.cfg.RetentionBatch))
		if err != nil {
			return fmt.Errorf("retention after %d samples: %w", total, mapError(err))
		}
		total += int(n)
		if int(n) < w.cfg.RetentionBatch {
			break
		}
	}
	w.logger.Info("pggit: old samples deleted", slog.Int("partitions", len(dropped)), slog.Int("samples", total),
		slog.Time("before", before))
	res, err := w.client.ApplyRetention(ctx, w.cfg.RetentionBatch)
	if err != nil {
		return fmt.Errorf("retention after deleting %d rows: %w", res.Total(), err)
	}
	attrs := []any{slog.Int("steps", res.Steps)}
	for _, table := range slices.Sorted(maps.Keys(res.Deleted)) {
		attrs = append(attrs, slog.Int64(table, res.Deleted[table]))
	}
	w.logger.Info("pggit: old records deleted", attrs...)
	return nil
}
