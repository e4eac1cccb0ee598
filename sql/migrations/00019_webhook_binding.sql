-- Webhook secrets bound to every routing field.
--
-- The AES-GCM associated data of a secret used to name only webhook_id and
-- webhook_type (version 1), so the channel (email recipients, Slack channel)
-- or the name could be changed in the database without detection. Version 2
-- binds webhook_id, webhook_type, name and channel: a secret sealed with it
-- does not decrypt once any of them changes outside the Go API.
--
-- secret_aad_version says which associated data sealed the row. Existing rows
-- are version 1 and keep decrypting until they are re-encrypted
-- (RotateWebhookKeys, `pggit-monitor webhook rotate-keys`, or storing the
-- webhook again), which moves them to version 2. A version-2 row opens only
-- with the version-2 associated data, so setting the column back to 1 makes
-- decryption fail instead of dropping the binding.

-- +goose Up
ALTER TABLE pggit.alert_notification_webhooks
    ADD COLUMN secret_aad_version smallint NOT NULL DEFAULT 1,
    ADD CONSTRAINT alert_notification_webhooks_secret_aad_version_check
        CHECK (secret_aad_version IN (1, 2));

COMMENT ON COLUMN pggit.alert_notification_webhooks.secret_aad_version IS
    'Associated data of the secret: 1 = webhook_id and webhook_type, 2 = also name and channel';

-- +goose Down
-- Rows sealed with version 2 do not decrypt with the version-1 associated
-- data of the previous release: store those webhooks again after going down.
ALTER TABLE pggit.alert_notification_webhooks DROP COLUMN secret_aad_version;
