-- name: NextWebhookID :one
SELECT nextval(pg_get_serial_sequence('pggit.alert_notification_webhooks', 'webhook_id'))::bigint AS webhook_id;

-- name: LockWebhookByName :one
SELECT * FROM pggit.alert_notification_webhooks
WHERE webhook_type = sqlc.arg(webhook_type) AND name = sqlc.arg(name)
FOR UPDATE;

-- name: InsertWebhook :one
INSERT INTO pggit.alert_notification_webhooks
    (webhook_id, webhook_type, name, channel, enabled, secret_ciphertext, secret_nonce, key_id, secret_aad_version)
VALUES
    (sqlc.arg(webhook_id), sqlc.arg(webhook_type), sqlc.arg(name), sqlc.narg(channel),
     sqlc.arg(enabled), sqlc.arg(secret_ciphertext), sqlc.arg(secret_nonce), sqlc.arg(key_id),
     sqlc.arg(secret_aad_version))
RETURNING *;

-- name: UpdateWebhook :one
-- Replaces channel, enabled and secret; a changed secret must be tested again.
UPDATE pggit.alert_notification_webhooks
SET channel            = sqlc.narg(channel),
    enabled            = sqlc.arg(enabled),
    secret_ciphertext  = sqlc.arg(secret_ciphertext),
    secret_nonce       = sqlc.arg(secret_nonce),
    key_id             = sqlc.arg(key_id),
    secret_aad_version = sqlc.arg(secret_aad_version),
    test_status        = 'untested',
    test_error         = NULL,
    last_tested_at     = NULL,
    updated_at         = now()
WHERE webhook_id = sqlc.arg(webhook_id)
RETURNING *;

-- name: GetWebhook :one
SELECT * FROM pggit.alert_notification_webhooks WHERE webhook_id = sqlc.arg(webhook_id);

-- name: ListWebhooks :many
SELECT * FROM pggit.alert_notification_webhooks ORDER BY webhook_type, name;

-- name: LockAllWebhooks :many
SELECT * FROM pggit.alert_notification_webhooks ORDER BY webhook_id FOR UPDATE;

-- name: SetWebhookSecret :exec
-- Re-encryption (key rotation): same plaintext, new key or associated data.
UPDATE pggit.alert_notification_webhooks
SET secret_ciphertext  = sqlc.arg(secret_ciphertext),
    secret_nonce       = sqlc.arg(secret_nonce),
    key_id             = sqlc.arg(key_id),
    secret_aad_version = sqlc.arg(secret_aad_version),
    updated_at         = now()
WHERE webhook_id = sqlc.arg(webhook_id);

-- name: RecordWebhookTest :one
UPDATE pggit.alert_notification_webhooks
SET last_tested_at = clock_timestamp(),
    test_status    = sqlc.arg(test_status),
    test_error     = sqlc.narg(test_error)
WHERE webhook_id = sqlc.arg(webhook_id)
RETURNING *;

-- name: GetMonitorSetting :one
SELECT setting_value FROM pggit.monitor_settings WHERE setting_name = sqlc.arg(setting_name);

-- name: SetMonitorSetting :exec
INSERT INTO pggit.monitor_settings (setting_name, setting_value)
VALUES (sqlc.arg(setting_name), sqlc.arg(setting_value))
ON CONFLICT (setting_name) DO UPDATE SET setting_value = EXCLUDED.setting_value, updated_at = now();
