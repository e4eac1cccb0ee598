// Package status prints the dashboard views as terminal tables, for
// `pggit-monitor status` and the demo.
package status

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// sections are the dashboard views `status` prints, with the query of each.
var sections = []struct {
	title, sql string
	vertical   bool
}{
	{"System health", `SELECT * FROM pggit.v_monitoring_system_health`, true},
	{"Recalculation health", `SELECT health, last_status, last_run_at, last_success_at, runs_7d, success_rate_pct,
		round(avg_duration_ms::numeric, 1) AS avg_ms FROM pggit.v_baseline_recalc_execution_health`, false},
	{"Detection", `SELECT p.evaluated_through AS judged_through,
		round(extract(epoch FROM clock_timestamp() - p.evaluated_through)::numeric, 0) AS lag_seconds,
		r.started_at AS last_run_at, round(r.duration_ms::numeric, 1) AS last_run_ms, r.operations,
		r.alerts_opened, r.alerts_changed, r.alerts_resolved,
		(SELECT count(*) FROM pggit.detection_references) AS operations_with_reference
		FROM pggit.detection_progress p
		LEFT JOIN LATERAL (SELECT * FROM pggit.detection_runs ORDER BY run_id DESC LIMIT 1) r ON true`, true},
	{"Open alerts", `SELECT alert_id, operation_type, scope, alert_type, severity, occurrence_count AS occurrences,
		first_seen_at, acknowledged_by, snoozed, left(details ->> 'message', 100) AS what
		FROM pggit.performance_alerts WHERE resolved_at IS NULL
		ORDER BY pggit.severity_rank(severity) DESC, last_seen_at DESC LIMIT 20`, false},
	{"Performance trend (last 24 hours, newest first)", `SELECT hour, operation_type, scope, samples,
		round(p99_ms::numeric, 2) AS p99_ms, round(baseline_p99_ms::numeric, 2) AS baseline_p99_ms,
		round(p99_ratio::numeric, 2) AS ratio, status
		FROM pggit.v_operation_performance_trend ORDER BY hour DESC, operation_type, scope LIMIT 30`, false},
	{"Notification queues", `SELECT name, webhook_type, enabled, batches_waiting, batches_sending, batches_retrying,
		batches_dead, notifications_pending FROM pggit.v_notification_queue_health ORDER BY name`, false},
}

// Print writes every section to w.
func Print(ctx context.Context, pool *pgxpool.Pool, w io.Writer) error {
	for i, s := range sections {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s\n", s.title)
		rows, err := pool.Query(ctx, s.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
		if err := printRows(rows, w, s.vertical); err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
	}
	return nil
}

func printRows(rows pgx.Rows, w io.Writer, vertical bool) error {
	defer rows.Close()
	var names []string
	for _, f := range rows.FieldDescriptions() {
		names = append(names, f.Name)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if !vertical {
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(names, "\t")))
	}
	n := 0
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			cells[i] = cell(v)
		}
		if vertical {
			for i, name := range names {
				fmt.Fprintf(tw, "%s\t%s\n", name, cells[i])
			}
		} else {
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(tw, "(none)")
	}
	return tw.Flush()
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case time.Time:
		return x.Local().Format("2006-01-02 15:04:05")
	case pgtype.Numeric:
		f, err := x.Float64Value()
		if err != nil || !f.Valid {
			return "-"
		}
		return fmt.Sprint(f.Float64)
	case float64:
		if x == math.Trunc(x) {
			return fmt.Sprintf("%.0f", x)
		}
		return fmt.Sprintf("%.2f", x)
	case pgtype.Interval:
		return (time.Duration(x.Microseconds) * time.Microsecond).Round(time.Second).String()
	}
	return fmt.Sprint(v)
}
