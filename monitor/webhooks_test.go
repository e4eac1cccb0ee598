package monitor_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func clientWithKeys(t *testing.T, e *env, ring *monitor.KeyRing) *monitor.Client {
	t.Helper()
	c, err := monitor.New(e.pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return c
}

const slackURL = "https://hooks.slack.example/services/T000/B000/XXXXSECRETXXXX"

func TestWebhookSecretsAreEncryptedAtRest(t *testing.T) {
	t.Parallel()
	e := setup(t)
	k1 := newKey(t)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": k1}, "k1")
	require.NoError(t, err)
	c := clientWithKeys(t, e, ring)

	w, err := c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "slack-alerts", Channel: "#pgit-alerts", Secret: slackURL})
	require.NoError(t, err)
	require.Equal(t, "k1", w.KeyID)
	require.Equal(t, "untested", w.TestStatus)
	require.Empty(t, w.Secret.Reveal()) // StoreWebhook does not hand the secret back

	// The database holds ciphertext only: no trace of the URL or its parts.
	var ct, nonce []byte
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT secret_ciphertext, secret_nonce FROM pggit.alert_notification_webhooks WHERE webhook_id = $1`, w.ID).Scan(&ct, &nonce))
	require.Len(t, nonce, 12)
	require.False(t, bytes.Contains(ct, []byte("XXXXSECRETXXXX")))
	require.False(t, bytes.Contains(ct, []byte("hooks.slack")))
	var dump string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT string_agg(t::text, '') FROM pggit.alert_notification_webhooks t`).Scan(&dump))
	require.NotContains(t, dump, "SECRET")

	got, err := c.Webhook(e.ctx, w.ID)
	require.NoError(t, err)
	require.Equal(t, slackURL, got.Secret.Reveal())
	require.Equal(t, "#pgit-alerts", got.Channel)

	// Upsert by type + name: same row, new secret and channel, untested again.
	const newURL = "https://hooks.slack.example/services/T000/B000/ROTATEDROTATED"
	w2, err := c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "slack-alerts", Channel: "#ops", Secret: newURL, Enabled: ptr(false)})
	require.NoError(t, err)
	require.Equal(t, w.ID, w2.ID)
	require.False(t, w2.Enabled)
	got, err = c.Webhook(e.ctx, w.ID)
	require.NoError(t, err)
	require.Equal(t, newURL, got.Secret.Reveal())
	// The same name under another type is another webhook.
	mm, err := c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookMattermost, Name: "slack-alerts", Secret: "http://127.0.0.1:9/hooks/abc"})
	require.NoError(t, err)
	require.NotEqual(t, w.ID, mm.ID)

	list, err := c.ListWebhooks(e.ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, l := range list {
		require.Empty(t, l.Secret.Reveal(), "ListWebhooks never decrypts")
	}

	// Without a key ring nothing can be stored or read, with a clear error.
	bare := clientWithKeys(t, e, nil)
	_, err = bare.Webhook(e.ctx, w.ID)
	require.ErrorIs(t, err, monitor.ErrNoKeyRing)
	_, err = bare.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "x", Secret: slackURL})
	require.ErrorIs(t, err, monitor.ErrNoKeyRing)
	_, err = c.Webhook(e.ctx, 987654)
	require.ErrorIs(t, err, monitor.ErrNotFound)
}

func TestWebhookWrongKeyTamperAndSwap(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	c := clientWithKeys(t, e, ring)
	a, err := c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookGeneric, Name: "a", Secret: "https://a.example/hook/AAAA"})
	require.NoError(t, err)
	b, err := c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookGeneric, Name: "b", Secret: "https://b.example/hook/BBBB"})
	require.NoError(t, err)

	// A different key under the same id: authentication fails.
	wrong, err := monitor.NewKeyRing(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	_, err = clientWithKeys(t, e, wrong).Webhook(e.ctx, a.ID)
	require.ErrorIs(t, err, monitor.ErrSecretTampered)
	require.NotContains(t, err.Error(), "AAAA")
	// A key ring without the row's key id.
	other, err := monitor.NewKeyRing(map[string][]byte{"k2": newKey(t)}, "k2")
	require.NoError(t, err)
	_, err = clientWithKeys(t, e, other).Webhook(e.ctx, a.ID)
	require.ErrorIs(t, err, monitor.ErrUnknownKey)
	require.ErrorContains(t, err, `key id "k1"`)

	// Ciphertext moved from b to a: bound to b's row, so a refuses it.
	e.exec(`UPDATE pggit.alert_notification_webhooks AS t SET secret_ciphertext = s.secret_ciphertext, secret_nonce = s.secret_nonce
		FROM pggit.alert_notification_webhooks s WHERE t.webhook_id = $1 AND s.webhook_id = $2`, a.ID, b.ID)
	_, err = c.Webhook(e.ctx, a.ID)
	require.ErrorIs(t, err, monitor.ErrSecretTampered)
	// One flipped bit in b's ciphertext.
	e.exec(`UPDATE pggit.alert_notification_webhooks SET secret_ciphertext = set_byte(secret_ciphertext, 3, get_byte(secret_ciphertext, 3) # 1) WHERE webhook_id = $1`, b.ID)
	_, err = c.Webhook(e.ctx, b.ID)
	require.ErrorIs(t, err, monitor.ErrSecretTampered)
}

func TestRotateWebhookKeys(t *testing.T) {
	t.Parallel()
	e := setup(t)
	k1, k2 := newKey(t), newKey(t)
	old, err := monitor.NewKeyRing(map[string][]byte{"k1": k1}, "k1")
	require.NoError(t, err)
	c1 := clientWithKeys(t, e, old)
	secrets := map[int64]string{}
	for i, typ := range []string{monitor.WebhookSlack, monitor.WebhookMattermost, monitor.WebhookPagerDuty, monitor.WebhookEmail} {
		p := monitor.WebhookParams{Type: typ, Name: fmt.Sprintf("w%d", i), Secret: monitor.Secret(fmt.Sprintf("https://x.example/hook/%d", i))}
		switch typ {
		case monitor.WebhookPagerDuty:
			p.Secret = "R0UTINGKEY0000000000000000000001"
		case monitor.WebhookEmail:
			p.Secret = "smtp://alerts:hunter2@127.0.0.1:2525?from=alerts@example.com"
			p.Channel = "oncall@example.com, dba@example.com"
		}
		w, err := c1.StoreWebhook(e.ctx, p)
		require.NoError(t, err)
		secrets[w.ID] = p.Secret.Reveal()
	}

	// The ring spec as an operator writes it: the last entry is the newest.
	ring, err := monitor.ParseKeyRing("k1:" + base64.StdEncoding.EncodeToString(k1) + ",k2:" + base64.StdEncoding.EncodeToString(k2))
	require.NoError(t, err)
	require.Equal(t, "k2", ring.NewestKeyID())
	c2 := clientWithKeys(t, e, ring)
	n, err := c2.RotateWebhookKeys(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.EqualValues(t, 4, e.count(`SELECT count(*) FROM pggit.alert_notification_webhooks WHERE key_id = 'k2'`))

	// The old key can go: k2 alone reads everything.
	only2, err := monitor.NewKeyRing(map[string][]byte{"k2": k2}, "k2")
	require.NoError(t, err)
	c3 := clientWithKeys(t, e, only2)
	for id, want := range secrets {
		w, err := c3.Webhook(e.ctx, id)
		require.NoError(t, err)
		require.Equal(t, want, w.Secret.Reveal())
	}

	// All or nothing: one unreadable row aborts the rotation and changes nothing.
	var victim int64
	for id := range secrets {
		victim = id
		break
	}
	e.exec(`UPDATE pggit.alert_notification_webhooks SET secret_ciphertext = set_byte(secret_ciphertext, 0, get_byte(secret_ciphertext, 0) # 255) WHERE webhook_id = $1`, victim)
	k3 := newKey(t)
	next, err := monitor.NewKeyRing(map[string][]byte{"k2": k2, "k3": k3}, "k3")
	require.NoError(t, err)
	_, err = clientWithKeys(t, e, next).RotateWebhookKeys(e.ctx)
	require.ErrorIs(t, err, monitor.ErrSecretTampered)
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.alert_notification_webhooks WHERE key_id = 'k3'`))
}

func TestWebhookBadInputsNeverEchoSecrets(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	c := clientWithKeys(t, e, ring)
	cases := []struct {
		p   monitor.WebhookParams
		arg string
	}{
		{monitor.WebhookParams{Type: "teams", Name: "x", Secret: "https://a.example/S3CRET"}, "Type"},
		{monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "", Secret: "https://a.example/S3CRET"}, "Name"},
		{monitor.WebhookParams{Type: monitor.WebhookSlack, Name: strings.Repeat("n", 101), Secret: "https://a.example/S3CRET"}, "Name"},
		{monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "x", Secret: "ftp://a.example/S3CRET"}, "Secret"},
		{monitor.WebhookParams{Type: monitor.WebhookGeneric, Name: "x", Secret: "not a url S3CRET"}, "Secret"},
		{monitor.WebhookParams{Type: monitor.WebhookPagerDuty, Name: "x", Secret: ""}, "Secret"},
		{monitor.WebhookParams{Type: monitor.WebhookEmail, Name: "x", Secret: "smtp://u:S3CRET@host:25", Channel: "a@example.com"}, "Secret"},
		{monitor.WebhookParams{Type: monitor.WebhookEmail, Name: "x", Secret: "smtp://u:S3CRET@host:25?from=me@example.com", Channel: "not an address"}, "Channel"},
	}
	for _, tc := range cases {
		_, err := c.StoreWebhook(e.ctx, tc.p)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr, "%s", tc.arg)
		require.Equal(t, tc.arg, argErr.Argument)
		require.Equal(t, "22023", argErr.SQLState)
		require.NotContains(t, err.Error(), "S3CRET")
	}
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.alert_notification_webhooks`))

	// Secrets do not print, whatever the verb, nor log.
	w := monitor.Webhook{Name: "x", Secret: "https://a.example/S3CRET"}
	for _, s := range []string{fmt.Sprint(w), fmt.Sprintf("%+v", w), fmt.Sprintf("%#v", w), fmt.Sprintf("%v", &w), fmt.Sprintf("%s", w.Secret)} {
		require.NotContains(t, s, "S3CRET")
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("webhook", "secret", w.Secret, "webhook", w)
	require.NotContains(t, logs.String(), "S3CRET")
}

func TestParseKeyRing(t *testing.T) {
	t.Parallel()
	good := base64.StdEncoding.EncodeToString(newKey(t))
	short := base64.StdEncoding.EncodeToString(newKey(t)[:16])
	ring, err := monitor.ParseKeyRing("# keys\nold:" + good + "\n\nnew:" + base64.RawURLEncoding.EncodeToString(newKey(t)) + "\n")
	require.NoError(t, err)
	require.Equal(t, "new", ring.NewestKeyID())
	for spec, want := range map[string]string{
		"":                           "at least one key",
		"k1" + good:                  "want id:base64key",
		"k1:not*base64":              "not base64",
		"k1:" + short:                "must be 32 bytes",
		"k1:" + good + ",k1:" + good: "appears twice",
		"bad id:" + good:             "key id must be",
	} {
		_, err := monitor.ParseKeyRing(spec)
		require.ErrorContains(t, err, want, "spec %q", spec)
		require.NotContains(t, err.Error(), good)
	}
}

func TestLoadKeyRingFromEnvironment(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(newKey(t))
	t.Setenv(monitor.EnvWebhookKeys, "")
	t.Setenv(monitor.EnvWebhookKeysFile, "")
	r, err := monitor.LoadKeyRing()
	require.NoError(t, err)
	require.Nil(t, r)

	path := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(path, []byte("# rotated 2026-11\nk1:"+good+"\nk2:"+good+"\n"), 0o600))
	t.Setenv(monitor.EnvWebhookKeysFile, path)
	r, err = monitor.LoadKeyRing()
	require.NoError(t, err)
	require.Equal(t, "k2", r.NewestKeyID())

	t.Setenv(monitor.EnvWebhookKeys, "inline:"+good) // the variable wins over the file
	r, err = monitor.LoadKeyRing()
	require.NoError(t, err)
	require.Equal(t, "inline", r.NewestKeyID())

	t.Setenv(monitor.EnvWebhookKeys, "broken")
	_, err = monitor.LoadKeyRing()
	require.ErrorContains(t, err, "want id:base64key")
}

// TestStoreWebhookWithRoutesIsOneTransaction stores a webhook with its routes
// at once, and shows that a refused route, whether Go or the database
// refuses it, leaves neither a new webhook nor a changed one behind.
func TestStoreWebhookWithRoutesIsOneTransaction(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	c := clientWithKeys(t, e, ring)

	routes := []monitor.RouteParams{{Type: monitor.AlertAnomaly, MinSeverity: monitor.SeverityCritical}, {}}
	w, err := c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "oncall", Channel: "#a", Secret: slackURL, Routes: routes})
	require.NoError(t, err)
	require.Len(t, w.Routes, 2)
	require.Equal(t, monitor.RouteParams{Type: monitor.AlertAnomaly, MinSeverity: monitor.SeverityCritical}, routes[0])
	require.Equal(t, monitor.RouteParams{}, routes[1], "defaults are not written into the caller's slice")
	listed, err := c.ListRoutes(e.ctx)
	require.NoError(t, err)
	require.Len(t, listed, 2)
	for i, r := range listed {
		require.Equal(t, w.ID, r.WebhookID)
		require.True(t, r.Enabled)
		require.Equal(t, []string{"ALL", monitor.AlertAnomaly}[i], r.Type)
		require.Equal(t, []string{monitor.SeverityWarning, monitor.SeverityCritical}[i], r.MinSeverity)
	}

	// Refused in Go, before any write.
	for _, c2 := range []struct {
		route monitor.RouteParams
		arg   string
	}{
		{monitor.RouteParams{MinSeverity: "LOUD"}, "Routes[0].MinSeverity"},
		{monitor.RouteParams{Type: "SLOW"}, "Routes[0].Type"},
		{monitor.RouteParams{WebhookID: w.ID}, "Routes[0].WebhookID"},
	} {
		_, err := c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "new", Secret: slackURL, Routes: []monitor.RouteParams{c2.route}})
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr)
		require.Equal(t, c2.arg, argErr.Argument)
	}

	// Refused by the database after the webhook row was written: the
	// transaction rolls back, for a new webhook and for an update alike.
	e.exec(`CREATE FUNCTION public.refuse_route() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'route refused by test'; END $$`)
	e.exec(`CREATE TRIGGER refuse_degradation BEFORE INSERT ON pggit.alert_notification_settings
		FOR EACH ROW WHEN (NEW.alert_type = 'DEGRADATION') EXECUTE FUNCTION public.refuse_route()`)
	refused := []monitor.RouteParams{{}, {Type: monitor.AlertDegradation}}
	_, err = c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "new", Secret: slackURL, Routes: refused})
	require.ErrorContains(t, err, "route refused by test")
	_, err = c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "oncall", Channel: "#b", Secret: slackURL, Routes: refused})
	require.ErrorContains(t, err, "route refused by test")
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.alert_notification_webhooks`))
	require.EqualValues(t, 2, e.count(`SELECT count(*) FROM pggit.alert_notification_settings`))
	got, err := c.Webhook(e.ctx, w.ID)
	require.NoError(t, err)
	require.Equal(t, "#a", got.Channel)
}
