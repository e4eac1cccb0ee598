package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestPartitionsCommandAndStatusShowStrays(t *testing.T) {
	dsn := monitortest.NewDB(t)
	t.Setenv("DATABASE_URL", dsn)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()

	out, err := runCLI(t, "partitions")
	require.NoError(t, err)
	today := "performance_metrics_p" + time.Now().UTC().Format("20060102")
	require.Regexp(t, today+` +`+time.Now().UTC().Format(time.DateOnly)+` 00:00:00`, out)
	require.Regexp(t, `performance_metrics_default +DEFAULT +DEFAULT`, out)

	out, err = runCLI(t, "status")
	require.NoError(t, err)
	require.Contains(t, out, "== Sample partitions (24h0m0s wide, created 3 days ahead)")
	require.NotContains(t, out, "WARNING: ")

	// A backfill from a year ago lands in the default partition: status says
	// so, and `partitions -from -to` moves it into partitions of its own.
	_, err = pool.Exec(ctx, `INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
		SELECT 'merge', 1000, now() - interval '365 days' + g * interval '1 hour' FROM generate_series(0, 47) g`)
	require.NoError(t, err)
	out, err = runCLI(t, "status")
	require.NoError(t, err)
	require.Contains(t, out, "WARNING: 48 samples in the default partition")

	from := time.Now().AddDate(0, 0, -366).Format(time.DateOnly)
	to := time.Now().AddDate(0, 0, -362).Format(time.DateOnly)
	out, err = runCLI(t, "partitions", "-from", from, "-to", to)
	require.NoError(t, err)
	require.Regexp(t, `created performance_metrics_p\d{8} \[.*\), 2\d samples moved from the default partition`, out)
	out, err = runCLI(t, "status")
	require.NoError(t, err)
	require.NotContains(t, out, "WARNING: ")

	_, err = runCLI(t, "partitions", "-to", to)
	require.ErrorContains(t, err, "-to needs -from")
	_, err = runCLI(t, "run", "-partition-width", "90m")
	require.ErrorContains(t, err, "Width must be a whole number of hours from 1h to 744h0m0s (0: unchanged), got 1h30m0s")
}
