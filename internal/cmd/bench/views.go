package main

import (
	"context"
	"fmt"
	"time"
)

// targetView is the most any dashboard view may take, at 10 M samples and
// 100 k alerts.
const targetView = 100 * time.Millisecond

var dashboardViews = []string{
	"v_monitoring_system_health", "v_baseline_recalc_health", "v_alert_delivery_success_rate",
	"v_alert_response_sla", "v_operation_performance_trend", "v_alert_frequency_by_operation",
	"v_snoozed_alerts_audit", "v_baseline_change_impact", "v_notification_queue_health",
	"v_baseline_recalc_execution_health", "v_monitoring_dashboard_freshness", "v_complete_system_overview",
}

// benchViews times every dashboard view on the recalc benchmark's samples
// (generated here when that benchmark did not run) and 100,000 alerts.
func benchViews(ctx context.Context, e *env, o *options) (*section, error) {
	n, err := e.countMetrics(ctx)
	if err != nil {
		return nil, err
	}
	if n < int64(o.samples) {
		e.logf("views: generating %d samples over %d operations", o.samples, o.ops)
		if err := e.exec(ctx, `TRUNCATE pggit.performance_metrics`); err != nil {
			return nil, err
		}
		if err := e.exec(ctx, generateSQL, o.samples, o.ops, len(opNames(o.ops)[0])-len("op_")); err != nil {
			return nil, err
		}
		n = int64(o.samples)
	}
	e.logf("views: baselines, 100,000 alerts, runs, history, notifications")
	if err := e.resetAlerts(ctx); err != nil {
		return nil, err
	}
	setup := []string{
		`SELECT count(*) FROM pggit.recalculate_all_baselines_rolling(p_force => true, p_max_execution_seconds => 3600)`,
		// 100,000 alerts over 30 days on 2,000 operations: 99% resolved, 1%
		// open; half acknowledged after up to 20 minutes.
		`INSERT INTO pggit.performance_alerts
			(operation_type, scope, alert_type, severity, actual_duration_microseconds, baseline_p99_microseconds,
			 violation_multiplier, created_at, first_seen_at, last_seen_at, occurrence_count,
			 acknowledged_at, acknowledged_by, resolved_at, resolved_by)
		 SELECT 'op_' || lpad((g % 50)::text, 2, '0') || CASE WHEN g % 100 = 0 THEN '' ELSE '_' || (g % 2000) END,
		        '', CASE WHEN g % 3 = 0 THEN 'ANOMALY' ELSE 'THRESHOLD_EXCEEDED' END,
		        CASE WHEN g % 4 = 0 THEN 'CRITICAL' ELSE 'WARNING' END,
		        30000, 10000, 3.0, t, t, t, 1 + g % 7,
		        CASE WHEN g % 2 = 0 THEN t + (g % 1200) * interval '1 second' END,
		        CASE WHEN g % 2 = 0 THEN 'oncall' END,
		        CASE WHEN g % 100 <> 0 THEN t + interval '1 hour' END,
		        CASE WHEN g % 100 <> 0 THEN 'oncall' END
		 FROM generate_series(1, 100000) g, LATERAL (SELECT now() - (g % 43200) * interval '1 minute' AS t) x
		 ON CONFLICT DO NOTHING`,
		`SELECT pggit.snooze_alerts('op_' || g, 'ALL', 600, 'bench', 'bench') FROM generate_series(1, 100) g`,
		`SELECT count(*) FROM pggit.recalculate_all_baselines_rolling(p_force => true, p_max_execution_seconds => 3600)`,
		`SELECT pggit.rollup_performance_hours()`,
		`VACUUM ANALYZE`,
	}
	for _, q := range setup {
		if err := e.exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%.60s...: %w", q, err)
		}
	}
	var alerts int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pggit.performance_alerts`).Scan(&alerts); err != nil {
		return nil, err
	}

	variants, err := measureViews(ctx, e, o, "")
	if err != nil {
		return nil, err
	}
	s := &section{
		title: fmt.Sprintf("Dashboard views: %s samples, %s alerts", fmtInt(n), fmtInt(alerts)),
		notes: []string{
			"Samples as in the recalculation benchmark (spread over the last 6 days); 100,000 alerts over 30 days on about 2,000 operations (1% open, half acknowledged), 100 snoozes, two recalculation runs, the hourly rollup refreshed, then VACUUM ANALYZE.",
			"Each view is read whole (SELECT *, every row fetched) on one connection; median of at least 5 runs after one untimed read.",
		},
		variants: variants,
		ratios:   underTarget(variants, targetView),
	}
	return s, nil
}

// measureViews reads each dashboard view whole once, untimed, then times
// max(o.runs, 5) reads of each; a variant is named after its view and suffix.
func measureViews(ctx context.Context, e *env, o *options, suffix string) ([]*variant, error) {
	var variants []*variant
	for _, v := range dashboardViews {
		q := "SELECT * FROM pggit." + v
		variants = append(variants, &variant{name: v + suffix, run: func(ctx context.Context) (time.Duration, error) {
			start := time.Now()
			rows, err := e.pool.Query(ctx, q)
			if err != nil {
				return 0, err
			}
			for rows.Next() {
			}
			rows.Close()
			return time.Since(start), rows.Err()
		}})
	}
	for _, v := range variants {
		if _, err := v.run(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
	}
	return variants, measure(ctx, e, max(o.runs, 5), variants, nil)
}
