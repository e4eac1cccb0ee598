package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

// `run -retention-*-days` stores the settings the worker's retention job
// applies; `status` shows them and the job's last run.
func TestRunStoresRetentionSettingsAndStatusShowsThem(t *testing.T) {
	dsn := monitortest.NewDB(t)
	t.Setenv("DATABASE_URL", dsn)
	_, err := runCLI(t, "run", "-retention-alerts-days", "-1")
	require.ErrorContains(t, err, "-retention-alerts-days must be between 1 and 36500 (0: keep the stored value), got -1")
	_, err = runCLI(t, "run", "-retention-runs-days", "36501")
	require.ErrorContains(t, err, "-retention-runs-days must be between 1 and 36500 (0: keep the stored value), got 36501")

	out, err := runCLI(t, "status")
	require.NoError(t, err)
	require.Regexp(t, `retention_alerts_days +90 +resolved alerts`, out)
	require.Contains(t, out, "last run of sample_retention: never ran")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "-metrics-addr", "", "-retention-alerts-days", "30", "-retention-delivery-log-days", "7"},
			io.Discard, io.Discard)
	}()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	require.Eventually(t, func() bool {
		var ran bool
		_ = pool.QueryRow(ctx, `SELECT count(*) = 1 FROM pggit.scheduled_jobs WHERE job_name = 'sample_retention' AND last_status = 'ok'`).Scan(&ran)
		return ran
	}, 60*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	out, err = runCLI(t, "status")
	require.NoError(t, err)
	require.Regexp(t, `retention_alerts_days +30 `, out)
	require.Regexp(t, `retention_notifications_days +90 `, out)
	require.Regexp(t, `retention_delivery_log_days +7 `, out)
	require.Regexp(t, `last run of sample_retention: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, ok`, out)
}
