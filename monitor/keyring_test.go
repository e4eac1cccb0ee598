package monitor_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

// TestWebhookSecretIsBoundToItsRoutingFields changes where a webhook sends
// (its channel, its name) with plain SQL: the secret no longer decrypts, so
// nothing is sent there, and the error says why without the secret. Storing
// the webhook again through the API seals it to its new channel.
func TestWebhookSecretIsBoundToItsRoutingFields(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	smtpSrv, _ := newSMTPServer(t, false, "", "")
	slack := n.webhook("slack", "s", secretURL(s, "BOUNDTOKEN"), "#alerts")
	mailURL := "smtp://" + smtpSrv.addr() + "?from=pggit@example.com"
	mail := n.webhook("email", "m", mailURL, "oncall@example.com")
	for _, w := range []*monitor.Webhook{slack, mail} {
		n.route(w, "ALL", "INFO")
		require.EqualValues(t, 2, n.count(`SELECT secret_aad_version FROM pggit.alert_notification_webhooks WHERE webhook_id = $1`, w.ID))
	}

	n.exec(`UPDATE pggit.alert_notification_webhooks SET channel = 'attacker@evil.example' WHERE webhook_id = $1`, mail.ID)
	n.exec(`UPDATE pggit.alert_notification_webhooks SET channel = '#leaks' WHERE webhook_id = $1`, slack.ID)
	for _, w := range []*monitor.Webhook{slack, mail} {
		_, err := n.c.Webhook(n.ctx, w.ID)
		require.ErrorIs(t, err, monitor.ErrSecretTampered)
		require.ErrorContains(t, err, "does not match its row")
		require.NotContains(t, err.Error(), "BOUNDTOKEN")
	}

	// Delivery refuses both: nothing reaches either receiver; the batches
	// wait for a retry, with the reason.
	n.raise("op", "ANOMALY", "WARNING")
	d := n.dispatcher(nil)
	require.Equal(t, 2, n.runOnce(d))
	require.Empty(t, s.received())
	require.Empty(t, smtpSrv.received())
	rows, err := n.pool.Query(n.ctx, `SELECT status, last_error FROM pggit.notification_batch_queue`)
	require.NoError(t, err)
	for rows.Next() {
		var status, lastErr string
		require.NoError(t, rows.Scan(&status, &lastErr))
		require.Equal(t, "failed", status)
		require.Contains(t, lastErr, "does not match its row")
		require.NotContains(t, lastErr, "BOUNDTOKEN")
	}
	require.NoError(t, rows.Err())

	// Through the API the new channel is sealed in: it decrypts and sends.
	again := n.webhook("email", "m", mailURL, "dba@example.com")
	require.Equal(t, mail.ID, again.ID)
	got, err := n.c.Webhook(n.ctx, mail.ID)
	require.NoError(t, err)
	require.Equal(t, "dba@example.com", got.Channel)
	n.makeDue()
	require.Equal(t, 2, n.runOnce(d))
	require.Len(t, smtpSrv.received(), 1)
	require.Equal(t, []string{"dba@example.com"}, smtpSrv.received()[0].To)
	require.Empty(t, s.received())

	// A renamed row, or one set back to the version-1 associated data, does
	// not decrypt either.
	n.exec(`UPDATE pggit.alert_notification_webhooks SET name = 'renamed' WHERE webhook_id = $1`, mail.ID)
	_, err = n.c.Webhook(n.ctx, mail.ID)
	require.ErrorIs(t, err, monitor.ErrSecretTampered)
	n.exec(`UPDATE pggit.alert_notification_webhooks SET name = 'm', secret_aad_version = 1 WHERE webhook_id = $1`, mail.ID)
	_, err = n.c.Webhook(n.ctx, mail.ID)
	require.ErrorIs(t, err, monitor.ErrSecretTampered)
	n.exec(`UPDATE pggit.alert_notification_webhooks SET secret_aad_version = 2 WHERE webhook_id = $1`, mail.ID)
	_, err = n.c.Webhook(n.ctx, mail.ID)
	require.NoError(t, err)
}

// TestVersion1SecretsStillOpenAndRotateToVersion2 writes a row as the
// previous release did (associated data: id and type only), reads it, and
// rotates it to version 2 under the same newest key; from then on its channel
// is bound.
func TestVersion1SecretsStillOpenAndRotateToVersion2(t *testing.T) {
	t.Parallel()
	e := setup(t)
	key := newKey(t)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": key}, "k1")
	require.NoError(t, err)
	c := clientWithKeys(t, e, ring)

	// Sealed as release 1 sealed: AES-256-GCM, associated data "...v1|id|type".
	const secret = "https://hooks.example/services/T1/B1/LEGACYSECRET"
	var id int64
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT nextval(pg_get_serial_sequence('pggit.alert_notification_webhooks', 'webhook_id'))`).Scan(&id))
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	ct := aead.Seal(nil, nonce, []byte(secret), fmt.Appendf(nil, "pggit-monitor webhook secret v1|%d|%s", id, "slack"))
	e.exec(`INSERT INTO pggit.alert_notification_webhooks (webhook_id, webhook_type, name, channel, secret_ciphertext, secret_nonce, key_id)
		VALUES ($1, 'slack', 'legacy', '#alerts', $2, $3, 'k1')`, id, ct, nonce)
	require.EqualValues(t, 1, e.count(`SELECT secret_aad_version FROM pggit.alert_notification_webhooks WHERE webhook_id = $1`, id))

	w, err := c.Webhook(e.ctx, id)
	require.NoError(t, err)
	require.Equal(t, secret, w.Secret.Reveal())

	// Already on the newest key, yet re-encrypted: version 1 moves to 2.
	rotated, err := c.RotateWebhookKeys(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rotated)
	require.EqualValues(t, 2, e.count(`SELECT secret_aad_version FROM pggit.alert_notification_webhooks WHERE webhook_id = $1`, id))
	w, err = c.Webhook(e.ctx, id)
	require.NoError(t, err)
	require.Equal(t, secret, w.Secret.Reveal())
	require.Equal(t, "#alerts", w.Channel)

	e.exec(`UPDATE pggit.alert_notification_webhooks SET channel = '#elsewhere' WHERE webhook_id = $1`, id)
	_, err = c.Webhook(e.ctx, id)
	require.ErrorIs(t, err, monitor.ErrSecretTampered)
}

// TestKeyRingRejectsWeakKeys refuses keys of zeros and short keys wherever a
// key ring is built, naming the key id and never the key.
func TestKeyRingRejectsWeakKeys(t *testing.T) {
	zero, short := make([]byte, 32), newKey(t)[:16]
	b64 := base64.StdEncoding.EncodeToString
	for name, c := range map[string]struct {
		key  []byte
		want string
	}{
		"zero":  {zero, `key "weak" is all zero bytes`},
		"short": {short, `key "weak" must be 32 bytes (AES-256), got 16`},
	} {
		_, err := monitor.NewKeyRing(map[string][]byte{"weak": c.key, "good": newKey(t)}, "good")
		require.ErrorContains(t, err, c.want, name)
		require.NotContains(t, err.Error(), b64(c.key))

		_, err = monitor.ParseKeyRing("good:" + b64(newKey(t)) + "\nweak:" + b64(c.key))
		require.ErrorContains(t, err, c.want, name)
		require.NotContains(t, err.Error(), b64(c.key))

		t.Setenv(monitor.EnvWebhookKeys, "weak:"+b64(c.key))
		_, err = monitor.LoadKeyRing()
		require.ErrorContains(t, err, c.want, name)

		path := filepath.Join(t.TempDir(), "keys")
		require.NoError(t, os.WriteFile(path, []byte("weak:"+b64(c.key)+"\n"), 0o600))
		t.Setenv(monitor.EnvWebhookKeys, "")
		t.Setenv(monitor.EnvWebhookKeysFile, path)
		_, err = monitor.LoadKeyRing()
		require.ErrorContains(t, err, c.want, name)
		t.Setenv(monitor.EnvWebhookKeysFile, "")
	}
}
