package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

// Every function of schema pggit that takes a caller's value refuses a bad
// one the same way: SQLSTATE 22023 with a message naming the argument (and,
// for enum-like arguments, the allowed values), and nothing written. The
// functions are read from pg_proc, so a function added later fails this test
// until it has a valid call in validationSpecs or a reason in notChecked.

// badValue is one bad value of an argument: its name in the sub-test, and
// the SQL literal (cast to the argument's type by the caller).
type badValue struct{ name, sql string }

// incompressible10000 is 10,000 characters that do not compress (hex digits
// of md5s): in an index it is too large for a row (SQLSTATE 54000), as a
// repeated character would not be.
const incompressible10000 = "left((SELECT string_agg(md5(g::text), '') FROM generate_series(1, 313) g), 10000)"

var (
	badText = []badValue{
		{"null", "NULL"},
		{"empty", "''"},
		{"blank", "'   '"},
		{"201_chars", "repeat('x', 201)"},
		{"10000_chars", incompressible10000},
		{"crlf", `E'evil\r\nBcc: victim@example.com'`},
	}
	badTextArray = []badValue{
		{"null", "NULL"},
		{"null_element", "ARRAY[NULL]"},
		{"empty", "ARRAY['']"},
		{"blank", "ARRAY['   ']"},
		{"201_chars", "ARRAY[repeat('x', 201)]"},
		{"10000_chars", "ARRAY[" + incompressible10000 + "]"},
		{"crlf", `ARRAY[E'evil\r\nBcc: victim@example.com']`},
	}
	badNumber = []badValue{{"null", "NULL"}, {"zero", "0"}, {"minus_one", "-1"}}
	badIDs    = []badValue{
		{"null", "NULL"}, {"empty", "'{}'"}, {"null_element", "ARRAY[NULL]"}, {"zero", "ARRAY[0]"}, {"minus_one", "ARRAY[-1]"},
	}
	badQuantiles = []badValue{{"null", "NULL"}, {"null_element", "ARRAY[NULL]"}, {"minus_one", "ARRAY[-1]"}}
	badBogus     = badValue{"bogus", "'BOGUS'"}
	onlyNull     = []badValue{{"null", "NULL"}}
)

// badValuesFor returns the bad values that fit an argument of type typ.
func badValuesFor(typ string, enum bool) []badValue {
	switch typ {
	case "text":
		if enum {
			return append(slices.Clone(badText), badBogus)
		}
		return badText
	case "text[]":
		return badTextArray
	case "integer", "bigint", "double precision":
		return badNumber
	case "bigint[]":
		return badIDs
	case "double precision[]":
		return badQuantiles
	default: // boolean, timestamptz, jsonb, row types
		return onlyNull
	}
}

// accept lists the bad values an argument legitimately takes: value name
// (or "*" for every value) -> why.
type accept map[string]string

const (
	emptyScope = "the empty scope is the operation's default scope"
	freeText   = "free text (a note, a reply, an error), not a name: any text or NULL is kept as given"
)

// fnSpec is one valid call of a function (an SQL expression per argument),
// its enum-like arguments with their allowed values, and the bad values each
// argument legitimately accepts.
type fnSpec struct {
	valid   map[string]string
	enums   map[string][]string
	accepts map[string]accept
}

var (
	alertTypes    = []string{"THRESHOLD_EXCEEDED", "ANOMALY", "DEGRADATION", "CORRELATION", "BASELINE_RECALC_ERROR"}
	alertTypesAll = append([]string{"ALL"}, alertTypes...)
	severities    = []string{"CRITICAL", "WARNING", "INFO"}
	formats       = []string{"json", "slack", "mattermost", "text", "pagerduty", "email", "alertmanager"}
)

const (
	anAlert     = `(SELECT min(alert_id) FROM pggit.performance_alerts)`
	anOpenAlert = `(SELECT min(alert_id) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND alert_type = 'ANOMALY')`
	aDayAgo     = `now() - interval '1 day'`
)

var validationSpecs = map[string]fnSpec{
	"record_performance_metric": {
		valid: map[string]string{"p_operation_type": "'checkout'", "p_duration_microseconds": "1500", "p_scope": "''",
			"p_user_name": "'alice'", "p_metadata": `'{"k": 1}'`, "p_recorded_at": "now()"},
		accepts: map[string]accept{
			"p_scope":       {"empty": emptyScope},
			"p_user_name":   {"null": "a sample need not name a user"},
			"p_metadata":    {"null": "a sample need not carry metadata"},
			"p_recorded_at": {"null": "defaults to now()"},
		},
	},
	"recalculate_all_baselines_rolling": {
		valid: map[string]string{"p_lookback_days": "7", "p_min_samples": "10", "p_force": "false",
			"p_max_execution_seconds": "60", "p_reason": "'manual'", "p_method": "'auto'"},
		enums: map[string][]string{"p_reason": {"scheduled", "manual"}, "p_method": {"auto", "exact", "histogram"}},
	},
	"recalculate_single_baseline_safe": {
		valid: map[string]string{"p_operation_type": "'checkout'", "p_scope": "''", "p_lookback_days": "7",
			"p_min_samples": "10", "p_force": "false", "p_reason": "'manual'"},
		enums:   map[string][]string{"p_reason": {"scheduled", "manual"}},
		accepts: map[string]accept{"p_scope": {"empty": emptyScope}},
	},
	"severity_rank": {
		valid: map[string]string{"p_severity": "'CRITICAL'"},
		enums: map[string][]string{"p_severity": severities},
	},
	"is_alert_snoozed": {
		valid: map[string]string{"p_operation_type": "'checkout'", "p_alert_type": "'ANOMALY'"},
		enums: map[string][]string{"p_alert_type": alertTypesAll},
	},
	"snooze_alerts": {
		valid: map[string]string{"p_operation_type": "'checkout'", "p_alert_type": "'ANOMALY'", "p_snooze_minutes": "60",
			"p_snooze_reason": "'deploy'", "p_created_by": "'bob'"},
		enums:   map[string][]string{"p_alert_type": alertTypesAll},
		accepts: map[string]accept{"p_snooze_reason": {"*": freeText}},
	},
	"unsnooze_alerts": {
		valid: map[string]string{"p_snooze_id": "(SELECT min(snooze_id) FROM pggit.alert_snooze)", "p_cancelled_by": "'bob'"},
	},
	"raise_alert": {
		valid: map[string]string{"p_operation_type": "'checkout'", "p_scope": "''", "p_alert_type": "'ANOMALY'",
			"p_severity": "'WARNING'", "p_details": "'{}'", "p_execution_id": "NULL"},
		enums: map[string][]string{"p_alert_type": alertTypes, "p_severity": severities},
		accepts: map[string]accept{
			"p_scope":        {"empty": emptyScope},
			"p_details":      {"null": "no details: stored as {}"},
			"p_execution_id": {"null": "most alerts do not come from a recalculation run"},
		},
	},
	"acknowledge_alert": {
		valid: map[string]string{"p_alert_id": anAlert, "p_acknowledged_by": "'bob'"},
	},
	"resolve_alert": {
		valid:   map[string]string{"p_alert_id": anOpenAlert, "p_resolved_by": "'bob'", "p_resolution_notes": "'fixed'"},
		accepts: map[string]accept{"p_resolution_notes": {"*": freeText}},
	},
	"accept_regression": {
		valid: map[string]string{"p_alert_id": anOpenAlert, "p_accepted_by": "'bob'"},
	},
	"enqueue_notification_batch": {
		valid: map[string]string{"p_notification_id": "(SELECT min(notification_id) FROM pggit.alert_notification_queue)"},
	},
	"enqueue_alert_notifications": {
		valid: map[string]string{"p_alert": "(SELECT a FROM pggit.performance_alerts a ORDER BY a.alert_id LIMIT 1)",
			"p_event": "'opened'"},
		enums: map[string][]string{"p_event": {"opened", "escalated", "resolved"}},
	},
	"claim_notification_batches": {
		valid: map[string]string{"p_worker": "'w1'", "p_limit": "10", "p_lease_seconds": "60"},
	},
	"complete_notification_batch": {
		valid: map[string]string{"p_batch_id": "(SELECT min(batch_id) FROM pggit.notification_batch_queue)",
			"p_worker": "'seed-worker'", "p_outcome": "'sent'", "p_http_status": "200", "p_smtp_reply": "NULL",
			"p_latency_ms": "12.5", "p_error": "NULL", "p_retry_at": "NULL", "p_attempt": "NULL"},
		enums: map[string][]string{"p_outcome": {"sent", "retry", "dead"}},
		accepts: map[string]accept{
			"p_http_status": {"null": "no HTTP response: email, or a connection that failed"},
			"p_smtp_reply":  {"*": freeText},
			"p_latency_ms":  {"null": "recorded as 0", "zero": "a reply within the clock's resolution"},
			"p_error":       {"*": freeText},
			"p_retry_at":    {"null": "retry at once"},
			"p_attempt":     {"null": "the batch's current attempt"},
		},
	},
	"format_alert_batch": {
		valid: map[string]string{"p_alert_ids": "ARRAY[" + anAlert + "]", "p_format": "'json'"},
		enums: map[string][]string{"p_format": formats},
	},
	"format_notification_batch": {
		valid: map[string]string{"p_batch_id": "(SELECT min(batch_id) FROM pggit.notification_batch_queue)", "p_format": "'json'"},
		enums: map[string][]string{"p_format": formats},
	},
	"release_notification_batch": {
		valid:   map[string]string{"p_batch_id": "(SELECT min(batch_id) FROM pggit.notification_batch_queue)", "p_worker": "'seed-worker'", "p_attempt": "NULL"},
		accepts: map[string]accept{"p_attempt": {"null": "whatever attempt the batch is at"}},
	},
	"apply_retention": {
		valid: map[string]string{"p_batch": "1000"},
	},
	"run_notification_followups": {
		valid: map[string]string{"p_limit": "1000"},
	},
	"format_alert_message": {
		valid: map[string]string{"p_alert_id": anAlert, "p_format": "'text'"},
		enums: map[string][]string{"p_format": formats},
	},
	"claim_scheduled_job": {
		valid: map[string]string{"p_job_name": "'rollup'", "p_worker": "'w1'", "p_period_seconds": "60"},
	},
	"finish_scheduled_job": {
		valid:   map[string]string{"p_job_name": "'rollup'", "p_worker": "'seed-worker'", "p_error": "NULL"},
		accepts: map[string]accept{"p_error": {"*": freeText + "; NULL is a success"}},
	},
	"delete_old_samples": {
		valid: map[string]string{"p_before": "now() - interval '30 days'", "p_batch": "1000"},
	},
	"rollup_performance_hours": {
		valid: map[string]string{"p_until": "now()", "p_from": "NULL"},
		accepts: map[string]accept{
			"p_until": {"null": "defaults to 5 minutes ago"},
			"p_from":  {"null": "defaults to the last rolled hour"},
		},
	},
	"merge_histograms": {
		valid:   map[string]string{"p_operation_type": "'checkout'", "p_scope": "''", "p_from": aDayAgo, "p_to": "now()"},
		accepts: map[string]accept{"p_scope": {"empty": emptyScope}},
	},
	"histogram_window_quantiles": {
		valid: map[string]string{"p_operation_type": "'checkout'", "p_scope": "''", "p_from": aDayAgo, "p_to": "now()",
			"p_qs": "ARRAY[0.5, 0.99]"},
		accepts: map[string]accept{"p_scope": {"empty": emptyScope}},
	},
	"compact_histograms": {
		valid:   map[string]string{"p_from": "now() - interval '2 days'", "p_to": aDayAgo, "p_hours_before": "'-infinity'"},
		accepts: map[string]accept{"p_hours_before": {"null": "no hour rows: minutes stay minutes"}},
	},
	"rebuild_histograms": {
		valid: map[string]string{"p_from": "now() - interval '1 hour'", "p_to": "now()"},
	},
	"run_detection": {
		valid:   map[string]string{"p_as_of": "now()"},
		accepts: map[string]accept{"p_as_of": {"null": "defaults to now less detection_settle_seconds"}},
	},
	"backtest_detection": {
		valid: map[string]string{"p_from": "now() - interval '2 hours'", "p_to": "now()", "p_operation": "'checkout'",
			"p_step_seconds": "1800"},
		accepts: map[string]accept{"p_operation": {"null": "every operation"}},
	},
	"latency_series": {
		valid: map[string]string{"p_operation_type": "'checkout'", "p_scope": "''", "p_from": aDayAgo, "p_to": "now()",
			"p_step_seconds": "3600"},
		accepts: map[string]accept{"p_scope": {"empty": emptyScope}},
	},
	"latency_sparklines": {
		valid: map[string]string{"p_operation_types": "ARRAY['checkout']", "p_scopes": "ARRAY['']", "p_from": aDayAgo,
			"p_to": "now()", "p_step_seconds": "3600"},
		accepts: map[string]accept{"p_scopes": {"empty": emptyScope}},
	},
	"threshold_min_exceedances": {
		valid: map[string]string{"p_n": "100", "p_alpha": "0.001"},
	},
	"create_sample_partitions": {
		valid:   map[string]string{"p_from": "now()", "p_to": "now() + interval '2 days'"},
		accepts: map[string]accept{"p_to": {"null": "defaults to now() plus samples_partition_ahead_days"}},
	},
	"drop_sample_partitions": {
		valid: map[string]string{"p_before": "now() - interval '400 days'"},
	},
}

// notChecked are the functions of schema pggit this test does not call, each
// with its reason. Internal helpers are called only by pggit's own
// functions, with values those checked or read from tables whose CHECK
// constraints hold the same rules.
var notChecked = map[string]string{
	// Triggers: no arguments; their rows passed the tables' constraints.
	"performance_metrics_after_insert":       "trigger function",
	"baseline_recalc_execution_after_finish": "trigger function",
	"performance_alerts_notify":              "trigger function",
	// The checks themselves.
	"is_valid_name":          "the shared check (a boolean, for CHECK constraints)",
	"check_name":             "the shared check",
	"check_id":               "the shared check",
	"check_recalc_arguments": "argument check of the recalculations, tested through them",
	"check_bucket_range":     "argument check of latency_series and latency_sparklines, tested through them",
	// Pure arithmetic over histogram columns and times: no name, no id, no
	// write; NULL in gives NULL out (histogram_quantiles refuses bad p_qs).
	"utc_minute":               "pure arithmetic (inlined by the planner)",
	"utc_hour":                 "pure arithmetic (inlined by the planner)",
	"utc_day":                  "pure arithmetic",
	"histogram_bin":            "pure arithmetic",
	"histogram_bin_value":      "pure arithmetic",
	"histogram_quantiles":      "pure arithmetic over a histogram's columns",
	"histogram_mann_whitney_z": "pure arithmetic over two histograms' columns",
	"histogram_residual_sum":   "pure arithmetic over a histogram's columns",
	"histogram_count_over":     "pure arithmetic over a histogram's columns",
	// Internal steps of recalculation, alerting and formatting.
	"start_recalc_execution":            "internal step of a recalculation, after its arguments were checked",
	"finish_recalc_execution":           "internal step of a recalculation",
	"apply_baseline_stats":              "internal step of a recalculation, with statistics it computed",
	"compute_baseline_stats":            "internal step of a recalculation or accept_regression",
	"baseline_restricted":               "internal step of a recalculation",
	"active_snooze_id":                  "internal: is_alert_snoozed is its checked public form",
	"alert_message_facts":               "internal step of format_alert_batch, with a stored alert",
	"check_retention_setting":           "the check of monitor_settings rows (its trigger and SetRetentionSettings): its 22023 names the setting the user wrote, not a parameter; TestRetentionSettingsAreValidated covers it",
	"retention_days":                    "reads a retention setting by a constant name, for apply_retention",
	"monitor_settings_check_retention":  "trigger function: its rows are checked by check_retention_setting, tested here",
	"check_partition_setting":           "the check of monitor_settings rows (its trigger and SetPartitionSettings): its 22023 names the setting; TestPartitionSettingsAreValidated covers it",
	"monitor_settings_check_partitions": "trigger function: its rows are checked by check_partition_setting",
	"sample_partition_at":               "a lookup: NULL or any time finds the partition that holds it, or none",
	"sample_partition_width":            "no arguments: reads a setting by a constant name",
	"sample_partitions":                 "no arguments: reads the catalog",
	"drop_expired_sample_partitions":    "no arguments: drop_sample_partitions with retention_samples_days",
	"trend_live_hours":                  "internal step of v_operation_performance_trend, with the view's bound; NULL reads nothing",
	"default_partition_rows":            "no arguments: counts the default partition",
	"alert_link_facts":                  "internal step of format_alert_batch and format_notification_batch, with a stored alert's id",
	"format_alert_facts":                "internal step of format_alert_batch and format_notification_batch, with facts they built from stored alerts",
	"histogram_baseline_stats":          "internal step of a recalculation",
	"refresh_histogram_rollups":         "no arguments: brings the rollups up to date (worker's compaction job and recalculation)",
	"build_histogram_rollups":           "internal step of refresh_histogram_rollups, with bounds and keys it computed under its lock",
	"histogram_rollups_mark_inserted":   "trigger function: marks the closed hours of histogram rows written",
	"histogram_rollups_mark_deleted":    "trigger function: marks the closed hours of histogram rows deleted",
	"histogram_rollups_reset":           "trigger function: TRUNCATE of the histograms drops the rollups",
	"check_recalc_setting":              "internal: checks a setting; 22023 tested in TestRecalcMethodRefused",
	"monitor_settings_check_recalc":     "trigger function: its rows are checked by check_recalc_setting",
	// Internal steps of run_detection, backtest_detection and
	// accept_regression: operations and scopes come from the histograms and
	// alerts, times from detect's checked p_as_of.
	"detection_setting":           "internal: reads a setting by a constant name",
	"detection_summarize_hours":   "internal step of detection",
	"detection_build_references":  "internal step of detection",
	"detection_close_hour":        "internal step of detection",
	"detection_series":            "internal step of detection",
	"detection_raise":             "internal step of detection",
	"detection_escalate":          "internal step of detection",
	"detection_resolve":           "internal step of detection",
	"detection_touch":             "internal step of detection",
	"detection_degradation_facts": "internal step of detection",
	"detection_process_operation": "internal step of detection",
	"detection_correlate":         "internal step of detection",
	"detection_process":           "internal step of detection",
	"detect":                      "internal step of run_detection and backtest_detection",
}

// seedValidation gives the test database some of everything: samples of two
// operations in two scopes over a day, baselines, hourly rollups, detection
// state, alerts (open, acknowledged, accepted), snoozes, a webhook with a
// route and a claimed notification batch, a scheduled job.
const seedValidation = `
UPDATE pggit.notification_batch_config SET batch_timeout_seconds = 0 WHERE webhook_type = 'webhook';
INSERT INTO pggit.alert_notification_webhooks (webhook_type, name, secret_ciphertext, secret_nonce, key_id)
VALUES ('webhook', 'ops', decode(repeat('ab', 32), 'hex'), decode(repeat('cd', 12), 'hex'), 'k1');
INSERT INTO pggit.alert_notification_settings (alert_type, min_severity, webhook_id)
SELECT 'ALL', 'INFO', webhook_id FROM pggit.alert_notification_webhooks;
INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at, scope, user_name)
SELECT CASE WHEN g % 3 = 0 THEN 'search' ELSE 'checkout' END, 1000 + g % 500,
       now() - interval '1 day' + g * interval '1 minute', CASE WHEN g % 2 = 0 THEN '' ELSE 'eu' END, 'alice'
FROM generate_series(1, 1440) g;
SELECT count(*) FROM pggit.recalculate_all_baselines_rolling();
SELECT pggit.rollup_performance_hours(now(), now() - interval '2 days');
SELECT count(*) FROM pggit.run_detection(now());
INSERT INTO pggit.detection_blocks
    (operation_type, scope, block_end, block_minutes, sample_count, p50_us, p90_us, expected_us, z50, z90, score)
VALUES ('checkout', '', pggit.utc_minute(now()), 5, 10, 1000, 1400, 1000, 0, 0, 0);
SELECT pggit.raise_alert('checkout', '', 'ANOMALY', 'WARNING', '{"message": "seeded"}');
SELECT pggit.raise_alert('checkout', 'eu', 'DEGRADATION', 'CRITICAL');
SELECT pggit.raise_alert('search', '', 'THRESHOLD_EXCEEDED', 'WARNING');
SELECT pggit.acknowledge_alert((pggit.raise_alert('search', 'eu', 'ANOMALY', 'INFO')).alert_id, 'carol');
SELECT pggit.accept_regression((SELECT alert_id FROM pggit.performance_alerts
                                WHERE operation_type = 'search' AND alert_type = 'THRESHOLD_EXCEEDED'), 'carol');
SELECT pggit.snooze_alerts('search', 'ALL', 60, 'maintenance', 'bob');
SELECT pggit.unsnooze_alerts(pggit.snooze_alerts('checkout', 'CORRELATION', 60, NULL, 'bob'), 'carol');
SELECT count(*) FROM pggit.claim_notification_batches('seed-worker', 1, 600);
SELECT pggit.complete_notification_batch((SELECT min(batch_id) FROM pggit.notification_batch_queue),
                                         'other-worker', 'sent', 200, NULL, 3, NULL, NULL);
SELECT pggit.claim_scheduled_job('rollup', 'seed-worker', 60);
`

func setupValidation(t *testing.T) *env {
	t.Helper()
	e := setup(t)
	e.exec(seedValidation)
	return e
}

// pgFunction is a function of schema pggit and its input arguments.
type pgFunction struct {
	name      string
	trigger   bool
	argNames  []string
	argTypes  []string
	signature string
}

func pggitFunctions(t *testing.T, e *env) map[string]pgFunction {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `
		SELECT p.proname, p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype, p.oid::pg_catalog.regprocedure::text,
		       coalesce(ARRAY(SELECT a.n FROM unnest(p.proargnames, p.proargmodes) WITH ORDINALITY AS a(n, m, i)
		                      WHERE a.m IS NULL OR a.m IN ('i', 'b') ORDER BY a.i), '{}'),
		       ARRAY(SELECT pg_catalog.format_type(a.t, NULL) FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, i)
		             ORDER BY a.i)
		FROM pg_catalog.pg_proc p
		WHERE p.pronamespace = 'pggit'::pg_catalog.regnamespace`)
	require.NoError(t, err)
	fns := map[string]pgFunction{}
	for rows.Next() {
		var f pgFunction
		require.NoError(t, rows.Scan(&f.name, &f.trigger, &f.signature, &f.argNames, &f.argTypes))
		_, dup := fns[f.name]
		require.False(t, dup, "pggit.%s is overloaded: give this test one spec per signature", f.name)
		if len(f.argTypes) > 0 { // proargnames is NULL when no argument is named
			require.Len(t, f.argNames, len(f.argTypes), "%s: every argument must be named", f.signature)
		}
		fns[f.name] = f
	}
	require.NoError(t, rows.Err())
	return fns
}

// snapshotQuery returns one query giving, per table of schema pggit, its row
// count and an md5 of its rows in a stable order.
func snapshotQuery(t *testing.T, e *env) string {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT c.relname FROM pg_catalog.pg_class c
		WHERE c.relnamespace = 'pggit'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	parts := make([]string, len(tables))
	for i, tb := range tables {
		parts[i] = fmt.Sprintf(`SELECT '%[1]s', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), ''))
			FROM pggit.%[1]s t`, tb)
	}
	return strings.Join(parts, "\nUNION ALL\n")
}

func snapshot(t *testing.T, ctx context.Context, tx pgx.Tx, query string) map[string]string {
	t.Helper()
	rows, err := tx.Query(ctx, query)
	require.NoError(t, err)
	snap := map[string]string{}
	for rows.Next() {
		var table, sum string
		var n int64
		require.NoError(t, rows.Scan(&table, &n, &sum))
		snap[table] = fmt.Sprintf("%d rows, md5 %s", n, sum)
	}
	require.NoError(t, rows.Err())
	return snap
}

// changedTables lists the tables whose snapshot differs.
func changedTables(before, after map[string]string) []string {
	var changed []string
	for tb, b := range before {
		if after[tb] != b {
			changed = append(changed, fmt.Sprintf("%s (%s -> %s)", tb, b, after[tb]))
		}
	}
	slices.Sort(changed)
	return changed
}

// call is the SQL calling f with the valid arguments of spec, argument arg
// replaced by value (none when arg is "").
func call(f pgFunction, spec fnSpec, arg, value string) string {
	args := make([]string, len(f.argNames))
	for i, a := range f.argNames {
		v := spec.valid[a]
		if a == arg {
			v = value
		}
		args[i] = fmt.Sprintf("%s => (%s)::%s", a, v, f.argTypes[i])
	}
	return fmt.Sprintf("SELECT count(*) FROM pggit.%s(%s)", f.name, strings.Join(args, ", "))
}

// execInSavepoint runs sql in a savepoint of tx, and returns the tables it
// changed (seen before the savepoint is rolled back) and its error.
func execInSavepoint(t *testing.T, ctx context.Context, tx pgx.Tx, snapQuery string, before map[string]string, sql string) ([]string, error) {
	t.Helper()
	_, err := tx.Exec(ctx, "SAVEPOINT validation_call")
	require.NoError(t, err)
	_, callErr := tx.Exec(ctx, sql)
	var after map[string]string
	if callErr != nil {
		_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT validation_call")
		require.NoError(t, err)
		after = snapshot(t, ctx, tx, snapQuery)
	} else {
		after = snapshot(t, ctx, tx, snapQuery)
		_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT validation_call")
		require.NoError(t, err)
	}
	return changedTables(before, after), callErr
}

func TestEveryFunctionChecksItsArguments(t *testing.T) {
	t.Parallel()
	e := setupValidation(t)
	fns := pggitFunctions(t, e)
	snapQuery := snapshotQuery(t, e)

	// The lists match pg_proc: every function is covered or excluded, and no
	// entry names a function that is gone.
	for _, name := range slices.Sorted(maps.Keys(fns)) {
		_, covered := validationSpecs[name]
		_, excluded := notChecked[name]
		switch {
		case covered && excluded:
			t.Errorf("pggit.%s is both in validationSpecs and in notChecked", name)
		case !covered && !excluded:
			t.Errorf("pggit.%s is neither covered nor excluded: give it a valid call in validationSpecs "+
				"(its bad arguments are then tested), or a reason in notChecked", fns[name].signature)
		case excluded && fns[name].trigger != strings.HasPrefix(notChecked[name], "trigger"):
			t.Errorf("pggit.%s: only trigger functions are excluded as triggers", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(validationSpecs)) {
		if _, ok := fns[name]; !ok {
			t.Errorf("validationSpecs names pggit.%s, which does not exist", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(notChecked)) {
		if _, ok := fns[name]; !ok {
			t.Errorf("notChecked names pggit.%s, which does not exist", name)
		}
	}

	for _, name := range slices.Sorted(maps.Keys(validationSpecs)) {
		f, ok := fns[name]
		if !ok {
			continue
		}
		spec := validationSpecs[name]
		t.Run(name, func(t *testing.T) {
			require.ElementsMatch(t, f.argNames, slices.Collect(maps.Keys(spec.valid)),
				"%s: validationSpecs must give a valid value for each argument, and only those", f.signature)
			for a := range spec.enums {
				require.Contains(t, f.argNames, a, "enums of %s", name)
			}
			for a := range spec.accepts {
				require.Contains(t, f.argNames, a, "accepts of %s", name)
			}

			ctx := e.ctx
			tx, err := e.pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			before := snapshot(t, ctx, tx, snapQuery)

			// The valid call is valid, so each bad call below differs from
			// a working call by one argument.
			_, err = execInSavepoint(t, ctx, tx, snapQuery, before, call(f, spec, "", ""))
			require.NoError(t, err, "the valid call of %s failed; fix validationSpecs", name)

			for i, arg := range f.argNames {
				allowed, enum := spec.enums[arg]
				t.Run(arg, func(t *testing.T) {
					for _, v := range badValuesFor(f.argTypes[i], enum) {
						t.Run(v.name, func(t *testing.T) {
							if why, ok := spec.accepts[arg][v.name]; ok {
								t.Skipf("accepted: %s", why)
							}
							if why, ok := spec.accepts[arg]["*"]; ok {
								t.Skipf("accepted: %s", why)
							}
							changed, err := execInSavepoint(t, ctx, tx, snapQuery, before, call(f, spec, arg, v.sql))
							var pgErr *pgconn.PgError
							if !errors.As(err, &pgErr) {
								t.Fatalf("pggit.%s(%s => %s) was accepted (err %v); it changed %v", name, arg, v.name, err, changed)
							}
							require.Equal(t, "22023", pgErr.Code, "%s", pgErr.Message)
							require.Contains(t, pgErr.Message, arg, "the message names the argument")
							for _, a := range allowed {
								require.Contains(t, pgErr.Message, a, "the message lists the allowed values")
							}
							require.Empty(t, changed, "a refused call changes nothing")
						})
					}
				})
			}
		})
	}
}

// TestNameRulesOnTables: the tables hold the rule of the functions, so a
// plain INSERT (or COPY, or UPDATE) cannot store what a function refuses.
func TestNameRulesOnTables(t *testing.T) {
	t.Parallel()
	e := setupValidation(t)

	// The CHECK constraints of each column alone (older ones, such as a
	// length check, are tested first when their names sort first).
	rows, err := e.pool.Query(e.ctx, `
		SELECT c.relname || '.' || a.attname, co.conname,
		       pg_catalog.pg_get_constraintdef(co.oid) LIKE '%is_valid_name%',
		       pg_catalog.pg_get_constraintdef(co.oid) LIKE '%, 200, true)%'
		FROM pg_catalog.pg_constraint co
		JOIN pg_catalog.pg_class c ON c.oid = co.conrelid
		JOIN pg_catalog.pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = co.conkey[1]
		WHERE co.connamespace = 'pggit'::pg_catalog.regnamespace AND co.contype = 'c' AND cardinality(co.conkey) = 1
		  AND NOT c.relispartition -- a partition has its parent's constraints
		ORDER BY 1, 2`)
	require.NoError(t, err)
	checks := map[string][]string{} // table.column -> its CHECK constraints
	type rule struct {
		column     string
		mayBeEmpty bool
	}
	var rules []rule
	for rows.Next() {
		var col, con string
		var isName, mayBeEmpty bool
		require.NoError(t, rows.Scan(&col, &con, &isName, &mayBeEmpty))
		checks[col] = append(checks[col], con)
		if isName {
			rules = append(rules, rule{col, mayBeEmpty})
		}
	}
	require.NoError(t, rows.Err())
	refused := func(t *testing.T, err error, column string) {
		t.Helper()
		pgErr := requirePgError(t, err, "23514")
		require.Contains(t, checks[column], pgErr.ConstraintName, "a constraint of %s", column)
	}

	crlf := "evil\r\nBcc: victim@example.com"
	long := strings.Repeat("s", 201)
	for _, c := range []struct {
		name, column, sql string
		arg               string
	}{
		{"performance_metrics/operation_type/crlf", "performance_metrics.operation_type",
			`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds) VALUES ($1, 5)`, crlf},
		{"performance_metrics/scope/201_chars", "performance_metrics.scope",
			`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, scope) VALUES ('a', 5, $1)`, long},
		{"performance_metrics/scope/crlf", "performance_metrics.scope",
			`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, scope) VALUES ('a', 5, $1)`, crlf},
		{"performance_metrics/user_name/crlf", "performance_metrics.user_name",
			`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, user_name) VALUES ('a', 5, $1)`, crlf},
		{"performance_alerts/operation_type/crlf", "performance_alerts.operation_type",
			`INSERT INTO pggit.performance_alerts (operation_type, alert_type, severity) VALUES ($1, 'ANOMALY', 'INFO')`, crlf},
		{"performance_alerts/scope/201_chars", "performance_alerts.scope",
			`INSERT INTO pggit.performance_alerts (operation_type, scope, alert_type, severity) VALUES ('a', $1, 'ANOMALY', 'INFO')`, long},
		{"performance_alerts/acknowledged_by/crlf", "performance_alerts.acknowledged_by",
			`INSERT INTO pggit.performance_alerts (operation_type, alert_type, severity, acknowledged_at, acknowledged_by)
			 VALUES ('a', 'ANOMALY', 'INFO', now(), $1)`, crlf},
		{"alert_snooze/operation_type/crlf", "alert_snooze.operation_type",
			`INSERT INTO pggit.alert_snooze (operation_type, alert_type, snooze_until, created_by)
			 VALUES ($1, 'ALL', now() + interval '1 hour', 'bob')`, crlf},
		{"alert_snooze/operation_type/201_chars", "alert_snooze.operation_type",
			`INSERT INTO pggit.alert_snooze (operation_type, alert_type, snooze_until, created_by)
			 VALUES ($1, 'ALL', now() + interval '1 hour', 'bob')`, long},
		{"alert_snooze/created_by/crlf", "alert_snooze.created_by",
			`INSERT INTO pggit.alert_snooze (operation_type, alert_type, snooze_until, created_by)
			 VALUES ('a', 'ALL', now() + interval '1 hour', $1)`, crlf},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.pool.Exec(e.ctx, c.sql, c.arg)
			refused(t, err, c.column)
		})
	}

	// Every name column with a rule refuses each kind of bad name, whatever
	// writes it (here an UPDATE of a seeded row that holds a name there).
	require.GreaterOrEqual(t, len(rules), 30, "name rules on the tables")
	for _, r := range rules {
		table, column, _ := strings.Cut(r.column, ".")
		bad := map[string]string{"crlf": crlf, "tab": "a\tb", "201_chars": long, "blank": "   "}
		if !r.mayBeEmpty {
			bad["empty"] = ""
		}
		for _, vname := range slices.Sorted(maps.Keys(bad)) {
			t.Run(table+"/"+column+"/"+vname, func(t *testing.T) {
				tag, err := e.pool.Exec(e.ctx, fmt.Sprintf(`UPDATE pggit.%s SET %s = $1
					WHERE ctid = (SELECT ctid FROM pggit.%[1]s WHERE %[2]s IS NOT NULL LIMIT 1)`, table, column), bad[vname])
				require.Error(t, err, "no refusal: the seed needs a row of pggit.%s with a %s (%d updated)",
					table, column, tag.RowsAffected())
				refused(t, err, r.column)
			})
		}
	}
}

// TestRecorderRefusesWhatTheTablesRefuse: the Recorder writes its batches
// with COPY, so one sample the tables refuse would fail its whole batch, the
// good samples with it. RecordSample refuses such a sample instead, naming
// the field, and the batch goes through.
func TestRecorderRefusesWhatTheTablesRefuse(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rec, err := e.client.NewRecorder(nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, rec.Close(e.ctx)) }()

	ms := time.Millisecond
	for _, c := range []struct {
		name, field string
		s           monitor.Sample
	}{
		{"operation_crlf", "OperationType", monitor.Sample{OperationType: "evil\r\nBcc: victim@example.com", Duration: ms}},
		{"operation_tab", "OperationType", monitor.Sample{OperationType: "a\tb", Duration: ms}},
		{"operation_c1", "OperationType", monitor.Sample{OperationType: "a\u0085b", Duration: ms}},
		{"scope_blank", "Scope", monitor.Sample{OperationType: "ok", Scope: "   ", Duration: ms}},
		{"scope_lf", "Scope", monitor.Sample{OperationType: "ok", Scope: "eu\n", Duration: ms}},
		{"user_crlf", "UserName", monitor.Sample{OperationType: "ok", UserName: "bob\r\n", Duration: ms}},
		{"user_blank", "UserName", monitor.Sample{OperationType: "ok", UserName: "   ", Duration: ms}},
		{"user_201_chars", "UserName", monitor.Sample{OperationType: "ok", UserName: strings.Repeat("u", 201), Duration: ms}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var argErr *monitor.ArgumentError
			require.ErrorAs(t, rec.RecordSample(c.s), &argErr)
			require.Equal(t, c.field, argErr.Argument)
			require.NotContains(t, argErr.Error(), "\n", "the message quotes the value escaped")
			_, err := e.client.RecordSample(e.ctx, c.s)
			require.ErrorAs(t, err, &argErr)
			require.Equal(t, c.field, argErr.Argument)
		})
	}
	require.NoError(t, rec.RecordSample(monitor.Sample{OperationType: "ok", Scope: "eu", UserName: "bob", Duration: ms}))
	require.NoError(t, rec.Flush(e.ctx))
	require.Zero(t, rec.Stats().Rejected, "no batch was rejected")
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.performance_metrics`))
}

// TestNameRuleIsInlined: the CHECK constraints call pggit.is_valid_name on
// every row written; the planner inlines it (no SET clause, every name
// qualified), so a check costs the expression, not a function call.
func TestNameRuleIsInlined(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rows, err := e.pool.Query(e.ctx, `EXPLAIN (VERBOSE, COSTS OFF)
		SELECT pggit.is_valid_name(v.x), pggit.is_valid_name(v.x, 200, true) FROM (VALUES ('a'), ('b')) AS v(x)`)
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotContains(t, strings.Join(plan, "\n"), "is_valid_name")
	require.Contains(t, strings.Join(plan, "\n"), "[[:cntrl:]]")
}
