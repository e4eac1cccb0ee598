package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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
		{monitor.Sample{OperationType: "", Duration: time.Second}, "OperationType", `OperationType must be a non-blank name of at most 200 characters without control characters, got ""`},
		{monitor.Sample{OperationType: "   ", Duration: time.Second}, "OperationType", "non-blank name"},
		{monitor.Sample{OperationType: strings.Repeat("x", 201), Duration: time.Second}, "OperationType", "at most 200"},
		{monitor.Sample{OperationType: "bad\xffutf8", Duration: time.Second}, "OperationType", "non-blank name"},
		// Control characters, as pggit.is_valid_name refuses them: C0, DEL, C1.
		{monitor.Sample{OperationType: "merge\r\nBcc: x@example.com", Duration: time.Second}, "OperationType", `got "merge\r\nBcc: x@example.com"`},
		{monitor.Sample{OperationType: " \t", Duration: time.Second}, "OperationType", "without control characters"},
		{monitor.Sample{OperationType: "a\x00b", Duration: time.Second}, "OperationType", "without control characters"},
		{monitor.Sample{OperationType: "a\x7fb", Duration: time.Second}, "OperationType", "without control characters"},
		{monitor.Sample{OperationType: "a\u0085b", Duration: time.Second}, "OperationType", "without control characters"},
		{monitor.Sample{OperationType: "a", Duration: 0}, "Duration", "Duration must be greater than 0, got 0s"},
		{monitor.Sample{OperationType: "a", Duration: -time.Second}, "Duration", "got -1s"},
		{monitor.Sample{OperationType: "a", Duration: time.Second, Scope: strings.Repeat("s", 201)}, "Scope", "at most 200"},
		{monitor.Sample{OperationType: "a", Duration: time.Second, Scope: "main\n"}, "Scope", "without control characters"},
		{monitor.Sample{OperationType: "a", Duration: time.Second, Scope: "  "}, "Scope", "must be empty (global) or a non-blank name"},
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

// A sample the database refuses is rejected alone, with its reason: the valid
// samples written in the same COPY are stored. Some samples pass Record's
// checks and are still refused (JSON the jsonb type refuses, a time out of
// PostgreSQL's range); others reach the database only from a client whose
// rules are behind the database's (RecordUnchecked), and the database's CHECKs
// refuse them.
func TestRecorderRejectsOnlyInvalidSamples(t *testing.T) {
	t.Parallel()
	type bad struct {
		at        int
		s         monitor.Sample
		unchecked bool   // bypasses Record's checks
		sqlState  string // of the reason
	}
	scope201 := bad{37, monitor.Sample{OperationType: "op", Duration: 38 * time.Millisecond, Scope: strings.Repeat("s", 201)}, true, "23514"}
	crlf := bad{37, monitor.Sample{OperationType: "op\r\nBcc: x@example.com", Duration: 38 * time.Millisecond}, true, "23514"}
	nul := bad{37, monitor.Sample{OperationType: "op", Duration: 38 * time.Millisecond, Metadata: []byte(`{"note": "a\u0000b"}`)}, false, "22P05"}
	ancient := bad{37, monitor.Sample{OperationType: "op", Duration: 38 * time.Millisecond, RecordedAt: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)}, false, "22008"}
	at := func(i int, b bad) bad {
		b.at = i
		b.s.Duration = time.Duration(i+1) * time.Millisecond
		return b
	}
	for _, c := range []struct {
		name  string
		setup string
		bad   []bad
	}{
		{"scope of 201 characters", "", []bad{scope201}},
		// The CHECK that pggit.is_valid_name makes possible, whether or not
		// the migrations have it yet.
		{"CR LF in the operation", `ALTER TABLE pggit.performance_metrics ADD CONSTRAINT test_operation_type_check CHECK (pggit.is_valid_name(operation_type))`, []bad{crlf}},
		{"NUL in the metadata", "", []bad{nul}},
		{"time out of range", "", []bad{ancient}},
		{"three among 100", "", []bad{at(0, nul), at(50, scope201), at(99, ancient)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			if c.setup != "" {
				e.exec(c.setup)
			}
			var rejected []monitor.RejectedSample
			rec, err := e.client.NewRecorder(&monitor.RecorderConfig{BatchSize: 1000, FlushInterval: time.Hour,
				OnReject: func(rs monitor.RejectedSample) { rejected = append(rejected, rs) }})
			require.NoError(t, err)
			bads := map[int]bad{}
			for _, b := range c.bad {
				bads[b.at] = b
			}
			for i := range 100 {
				b, isBad := bads[i]
				switch {
				case !isBad:
					require.NoError(t, rec.Record("op", time.Duration(i+1)*time.Millisecond))
				case b.unchecked:
					require.Error(t, rec.RecordSample(b.s), "Record refuses it")
					require.NoError(t, rec.RecordUnchecked(b.s))
				default:
					require.NoError(t, rec.RecordSample(b.s))
				}
			}
			// One COPY of the 100; the refused samples are not an error of
			// Flush, which writes the others.
			require.NoError(t, rec.Flush(e.ctx))
			require.NoError(t, rec.Close(e.ctx))

			st := rec.Stats()
			require.EqualValues(t, 100, st.Recorded)
			require.EqualValues(t, 100-len(c.bad), st.Written)
			require.EqualValues(t, len(c.bad), st.Rejected)
			require.Zero(t, st.Dropped)
			require.Zero(t, st.FlushErrors)
			require.EqualValues(t, 100-len(c.bad), e.count(`SELECT count(*) FROM pggit.performance_metrics`))
			for _, b := range c.bad {
				require.Zero(t, e.count(`SELECT count(*) FROM pggit.performance_metrics WHERE duration_microseconds = $1`, b.s.Duration.Microseconds()))
			}
			require.EqualValues(t, 100-len(c.bad), e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms`))

			// Each rejected sample, in order, with the database's reason.
			require.Len(t, rejected, len(c.bad))
			for i, b := range c.bad {
				got := rejected[i]
				require.Equal(t, b.s.OperationType, got.Sample.OperationType)
				require.Equal(t, b.s.Scope, got.Sample.Scope)
				require.Equal(t, b.s.Duration, got.Sample.Duration)
				require.Equal(t, string(b.s.Metadata), string(got.Sample.Metadata))
				var pgErr *pgconn.PgError
				require.ErrorAs(t, got.Err, &pgErr)
				require.Equal(t, b.sqlState, pgErr.Code, pgErr.Message)
				if b.sqlState == "23514" {
					require.Equal(t, "performance_metrics", pgErr.TableName)
					require.Contains(t, got.Err.Error(), `new row for relation "performance_metrics" violates check constraint`)
				}
			}
		})
	}
}

// A trigger that fails while the samples are written (the samples' trigger
// writes histograms) is not the samples' fault, whatever its SQLSTATE: they
// are kept and retried until it works again, none is rejected.
func TestRecorderRetriesWhenATriggerFails(t *testing.T) {
	t.Parallel()
	raise := func(code string) string {
		return `CREATE FUNCTION public.test_fault() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$
			BEGIN RAISE EXCEPTION 'injected fault' USING ERRCODE = '` + code + `'; END $$;
			CREATE TRIGGER test_fault BEFORE INSERT ON pggit.performance_histograms
				FOR EACH STATEMENT EXECUTE FUNCTION public.test_fault()`
	}
	const dropRaise = `DROP TRIGGER test_fault ON pggit.performance_histograms`
	for _, c := range []struct{ name, fault, repair string }{
		{"RAISE check_violation", raise("23514"), dropRaise},
		{"RAISE invalid_parameter_value", raise("22023"), dropRaise},
		{"a CHECK of the histograms", `ALTER TABLE pggit.performance_histograms ADD CONSTRAINT test_fault CHECK (sample_count < 0) NOT VALID`,
			`ALTER TABLE pggit.performance_histograms DROP CONSTRAINT test_fault`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			e.exec(c.fault)
			rec, err := e.client.NewRecorder(&monitor.RecorderConfig{BatchSize: 10, FlushInterval: 5 * time.Millisecond})
			require.NoError(t, err)
			for i := range 100 {
				require.NoError(t, rec.Record("op", time.Duration(i+1)*time.Millisecond))
			}
			require.Eventually(t, func() bool {
				st := rec.Stats()
				return st.FlushErrors > 0 || st.Rejected > 0
			}, 30*time.Second, 5*time.Millisecond)
			st := rec.Stats()
			require.Zero(t, st.Rejected)
			require.Zero(t, st.Written)
			require.Equal(t, 100, st.Buffered)

			e.exec(c.repair)
			require.NoError(t, rec.Close(e.ctx))
			st = rec.Stats()
			require.EqualValues(t, 100, st.Written)
			require.Zero(t, st.Rejected)
			require.Zero(t, st.Dropped)
			require.EqualValues(t, 100, e.count(`SELECT count(*) FROM pggit.performance_metrics`))
			require.EqualValues(t, 100, e.count(`SELECT count(DISTINCT duration_microseconds) FROM pggit.performance_metrics`))
			require.EqualValues(t, 100, e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms`))
		})
	}
}
