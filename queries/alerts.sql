-- name: SnoozeAlerts :one
SELECT pggit.snooze_alerts(
    sqlc.arg(operation_type)::text,
    sqlc.arg(alert_type)::text,
    sqlc.arg(snooze_minutes)::integer,
    sqlc.narg(snooze_reason)::text,
    coalesce(sqlc.narg(created_by)::text, current_user)
)::bigint AS snooze_id;

-- name: IsAlertSnoozed :one
SELECT pggit.is_alert_snoozed(sqlc.arg(operation_type)::text, sqlc.arg(alert_type)::text)::boolean AS snoozed;

-- name: UnsnoozeAlerts :one
SELECT * FROM pggit.unsnooze_alerts(
    sqlc.arg(snooze_id)::bigint,
    coalesce(sqlc.narg(cancelled_by)::text, current_user)
);

-- name: ListSnoozes :many
-- Snoozes, newest first; with active_only, those that still match now.
SELECT * FROM pggit.alert_snooze
WHERE NOT sqlc.arg(active_only)::boolean
   OR (is_active AND snooze_until > clock_timestamp())
ORDER BY snooze_id DESC
LIMIT sqlc.arg(max_rows);

-- name: GetSnooze :one
SELECT * FROM pggit.alert_snooze WHERE snooze_id = sqlc.arg(snooze_id);

-- name: AcknowledgeAlert :one
SELECT * FROM pggit.acknowledge_alert(
    sqlc.arg(alert_id)::bigint,
    coalesce(sqlc.narg(acknowledged_by)::text, current_user)
);

-- name: ResolveAlert :one
SELECT * FROM pggit.resolve_alert(
    sqlc.arg(alert_id)::bigint,
    coalesce(sqlc.narg(resolved_by)::text, current_user),
    sqlc.narg(resolution_notes)::text
);

-- name: RaiseAlert :one
SELECT * FROM pggit.raise_alert(
    sqlc.arg(operation_type)::text,
    sqlc.arg(scope)::text,
    sqlc.arg(alert_type)::text,
    sqlc.arg(severity)::text,
    sqlc.arg(details)::jsonb,
    sqlc.narg(execution_id)::bigint
);

-- name: GetAlert :one
SELECT * FROM pggit.performance_alerts WHERE alert_id = sqlc.arg(alert_id);

-- name: ListAlerts :many
-- Alerts, newest first, filtered by state, severity, type, operation and time.
SELECT * FROM pggit.performance_alerts
WHERE (NOT sqlc.arg(open_only)::boolean OR resolved_at IS NULL)
  AND (sqlc.narg(severity)::text IS NULL OR severity = sqlc.narg(severity)::text)
  AND (sqlc.narg(alert_type)::text IS NULL OR alert_type = sqlc.narg(alert_type)::text)
  AND (sqlc.narg(operation_type)::text IS NULL OR operation_type = sqlc.narg(operation_type)::text)
  AND (sqlc.narg(since)::timestamptz IS NULL OR last_seen_at >= sqlc.narg(since)::timestamptz)
ORDER BY alert_id DESC
LIMIT sqlc.arg(max_rows);
