package monitor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

func TestWorkersRunEachJobOncePerPeriod(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.copySamples("op", "", time.Now().Add(-time.Hour), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	var workers []*monitor.Worker
	for i := range 3 {
		w, err := e.client.NewWorker(&monitor.WorkerConfig{
			Dispatcher:        &monitor.DispatcherConfig{Worker: fmt.Sprintf("w%d", i), PollInterval: 50 * time.Millisecond},
			RecalcInterval:    time.Hour,
			RetentionInterval: time.Hour,
			Tick:              5 * time.Millisecond,
		})
		require.NoError(t, err)
		require.NoError(t, w.Start(e.ctx))
		workers = append(workers, w)
	}
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM pggit.scheduled_jobs WHERE last_status = 'ok'`) == 6
	}, 30*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // dozens more ticks on every worker
	for _, w := range workers {
		require.NoError(t, w.Stop(e.ctx))
	}
	// Once per period, whichever worker claimed it.
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.baseline_recalc_execution`))
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.baseline_recalc_execution WHERE reason = 'scheduled' AND status = 'SUCCESS'`))
	require.EqualValues(t, 6, e.count(`SELECT sum(runs) FROM pggit.scheduled_jobs`))
	// Detection ran once, over the minutes since the first sample.
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.detection_runs`))
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.scheduled_jobs WHERE job_name = 'detection' AND runs = 1`))
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.performance_baselines WHERE is_active`))
}

func TestRetentionDeletesInBoundedBatches(t *testing.T) {
	t.Parallel()
	e := setup(t)
	old := make([]int64, 25000)
	for i := range old {
		old[i] = int64(i + 1)
	}
	e.copySamples("op", "", time.Now().Add(-40*24*time.Hour), old...)
	e.copySamples("op", "", time.Now().Add(-29*24*time.Hour), 1, 2, 3)
	e.copySamples("op", "", time.Now(), 4, 5)
	w, err := e.client.NewWorker(&monitor.WorkerConfig{RetentionBatch: 10000})
	require.NoError(t, err)

	ran, err := w.RunDueJob(e.ctx, monitor.JobRetention)
	require.NoError(t, err)
	require.True(t, ran)
	require.EqualValues(t, 5, e.count(`SELECT count(*) FROM pggit.performance_metrics`))
	ran, err = w.RunDueJob(e.ctx, monitor.JobRetention)
	require.NoError(t, err)
	require.False(t, ran, "not due again within its period")
	var status string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT last_status FROM pggit.scheduled_jobs WHERE job_name = 'sample_retention'`).Scan(&status))
	require.Equal(t, "ok", status)

	// Bounded: one call deletes at most the batch.
	e.copySamples("op", "", time.Now().Add(-40*24*time.Hour), old...)
	var n int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT pggit.delete_old_samples(now() - interval '30 days', 10000)`).Scan(&n))
	require.Equal(t, 10000, n)
	_, err = e.pool.Exec(e.ctx, `SELECT pggit.delete_old_samples(now(), 0)`)
	requirePgError(t, err, "22023", "p_batch must be between 1 and 1000000, got 0")
}

func TestWorkerConfigIsValidated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, c := range []struct {
		cfg monitor.WorkerConfig
		arg string
	}{
		{monitor.WorkerConfig{RecalcInterval: time.Millisecond}, "RecalcInterval"},
		{monitor.WorkerConfig{Retention: 24 * time.Hour}, "Retention"},
		{monitor.WorkerConfig{RetentionBatch: -1}, "RetentionBatch"},
		{monitor.WorkerConfig{Dispatcher: &monitor.DispatcherConfig{Concurrency: -1}}, "Concurrency"},
	} {
		_, err := e.client.NewWorker(&c.cfg)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr)
		require.Equal(t, c.arg, argErr.Argument)
	}
	w, err := e.client.NewWorker(nil)
	require.NoError(t, err)
	_, err = w.RunDueJob(e.ctx, "vacuum")
	require.ErrorIs(t, err, monitor.ErrInvalidArgument)
}

func TestFailedJobIsDueAgainSoon(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w, err := e.client.NewWorker(&monitor.WorkerConfig{RecalcInterval: 24 * time.Hour})
	require.NoError(t, err)
	// The recalculation cannot run: its run fails as a whole.
	e.exec(`ALTER TABLE pggit.performance_metrics RENAME TO performance_metrics_gone`)
	ran, err := w.RunDueJob(e.ctx, monitor.JobRecalculate)
	require.True(t, ran)
	require.ErrorIs(t, err, monitor.ErrRecalcFailed)
	var status string
	var dueIn float64
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT last_status,
		extract(epoch FROM last_started_at + make_interval(secs => period_seconds) - clock_timestamp())
		FROM pggit.scheduled_jobs WHERE job_name = 'recalculate_baselines'`).Scan(&status, &dueIn))
	require.Equal(t, "failed", status)
	require.InDelta(t, 300, dueIn, 5) // 5 minutes, not 24 hours
}

// The worker's rollup takes the current hour too, so the trend view reads no
// samples: it shows the rollup (as old as its last run), equal to what the
// samples give.
func TestRollupJobRollsTheCurrentHour(t *testing.T) {
	t.Parallel()
	e := setup(t)
	at := time.Now().Add(-time.Second)
	e.copySamples("trend", "", at, 1000, 2000, 3000, 4000)
	live := e.count(`SELECT sum(samples) FROM pggit.v_operation_performance_trend WHERE operation_type = 'trend'`)
	require.EqualValues(t, 4, live, "no rollup yet: read from the samples")
	var p99 float64
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT max(p99_ms) FROM pggit.v_operation_performance_trend WHERE operation_type = 'trend'`).Scan(&p99))

	w, err := e.client.NewWorker(nil)
	require.NoError(t, err)
	ran, err := w.RunDueJob(e.ctx, monitor.JobRollup)
	require.NoError(t, err)
	require.True(t, ran)
	require.EqualValues(t, 4, e.count(`SELECT sum(samples) FROM pggit.performance_hourly WHERE operation_type = 'trend'`))
	var rolled float64
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT max(p99_ms) FROM pggit.v_operation_performance_trend WHERE operation_type = 'trend'`).Scan(&rolled))
	require.InDelta(t, p99, rolled, 1e-9)

	// A sample after the run shows at the next run, not before.
	e.copySamples("trend", "", at, 5000)
	require.EqualValues(t, 4, e.count(`SELECT sum(samples) FROM pggit.v_operation_performance_trend WHERE operation_type = 'trend'`))
	e.exec(`SELECT pggit.rollup_performance_hours(now() + interval '1 hour')`)
	require.EqualValues(t, 5, e.count(`SELECT sum(samples) FROM pggit.v_operation_performance_trend WHERE operation_type = 'trend'`))
}
