-- Reads of the web console (monitor/ui). Every one reads views, histograms or
-- indexed ranges, never the raw samples.

-- name: LatencySeries :many
-- p50/p90/p99 and the mean of (operation, scope) per bucket, from the
-- histograms. (Columns cast one by one: sqlc cannot see a function's
-- composite result type.)
SELECT s.bucket_start::timestamptz AS bucket_start, s.sample_count::bigint AS sample_count,
       s.mean_us::float8 AS mean_us, s.p50_us::float8 AS p50_us, s.p90_us::float8 AS p90_us,
       s.p99_us::float8 AS p99_us
FROM pggit.latency_series(
    sqlc.arg(operation_type)::text,
    sqlc.arg(scope)::text,
    sqlc.arg(from_time)::timestamptz,
    sqlc.arg(to_time)::timestamptz,
    sqlc.arg(step_seconds)::integer
) s;

-- name: LatencySparklines :many
SELECT s.operation_type::text AS operation_type, s.scope::text AS scope,
       s.bucket_start::timestamptz AS bucket_start, s.sample_count::bigint AS sample_count,
       s.mean_us::float8 AS mean_us
FROM pggit.latency_sparklines(
    sqlc.arg(operation_types)::text[],
    sqlc.arg(scopes)::text[],
    sqlc.arg(from_time)::timestamptz,
    sqlc.arg(to_time)::timestamptz,
    sqlc.arg(step_seconds)::integer
) s;

-- name: SystemHealth :one
SELECT h.open_alerts::bigint AS open_alerts, h.open_critical::bigint AS open_critical,
       h.open_warning::bigint AS open_warning, h.open_unacknowledged::bigint AS open_unacknowledged,
       h.tracked_operations::bigint AS tracked_operations, h.active_baselines::bigint AS active_baselines,
       h.stale_baselines::bigint AS stale_baselines, h.samples_last_hour::bigint AS samples_last_hour,
       h.active_snoozes::bigint AS active_snoozes, h.webhooks_enabled::bigint AS webhooks_enabled,
       h.webhooks_failing_test::bigint AS webhooks_failing_test
FROM pggit.v_monitoring_system_health h;

-- name: QueueHealth :many
SELECT v.webhook_id::bigint AS webhook_id, v.name::text AS name, v.webhook_type::text AS webhook_type,
       v.enabled::boolean AS enabled, v.test_status::text AS test_status,
       v.batches_waiting::bigint AS batches_waiting, v.batches_sending::bigint AS batches_sending,
       v.batches_retrying::bigint AS batches_retrying, v.batches_dead::bigint AS batches_dead,
       coalesce(v.notifications_pending, 0)::bigint AS notifications_pending,
       coalesce(extract(epoch FROM v.oldest_pending_age), 0)::float8 AS oldest_pending_seconds
FROM pggit.v_notification_queue_health v
ORDER BY v.name;

-- name: OpenAlertCounts :many
-- Open alerts by severity: how many, how many acknowledged, how many
-- snoozed, and the oldest.
SELECT severity, count(*)::bigint AS alerts,
       count(*) FILTER (WHERE acknowledged_at IS NOT NULL)::bigint AS acknowledged,
       count(*) FILTER (WHERE snoozed)::bigint AS snoozed,
       min(created_at)::timestamptz AS oldest
FROM pggit.performance_alerts
WHERE resolved_at IS NULL
GROUP BY severity
ORDER BY pggit.severity_rank(severity) DESC;

-- name: OperationAlerts :many
-- The alerts of (operation, scope) whose span overlaps [from_time, to_time),
-- for the operation page: shaded spans and change points.
SELECT * FROM pggit.performance_alerts a
WHERE a.operation_type = sqlc.arg(operation_type)::text
  AND a.scope = sqlc.arg(scope)::text
  AND a.first_seen_at < sqlc.arg(to_time)::timestamptz
  AND coalesce(a.resolved_at, 'infinity') >= sqlc.arg(from_time)::timestamptz
ORDER BY a.first_seen_at
LIMIT 200;

-- name: OperationScopes :many
-- The scopes an operation has baselines or recent histograms in.
SELECT DISTINCT s.scope FROM (
    SELECT b.scope FROM pggit.performance_baselines b
    WHERE b.operation_type = sqlc.arg(operation_type)::text AND b.is_active
    UNION
    SELECT h.scope FROM pggit.performance_histograms h
    WHERE h.operation_type = sqlc.arg(operation_type)::text
      AND h.bucket_start >= now() - interval '7 days'
) s
ORDER BY s.scope
LIMIT 50;

-- name: AlertNotifications :many
-- What was sent for one alert: each notification with its webhook, its
-- batch's state and the last delivery attempt. Never a secret.
SELECT q.notification_id, q.event, q.severity, q.status, q.attempts, q.created_at, q.sent_at, q.last_error,
       w.name AS webhook_name, w.webhook_type,
       b.status AS batch_status,
       l.outcome AS last_outcome, l.http_status AS last_http_status, l.created_at AS last_attempt_at
FROM pggit.alert_notification_queue q
JOIN pggit.alert_notification_webhooks w ON w.webhook_id = q.webhook_id
LEFT JOIN pggit.notification_batch_queue b ON b.batch_id = q.batch_id
LEFT JOIN pggit.alert_notification_log l ON l.log_id = (
    SELECT max(g.log_id) FROM pggit.alert_notification_log g WHERE g.batch_id = q.batch_id)
WHERE q.alert_id = sqlc.arg(alert_id)::bigint
ORDER BY q.notification_id;
