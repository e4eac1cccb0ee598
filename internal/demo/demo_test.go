package demo_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/internal/demo"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestMain(m *testing.M) {
	monitortest.Main(m, monitortest.CheckGoroutines(), monitortest.EmptySearchPath())
}

func TestDemoRunsTheWholePipeline(t *testing.T) {
	t.Setenv("PGGIT_WEBHOOK_KEYS", "") // the demo makes its own key
	// An empty database: the demo migrates it itself, as it would on
	// DATABASE_URL. Migration needs a search_path with a schema for goose's
	// version table, so this pool keeps the default one.
	pool, err := pgxpool.New(context.Background(), monitortest.NewEmptyDB(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	var out bytes.Buffer
	require.NoError(t, demo.Run(context.Background(), pool, &out))
	s := out.String()
	require.Contains(t, s, "applied 00001_baselines_schema.sql")
	require.Contains(t, s, "recorded 90000, written 90000, dropped 0")
	require.Contains(t, s, "run 1: SUCCESS")
	require.Contains(t, s, "5 operations, 5 updated")
	// The rolled-back regression: found within minutes, each detector's
	// alert resolved by pggit after 30 healthy minutes.
	for _, typ := range []string{"DEGRADATION", "ANOMALY"} {
		require.Regexp(t, `\d+ +merge_branches +`+typ+` +CRITICAL +\d\d:\d\d +\d\d:\d\d +\d\d:\d\d by pggit`, s)
		require.Regexp(t, `\d+ +get_history +`+typ+` +CRITICAL +\d\d:\d\d +\d\d:\d\d +open +no`, s)
	}
	require.Regexp(t, `merge_branches +DEGRADATION .* latency up \d+% since`, s)
	// The snooze holds the THRESHOLD_EXCEEDED alert of get_history back.
	require.Regexp(t, `get_history +THRESHOLD_EXCEEDED +\w+ .* yes \(snooze 1\)`, s)
	// Delivered as they happened: the trigger, then the resolution, with the
	// same PagerDuty dedup key; the forced 503 is retried.
	require.Regexp(t, `webhook \d+: slack "demo-slack" -> #pgit-alerts, key demo`, s)
	require.Contains(t, s, "retried 1, dead 0")
	require.Regexp(t, `(?s)trigger (pggit-alert-\d+) \[critical\] CRITICAL DEGRADATION: merge_branches.*resolve pggit-alert-\d+`, s)
	require.Regexp(t, `\[good\] RESOLVED DEGRADATION: merge_branches`, s)
	require.Regexp(t, `\[danger\] CRITICAL DEGRADATION: get_history`, s)
	// The baselines kept their level.
	require.Contains(t, s, "0 updated, 5 unchanged")
	require.Regexp(t, `merge_branches p99: [\d.]+ ms before, [\d.]+ ms after \([+-]\d+\.\d%\): its regression is left out`, s)
	require.Contains(t, s, "== System health")
	require.Regexp(t, `open_alerts +0`, s)
	require.Contains(t, s, "== Performance trend (last 24 hours, newest first)")
	require.NotContains(t, s, "/slack/services/T000/B000/demo") // the webhook URL is never printed

	// Run again on the same database: already migrated, and still coherent.
	out.Reset()
	require.NoError(t, demo.Run(context.Background(), pool, &out))
	require.Contains(t, out.String(), "schema already current")
}
