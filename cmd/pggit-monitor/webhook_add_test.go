package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

// TestCLIWebhookAddStoresWebhookAndRouteTogether: `webhook add -route-type`
// stores the webhook and its route in one transaction, so a route refused in
// Go or by the database leaves no webhook behind.
func TestCLIWebhookAddStoresWebhookAndRouteTogether(t *testing.T) {
	dsn := monitortest.NewDB(t)
	t.Setenv("DATABASE_URL", dsn)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("PGGIT_WEBHOOK_KEYS", "k1:"+base64.StdEncoding.EncodeToString(key))
	t.Setenv("HOOK_URL", "http://127.0.0.1:1/hooks/ADDSECRET")
	pool, err := pgxpool.New(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	count := func(q string) int64 {
		t.Helper()
		var n int64
		require.NoError(t, pool.QueryRow(context.Background(), q).Scan(&n))
		return n
	}
	add := func(args ...string) (string, error) {
		return runCLI(t, append([]string{"webhook", "add", "-type", "webhook", "-name", "w", "-secret-env", "HOOK_URL"}, args...)...)
	}

	_, err = add("-route-type", "ALL", "-min-severity", "LOUD")
	require.ErrorContains(t, err, "MinSeverity must be one of CRITICAL, WARNING, INFO")
	require.Zero(t, count(`SELECT count(*) FROM pggit.alert_notification_webhooks`))
	_, err = add("-route-type", "SLOW")
	require.ErrorContains(t, err, "Type must be one of ALL")
	require.Zero(t, count(`SELECT count(*) FROM pggit.alert_notification_webhooks`))

	_, err = pool.Exec(context.Background(), `
		CREATE FUNCTION public.refuse_route() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'route refused by test'; END $$;
		CREATE TRIGGER refuse_route BEFORE INSERT ON pggit.alert_notification_settings
			FOR EACH ROW EXECUTE FUNCTION public.refuse_route();`)
	require.NoError(t, err)
	_, err = add("-route-type", "ANOMALY")
	require.ErrorContains(t, err, "route refused by test")
	require.NotContains(t, err.Error(), "ADDSECRET")
	require.Zero(t, count(`SELECT count(*) FROM pggit.alert_notification_webhooks`))

	_, err = pool.Exec(context.Background(), `DROP TRIGGER refuse_route ON pggit.alert_notification_settings`)
	require.NoError(t, err)
	out, err := add("-route-type", "ANOMALY", "-min-severity", "CRITICAL")
	require.NoError(t, err)
	require.Regexp(t, `^webhook \d+: webhook "w" stored, secret encrypted with key k1\nroute \d+: ANOMALY alerts of CRITICAL or worse -> webhook \d+\n$`, out)
	require.EqualValues(t, 1, count(`SELECT count(*) FROM pggit.alert_notification_webhooks`))
	require.EqualValues(t, 1, count(`SELECT count(*) FROM pggit.alert_notification_settings`))
}
