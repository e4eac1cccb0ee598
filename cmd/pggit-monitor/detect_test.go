package main

import (
	"context"
	"math"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestCLIDetectBacktestAndAccept(t *testing.T) {
	dsn := monitortest.NewDB(t)
	t.Setenv("DATABASE_URL", dsn)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	// Ten hours of an operation that doubles at 8:20 into them.
	rng := rand.New(rand.NewPCG(1, 1))
	start := time.Now().UTC().Truncate(time.Hour).Add(-11 * time.Hour)
	change, end := start.Add(8*time.Hour+20*time.Minute), start.Add(10*time.Hour)
	var rows [][]any
	for at := start; at.Before(end); at = at.Add(5 * time.Second) {
		f := 1.0
		if !at.Before(change) {
			f = 2
		}
		rows = append(rows, []any{"checkout", int64(20000 * f * math.Exp(0.4*rng.NormFloat64())), at})
	}
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"pggit", "performance_metrics"},
		[]string{"operation_type", "duration_microseconds", "recorded_at"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)

	// A replay first: it finds the regression and writes nothing.
	out, err := runCLI(t, "backtest", "-from", start.Add(4*time.Hour).Format(time.RFC3339), "-to", end.Format(time.RFC3339), "-step", "10m")
	require.NoError(t, err)
	require.Regexp(t, `backtest .* \d+ alerts would have fired \(nothing was written\)`, out)
	require.Regexp(t, `checkout +DEGRADATION +CRITICAL`, out)
	require.Contains(t, out, "summary:")
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pggit.performance_alerts`).Scan(&n))
	require.Zero(t, n)

	// Detection for real.
	out, err = runCLI(t, "detect", "-as-of", end.Format(time.RFC3339))
	require.NoError(t, err)
	require.Regexp(t, `\d+ alerts opened, changed or resolved`, out)
	m := regexp.MustCompile(`(?m)^(\d+) +checkout +DEGRADATION +CRITICAL .*latency up`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	out, err = runCLI(t, "detect", "-as-of", end.Format(time.RFC3339))
	require.NoError(t, err)
	require.Contains(t, out, "0 alerts opened, changed or resolved")

	// The new level is accepted.
	out, err = runCLI(t, "alerts", "accept", "-by", "alice", m[1])
	require.NoError(t, err)
	require.Regexp(t, `alert \d+ accepted by alice: checkout's baseline starts again at`, out)
	var reason string
	require.NoError(t, pool.QueryRow(ctx, `SELECT h.reason FROM pggit.performance_baseline_history h ORDER BY history_id DESC LIMIT 1`).Scan(&reason))
	require.Equal(t, "accepted", reason)
	_, err = runCLI(t, "alerts", "accept", m[1])
	require.ErrorContains(t, err, "already resolved")

	// Bad input.
	_, err = runCLI(t, "backtest")
	require.ErrorContains(t, err, "-from is required")
	_, err = runCLI(t, "backtest", "-from", "yesterday")
	require.ErrorContains(t, err, "-from: want RFC 3339")
	_, err = runCLI(t, "backtest", "-from", "24h", "-step", "30s")
	require.ErrorContains(t, err, "Step must be a whole number of minutes")
	_, err = runCLI(t, "detect", "-as-of", "2100-01-01T00:00:00Z")
	require.ErrorContains(t, err, "p_as_of must be a time no more than 7 days from now")
}
