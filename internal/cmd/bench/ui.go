package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/ui"
)

// targetPage is the most server time any console page may take, at 10 M
// samples, 1,000 operations and 100 k alerts.
const targetPage = 150 * time.Millisecond

// uiDays of samples are generated for the console benchmark: the 7-day chart
// is full.
const uiDays = 7

// benchUI times every page of the web console (monitor/ui) on o.samples
// samples over o.detectOps operations (generated here, through the samples'
// trigger, so the histograms are what the Recorder would have left) and
// 100,000 alerts with their notifications.
func benchUI(ctx context.Context, e *env, o *options) (*section, error) {
	ops := o.detectOps
	names := opNames(ops)
	width := len(names[0]) - len("op_")
	e.logf("ui: generating %d samples over %d operations and %d days, a day per statement", o.samples, ops, uiDays)
	if err := e.resetAlerts(ctx); err != nil {
		return nil, err
	}
	for _, q := range []string{
		`TRUNCATE pggit.performance_metrics, pggit.performance_histograms`,
		`DELETE FROM pggit.performance_baselines`,
		`DELETE FROM pggit.alert_notification_webhooks`,
	} {
		if err := e.exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%.60s: %w", q, err)
		}
	}
	perDay := o.samples / uiDays
	for d := range uiDays {
		// Log-normal latency, medians 3-18 ms by operation (sigma 0.5);
		// the oldest day first, as time goes.
		if err := e.exec(ctx, `INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
			SELECT 'op_' || lpad((g % $2::integer)::text, $3::integer, '0'),
			       greatest(1, (exp(8 + (g % 7) * 0.3 + 0.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))::bigint,
			       now() - ($4::integer + random()) * interval '1 day'
			FROM generate_series(1, $1::integer) g`, perDay, ops, width, uiDays-1-d); err != nil {
			return nil, err
		}
		e.logf("ui: day %d of %d written", d+1, uiDays)
	}
	n, err := e.countMetrics(ctx)
	if err != nil {
		return nil, err
	}

	// A webhook routed to every alert, so each alert has its notifications.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	ring, err := monitor.NewKeyRing(map[string][]byte{"bench": key}, "bench")
	if err != nil {
		return nil, err
	}
	client, err := monitor.New(e.pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	hook, err := client.StoreWebhook(ctx, monitor.WebhookParams{Type: monitor.WebhookGeneric, Name: "bench-hook",
		Secret: monitor.Secret("http://127.0.0.1:9/bench-hook-url")})
	if err != nil {
		return nil, err
	}
	if _, err := client.RouteAlerts(ctx, monitor.RouteParams{WebhookID: hook.ID}); err != nil {
		return nil, err
	}

	e.logf("ui: histograms compacted, baselines, 100,000 alerts, snoozes")
	args := []any{ops, width}
	setup := []struct {
		q    string
		args []any
	}{
		// Hour rows from 48 h back, minute rows after, as the worker leaves them.
		{`SELECT pggit.compact_histograms('-infinity', now() - interval '48 hours', now() - interval '48 hours')`, nil},
		{`SELECT count(*) FROM pggit.recalculate_all_baselines_rolling(p_force => true, p_max_execution_seconds => 3600)`, nil},
		// 100,000 alerts over 30 days on the operations: the first 999 open
		// (within the last day, one per operation), the rest resolved after an
		// hour; half acknowledged. The three detectors' types.
		{`INSERT INTO pggit.performance_alerts
			(operation_type, scope, alert_type, severity, actual_duration_microseconds, baseline_p99_microseconds,
			 violation_multiplier, created_at, first_seen_at, last_seen_at, occurrence_count,
			 acknowledged_at, acknowledged_by, resolved_at, resolved_by)
		 SELECT 'op_' || lpad((g % $1::integer)::text, $2::integer, '0'), '',
		        (ARRAY['THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION'])[1 + g % 3],
		        CASE WHEN g % 4 = 0 THEN 'CRITICAL' ELSE 'WARNING' END,
		        30000, 10000, 3.0, t, t, t, 1 + g % 7,
		        CASE WHEN g % 2 = 0 THEN t + (g % 1200) * interval '1 second' END,
		        CASE WHEN g % 2 = 0 THEN 'oncall' END,
		        CASE WHEN g >= $1::integer THEN t + interval '1 hour' END,
		        CASE WHEN g >= $1::integer THEN 'oncall' END
		 FROM generate_series(1, 100000) g,
		      LATERAL (SELECT CASE WHEN g < $1::integer THEN now() - (g % 1440) * interval '1 minute'
		                           ELSE now() - (g % 43200) * interval '1 minute' END AS t) x
		 ON CONFLICT DO NOTHING`, args},
		{`SELECT pggit.snooze_alerts('op_' || lpad(g::text, $2::integer, '0'), 'ALL', 600, 'bench', 'bench')
		 FROM generate_series(1, least(100, $1::integer - 1)) g`, args},
		{`VACUUM ANALYZE`, nil},
	}
	for _, st := range setup {
		if err := e.exec(ctx, st.q, st.args...); err != nil {
			return nil, fmt.Errorf("%.60s...: %w", st.q, err)
		}
	}
	var alerts, open, notifications, hist int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE resolved_at IS NULL),
		(SELECT count(*) FROM pggit.alert_notification_queue), (SELECT count(*) FROM pggit.performance_histograms)
		FROM pggit.performance_alerts`).Scan(&alerts, &open, &notifications, &hist); err != nil {
		return nil, err
	}
	// The alert page of an open alert with notifications.
	var alertID int64
	if err := e.pool.QueryRow(ctx, `SELECT a.alert_id FROM pggit.performance_alerts a
		WHERE a.resolved_at IS NULL AND EXISTS (SELECT 1 FROM pggit.alert_notification_queue q WHERE q.alert_id = a.alert_id)
		ORDER BY a.alert_id LIMIT 1`).Scan(&alertID); err != nil {
		return nil, fmt.Errorf("an open alert with notifications: %w", err)
	}

	h, err := ui.New(ui.Config{Client: client, Token: "bench-token-0123456789", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	op := names[ops/2]
	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"operation, 24 h", "/operations/" + op + "?range=24h"},
		{"operation, 7 d", "/operations/" + op + "?range=7d"},
		{"alerts, open", "/alerts"},
		{"alerts, all", "/alerts?status=all"},
		{"alerts, all CRITICAL DEGRADATION", "/alerts?status=all&severity=CRITICAL&type=DEGRADATION"},
		{"alerts, one operation", "/alerts?status=all&op=" + op},
		{"alert", fmt.Sprintf("/alerts/%d", alertID)},
		{"snoozes", "/snoozes"},
		{"webhooks", "/webhooks"},
	}
	var variants []*variant
	for _, p := range pages {
		variants = append(variants, &variant{name: p.name + " (" + p.path + ")", run: func(ctx context.Context) (time.Duration, error) {
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, p.path, nil)
			w := httptest.NewRecorder()
			start := time.Now()
			h.ServeHTTP(w, req)
			d := time.Since(start)
			if w.Code != http.StatusOK || w.Body.Len() < 500 {
				return 0, fmt.Errorf("GET %s: status %d, %d bytes", p.path, w.Code, w.Body.Len())
			}
			return d, nil
		}})
	}
	for _, v := range variants { // one untimed request each
		if _, err := v.run(ctx); err != nil {
			return nil, err
		}
	}
	if err := measure(ctx, e, max(o.runs, 5), variants, nil); err != nil {
		return nil, err
	}
	// Leave no webhook, alerts or notifications to the benchmarks after.
	if err := e.exec(ctx, `DELETE FROM pggit.alert_notification_webhooks`); err != nil {
		return nil, err
	}
	if err := e.resetAlerts(ctx); err != nil {
		return nil, err
	}
	s := &section{
		title: fmt.Sprintf("Web console: %s samples, %s operations, %s alerts", fmtInt(n), fmtInt(int64(ops)), fmtInt(alerts)),
		notes: []string{
			fmt.Sprintf("Samples over the last %d days through the samples' trigger (one statement a day, so the histograms are built as ingestion builds them), then compacted to hour rows before 48 h: %s histogram rows. Baselines recalculated; 100,000 alerts over 30 days on the operations (%s open, one per operation; half acknowledged), 100 operations snoozed, a webhook routed to all of them (%s notifications queued); VACUUM ANALYZE.",
				uiDays, fmtInt(hist), fmtInt(open), fmtInt(notifications)),
			"Server time: the handler (monitor/ui, as `pggit-monitor run -ui` mounts it) serves each GET through httptest.NewRecorder, from the request to the last byte of HTML written; median of at least 5 runs after one untimed request. The overview draws a sparkline per operation of the 50 open alerts it lists.",
		},
		variants: variants,
		ratios:   underTarget(variants, targetPage),
	}
	return s, nil
}
