package monitor

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Retention settings (pggit.monitor_settings): how many days a finished
// record is kept after it ended. pggit.apply_retention reads them on every
// run, so every worker on a database applies the same ones.
const (
	SettingRetentionAlerts          = "retention_alerts_days"
	SettingRetentionNotifications   = "retention_notifications_days"
	SettingRetentionDeliveryLog     = "retention_delivery_log_days"
	SettingRetentionRuns            = "retention_runs_days"
	SettingRetentionBaselineHistory = "retention_baseline_history_days"
	SettingRetentionSamples         = "retention_samples_days"
	SettingRetentionHistograms      = "retention_histograms_days"
)

// Bounds of every retention setting, in days. Samples and histograms have
// their own defaults.
const (
	DefaultRetentionDays           = 90
	DefaultRetentionSamplesDays    = 30
	DefaultRetentionHistogramsDays = 400
	MaxRetentionDays               = 36500
)

// RetentionSettings are how many days finished records are kept after they
// ended (docs/operating.md, "Retention"). Open alerts, unfinished batches and
// runs, and anything a kept row references are never deleted.
type RetentionSettings struct {
	// AlertsDays keeps resolved alerts (from resolved_at), with their queue
	// items, and ended or cancelled snoozes. Defaults to 90.
	AlertsDays int
	// NotificationsDays keeps sent or dead notification batches and their
	// queue items. Defaults to 90.
	NotificationsDays int
	// DeliveryLogDays keeps rows of the delivery log
	// (pggit.alert_notification_log, from created_at). Defaults to 90.
	DeliveryLogDays int
	// RunsDays keeps finished baseline recalculation runs (with their
	// per-operation results) and detection runs. Defaults to 90.
	RunsDays int
	// BaselineHistoryDays keeps baseline history rows and inactive
	// baselines. Defaults to 90.
	BaselineHistoryDays int
	// SamplesDays keeps raw samples (pggit.performance_metrics): a partition
	// whose range ended longer ago is dropped whole. Defaults to 30.
	// Recalculation and detection read histograms, so it may be shorter than
	// the recalculation's lookback (recalculation then uses the histograms:
	// docs/baselines.md).
	SamplesDays int
	// HistogramsDays keeps latency histograms (pggit.performance_histograms,
	// by bucket start). Defaults to 400.
	HistogramsDays int
}

// retentionField is one setting and the field that holds it.
type retentionField struct {
	setting, field string
	days           *int
}

// fields pairs each setting with its field of s.
func (s *RetentionSettings) fields() []retentionField {
	return []retentionField{
		{SettingRetentionAlerts, "AlertsDays", &s.AlertsDays},
		{SettingRetentionNotifications, "NotificationsDays", &s.NotificationsDays},
		{SettingRetentionDeliveryLog, "DeliveryLogDays", &s.DeliveryLogDays},
		{SettingRetentionRuns, "RunsDays", &s.RunsDays},
		{SettingRetentionBaselineHistory, "BaselineHistoryDays", &s.BaselineHistoryDays},
		{SettingRetentionSamples, "SamplesDays", &s.SamplesDays},
		{SettingRetentionHistograms, "HistogramsDays", &s.HistogramsDays},
	}
}

// RetentionSettings returns the retention settings in force.
func (c *Client) RetentionSettings(ctx context.Context) (RetentionSettings, error) {
	var s RetentionSettings
	fields := s.fields()
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.setting
	}
	rows, err := c.queries.RetentionDays(ctx, names)
	if err != nil {
		return s, mapError(err)
	}
	for i, r := range rows {
		*fields[i].days = int(r.Days)
	}
	return s, nil
}

// SetRetentionSettings stores the non-zero fields of s, each between 1 and
// MaxRetentionDays, in one transaction: a bad field stores nothing.
func (c *Client) SetRetentionSettings(ctx context.Context, s RetentionSettings) error {
	fields := s.fields()
	for _, f := range fields {
		if *f.days < 0 || *f.days > MaxRetentionDays {
			return argError(f.field, "must be between 1 and %d days (0: unchanged), got %d", MaxRetentionDays, *f.days)
		}
	}
	return mapError(pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		q := c.queries.WithTx(tx)
		for _, f := range fields {
			if *f.days == 0 {
				continue
			}
			if err := q.SetMonitorSetting(ctx, f.setting, strconv.Itoa(*f.days)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// RetentionResult is what ApplyRetention deleted.
type RetentionResult struct {
	// Deleted is the number of rows deleted per table (performance_alerts,
	// alert_notification_queue, ...); every table retention looks at has an
	// entry.
	Deleted map[string]int64
	// Steps is the number of transactions it took.
	Steps int
}

// Total is the number of rows deleted from all tables.
func (r *RetentionResult) Total() int64 {
	var n int64
	for _, d := range r.Deleted {
		n += d
	}
	return n
}

// ApplyRetention deletes the finished records older than their retention
// settings (pggit.apply_retention): at most batch rows of each table per
// transaction, repeated until a transaction deletes nothing, so no lock is
// held for long. A bad setting stops it before anything is deleted (an
// *ArgumentError). On error, the result holds what was deleted before it.
func (c *Client) ApplyRetention(ctx context.Context, batch int) (*RetentionResult, error) {
	res := &RetentionResult{Deleted: map[string]int64{}}
	if batch < 1 || batch > 1_000_000 {
		return res, argError("batch", "must be between 1 and 1000000, got %d", batch)
	}
	for {
		rows, err := c.queries.ApplyRetention(ctx, int32(batch))
		if err != nil {
			return res, mapError(err)
		}
		res.Steps++
		var step int64
		for _, r := range rows {
			res.Deleted[r.TableName] += r.Deleted
			step += r.Deleted
		}
		if step == 0 {
			return res, nil
		}
	}
}
