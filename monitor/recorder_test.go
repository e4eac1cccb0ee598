package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestRecorderWritesEverySample(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rec, err := e.client.NewRecorder(&monitor.RecorderConfig{BatchSize: 500})
	require.NoError(t, err)

	const writers, per = 4, 2500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				require.NoError(t, rec.RecordSample(monitor.Sample{
					OperationType: fmt.Sprintf("op%d", w),
					Duration:      time.Duration(i+1) * time.Microsecond,
					Scope:         "s",
				}))
			}
		})
	}
	wg.Wait()
	require.NoError(t, rec.Close(e.ctx))

	st := rec.Stats()
	require.EqualValues(t, writers*per, st.Recorded)
	require.EqualValues(t, writers*per, st.Written)
	require.Zero(t, st.Dropped)
	require.Zero(t, st.Buffered)
	require.EqualValues(t, writers*per, e.count(`SELECT count(*) FROM pggit.performance_metrics`))
	// Every value once per writer: no duplicates, nothing lost.
	require.EqualValues(t, writers*per, e.count(`SELECT count(DISTINCT (operation_type, duration_microseconds)) FROM pggit.performance_metrics`))
	require.EqualValues(t, writers, e.count(`SELECT count(*) FROM pggit.performance_operation_types`))

	require.ErrorIs(t, rec.Record("late", time.Millisecond), monitor.ErrRecorderClosed)
	require.NoError(t, rec.Close(e.ctx)) // idempotent
}

func TestRecorderFlushesOnSizeAndOnInterval(t *testing.T) {
	t.Parallel()
	e := setup(t)

	// Size: a long interval, so only full batches can trigger a write.
	bySize, err := e.client.NewRecorder(&monitor.RecorderConfig{BatchSize: 100, FlushInterval: time.Hour})
	require.NoError(t, err)
	for i := range 250 {
		require.NoError(t, bySize.Record("size", time.Duration(i+1)*time.Millisecond))
	}
	// A flush takes whatever is buffered when it starts, so how the 250 split
	// into writes depends on timing; what is certain is that fewer than one
	// batch (100) is left waiting for the interval.
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = 'size'`) > 250-100 &&
			bySize.Stats().Buffered < 100
	}, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, bySize.Close(e.ctx))
	require.EqualValues(t, 250, e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = 'size'`))

	// Interval: batches never fill, the ticker writes them.
	byTime, err := e.client.NewRecorder(&monitor.RecorderConfig{BatchSize: 100_000, FlushInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, byTime.Record("tick", time.Millisecond))
	}
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = 'tick'`) == 5
	}, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, byTime.Close(e.ctx))
	require.EqualValues(t, 5, byTime.Stats().Written)

	// RecordedAt is the time of Record, not of the flush.
	var age time.Duration
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT max(now() - recorded_at) FROM pggit.performance_metrics`).Scan(&age))
	require.Positive(t, age)
}

func TestRecorderBoundedWhenDatabaseIsSlow(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// A slow database: a transaction holds a lock every COPY has to wait for.
	blocker, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = blocker.Exec(e.ctx, `LOCK TABLE pggit.performance_metrics IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	rec, err := e.client.NewRecorder(&monitor.RecorderConfig{BatchSize: 10, MaxBuffered: 100, FlushInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	var accepted, full int
	for i := range 300 {
		err := rec.Record("slow", time.Duration(i+1)*time.Microsecond)
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, monitor.ErrBufferFull):
			full++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	// Record never blocked; the bound held; every refusal was counted.
	require.Equal(t, 100, accepted)
	require.Equal(t, 200, full)
	st := rec.Stats()
	require.EqualValues(t, 200, st.Dropped)
	require.Equal(t, 100, st.Buffered)

	require.NoError(t, blocker.Rollback(e.ctx))
	require.NoError(t, rec.Close(e.ctx))
	st = rec.Stats()
	require.EqualValues(t, 100, st.Written)
	require.EqualValues(t, 200, st.Dropped)
	require.EqualValues(t, 100, e.count(`SELECT count(*) FROM pggit.performance_metrics`))
}

func TestRecorderRetriesWhileDatabaseIsDown(t *testing.T) {
	t.Parallel()
	e := setup(t)
	admin := monitortest.Admin(t)
	dbName := e.dsn[strings.LastIndex(e.dsn, "/")+1:]
	if i := strings.IndexByte(dbName, '?'); i >= 0 {
		dbName = dbName[:i]
	}
	down := func() {
		_, err := admin.Exec(e.ctx, `ALTER DATABASE `+dbName+` ALLOW_CONNECTIONS false`)
		require.NoError(t, err)
		_, err = admin.Exec(e.ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, dbName)
		require.NoError(t, err)
	}
	up := func() {
		_, err := admin.Exec(e.ctx, `ALTER DATABASE `+dbName+` ALLOW_CONNECTIONS true`)
		require.NoError(t, err)
	}
	t.Cleanup(up)

	rec, err := e.client.NewRecorder(&monitor.RecorderConfig{BatchSize: 10, FlushInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	down()
	for i := range 50 {
		require.NoError(t, rec.Record("down", time.Duration(i+1)*time.Microsecond))
	}
	require.Eventually(t, func() bool { return rec.Stats().FlushErrors > 0 }, 30*time.Second, 5*time.Millisecond)
	require.Equal(t, 50, rec.Stats().Buffered) // kept, not dropped
	require.Zero(t, rec.Stats().Dropped)

	up()
	require.NoError(t, rec.Close(e.ctx))
	st := rec.Stats()
	require.EqualValues(t, 50, st.Written)
	require.Zero(t, st.Dropped)
	require.EqualValues(t, 50, e.count(`SELECT count(*) FROM pggit.performance_metrics`))
	require.EqualValues(t, 50, e.count(`SELECT count(DISTINCT duration_microseconds) FROM pggit.performance_metrics`))
}

func TestRecorderCloseGivesUpAndCounts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	blocker, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = blocker.Exec(e.ctx, `LOCK TABLE pggit.performance_metrics IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	t.Cleanup(func() { _ = blocker.Rollback(context.Background()) })

	rec, err := e.client.NewRecorder(&monitor.RecorderConfig{FlushTimeout: 50 * time.Millisecond, FlushInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	for range 7 {
		require.NoError(t, rec.Record("stuck", time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	err = rec.Close(ctx)
	require.ErrorContains(t, err, "recorder closed with 7 samples not written")
	st := rec.Stats()
	require.EqualValues(t, 7, st.Dropped)
	require.Zero(t, st.Written)
	require.Zero(t, st.Buffered)
}

func TestRecorderRejectsBadSamples(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rec, err := e.client.NewRecorder(nil)
	require.NoError(t, err)
	cases := []struct {
		s   monitor.Sample
		arg string
		msg string
	}{
		{monitor.Sample{OperationType: "", Duration: time.Second}, "OperationType", `OperationType must be a non-empty name of at most 200 characters, got ""`},
		{monitor.Sample{OperationType: " \t", Duration: time.Second}, "OperationType", "non-empty name"},
		{monitor.Sample{OperationType: strings.Repeat("x", 201), Duration: time.Second}, "OperationType", "at most 200"},
		{monitor.Sample{OperationType: "bad\xffutf8", Duration: time.Second}, "OperationType", "non-empty name"},
		{monitor.Sample{OperationType: "a", Duration: 0}, "Duration", "Duration must be greater than 0, got 0s"},
		{monitor.Sample{OperationType: "a", Duration: -time.Second}, "Duration", "got -1s"},
		{monitor.Sample{OperationType: "a", Duration: time.Second, Scope: strings.Repeat("s", 201)}, "Scope", "at most 200"},
		{monitor.Sample{OperationType: "a", Duration: time.Second, Metadata: []byte("{nope")}, "Metadata", "valid JSON"},
	}
	for _, c := range cases {
		err := rec.RecordSample(c.s)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr)
		require.ErrorIs(t, err, monitor.ErrInvalidArgument)
		require.Equal(t, c.arg, argErr.Argument)
		require.Equal(t, "22023", argErr.SQLState)
		require.Contains(t, argErr.Message, c.msg)
		_, err = e.client.RecordSample(e.ctx, c.s)
		require.ErrorAs(t, err, &argErr)
	}
	require.NoError(t, rec.Close(e.ctx))
	st := rec.Stats()
	require.Zero(t, st.Recorded)
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_metrics`))

	for _, c := range []struct {
		cfg monitor.RecorderConfig
		arg string
	}{
		{monitor.RecorderConfig{BatchSize: -1}, "BatchSize"},
		{monitor.RecorderConfig{FlushInterval: time.Microsecond}, "FlushInterval"},
		{monitor.RecorderConfig{BatchSize: 100, MaxBuffered: 10}, "MaxBuffered"},
		{monitor.RecorderConfig{FlushTimeout: -time.Second}, "FlushTimeout"},
	} {
		_, err := e.client.NewRecorder(&c.cfg)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr)
		require.Equal(t, c.arg, argErr.Argument)
	}
}
