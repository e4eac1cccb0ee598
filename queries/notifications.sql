-- name: UpsertRoute :one
INSERT INTO pggit.alert_notification_settings AS s
    (alert_type, min_severity, webhook_id, enabled, repeat_interval_seconds, send_resolved)
VALUES (sqlc.arg(alert_type), sqlc.arg(min_severity), sqlc.arg(webhook_id), sqlc.arg(enabled),
        sqlc.arg(repeat_interval_seconds), sqlc.arg(send_resolved))
ON CONFLICT (alert_type, webhook_id) DO UPDATE
SET min_severity = EXCLUDED.min_severity, enabled = EXCLUDED.enabled,
    repeat_interval_seconds = EXCLUDED.repeat_interval_seconds, send_resolved = EXCLUDED.send_resolved
RETURNING *;

-- name: ListRoutes :many
SELECT * FROM pggit.alert_notification_settings ORDER BY webhook_id, alert_type;

-- name: DeleteRoute :execrows
DELETE FROM pggit.alert_notification_settings WHERE setting_id = sqlc.arg(setting_id);

-- name: UpdateBatchConfig :one
UPDATE pggit.notification_batch_config
SET batch_size = sqlc.arg(batch_size),
    batch_timeout_seconds = sqlc.arg(batch_timeout_seconds),
    max_attempts = sqlc.arg(max_attempts),
    resend_seconds = sqlc.narg(resend_seconds)
WHERE webhook_type = sqlc.arg(webhook_type)
RETURNING *;

-- name: ListBatchConfig :many
SELECT * FROM pggit.notification_batch_config ORDER BY webhook_type;

-- name: ClaimNotificationBatches :many
SELECT * FROM pggit.claim_notification_batches(
    sqlc.arg(worker)::text, sqlc.arg(max_batches)::integer, sqlc.arg(lease_seconds)::integer);

-- name: FormatAlertBatch :one
SELECT pggit.format_alert_batch(sqlc.arg(alert_ids)::bigint[], sqlc.arg(format)::text)::text AS message;

-- name: FormatAlertMessage :one
SELECT pggit.format_alert_message(sqlc.arg(alert_id)::bigint, sqlc.arg(format)::text)::text AS message;

-- name: CompleteNotificationBatch :one
SELECT pggit.complete_notification_batch(
    sqlc.arg(batch_id)::bigint,
    sqlc.arg(worker)::text,
    sqlc.arg(outcome)::text,
    sqlc.narg(http_status)::integer,
    sqlc.narg(smtp_reply)::text,
    sqlc.arg(latency_ms)::double precision,
    sqlc.narg(error)::text,
    sqlc.narg(retry_at)::timestamptz,
    sqlc.narg(attempt)::integer
)::boolean AS completed;

-- name: GetNotificationBatch :one
SELECT * FROM pggit.notification_batch_queue WHERE batch_id = sqlc.arg(batch_id);

-- name: FormatNotificationBatch :one
-- The message of a batch: its alerts in the order they were queued, each as
-- its notification's event says.
SELECT pggit.format_notification_batch(sqlc.arg(batch_id)::bigint, sqlc.arg(format)::text)::text AS message;

-- name: ExtendNotificationLeases :many
-- Extends the leases worker still holds on batch_ids; returns those.
WITH extended AS (
    UPDATE pggit.notification_batch_queue b
    SET lease_until = clock_timestamp() + make_interval(secs => sqlc.arg(lease_seconds)::integer)
    WHERE b.batch_id = ANY (sqlc.arg(batch_ids)::bigint[])
      AND b.status = 'sending'
      AND b.leased_by = sqlc.arg(worker)::text
    RETURNING b.batch_id, b.lease_until
), items AS (
    UPDATE pggit.alert_notification_queue q
    SET lease_until = e.lease_until
    FROM extended e
    WHERE q.batch_id = e.batch_id
)
SELECT e.batch_id FROM extended e;

-- name: ReleaseNotificationBatch :one
SELECT pggit.release_notification_batch(sqlc.arg(batch_id)::bigint, sqlc.arg(worker)::text, sqlc.narg(attempt)::integer)::boolean AS released;
