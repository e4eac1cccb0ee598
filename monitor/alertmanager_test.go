package monitor_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/internal/amtest"
	"github.com/pggit/pggit-monitor/monitor"
)

// Our alerts -> a real Alertmanager (API v2) -> its webhook receiver:
// grouped by alertname, resolved with endsAt, suppressed by a silence made
// through Alertmanager's API, and kept firing past Alertmanager's
// resolve_timeout by re-posts (which an acknowledgement does not stop).
func TestAlertmanagerReceivesGroupsResolvesAndSilences(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	am := amtest.Start(t, &amtest.Options{GroupBy: []string{"alertname"}, ResolveTimeout: 12 * time.Second})
	require.NoError(t, n.c.SetBatchConfig(n.ctx, monitor.BatchConfig{WebhookType: monitor.WebhookAlertmanager,
		Size: 50, MaxAttempts: 3, Resend: 10 * time.Second}))
	require.NoError(t, n.c.SetConsoleBaseURL(n.ctx, "https://console.example/pggit/"))
	w := n.webhook(monitor.WebhookAlertmanager, "am", am.URL, "checkout")
	n.route(w, "ALL", "INFO")
	tested, err := n.c.TestWebhook(n.ctx, w.ID, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", tested.TestStatus, "%s", tested.TestError)

	d := n.dispatcher(&monitor.DispatcherConfig{PollInterval: 50 * time.Millisecond})
	require.NoError(t, d.Start(n.ctx))
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(n.ctx, 60*time.Second)
	defer cancel()

	a := n.raise("op_a", "ANOMALY", "WARNING")
	b := n.raise("op_b", "ANOMALY", "CRITICAL")
	_, err = n.c.AcknowledgeAlert(n.ctx, b, "erin")
	require.NoError(t, err)
	firing, err := am.WaitNotification(ctx, func(x amtest.Notification) bool {
		return x.Status == "firing" && len(x.Alerts) == 2
	})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"alertname": "ANOMALY"}, firing.GroupLabels)
	got, ok := firing.Alert(map[string]string{"operation": "op_b"})
	require.True(t, ok)
	require.Equal(t, map[string]string{"alertname": "ANOMALY", "operation": "op_b", "severity": "critical", "service": "checkout"}, got.Labels)
	require.Contains(t, got.Annotations["summary"], "CRITICAL ANOMALY: op_b")
	require.Equal(t, "https://github.com/pggit/pggit-monitor/blob/main/docs/runbooks/anomaly.md", got.Annotations["runbook_url"])
	require.NotEmpty(t, got.Annotations["description"])
	require.True(t, strings.HasSuffix(got.GeneratorURL, "/pggit/alerts/"+strconv.FormatInt(b, 10)), got.GeneratorURL)
	require.False(t, got.StartsAt.IsZero())

	n.resolve(a)
	_, err = am.WaitNotification(ctx, func(x amtest.Notification) bool {
		r, ok := x.Alert(map[string]string{"operation": "op_a"})
		return ok && r.Status == "resolved" && !r.EndsAt.IsZero()
	})
	require.NoError(t, err)

	// A silence made in Alertmanager suppresses there; the other alert of
	// the same group arrives.
	_, err = am.CreateSilence(ctx, map[string]string{"operation": "op_c"}, time.Hour, "ops", "known")
	require.NoError(t, err)
	n.raise("op_c", "DEGRADATION", "WARNING")
	n.raise("op_d", "DEGRADATION", "WARNING")
	deg, err := am.WaitNotification(ctx, func(x amtest.Notification) bool { return x.GroupLabels["alertname"] == "DEGRADATION" })
	require.NoError(t, err)
	_, hasD := deg.Alert(map[string]string{"operation": "op_d"})
	_, hasC := deg.Alert(map[string]string{"operation": "op_c"})
	require.True(t, hasD)
	require.False(t, hasC)
	alerts, err := am.Alerts(ctx)
	require.NoError(t, err)
	for _, x := range alerts {
		if x.Labels["operation"] == "op_c" {
			require.Equal(t, "suppressed", x.Status.State)
			require.NotEmpty(t, x.Status.SilencedBy)
		}
	}

	// Past Alertmanager's resolve_timeout (12s), op_b is still firing there:
	// it was re-posted every 10s though acknowledged.
	require.Eventually(t, func() bool {
		return n.count(`SELECT count(*) FROM pggit.alert_notification_queue
		                WHERE alert_id = $1 AND event = 'reminder' AND status = 'sent'`, b) >= 2
	}, 45*time.Second, 100*time.Millisecond)
	alerts, err = am.Alerts(ctx)
	require.NoError(t, err)
	var active bool
	for _, x := range alerts {
		if x.Labels["operation"] == "op_b" {
			active = x.Status.State == "active" && x.EndsAt.After(time.Now())
		}
	}
	require.True(t, active, "op_b is no longer active in Alertmanager: %+v", alerts)
	for _, x := range am.Notifications() {
		r, ok := x.Alert(map[string]string{"operation": "op_b"})
		require.False(t, ok && r.Status == "resolved", "Alertmanager resolved op_b by itself")
	}
}
