package pgxtrace_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
	"github.com/pggit/pggit-monitor/monitor/pgxtrace"
)

func TestMain(m *testing.M) {
	monitortest.Main(m, monitortest.CheckGoroutines(), monitortest.EmptySearchPath())
}

// traced is a database with a Recorder and a second pool on it whose queries
// are traced into that Recorder.
type traced struct {
	t      *testing.T
	ctx    context.Context
	plain  *pgxpool.Pool // untraced, for assertions
	pool   *pgxpool.Pool // traced
	rec    *monitor.Recorder
	tracer *pgxtrace.Tracer
}

func newTraced(t *testing.T, opts *pgxtrace.Options, existing pgx.QueryTracer) *traced {
	t.Helper()
	ctx := context.Background()
	dsn := monitortest.NewDB(t)
	plain := monitortest.Connect(t, dsn)
	client, err := monitor.New(plain, &monitor.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	rec, err := client.NewRecorder(&monitor.RecorderConfig{FlushInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rec.Close(context.Background()) })

	cfg, err := monitortest.PoolConfig(dsn)
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = existing
	tracer, err := pgxtrace.Install(cfg.ConnConfig, rec, opts)
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &traced{t: t, ctx: ctx, plain: plain, pool: pool, rec: rec, tracer: tracer}
}

type stored struct {
	op, scope string
	micros    int64
	meta      string
}

// samples flushes the Recorder and returns what is stored, by operation.
func (e *traced) samples() map[string][]stored {
	e.t.Helper()
	require.NoError(e.t, e.rec.Flush(e.ctx))
	rows, err := e.plain.Query(e.ctx, `SELECT operation_type, scope, duration_microseconds, coalesce(metadata::text, '')
		FROM pggit.performance_metrics ORDER BY metric_id`)
	require.NoError(e.t, err)
	out := map[string][]stored{}
	for rows.Next() {
		var s stored
		require.NoError(e.t, rows.Scan(&s.op, &s.scope, &s.micros, &s.meta))
		out[s.op] = append(out[s.op], s)
	}
	require.NoError(e.t, rows.Err())
	return out
}

func (e *traced) exec(ctx context.Context, sql string, args ...any) {
	e.t.Helper()
	_, err := e.pool.Exec(ctx, sql, args...)
	require.NoError(e.t, err)
}

func TestNamesFromContext(t *testing.T) {
	e := newTraced(t, nil, nil)
	ctx := monitor.WithScope(monitor.WithOperation(e.ctx, "merge_branches"), "tenant-7")
	e.exec(ctx, "SELECT pg_sleep(0.005)")
	// The context name wins over the sqlc name, and covers several queries.
	e.exec(ctx, "-- name: Other :exec\nSELECT 1")
	var n int
	require.NoError(t, e.pool.QueryRow(ctx, "SELECT 2").Scan(&n))

	got := e.samples()
	require.Len(t, got, 1, "only the context's name: %v", got)
	require.Len(t, got["merge_branches"], 3)
	first := got["merge_branches"][0]
	require.Equal(t, "tenant-7", first.scope)
	require.GreaterOrEqual(t, first.micros, int64(5000), "the sleep is in the sample")
	require.EqualValues(t, 3, e.tracer.Stats().Recorded)
}

func TestSQLCQueriesRecordedUnderTheirNames(t *testing.T) {
	e := newTraced(t, nil, nil)
	q := gen.New(e.pool)
	_, err := q.ListOperationTypes(e.ctx)
	require.NoError(t, err)
	_, err = q.ListAlerts(e.ctx, gen.ListAlertsParams{MaxRows: 10})
	require.NoError(t, err)
	_, err = q.ListSnoozes(e.ctx, true, 10)
	require.NoError(t, err)
	_, err = q.GetMonitorSetting(e.ctx, "detection_lookback_days")
	require.NoError(t, err)
	_, err = q.GetMonitorSetting(monitor.WithScope(e.ctx, "admin"), "detection_settle_seconds")
	require.NoError(t, err)
	// An unnamed query is not recorded by default.
	e.exec(e.ctx, "SELECT 1")

	got := e.samples()
	require.ElementsMatch(t, []string{"ListOperationTypes", "ListAlerts", "ListSnoozes", "GetMonitorSetting"}, keys(got))
	require.Len(t, got["GetMonitorSetting"], 2)
	require.Equal(t, "", got["GetMonitorSetting"][0].scope)
	require.Equal(t, "admin", got["GetMonitorSetting"][1].scope)
	for op, ss := range got {
		for _, s := range ss {
			require.Positive(t, s.micros, op)
			require.Empty(t, s.meta, op)
		}
	}
	st := e.tracer.Stats()
	require.EqualValues(t, 5, st.Recorded)
	require.EqualValues(t, 1, st.Unnamed)
	require.Equal(t, 4, st.Names)

	// The recorded queries become operations with their own settings.
	var ops int
	require.NoError(t, e.plain.QueryRow(e.ctx,
		`SELECT count(*) FROM pggit.performance_operation_types WHERE operation_type IN ('ListAlerts', 'GetMonitorSetting')`).Scan(&ops))
	require.Equal(t, 2, ops)
}

func TestFingerprintFallback(t *testing.T) {
	e := newTraced(t, &pgxtrace.Options{Fallback: pgxtrace.FallbackFingerprint}, nil)
	e.exec(e.ctx, "SELECT 1 WHERE 'a' = 'a'")
	e.exec(e.ctx, "select   2 where 'bbb' = 'bbb' -- another literal")
	e.exec(e.ctx, "SELECT $1::int WHERE $2 = 'x'", 5, "x")
	e.exec(e.ctx, "SELECT * FROM (VALUES (1), (2), (3)) v(x) WHERE x IN (1, 2, 3)")
	got := e.samples()
	require.ElementsMatch(t, []string{
		"select ? where ? = ?",
		"select ?::int where ? = ?",
		"select * from (values (?)) v(x) where x in (?)",
	}, keys(got))
	require.Len(t, got["select ? where ? = ?"], 2)
}

func TestNameBound(t *testing.T) {
	e := newTraced(t, &pgxtrace.Options{MaxOperations: 2}, nil)
	for _, name := range []string{"a", "b", "c", "a", "d", "b"} {
		e.exec(monitor.WithOperation(e.ctx, name), "SELECT 1")
	}
	got := e.samples()
	require.ElementsMatch(t, []string{"a", "b"}, keys(got))
	require.Len(t, got["a"], 2)
	st := e.tracer.Stats()
	require.EqualValues(t, 2, st.DroppedNames, "c and d")
	require.Equal(t, 2, st.Names)
}

func TestBatchIsOneSample(t *testing.T) {
	e := newTraced(t, nil, nil)
	// A sqlc :batchexec call: every query shares one name.
	b := &pgx.Batch{}
	for range 3 {
		b.Queue("-- name: TouchItems :batchexec\nSELECT pg_sleep(0.004)")
	}
	require.NoError(t, e.pool.SendBatch(e.ctx, b).Close())
	// Mixed queries need a name on the context...
	b = &pgx.Batch{}
	b.Queue("-- name: First :one\nSELECT 1")
	b.Queue("-- name: Second :exec\nSELECT 2")
	require.NoError(t, e.pool.SendBatch(e.ctx, b).Close())
	// ...which names the batch whatever it holds.
	b = &pgx.Batch{}
	b.Queue("-- name: First :one\nSELECT 1")
	b.Queue("SELECT pg_sleep(0.01)")
	require.NoError(t, e.pool.SendBatch(monitor.WithOperation(e.ctx, "checkout"), b).Close())

	got := e.samples()
	require.ElementsMatch(t, []string{"TouchItems", "checkout"}, keys(got))
	require.Len(t, got["TouchItems"], 1)
	require.GreaterOrEqual(t, got["TouchItems"][0].micros, int64(12000), "the three queries together")
	require.Len(t, got["checkout"], 1)
	require.GreaterOrEqual(t, got["checkout"][0].micros, int64(10000))
	require.EqualValues(t, 1, e.tracer.Stats().Unnamed, "the mixed batch without a name")
}

func TestCopyFromRecordedOnce(t *testing.T) {
	e := newTraced(t, &pgxtrace.Options{Fallback: pgxtrace.FallbackFingerprint}, nil)
	_, err := e.plain.Exec(e.ctx, "CREATE TABLE public.items (id int)")
	require.NoError(t, err)
	rows := [][]any{{1}, {2}, {3}}
	n, err := e.pool.CopyFrom(monitor.WithOperation(e.ctx, "import_items"), pgx.Identifier{"public", "items"}, []string{"id"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	_, err = e.pool.CopyFrom(e.ctx, pgx.Identifier{"public", "items"}, []string{"id"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)

	got := e.samples()
	require.ElementsMatch(t, []string{"import_items", `copy "public"."items"`}, keys(got))
	require.Len(t, got["import_items"], 1)
}

func TestErrors(t *testing.T) {
	e := newTraced(t, nil, nil)
	ctx := monitor.WithOperation(e.ctx, "failing")
	_, err := e.pool.Exec(ctx, "SELECT 1/0")
	requireSQLState(t, err, "22012")
	// A statement timeout is the slow execution that matters most.
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(monitor.WithOperation(e.ctx, "setup"), "SET LOCAL statement_timeout = '20ms'")
	require.NoError(t, err)
	_, err = tx.Exec(monitor.WithOperation(e.ctx, "timed_out"), "SELECT pg_sleep(1)")
	requireSQLState(t, err, "57014")
	require.NoError(t, tx.Rollback(e.ctx))
	// A deadline on the caller's context is recorded too; a cancellation is not.
	dctx, cancel := context.WithTimeout(monitor.WithOperation(e.ctx, "deadline"), 30*time.Millisecond)
	_, err = e.pool.Exec(dctx, "SELECT pg_sleep(1)")
	cancel()
	require.Error(t, err)
	cctx, cancel := context.WithCancel(monitor.WithOperation(e.ctx, "cancelled"))
	go func() { time.Sleep(30 * time.Millisecond); cancel() }()
	_, err = e.pool.Exec(cctx, "SELECT pg_sleep(1)")
	require.Error(t, err)

	got := e.samples()
	require.ElementsMatch(t, []string{"failing", "setup", "timed_out", "deadline"}, keys(got))
	require.JSONEq(t, `{"error":"22012"}`, got["failing"][0].meta)
	require.JSONEq(t, `{"error":"57014"}`, got["timed_out"][0].meta)
	require.GreaterOrEqual(t, got["timed_out"][0].micros, int64(20000))
	require.JSONEq(t, `{"error":"deadline_exceeded"}`, got["deadline"][0].meta)
	require.Empty(t, got["setup"][0].meta)
	require.EqualValues(t, 1, e.tracer.Stats().Errors, "the cancelled query")

	// ErrorsNone records successes only.
	e2 := newTraced(t, &pgxtrace.Options{Errors: pgxtrace.ErrorsNone}, nil)
	_, err = e2.pool.Exec(monitor.WithOperation(e2.ctx, "failing"), "SELECT 1/0")
	require.Error(t, err)
	e2.exec(monitor.WithOperation(e2.ctx, "fine"), "SELECT 1")
	require.Equal(t, []string{"fine"}, keys(e2.samples()))
	require.EqualValues(t, 1, e2.tracer.Stats().Errors)
}

func requireSQLState(t *testing.T, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want SQLSTATE %s, got %v", code, err)
	require.Equal(t, code, pgErr.Code)
}

// counting is another tracer already installed on the config (say,
// OpenTelemetry's): it must keep seeing every event.
type counting struct{ starts, ends, batches, copies atomic.Int64 }

func (c *counting) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.starts.Add(1)
	return context.WithValue(ctx, countingKey{}, "mine")
}

func (c *counting) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(countingKey{}) == "mine" { // its own context value survives
		c.ends.Add(1)
	}
}

func (c *counting) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}
func (c *counting) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *counting) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (c *counting) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.copies.Add(1)
	return ctx
}
func (c *counting) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

type countingKey struct{}

func TestChainsWithAnExistingTracer(t *testing.T) {
	other := &counting{}
	e := newTraced(t, nil, other)
	e.exec(monitor.WithOperation(e.ctx, "op"), "SELECT 1")
	e.exec(e.ctx, "-- name: Named :exec\nSELECT 1")
	b := &pgx.Batch{}
	b.Queue("-- name: InBatch :batchone\nSELECT 1")
	require.NoError(t, e.pool.SendBatch(e.ctx, b).Close())

	require.ElementsMatch(t, []string{"op", "Named", "InBatch"}, keys(e.samples()))
	require.GreaterOrEqual(t, other.starts.Load(), int64(2))
	require.Equal(t, other.starts.Load(), other.ends.Load(), "the other tracer's context reaches its end hook")
	require.EqualValues(t, 1, other.batches.Load())

	// Chain skips nils and returns a single tracer as is.
	require.Same(t, e.tracer, pgxtrace.Chain(nil, e.tracer, nil))
}

func TestLibraryWorkIsNotTraced(t *testing.T) {
	// The Recorder itself writes through the traced pool: its COPY must not
	// come back as a sample, even with the fingerprint fallback.
	ctx := context.Background()
	dsn := monitortest.NewDB(t)
	cfg, err := monitortest.PoolConfig(dsn)
	require.NoError(t, err)
	var rec *monitor.Recorder
	late := recorderFunc(func(s monitor.Sample) error {
		if rec == nil { // the client's own setup, before the Recorder exists
			return monitor.ErrRecorderClosed
		}
		return rec.RecordSample(s)
	})
	_, err = pgxtrace.Install(cfg.ConnConfig, late, &pgxtrace.Options{Fallback: pgxtrace.FallbackFingerprint})
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	client, err := monitor.New(pool, &monitor.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	rec, err = client.NewRecorder(&monitor.RecorderConfig{FlushInterval: time.Hour})
	require.NoError(t, err)

	_, err = pool.Exec(monitor.WithOperation(ctx, "host_query"), "SELECT 1")
	require.NoError(t, err)
	_, err = pool.Exec(monitor.WithoutTracing(monitor.WithOperation(ctx, "hidden")), "SELECT 1")
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, rec.Flush(ctx))
	}
	require.NoError(t, rec.Close(ctx))

	var ops []string
	rows, err := pool.Query(monitor.WithoutTracing(ctx), "SELECT DISTINCT operation_type FROM pggit.performance_metrics")
	require.NoError(t, err)
	ops, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, ops, "host_query")
	require.NotContains(t, ops, "hidden")
	for _, op := range ops {
		require.NotContains(t, op, "performance_metrics", "the Recorder's own writes came back as samples: %v", ops)
	}
}

type recorderFunc func(monitor.Sample) error

func (f recorderFunc) RecordSample(s monitor.Sample) error { return f(s) }

func TestSampleRate(t *testing.T) {
	var n atomic.Int64
	tr, err := pgxtrace.New(recorderFunc(func(monitor.Sample) error { n.Add(1); return nil }), &pgxtrace.Options{SampleRate: 0.25})
	require.NoError(t, err)
	ctx := monitor.WithOperation(context.Background(), "op")
	for i := 0; i < 4000; i++ {
		tr.TraceQueryEnd(tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"}), nil, pgx.TraceQueryEndData{})
	}
	// Binomial(4000, 0.25): mean 1000, sd 27; the bounds are 7 sd away.
	require.InDelta(t, 1000, n.Load(), 200)
}

func TestRecorderRefusalsCounted(t *testing.T) {
	tr, err := pgxtrace.New(recorderFunc(func(monitor.Sample) error { return monitor.ErrBufferFull }), nil)
	require.NoError(t, err)
	ctx := monitor.WithOperation(context.Background(), "op")
	tr.TraceQueryEnd(tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"}), nil, pgx.TraceQueryEndData{})
	require.EqualValues(t, 1, tr.Stats().RecordErrors)
	require.EqualValues(t, 0, tr.Stats().Recorded)
}

func TestHotPathAllocations(t *testing.T) {
	tr, err := pgxtrace.New(recorderFunc(func(monitor.Sample) error { return nil }), nil)
	require.NoError(t, err)
	ctx := context.Background()
	named := pgx.TraceQueryStartData{SQL: "-- name: GetAuthor :one\nSELECT 1"}
	unnamed := pgx.TraceQueryStartData{SQL: "SELECT 1"}
	run := func(data pgx.TraceQueryStartData) float64 {
		return testing.AllocsPerRun(1000, func() {
			tr.TraceQueryEnd(tr.TraceQueryStart(ctx, nil, data), nil, pgx.TraceQueryEndData{})
		})
	}
	require.LessOrEqual(t, run(named), 1.0, "one allocation per recorded query (its span)")
	require.Zero(t, run(unnamed), "nothing for a query not recorded")
}

func TestBadOptions(t *testing.T) {
	rec := recorderFunc(func(monitor.Sample) error { return nil })
	for _, tc := range []struct {
		opts *pgxtrace.Options
		want string
	}{
		{&pgxtrace.Options{SampleRate: 1.5}, "SampleRate must be in (0, 1]"},
		{&pgxtrace.Options{SampleRate: -0.1}, "SampleRate must be in (0, 1]"},
		{&pgxtrace.Options{MaxOperations: -1}, "MaxOperations must be positive"},
		{&pgxtrace.Options{Fallback: 7}, "Fallback must be FallbackNone or FallbackFingerprint"},
		{&pgxtrace.Options{Errors: 9}, "Errors must be ErrorsServer or ErrorsNone"},
	} {
		_, err := pgxtrace.New(rec, tc.opts)
		require.ErrorContains(t, err, tc.want)
	}
	_, err := pgxtrace.New(nil, nil)
	require.ErrorContains(t, err, "Recorder is required")
	cfg := &pgx.ConnConfig{}
	_, err = pgxtrace.Install(cfg, rec, &pgxtrace.Options{SampleRate: 2})
	require.Error(t, err)
	require.Nil(t, cfg.Tracer, "a refused Install leaves the config alone")
}

func TestSQLCName(t *testing.T) {
	for sql, want := range map[string]string{
		"-- name: GetAuthor :one\nSELECT 1":     "GetAuthor",
		"  \n-- name:  ListAll   :many\nSELECT": "ListAll",
		"-- name: CopyMetrics :copyfrom":        "CopyMetrics",
		"-- name: Broken\nSELECT 1":             "",
		"-- name: :one\nSELECT 1":               "",
		"SELECT 1 -- name: Late :one":           "",
		"/* name: X :one */ SELECT 1":           "",
	} {
		got, ok := pgxtrace.SQLCName(sql)
		require.Equal(t, want, got, sql)
		require.Equal(t, want != "", ok, sql)
	}
}

func TestFingerprint(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT * FROM t WHERE id = 42":                                   "select * from t where id = ?",
		"select *\n  from T\twhere ID=$1":                                 "select * from t where id = ?",
		`SELECT "Mixed"."Col" FROM "Mixed" WHERE x = 'it''s'`:             `select "Mixed"."Col" from "Mixed" where x = ?`,
		"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')":        "insert into t (a, b) values (?)",
		"SELECT count(*), lower(x) FROM t":                                "select count(*), lower(x) from t",
		"SELECT 1.5e-3, -2, 0xFF, .5, E'\\n', B'101', $$body$$, $f$x$f$":  "select ?, - ?",
		"SELECT a /* comment /* nested */ still */ FROM t -- trailing":    "select a from t",
		"SELECT a->>'k', b::text[] FROM t WHERE c <> $2 AND d IN ($3,$4)": "select a ->> ?, b::text[] from t where c <> ? and d in (?)",
		"SELECT ü FROM tåble":                                             "select ü from tåble",
	} {
		require.Equal(t, want, pgxtrace.Fingerprint(sql), sql)
	}
	long := "SELECT " + fmt.Sprint(make([]struct{}, 300)) + " FROM t"
	require.LessOrEqual(t, len([]rune(pgxtrace.Fingerprint(long))), 200)
}

func keys(m map[string][]stored) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
