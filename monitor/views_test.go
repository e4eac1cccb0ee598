package monitor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

// row reads one row of a query into a map.
func (e *env) row(sql string, args ...any) map[string]any {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, sql, args...)
	require.NoError(e.t, err)
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToMap)
	require.NoError(e.t, err, sql)
	return m
}

func (e *env) rowsOf(sql string, args ...any) []map[string]any {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, sql, args...)
	require.NoError(e.t, err)
	ms, err := pgx.CollectRows(rows, pgx.RowToMap)
	require.NoError(e.t, err, sql)
	return ms
}

// seedDashboards builds a database where every view's answer is known.
//
// Times are relative to one instant read from the database first. The
// recalculation runs and baseline changes of "today" lie between the start of
// its day, in the session's TimeZone as date_trunc('day') in the views sees
// it, and that instant: an hour or two before now is yesterday between 00:00
// and 02:00, and the views would group them into one more day.
func seedDashboards(e *env) {
	e.t.Helper()
	var dbNow, dayStart time.Time
	require.NoError(e.t, e.pool.QueryRow(e.ctx, `SELECT now(), date_trunc('day', now())`).Scan(&dbNow, &dayStart))
	today := func(fraction float64) time.Time { // that share of today so far
		return dayStart.Add(time.Duration(fraction * float64(dbNow.Sub(dayStart))))
	}
	now := time.Now()
	// Samples of the last hour: a@'' 1..100 ms, a@main 10 x 60 ms, b (no baseline) 5 x 1 ms.
	d := make([]int64, 100)
	for i := range d {
		d[i] = int64(i+1) * 1000
	}
	e.copySamples("a", "", now.Add(-10*time.Minute), d...)
	e.copySamples("a", "main", now.Add(-10*time.Minute), 60000, 60000, 60000, 60000, 60000, 60000, 60000, 60000, 60000, 60000)
	e.copySamples("b", "", now.Add(-10*time.Minute), 1000, 1000, 1000, 1000, 1000)
	// Baselines: active a@'' p99 40 ms, active a@main p99 10 ms, and an
	// inactive a@'' that must not duplicate anything.
	e.exec(`INSERT INTO pggit.performance_baselines
		(operation_type, scope, sample_count, min_microseconds, max_microseconds, mean_microseconds, stddev_microseconds,
		 p50_microseconds, p75_microseconds, p90_microseconds, p95_microseconds, p99_microseconds, lookback_days,
		 window_start, window_end, is_active, deactivated_at)
		VALUES ('a', '', 100, 1000, 50000, 20000, 5000, 20000, 25000, 30000, 35000, 40000, 7, now() - interval '7 days', now(), true, NULL),
		       ('a', 'main', 100, 1000, 20000, 5000, 1000, 5000, 6000, 8000, 9000, 10000, 7, now() - interval '7 days', now(), true, NULL),
		       ('a', '', 100, 1000, 90000, 20000, 5000, 20000, 25000, 30000, 35000, 80000, 7, now() - interval '14 days', now() - interval '7 days', false, now() - interval '7 days')`)
	// Alerts with known response times (SLA: CRITICAL 5 min, WARNING 15 min).
	e.exec(`INSERT INTO pggit.performance_alerts (operation_type, scope, alert_type, severity, created_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by, snoozed) VALUES
		('c1', '', 'ANOMALY', 'CRITICAL', now() - interval '1 hour', now() - interval '58 minutes', 'x', now(), 'x', false),   -- 2 min: within
		('c2', '', 'ANOMALY', 'CRITICAL', now() - interval '1 hour', now() - interval '50 minutes', 'x', now(), 'x', false),   -- 10 min: breach
		('c3', '', 'ANOMALY', 'CRITICAL', now() - interval '20 minutes', NULL, NULL, NULL, NULL, false),                       -- breaching now
		('c4', '', 'ANOMALY', 'CRITICAL', now() - interval '1 minute', NULL, NULL, NULL, NULL, false),                         -- not judged yet
		('w1', '', 'ANOMALY', 'WARNING', now() - interval '2 hours', now() - interval '110 minutes', 'x', NULL, NULL, false),  -- 10 min: within
		('w2', '', 'ANOMALY', 'WARNING', now() - interval '30 minutes', NULL, NULL, NULL, NULL, false),                        -- breaching now
		('a', '', 'THRESHOLD_EXCEEDED', 'WARNING', now() - interval '2 days', NULL, NULL, NULL, NULL, false),
		('s1', '', 'ANOMALY', 'CRITICAL', now() - interval '3 hours', NULL, NULL, NULL, NULL, true)                            -- snoozed: not judged`)
	e.exec(`SELECT pggit.snooze_alerts('s1', 'ALL', 60, 'maintenance', 'ops')`)
	e.exec(`UPDATE pggit.performance_alerts SET snooze_id = 1 WHERE operation_type = 's1'`)
	e.exec(`INSERT INTO pggit.alert_snooze (operation_type, alert_type, snooze_until, created_by, created_at)
		VALUES ('old', 'ALL', now() - interval '1 hour', 'ops', now() - interval '2 hours')`)
	// Recalculation runs: 3 days ago FAILED, today SUCCESS then PARTIAL.
	e.exec(`INSERT INTO pggit.baseline_recalc_execution (started_at, finished_at, duration_ms, status, reason, lookback_days, min_samples, force, window_start, window_end) VALUES
		($1::timestamptz - interval '3 days', $1::timestamptz - interval '3 days', 50, 'FAILED', 'scheduled', 7, 10, false, now(), now()),
		($2, $2, 100, 'SUCCESS', 'scheduled', 7, 10, false, now(), now()),
		($3, $3, 200, 'PARTIAL', 'manual', 7, 10, false, now(), now())`, dbNow, today(0.2), today(0.4))
	e.exec(`INSERT INTO pggit.performance_baseline_history (operation_type, scope, baseline_id, old_p99_microseconds, new_p99_microseconds, percent_change, sample_count, lookback_days, reason, changed_at) VALUES
		('a', '', 1, 30769, 40000, 30, 100, 7, 'scheduled', $1),
		('a', '', 1, 44444, 40000, -10, 100, 7, 'manual', $2)`, today(0.6), today(0.8))
	// A webhook with four logged attempts and batches in every state.
	e.exec(`INSERT INTO pggit.alert_notification_webhooks (webhook_type, name, secret_ciphertext, secret_nonce, key_id)
		VALUES ('slack', 'ops', '\x00112233445566778899aabbccddeeff00', '\x001122334455667788990011', 'k')`)
	e.exec(`INSERT INTO pggit.notification_batch_queue (webhook_id, status, batch_size, item_count, due_at, max_attempts, attempts, opened_at, lease_until) VALUES
		(1, 'accumulating', 10, 2, now() + interval '1 minute', 6, 0, now() - interval '10 seconds', NULL),
		(1, 'failed', 10, 1, now(), 6, 1, now() - interval '5 minutes', NULL),
		(1, 'sent', 10, 4, now(), 6, 1, now() - interval '1 hour', NULL),
		(1, 'dead', 10, 1, now(), 6, 3, now() - interval '2 hours', NULL)`)
	e.exec(`INSERT INTO pggit.alert_notification_log (batch_id, webhook_id, attempt, outcome, http_status, latency_ms, error, worker, item_count) VALUES
		(3, 1, 1, 'sent', 200, 10, NULL, 'w', 4), (3, 1, 1, 'sent', 200, 20, NULL, 'w', 4),
		(3, 1, 1, 'sent', 200, 30, NULL, 'w', 4), (2, 1, 1, 'retry', 500, 40, 'HTTP 500: down', 'w', 1)`)
}

func TestDashboardViews(t *testing.T) {
	t.Parallel()
	checkDashboardViews(t, setup(t))
}

// The views' days and hours are those of the session's TimeZone. In a zone
// where it is now just after midnight (or just after the hour: the zones are
// minutes off UTC), yesterday and the previous hour are close: the answers
// must not change.
func TestDashboardViewsAtAnyTimeOfDay(t *testing.T) {
	t.Parallel()
	for _, local := range []string{"00:05", "00:45", "01:30", "23:55"} {
		t.Run(local, func(t *testing.T) {
			t.Parallel()
			e := setupWhereNowIs(t, local)
			checkDashboardViews(t, e)
		})
	}
}

// setupWhereNowIs is setup with a session TimeZone in which the local time
// now is hhmm ("00:45"): a POSIX zone of whole minutes off UTC.
func setupWhereNowIs(t *testing.T, hhmm string) *env {
	t.Helper()
	want, err := time.Parse("15:04", hhmm)
	require.NoError(t, err)
	utc := time.Now().UTC()
	offset := (time.Duration(want.Hour()-utc.Hour())*time.Hour + time.Duration(want.Minute()-utc.Minute())*time.Minute) % (24 * time.Hour)
	switch {
	case offset > 12*time.Hour:
		offset -= 24 * time.Hour
	case offset <= -12*time.Hour:
		offset += 24 * time.Hour
	}
	sign, posix := "+", "-" // POSIX offsets are west of Greenwich: UTC+5 is "-5"
	if offset < 0 {
		sign, posix, offset = "-", "+", -offset
	}
	h, m := int(offset/time.Hour), int(offset%time.Hour/time.Minute)
	zone := fmt.Sprintf("<%s%02d%02d>%s%02d:%02d", sign, h, m, posix, h, m)

	dsn := monitortest.NewDB(t)
	cfg, err := monitortest.PoolConfig(dsn)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["timezone"] = zone
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := monitor.New(pool, &monitor.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	e := &env{t: t, ctx: context.Background(), dsn: dsn, pool: pool, client: client}

	// The zone does what it should: the database's local time is hhmm (or
	// the minute after, if one began meanwhile).
	var local string
	require.NoError(t, pool.QueryRow(e.ctx, `SELECT to_char(now(), 'HH24:MI')`).Scan(&local))
	require.Contains(t, []string{hhmm, want.Add(time.Minute).Format("15:04")}, local, "local time in %s", zone)
	return e
}

func checkDashboardViews(t *testing.T, e *env) {
	t.Helper()
	seedDashboards(e)

	h := e.row(`SELECT * FROM pggit.v_monitoring_system_health`)
	require.EqualValues(t, 6, h["open_alerts"]) // c3, c4, w1, w2, a, s1
	require.EqualValues(t, 3, h["open_critical"])
	require.EqualValues(t, 5, h["open_unacknowledged"])
	require.EqualValues(t, 2, h["active_baselines"])
	require.EqualValues(t, 115, h["samples_last_hour"])
	require.Equal(t, "PARTIAL", h["last_recalc_status"])
	require.EqualValues(t, 1, h["notification_batches_pending"])
	require.EqualValues(t, 1, h["notification_batches_retrying"])
	require.EqualValues(t, 1, h["active_snoozes"])

	days := e.rowsOf(`SELECT * FROM pggit.v_baseline_recalc_health ORDER BY day`)
	require.Len(t, days, 2)
	require.EqualValues(t, 1, days[0]["runs"])
	require.EqualValues(t, 1, days[0]["failed"])
	require.EqualValues(t, 0, days[0]["baselines_changed"])
	require.EqualValues(t, 2, days[1]["runs"])
	require.EqualValues(t, 1, days[1]["succeeded"])
	require.EqualValues(t, 1, days[1]["partial"])
	require.EqualValues(t, 150.0, days[1]["avg_duration_ms"])
	require.EqualValues(t, 2, days[1]["baselines_changed"])
	require.EqualValues(t, 1, days[1]["improvements"])
	require.EqualValues(t, 1, days[1]["degradations"])

	d := e.row(`SELECT * FROM pggit.v_alert_delivery_success_rate`)
	require.EqualValues(t, 4, d["attempts"])
	require.EqualValues(t, 3, d["sent"])
	require.EqualValues(t, 1, d["retried"])
	require.Equal(t, "75.00", numeric(d["success_rate_pct"]))
	require.EqualValues(t, 25.0, d["avg_latency_ms"])
	require.InDelta(t, 38.5, d["p95_latency_ms"], 1e-9)
	require.Equal(t, "HTTP 500: down", d["last_error"])

	sla := map[string]map[string]any{}
	for _, r := range e.rowsOf(`SELECT * FROM pggit.v_alert_response_sla`) {
		sla[r["severity"].(string)] = r
	}
	c := sla["CRITICAL"]
	require.EqualValues(t, 5, c["sla_minutes"])
	require.EqualValues(t, 4, c["alerts"]) // the snoozed one is not judged
	require.EqualValues(t, 2, c["acknowledged"])
	require.EqualValues(t, 1, c["acknowledged_within_sla"])
	require.EqualValues(t, 3, c["judged"])
	require.Equal(t, "33.33", numeric(c["sla_compliance_pct"]))
	require.InDelta(t, 360.0, c["median_ack_seconds"], 1)
	require.EqualValues(t, 1, c["breaching_now"])
	w := sla["WARNING"]
	require.EqualValues(t, 3, w["alerts"])
	require.EqualValues(t, 1, w["acknowledged_within_sla"])
	require.EqualValues(t, 3, w["judged"])
	require.EqualValues(t, 2, w["breaching_now"])

	trend := map[string]map[string]any{}
	for _, r := range e.rowsOf(`SELECT * FROM pggit.v_operation_performance_trend`) {
		trend[r["operation_type"].(string)+"@"+r["scope"].(string)] = r
	}
	require.Len(t, trend, 3) // no duplicate through the inactive baseline or the other scope
	require.InDelta(t, 99.01, trend["a@"]["p99_ms"], 1e-9)
	require.InDelta(t, 40.0, numericF(trend["a@"]["baseline_p99_ms"]), 1e-9)
	require.Equal(t, "WARNING", trend["a@"]["status"])
	require.Equal(t, "CRITICAL", trend["a@main"]["status"])
	require.EqualValues(t, 10, trend["a@main"]["samples"])
	require.Equal(t, "NO_BASELINE", trend["b@"]["status"])

	// The hourly rollup gives the same answer as computing from the samples.
	var rolled int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT pggit.rollup_performance_hours(now() + interval '1 hour')`).Scan(&rolled))
	require.Equal(t, 3, rolled)
	for _, r := range e.rowsOf(`SELECT * FROM pggit.v_operation_performance_trend`) {
		live := trend[r["operation_type"].(string)+"@"+r["scope"].(string)]
		require.Equal(t, live["samples"], r["samples"])
		require.InDelta(t, live["p99_ms"], r["p99_ms"], 1e-9)
		require.Equal(t, live["status"], r["status"])
	}
	require.Len(t, e.rowsOf(`SELECT * FROM pggit.v_operation_performance_trend`), 3)

	freq := e.rowsOf(`SELECT * FROM pggit.v_alert_frequency_by_operation WHERE operation_type IN ('a', 'c1') ORDER BY operation_type`)
	require.Len(t, freq, 2)
	require.EqualValues(t, 1, freq[0]["alerts_30d"])
	require.EqualValues(t, 0, freq[0]["alerts_1d"])
	require.EqualValues(t, 1, freq[0]["open_now"])
	require.InDelta(t, 40.0, numericF(freq[0]["baseline_p99_ms"]), 1e-9)
	require.EqualValues(t, 1, freq[1]["critical_30d"])

	sn := e.rowsOf(`SELECT * FROM pggit.v_snoozed_alerts_audit`)
	require.Len(t, sn, 1)
	require.Equal(t, "s1", sn[0]["operation_type"])
	require.EqualValues(t, 1, sn[0]["alerts_silenced"])
	require.Equal(t, "maintenance", sn[0]["snooze_reason"])

	imp := e.row(`SELECT * FROM pggit.v_baseline_change_impact`)
	require.EqualValues(t, 2, imp["changes_30d"])
	require.EqualValues(t, 1, imp["major_changes_30d"])
	require.EqualValues(t, 10.0, imp["avg_percent_change"])
	require.EqualValues(t, 30.0, imp["max_abs_percent_change"])

	q := e.row(`SELECT * FROM pggit.v_notification_queue_health`)
	require.EqualValues(t, 1, q["batches_waiting"])
	require.EqualValues(t, 1, q["batches_retrying"])
	require.EqualValues(t, 1, q["batches_dead"])
	require.EqualValues(t, 3, q["notifications_pending"])
	require.Equal(t, "2.0000000000000000", numeric(q["avg_attempts"]))

	x := e.row(`SELECT * FROM pggit.v_baseline_recalc_execution_health`)
	require.EqualValues(t, 3, x["runs_7d"])
	require.EqualValues(t, 1, x["succeeded_7d"])
	require.Equal(t, "PARTIAL", x["last_status"])
	require.Equal(t, "WARNING", x["health"])

	fresh := e.rowsOf(`SELECT * FROM pggit.v_monitoring_dashboard_freshness ORDER BY source`)
	require.Len(t, fresh, 6)
	for _, f := range fresh {
		require.NotNil(t, f["last_update_at"], f["source"])
	}

	ov := map[string]map[string]any{}
	for _, r := range e.rowsOf(`SELECT * FROM pggit.v_complete_system_overview`) {
		ov[r["operation_type"].(string)+"@"+r["scope"].(string)] = r
	}
	require.Len(t, ov, 7) // a, a@main, and the open alerts' operations c3, c4, w1, w2, s1 (a counted once)
	require.EqualValues(t, 100, ov["a@"]["samples_last_hour"])
	require.EqualValues(t, 1, ov["a@"]["open_alerts"])
	require.Equal(t, "WARNING", ov["a@"]["worst_open_severity"])
	require.Equal(t, true, ov["s1@"]["threshold_snoozed"])
	require.Nil(t, ov["c3@"]["baseline_p99_ms"])

	// The health view in the CRITICAL case: the last run failed.
	e.exec(`INSERT INTO pggit.baseline_recalc_execution (started_at, finished_at, duration_ms, status, reason, lookback_days, min_samples, force, window_start, window_end)
		VALUES (now(), now(), 1, 'FAILED', 'scheduled', 7, 10, false, now(), now())`)
	require.Equal(t, "CRITICAL", e.row(`SELECT health FROM pggit.v_baseline_recalc_execution_health`)["health"])
}

// numeric renders a numeric column as PostgreSQL prints it.
func numeric(v any) string {
	n, ok := v.(pgtype.Numeric)
	if !ok {
		return fmt.Sprintf("not numeric: %T", v)
	}
	val, err := n.Value()
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(val)
}

// numericF reads a numeric or double precision column as a float64.
func numericF(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case pgtype.Numeric:
		f, _ := x.Float64Value()
		return f.Float64
	}
	return math.NaN()
}
