package monitor

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Partition settings (pggit.monitor_settings).
const (
	SettingPartitionWidth     = "samples_partition_width"
	SettingPartitionAheadDays = "samples_partition_ahead_days"
)

// Defaults and bounds of the partition settings.
const (
	DefaultPartitionWidth     = 24 * time.Hour
	DefaultPartitionAheadDays = 3
	MaxPartitionWidth         = 31 * 24 * time.Hour
	MaxPartitionAheadDays     = 365
)

// PartitionSettings shape the partitions of pggit.performance_metrics
// (docs/scaling.md).
type PartitionSettings struct {
	// Width of a partition: whole hours from 1 hour to MaxPartitionWidth,
	// aligned on UTC (days start at midnight UTC, weeks on Monday). A new
	// width applies to partitions created from then on. Defaults to
	// DefaultPartitionWidth (a day).
	Width time.Duration
	// AheadDays is how many days ahead of now partitions are created (the
	// worker's sample_partitions job, hourly). Defaults to
	// DefaultPartitionAheadDays.
	AheadDays int
}

// PartitionSettings returns the partition settings in force.
func (c *Client) PartitionSettings(ctx context.Context) (PartitionSettings, error) {
	r, err := c.queries.PartitionSettings(ctx)
	if err != nil {
		return PartitionSettings{}, mapError(err)
	}
	return PartitionSettings{Width: time.Duration(r.WidthHours) * time.Hour, AheadDays: int(r.AheadDays)}, nil
}

// SetPartitionSettings stores the non-zero fields of s in one transaction: a
// bad field stores nothing.
func (c *Client) SetPartitionSettings(ctx context.Context, s PartitionSettings) error {
	if s.Width < 0 || s.Width > MaxPartitionWidth || s.Width%time.Hour != 0 || (s.Width != 0 && s.Width < time.Hour) {
		return argError("Width", "must be a whole number of hours from 1h to %s (0: unchanged), got %s", MaxPartitionWidth, s.Width)
	}
	if s.AheadDays < 0 || s.AheadDays > MaxPartitionAheadDays {
		return argError("AheadDays", "must be between 1 and %d (0: unchanged), got %d", MaxPartitionAheadDays, s.AheadDays)
	}
	return mapError(pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		q := c.queries.WithTx(tx)
		if s.Width != 0 {
			if err := q.SetMonitorSetting(ctx, SettingPartitionWidth, fmt.Sprintf("%d hours", s.Width/time.Hour)); err != nil {
				return err
			}
		}
		if s.AheadDays != 0 {
			return q.SetMonitorSetting(ctx, SettingPartitionAheadDays, strconv.Itoa(s.AheadDays))
		}
		return nil
	}))
}

// SamplePartition is one partition of pggit.performance_metrics.
type SamplePartition struct {
	Name string
	// Start and End bound the recorded_at it holds, [Start, End). Start is
	// zero for a partition from MINVALUE (performance_metrics_legacy, after
	// an upgrade); both are zero for the default partition.
	Start, End time.Time
	// Default is the partition that catches samples no other partition
	// covers.
	Default bool
	// RowEstimate is the planner's estimate of its rows, -1 before the first
	// ANALYZE (SamplePartitions only).
	RowEstimate int64
	// Bytes on disk, with its indexes (SamplePartitions and drops).
	Bytes int64
	// MovedRows are the strays CreateSamplePartitions moved into it from
	// the default partition.
	MovedRows int64
}

// SamplePartitions lists the partitions of pggit.performance_metrics, oldest
// first, the default partition last.
func (c *Client) SamplePartitions(ctx context.Context) ([]SamplePartition, error) {
	rows, err := c.pool.Query(ctx, `SELECT p.partition_name, p.range_start, p.range_end, p.is_default,
		       coalesce(p.row_estimate, -1), p.total_bytes
		FROM pggit.sample_partitions() p`)
	if err != nil {
		return nil, mapError(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SamplePartition, error) {
		var p SamplePartition
		var start, end *time.Time
		if err := r.Scan(&p.Name, &start, &end, &p.Default, &p.RowEstimate, &p.Bytes); err != nil {
			return p, err
		}
		if start != nil {
			p.Start = *start
		}
		if end != nil {
			p.End = *end
		}
		return p, nil
	})
	return out, mapError(err)
}

// CreateSamplePartitions creates the partitions missing in [from, to) (a zero
// to: now plus PartitionSettings.AheadDays), moving the samples of their
// ranges out of the default partition, and returns the partitions it created.
// It is idempotent; the worker runs it hourly (JobPartitions). Use it to
// backfill history: partitions for past days are created the same way.
func (c *Client) CreateSamplePartitions(ctx context.Context, from, to time.Time) ([]SamplePartition, error) {
	if from.IsZero() {
		return nil, argError("from", "must be set")
	}
	var toAt *time.Time
	if !to.IsZero() {
		toAt = &to
	}
	rows, err := c.queries.CreateSamplePartitions(ctx, from, toAt)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]SamplePartition, len(rows))
	for i, r := range rows {
		out[i] = SamplePartition{Name: r.PartitionName, Start: r.RangeStart, End: r.RangeEnd, MovedRows: r.MovedRows}
	}
	return out, nil
}

// DropSamplePartitions drops the partitions whose range ends at or before
// before (which must not be in the future; never the default partition) and
// returns them. Dropping a partition is O(1) and leaves nothing to vacuum;
// the histograms of its samples stay (retention_histograms_days).
func (c *Client) DropSamplePartitions(ctx context.Context, before time.Time) ([]SamplePartition, error) {
	return c.dropPartitions(ctx, `SELECT p.partition_name, p.range_start, p.range_end, p.total_bytes
		FROM pggit.drop_sample_partitions($1) p`, before)
}

// DropExpiredSamplePartitions drops the partitions older than the
// retention_samples_days setting (RetentionSettings.SamplesDays).
func (c *Client) DropExpiredSamplePartitions(ctx context.Context) ([]SamplePartition, error) {
	return c.dropPartitions(ctx, `SELECT p.partition_name, p.range_start, p.range_end, p.total_bytes
		FROM pggit.drop_expired_sample_partitions() p`)
}

// dropPartitions runs one of the drop functions (by hand: sqlc cannot type
// the NULL start of a partition from MINVALUE).
func (c *Client) dropPartitions(ctx context.Context, sql string, args ...any) ([]SamplePartition, error) {
	rows, err := c.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, mapError(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SamplePartition, error) {
		var p SamplePartition
		var start *time.Time
		err := r.Scan(&p.Name, &start, &p.End, &p.Bytes)
		if start != nil {
			p.Start = *start
		}
		return p, err
	})
	return out, mapError(err)
}

// DefaultPartitionRows counts the samples in the default partition: samples
// recorded outside every partition's range (far in the past or the future,
// or while partitions were not created ahead). Zero when all is well.
func (c *Client) DefaultPartitionRows(ctx context.Context) (int64, error) {
	n, err := c.queries.DefaultPartitionRows(ctx)
	return n, mapError(err)
}
