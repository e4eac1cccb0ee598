package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestCLIAlertsSnoozesAndWebhooks(t *testing.T) {
	dsn := monitortest.NewDB(t)
	t.Setenv("DATABASE_URL", dsn)
	k1 := make([]byte, 32)
	_, _ = rand.Read(k1)
	t.Setenv("PGGIT_WEBHOOK_KEYS", "k1:"+base64.StdEncoding.EncodeToString(k1))
	pool, err := pgxpool.New(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	exec := func(q string) {
		t.Helper()
		_, err := pool.Exec(context.Background(), q)
		require.NoError(t, err)
	}

	// Snoozes.
	out, err := runCLI(t, "snooze", "add", "-operation", "merge_branches", "-for", "2h", "-reason", "maintenance", "-by", "alice")
	require.NoError(t, err)
	require.Equal(t, "snooze 1: merge_branches / ALL for 2h0m0s\n", out)
	out, err = runCLI(t, "snooze", "list")
	require.NoError(t, err)
	require.Regexp(t, `1 +merge_branches +ALL +\S+ \S+ +alice +maintenance +active`, out)
	_, err = runCLI(t, "snooze", "add", "-type", "SLOW")
	require.ErrorContains(t, err, "p_alert_type must be one of ALL, THRESHOLD_EXCEEDED")
	_, err = runCLI(t, "snooze", "add", "-for", "0s")
	require.ErrorContains(t, err, "-for must be between 1m and 720h")
	out, err = runCLI(t, "snooze", "cancel", "-by", "bob", "1")
	require.NoError(t, err)
	require.Contains(t, out, "snooze 1 cancelled at")
	require.Contains(t, out, "by bob")
	out, err = runCLI(t, "snooze", "list")
	require.NoError(t, err)
	require.NotContains(t, out, "merge_branches")
	out, err = runCLI(t, "snooze", "list", "-all")
	require.NoError(t, err)
	require.Contains(t, out, "cancelled by bob")
	_, err = runCLI(t, "snooze", "cancel", "x")
	require.ErrorContains(t, err, `snooze id must be a positive number, got "x"`)
	_, err = runCLI(t, "snooze", "cancel", "99")
	require.ErrorContains(t, err, "snooze 99 does not exist")
	_, err = runCLI(t, "snooze")
	require.ErrorContains(t, err, "snooze: want one of add, list, cancel")

	// Alerts.
	exec(`SELECT pggit.raise_alert('merge_branches', '', 'ANOMALY', 'CRITICAL')`)
	exec(`SELECT pggit.raise_alert('commit', '', 'ANOMALY', 'WARNING')`)
	out, err = runCLI(t, "alerts", "list", "-severity", "CRITICAL")
	require.NoError(t, err)
	require.Regexp(t, `1 +merge_branches +ANOMALY +CRITICAL +1 +- +\S+ \S+ +open`, out)
	require.NotContains(t, out, "commit")
	out, err = runCLI(t, "alerts", "ack", "-by", "alice", "1")
	require.NoError(t, err)
	require.Contains(t, out, "alert 1 acknowledged by alice")
	out, err = runCLI(t, "alerts", "resolve", "-by", "alice", "-notes", "index rebuilt", "1")
	require.NoError(t, err)
	require.Contains(t, out, "alert 1 resolved by alice")
	_, err = runCLI(t, "alerts", "resolve", "1")
	require.ErrorContains(t, err, "alert 1 was already resolved")
	out, err = runCLI(t, "alerts", "list", "-open")
	require.NoError(t, err)
	require.Contains(t, out, "commit")
	require.NotContains(t, out, "merge_branches")
	_, err = runCLI(t, "alerts", "list", "-severity", "LOUD")
	require.ErrorContains(t, err, "Severity must be one of CRITICAL, WARNING, INFO")

	// Status: the dashboard views as tables.
	out, err = runCLI(t, "status")
	require.NoError(t, err)
	for _, want := range []string{"== System health", "open_alerts", "== Open alerts", "commit", "== Performance trend", "== Notification queues", "== Recalculation health"} {
		require.Contains(t, out, want)
	}

	// Webhooks: the secret never goes on the command line.
	var got []string
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
		_, _ = io.WriteString(w, "ok")
	}))
	defer sink.Close()
	t.Setenv("SLACK_URL", sink.URL+"/services/SECRETPATH")
	out, err = runCLI(t, "webhook", "add", "-type", "slack", "-name", "oncall", "-channel", "#alerts", "-secret-env", "SLACK_URL", "-route-type", "ALL", "-min-severity", "WARNING")
	require.NoError(t, err)
	require.Contains(t, out, `webhook 1: slack "oncall" stored, secret encrypted with key k1`)
	require.Contains(t, out, "route 1: ALL alerts of WARNING or worse -> webhook 1")
	stdin = strings.NewReader("http://127.0.0.1:1/hooks/STDINSECRET\n")
	t.Cleanup(func() { stdin = os.Stdin })
	out, err = runCLI(t, "webhook", "add", "-type", "webhook", "-name", "generic", "-secret-stdin")
	require.NoError(t, err)
	require.Contains(t, out, `webhook 2: webhook "generic" stored`)
	_, err = runCLI(t, "webhook", "add", "-type", "slack", "-name", "x")
	require.ErrorContains(t, err, "exactly one of -secret-env, -secret-file, -secret-stdin")

	out, err = runCLI(t, "webhook", "test", "1")
	require.NoError(t, err)
	require.Equal(t, "webhook 1: test message delivered\n", out)
	require.Len(t, got, 1)
	_, err = runCLI(t, "webhook", "test", "2")
	require.ErrorContains(t, err, "webhook 2 test failed: request failed")
	require.NotContains(t, err.Error(), "STDINSECRET")

	out, err = runCLI(t, "webhook", "list")
	require.NoError(t, err)
	require.Regexp(t, `1 +slack +oncall +#alerts +true +k1 +\S+ \S+ +ok`, out)
	require.Contains(t, out, "failed: request failed")
	require.NotContains(t, out, "SECRETPATH")
	require.NotContains(t, out, "STDINSECRET")

	k2 := make([]byte, 32)
	_, _ = rand.Read(k2)
	t.Setenv("PGGIT_WEBHOOK_KEYS", "k1:"+base64.StdEncoding.EncodeToString(k1)+",k2:"+base64.StdEncoding.EncodeToString(k2))
	out, err = runCLI(t, "webhook", "rotate-keys")
	require.NoError(t, err)
	require.Equal(t, "2 webhook secrets re-encrypted with the newest key\n", out)
	t.Setenv("PGGIT_WEBHOOK_KEYS", "k2:"+base64.StdEncoding.EncodeToString(k2))
	out, err = runCLI(t, "webhook", "test", "1")
	require.NoError(t, err, out)
	require.Len(t, got, 2)
}
