package metrics_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/metrics"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestMain(m *testing.M) {
	monitortest.Main(m, monitortest.CheckGoroutines(), monitortest.EmptySearchPath())
}

func TestMetricsReflectTheDatabaseAndPassLint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := monitortest.New(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k": key}, "k")
	require.NoError(t, err)
	client, err := monitor.New(pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	m := metrics.New(pool, nil)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))

	// Known state: a baseline, two open alerts and a resolved one, one
	// recalculation run, one batch delivered and one waiting.
	rec, err := client.NewRecorder(nil)
	require.NoError(t, err)
	m.WatchRecorder(rec)
	for range 20 {
		require.NoError(t, rec.RecordSample(monitor.Sample{OperationType: "merge", Duration: time.Millisecond, RecordedAt: time.Now().Add(-time.Hour)}))
	}
	require.NoError(t, rec.Close(ctx))
	_, err = client.RecalculateAllBaselinesRolling(ctx, nil)
	require.NoError(t, err)

	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	defer sink.Close()
	hook, err := client.StoreWebhook(ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "s", Secret: monitor.Secret(sink.URL)})
	require.NoError(t, err)
	_, err = client.RouteAlerts(ctx, monitor.RouteParams{WebhookID: hook.ID, MinSeverity: monitor.SeverityCritical})
	require.NoError(t, err)
	require.NoError(t, client.SetBatchConfig(ctx, monitor.BatchConfig{WebhookType: "slack", Size: 1, MaxAttempts: 3}))
	for _, q := range []string{
		`SELECT pggit.raise_alert('a', '', 'ANOMALY', 'CRITICAL')`,
		`SELECT pggit.raise_alert('b', '', 'ANOMALY', 'WARNING')`,
		`SELECT pggit.resolve_alert((pggit.raise_alert('c', '', 'DEGRADATION', 'WARNING')).alert_id)`,
	} {
		_, err := pool.Exec(ctx, q)
		require.NoError(t, err)
	}
	d, err := client.NewDispatcher(&monitor.DispatcherConfig{OnDelivery: m.ObserveDelivery})
	require.NoError(t, err)
	n, err := d.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = pool.Exec(ctx, `SELECT pggit.raise_alert('e', '', 'ANOMALY', 'CRITICAL')`) // queued, not sent
	require.NoError(t, err)

	// Detection judged the minutes up to 3 minutes ago.
	_, err = client.RunDetection(ctx, time.Now().Add(-3*time.Minute))
	require.NoError(t, err)

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP pggit_alerts_open Open (unresolved) alerts by severity and type.
# TYPE pggit_alerts_open gauge
pggit_alerts_open{severity="CRITICAL",type="ANOMALY"} 2
pggit_alerts_open{severity="WARNING",type="ANOMALY"} 1
# HELP pggit_notification_deliveries_total Delivery attempts of notification batches by channel and outcome (sent, retry, dead).
# TYPE pggit_notification_deliveries_total counter
pggit_notification_deliveries_total{channel="slack",outcome="sent"} 1
# HELP pggit_notification_queue_batches Notification batches not yet sent, by status.
# TYPE pggit_notification_queue_batches gauge
pggit_notification_queue_batches{status="accumulating"} 0
pggit_notification_queue_batches{status="failed"} 0
pggit_notification_queue_batches{status="ready"} 1
pggit_notification_queue_batches{status="sending"} 0
# HELP pggit_baseline_recalculations_total Baseline recalculation runs by status.
# TYPE pggit_baseline_recalculations_total counter
pggit_baseline_recalculations_total{status="FAILED"} 0
pggit_baseline_recalculations_total{status="PARTIAL"} 0
pggit_baseline_recalculations_total{status="SUCCESS"} 1
pggit_baseline_recalculations_total{status="TIMEOUT"} 0
# HELP pggit_samples_recorded_total Samples accepted by the watched recorders.
# TYPE pggit_samples_recorded_total counter
pggit_samples_recorded_total 20
# HELP pggit_samples_dropped_total Samples the watched recorders dropped (buffer full, or unwritten at close).
# TYPE pggit_samples_dropped_total counter
pggit_samples_dropped_total 0
`), "pggit_alerts_open", "pggit_notification_deliveries_total", "pggit_notification_queue_batches",
		"pggit_baseline_recalculations_total", "pggit_samples_recorded_total", "pggit_samples_dropped_total"))

	// The gauges whose values depend on time: present, plausible.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		switch mf.GetName() {
		case "pggit_baseline_age_seconds":
			require.Len(t, mf.GetMetric(), 1)
			require.Less(t, mf.GetMetric()[0].GetGauge().GetValue(), 60.0)
		case "pggit_notification_delivery_duration_seconds":
			require.EqualValues(t, 1, mf.GetMetric()[0].GetHistogram().GetSampleCount())
		case "pggit_detection_lag_seconds":
			lag := mf.GetMetric()[0].GetGauge().GetValue()
			require.True(t, lag >= 180 && lag < 300, "lag %v", lag)
		}
	}
	for _, name := range []string{"pggit_baseline_age_seconds", "pggit_notification_queue_oldest_age_seconds",
		"pggit_baseline_recalculation_last_duration_seconds", "pggit_notification_delivery_duration_seconds", "pggit_metrics_scrape_errors_total",
		"pggit_detection_lag_seconds", "pggit_detection_last_duration_seconds"} {
		require.True(t, seen[name], name)
	}
}

func TestMetricsReportSamplesOutsideThePartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := monitortest.New(t)
	client, err := monitor.New(pool, &monitor.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(metrics.New(pool, nil)))

	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("%s not gathered", name)
		return 0
	}
	require.Zero(t, gauge("pggit_sample_default_partition_rows"))
	// The migration made partitions for the next 3 days at least.
	require.Greater(t, gauge("pggit_sample_partitions_ahead_seconds"), float64(2*24*3600))

	// Two years back: no partition holds it.
	old := time.Now().AddDate(-2, 0, 0)
	_, err = pool.Exec(ctx, `INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
		VALUES ('merge', 1000, $1), ('merge', 2000, $1)`, old)
	require.NoError(t, err)
	require.EqualValues(t, 2, gauge("pggit_sample_default_partition_rows"))

	_, err = client.CreateSamplePartitions(ctx, old, old.Add(time.Hour))
	require.NoError(t, err)
	require.Zero(t, gauge("pggit_sample_default_partition_rows"))
}
