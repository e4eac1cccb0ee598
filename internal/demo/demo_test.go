package demo_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/internal/demo"
	"github.com/pggit/pggit-monitor/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDemoRunsTheWholePipeline(t *testing.T) {
	t.Setenv("PGGIT_WEBHOOK_KEYS", "") // the demo makes its own key
	// An empty database: the demo migrates it itself, as it would on
	// DATABASE_URL. Migration needs a search_path with a schema for goose's
	// version table, so this pool keeps the default one.
	pool, err := pgxpool.New(context.Background(), pgtest.NewEmptyDB(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	var out bytes.Buffer
	require.NoError(t, demo.Run(context.Background(), pool, &out))
	s := out.String()
	require.Contains(t, s, "applied 00001_baselines_schema.sql")
	require.Contains(t, s, "recorded 20000, written 20000, dropped 0")
	require.Contains(t, s, "run 1: SUCCESS")
	require.Contains(t, s, "5 operations, 5 updated")
	require.Regexp(t, `merge_branches +\(global\) +UPDATED +6500 `, s)
	require.Contains(t, s, "run 2: SUCCESS")
	require.Contains(t, s, "2 open alerts")
	require.Regexp(t, `merge_branches +THRESHOLD_EXCEEDED +CRITICAL +\d+ `, s)
	require.Regexp(t, `get_history +THRESHOLD_EXCEEDED +WARNING +\d+ .* yes \(snooze 1\)`, s)
	require.Contains(t, s, "2 updated, 3 unchanged")
	// Delivered to the local sinks; the snoozed alert is not; the forced 503 is retried.
	require.Regexp(t, `webhook \d+: slack "demo-slack" -> #pgit-alerts, key demo`, s)
	require.Contains(t, s, "sent 3, retried 1, dead 0")
	require.Regexp(t, `pagerduty received 1 alerts:\n  trigger pggit-alert-\d+ \[critical\] CRITICAL THRESHOLD_EXCEEDED: merge_branches`, s)
	// Resolution reaches PagerDuty with the same dedup key; then the dashboard.
	require.Regexp(t, `resolve pggit-alert-\d+`, s)
	require.Contains(t, s, "== System health")
	require.Regexp(t, `open_alerts +0`, s)
	require.Contains(t, s, "== Performance trend (last 24 hours, newest first)")
	require.Regexp(t, `slack received 1 alerts:\n  \[danger\] CRITICAL THRESHOLD_EXCEEDED: merge_branches`, s)
	require.Regexp(t, `mattermost received 1 alerts:\n  \[#FF0000\] CRITICAL THRESHOLD_EXCEEDED: merge_branches`, s)
	require.NotContains(t, s, "/slack/services/T000/B000/demo") // the webhook URL is never printed

	// Run again on the same database: already migrated, and still coherent.
	out.Reset()
	require.NoError(t, demo.Run(context.Background(), pool, &out))
	require.Contains(t, out.String(), "schema already current")
}
