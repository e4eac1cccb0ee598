package monitor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

type env struct {
	t      *testing.T
	ctx    context.Context
	dsn    string
	pool   *pgxpool.Pool
	client *monitor.Client
}

func setup(t *testing.T) *env {
	t.Helper()
	dsn := monitortest.NewDB(t)
	pool := monitortest.Connect(t, dsn)
	client, err := monitor.New(pool, &monitor.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	return &env{t: t, ctx: context.Background(), dsn: dsn, pool: pool, client: client}
}

// copySamples writes samples of one (operation, scope) with explicit times.
func (e *env) copySamples(op, scope string, at time.Time, durations ...int64) {
	e.t.Helper()
	rows := make([]gen.CopyMetricsParams, len(durations))
	for i, d := range durations {
		rows[i] = gen.CopyMetricsParams{OperationType: op, DurationMicroseconds: d, RecordedAt: at, Scope: scope}
	}
	n, err := gen.New(e.pool).CopyMetrics(e.ctx, rows)
	require.NoError(e.t, err)
	require.EqualValues(e.t, len(durations), n)
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	_, err := e.pool.Exec(e.ctx, sql, args...)
	require.NoError(e.t, err)
}

func (e *env) count(sql string, args ...any) int64 {
	e.t.Helper()
	var n int64
	require.NoError(e.t, e.pool.QueryRow(e.ctx, sql, args...).Scan(&n))
	return n
}

func (e *env) recalc(opts *monitor.RecalculateOpts) *monitor.RecalculateResult {
	e.t.Helper()
	res, err := e.client.RecalculateAllBaselinesRolling(e.ctx, opts)
	require.NoError(e.t, err)
	return res
}

func byOp(res *monitor.RecalculateResult) map[string]*monitor.OperationResult {
	m := make(map[string]*monitor.OperationResult, len(res.Operations))
	for _, r := range res.Operations {
		key := r.OperationType
		if r.Scope != "" {
			key += "@" + r.Scope
		}
		m[key] = r
	}
	return m
}

// requirePgError asserts err carries SQLSTATE code and that its message
// mentions each of the given fragments.
func requirePgError(t *testing.T, err error, code string, fragments ...string) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a *pgconn.PgError, got %T: %v", err, err)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
	for _, f := range fragments {
		require.Contains(t, pgErr.Message, f)
	}
	return pgErr
}
