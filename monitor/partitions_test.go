package monitor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

// dayUTC is the midnight (UTC) starting the day of t.
func dayUTC(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour)
}

// requireContiguous checks that the partitions (default last) cover
// [from, to) with no gap and no overlap.
func requireContiguous(t *testing.T, parts []monitor.SamplePartition, from, to time.Time) {
	t.Helper()
	require.NotEmpty(t, parts)
	require.True(t, parts[len(parts)-1].Default, "the default partition comes last")
	ranges := parts[:len(parts)-1]
	require.False(t, ranges[0].Start.After(from), "first partition starts %s, after %s", ranges[0].Start, from)
	for i := 1; i < len(ranges); i++ {
		require.True(t, ranges[i].Start.Equal(ranges[i-1].End), "gap or overlap between %s and %s", ranges[i-1].Name, ranges[i].Name)
	}
	require.False(t, ranges[len(ranges)-1].End.Before(to), "last partition ends %s, before %s", ranges[len(ranges)-1].End, to)
}

func TestPartitionsAreCreatedAheadAndIdempotently(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()

	// The migration made a day for each of the last 30 days and 3 ahead.
	parts, err := e.client.SamplePartitions(e.ctx)
	require.NoError(t, err)
	requireContiguous(t, parts, now.Add(-30*24*time.Hour), now.Add(3*24*time.Hour))
	for _, p := range parts[:len(parts)-1] {
		require.Equal(t, 24*time.Hour, p.End.Sub(p.Start), p.Name)
		require.Equal(t, "performance_metrics_p"+p.Start.UTC().Format("20060102"), p.Name)
	}
	s, err := e.client.PartitionSettings(e.ctx)
	require.NoError(t, err)
	require.Equal(t, monitor.PartitionSettings{Width: 24 * time.Hour, AheadDays: 3}, s)

	// The worker's job: nothing is missing.
	w, err := e.client.NewWorker(nil)
	require.NoError(t, err)
	ran, err := w.RunDueJob(e.ctx, monitor.JobPartitions)
	require.NoError(t, err)
	require.True(t, ran)
	again, err := e.client.SamplePartitions(e.ctx)
	require.NoError(t, err)
	require.Equal(t, len(parts), len(again))

	// Further ahead, from two callers at once: each day is made once.
	require.NoError(t, e.client.SetPartitionSettings(e.ctx, monitor.PartitionSettings{AheadDays: 10}))
	var wg sync.WaitGroup
	created := make([][]monitor.SamplePartition, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = e.client.CreateSamplePartitions(e.ctx, now, time.Time{})
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Len(t, append(created[0], created[1]...), 7, "days 4 to 10 ahead, once")
	parts, err = e.client.SamplePartitions(e.ctx)
	require.NoError(t, err)
	requireContiguous(t, parts, now.Add(-30*24*time.Hour), now.Add(10*24*time.Hour))

	// A narrower width applies from the end of the existing partitions.
	require.NoError(t, e.client.SetPartitionSettings(e.ctx, monitor.PartitionSettings{Width: 6 * time.Hour}))
	last := parts[len(parts)-2].End
	made, err := e.client.CreateSamplePartitions(e.ctx, last.Add(-time.Hour), last.Add(24*time.Hour))
	require.NoError(t, err)
	require.Len(t, made, 4)
	for i, p := range made {
		require.Equal(t, last.Add(time.Duration(i)*6*time.Hour), p.Start)
		require.Equal(t, 6*time.Hour, p.End.Sub(p.Start))
		require.Equal(t, "performance_metrics_p"+p.Start.UTC().Format("20060102_15"), p.Name)
	}
	made, err = e.client.CreateSamplePartitions(e.ctx, last.Add(-time.Hour), last.Add(24*time.Hour))
	require.NoError(t, err)
	require.Empty(t, made)
}

func TestPartitionSettingsAreValidated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, c := range []struct {
		s   monitor.PartitionSettings
		arg string
	}{
		{monitor.PartitionSettings{Width: 30 * time.Minute}, "Width"},
		{monitor.PartitionSettings{Width: 90 * time.Minute}, "Width"},
		{monitor.PartitionSettings{Width: 32 * 24 * time.Hour}, "Width"},
		{monitor.PartitionSettings{AheadDays: 366}, "AheadDays"},
		{monitor.PartitionSettings{AheadDays: -1}, "AheadDays"},
	} {
		err := e.client.SetPartitionSettings(e.ctx, c.s)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr, "%+v", c.s)
		require.Equal(t, c.arg, argErr.Argument)
	}
	// The database refuses what the Go check would, whoever writes it.
	for _, c := range []struct{ name, value, msg string }{
		{"samples_partition_width", "1 month", "samples_partition_width must be a whole number of hours from 1 hour to 31 days"},
		{"samples_partition_width", "90 minutes", "samples_partition_width must be a whole number of hours"},
		{"samples_partition_width", "soon", "got 'soon'"},
		{"samples_partition_ahead_days", "0", "samples_partition_ahead_days must be a whole number of days between 1 and 365, got '0'"},
		{"samples_partition_typo", "1", "setting_name must be one of samples_partition_width, samples_partition_ahead_days"},
		{"retention_samples_days", "0", "retention_samples_days must be a whole number of days between 1 and 36500"},
	} {
		_, err := e.pool.Exec(e.ctx, `INSERT INTO pggit.monitor_settings (setting_name, setting_value) VALUES ($1, $2)
			ON CONFLICT (setting_name) DO UPDATE SET setting_value = EXCLUDED.setting_value`, c.name, c.value)
		requirePgError(t, err, "22023", c.msg)
	}
	s, err := e.client.PartitionSettings(e.ctx)
	require.NoError(t, err)
	require.Equal(t, monitor.PartitionSettings{Width: 24 * time.Hour, AheadDays: 3}, s, "nothing stored")

	_, err = e.client.DropSamplePartitions(e.ctx, time.Now().Add(time.Hour))
	requirePgError(t, err, "22023", "p_before must be a finite timestamp not after now()")
	_, err = e.client.CreateSamplePartitions(e.ctx, time.Now(), time.Now().Add(-time.Hour))
	requirePgError(t, err, "22023", "p_to must be after p_from")
}

func TestSamplesGoToTheirPartitionOrTheDefault(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	past := now.Add(-20 * 24 * time.Hour)
	future := now.Add(2 * 24 * time.Hour)
	ancient := now.AddDate(-2, 0, 0)

	// Every way in: COPY, a plain INSERT, the record function, the Recorder.
	e.copySamples("merge", "", past, 1000, 2000)
	e.exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at) VALUES ('merge', 3000, $1)`, future)
	e.exec(`SELECT pggit.record_performance_metric('merge', 4000, '', NULL, NULL, $1)`, ancient)
	rec, err := e.client.NewRecorder(nil)
	require.NoError(t, err)
	require.NoError(t, rec.RecordSample(monitor.Sample{OperationType: "merge", Duration: 5 * time.Millisecond, RecordedAt: now}))
	require.NoError(t, rec.RecordSample(monitor.Sample{OperationType: "merge", Duration: 6 * time.Millisecond, RecordedAt: ancient}))
	require.NoError(t, rec.Close(e.ctx))

	where := func() map[int64]string {
		rows, err := e.pool.Query(e.ctx, `SELECT duration_microseconds, tableoid::regclass::text FROM pggit.performance_metrics`)
		require.NoError(t, err)
		out := map[int64]string{}
		var d int64
		var table string
		_, err = pgx.ForEachRow(rows, []any{&d, &table}, func() error { out[d] = table; return nil })
		require.NoError(t, err)
		return out
	}
	day := func(t time.Time) string { return "pggit.performance_metrics_p" + dayUTC(t).Format("20060102") }
	require.Equal(t, map[int64]string{
		1000: day(past), 2000: day(past), 3000: day(future), 5000: day(now),
		4000: "pggit.performance_metrics_default", 6000: "pggit.performance_metrics_default",
	}, where())
	stray, err := e.client.DefaultPartitionRows(e.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, stray)
	require.EqualValues(t, 6, e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms`), "the trigger counts every sample, wherever it went")
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.performance_operation_types WHERE operation_type = 'merge'`))

	// A partition for the strays' day takes them in, once, without counting
	// them again.
	made, err := e.client.CreateSamplePartitions(e.ctx, ancient, ancient.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, made, 1)
	require.EqualValues(t, 2, made[0].MovedRows)
	got := where()
	require.Equal(t, day(ancient), got[4000])
	require.Equal(t, day(ancient), got[6000])
	stray, err = e.client.DefaultPartitionRows(e.ctx)
	require.NoError(t, err)
	require.Zero(t, stray)
	require.EqualValues(t, 6, e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms`))
	require.EqualValues(t, 6, e.count(`SELECT count(*) FROM pggit.performance_metrics`))

	// The dashboards read across partitions.
	require.EqualValues(t, 2, e.count(`SELECT samples_last_hour FROM pggit.v_monitoring_system_health`), "now's and the future one")
}

func TestRetentionDropsExpiredPartitionsAndNothingOpen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	for _, days := range []int{29, 20, 5, 0} {
		e.copySamples("merge", "", now.Add(-time.Duration(days)*24*time.Hour), 1000, 2000)
	}
	// Strays in the default partition: one past any retention, one recent
	// but outside the partitions (a clock far ahead).
	e.copySamples("merge", "", now.AddDate(0, 0, -200), 3000)
	e.copySamples("merge", "", now.AddDate(0, 0, 100), 4000)
	// An alert opened long ago and still open; one resolved long ago.
	open := e.count(`SELECT (pggit.raise_alert('merge', '', 'ANOMALY', 'WARNING')).alert_id`)
	e.exec(`UPDATE pggit.performance_alerts SET created_at = now() - interval '60 days', first_seen_at = now() - interval '60 days' WHERE alert_id = $1`, open)
	histBefore := e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms`)

	// Keep 10 days of samples.
	require.NoError(t, e.client.SetRetentionSettings(e.ctx, monitor.RetentionSettings{SamplesDays: 10}))
	before, err := e.client.SamplePartitions(e.ctx)
	require.NoError(t, err)
	w, err := e.client.NewWorker(nil)
	require.NoError(t, err)
	ran, err := w.RunDueJob(e.ctx, monitor.JobRetention)
	require.NoError(t, err)
	require.True(t, ran)

	after, err := e.client.SamplePartitions(e.ctx)
	require.NoError(t, err)
	cutoff := now.Add(-10 * 24 * time.Hour)
	var dropped int
	for _, p := range before {
		if !p.Default && !p.End.After(cutoff) {
			dropped++
		}
	}
	require.Equal(t, len(before)-dropped, len(after))
	for _, p := range after {
		require.True(t, p.Default || p.End.After(cutoff), "%s ends %s, before the cutoff", p.Name, p.End)
	}
	require.Equal(t, []string{"pggit.performance_metrics_default"}, e.strings(`SELECT DISTINCT tableoid::regclass::text FROM pggit.performance_metrics WHERE duration_microseconds = 4000`))
	require.EqualValues(t, 5, e.count(`SELECT count(*) FROM pggit.performance_metrics`), "days 5 and 0, and the future stray")
	require.EqualValues(t, 0, e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE recorded_at < $1`, cutoff))
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.performance_alerts WHERE alert_id = $1 AND resolved_at IS NULL`, open))
	require.Equal(t, histBefore, e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms`), "histograms are kept 400 days")

	// Histograms go after their own setting.
	require.NoError(t, e.client.SetRetentionSettings(e.ctx, monitor.RetentionSettings{HistogramsDays: 10}))
	res, err := e.client.ApplyRetention(e.ctx, 1)
	require.NoError(t, err)
	require.EqualValues(t, 3, res.Deleted["performance_histograms"], "the minute rows of days 29, 20 and 200 ago")
	require.Equal(t, histBefore-5, e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms`))
}

// Writers keep inserting, through the Recorder and plain INSERTs, while old
// partitions are dropped under them: every sample they wrote is there, once.
func TestConcurrentInsertsDuringPartitionDropLoseNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	for days := 25; days >= 15; days-- {
		e.copySamples("old", "", now.Add(-time.Duration(days)*24*time.Hour), 1, 2, 3)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	var written atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	rec, err := e.client.NewRecorder(&monitor.RecorderConfig{BatchSize: 200, FlushInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := rec.RecordSample(monitor.Sample{OperationType: "live", Duration: time.Millisecond, RecordedAt: time.Now()}); err != nil {
					errs <- err
					return
				}
				written.Add(1)
				time.Sleep(50 * time.Microsecond)
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := e.pool.Exec(context.WithoutCancel(ctx), `INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds)
					SELECT 'live', 1000 FROM generate_series(1, 50)`); err != nil {
					errs <- err
					return
				}
				written.Add(50)
			}
		}()
	}
	// One day at a time, oldest first, while they write.
	var drops int
	for days := 24; days >= 14; days-- {
		got, err := e.client.DropSamplePartitions(e.ctx, dayUTC(now.Add(-time.Duration(days)*24*time.Hour)))
		require.NoError(t, err)
		drops += len(got)
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	require.NoError(t, rec.Close(e.ctx))
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, drops, 10)
	require.Greater(t, written.Load(), int64(0))
	require.Equal(t, written.Load(), e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = 'live'`))
	require.Equal(t, written.Load(), e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms WHERE operation_type = 'live'`))
	require.EqualValues(t, 0, e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = 'old' AND recorded_at < $1`, dayUTC(now.Add(-14*24*time.Hour))))
}

func TestDeleteOldSamplesIsBoundedWithoutAnIDIndex(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now()
	for i := range 25 {
		e.copySamples("merge", "", now.Add(-time.Duration(i+1)*time.Minute), int64(i+1))
	}
	e.copySamples("merge", "", now.Add(-time.Minute), 100, 101, 102) // ties at the batch's edge
	var n int
	for _, want := range []int{10, 10, 8, 0} {
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT pggit.delete_old_samples(now() - interval '30 seconds', 10)`).Scan(&n))
		require.Equal(t, want, n)
	}
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_metrics`))
}
