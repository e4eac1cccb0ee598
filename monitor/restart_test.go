package monitor_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/internal/pgserver"
	"github.com/pggit/pggit-monitor/migrate"
	"github.com/pggit/pggit-monitor/monitor"
)

// A database restart while a worker delivers costs neither duplicates nor a
// lease-length stall: outcomes that could not be recorded are recorded again
// once the server is back (recording is idempotent), so no batch is claimed
// a second time. The test stops a real server of its own (pg_ctl stop -m
// fast) while the receiver holds requests, answers them while it is down,
// and starts it again 0.2 s later.
func TestDatabaseRestartWhileDeliveringLosesNothingAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := pgserver.Start(ctx, nil)
	require.NoError(t, err, "this test restarts a server of its own, so it needs the local server binaries")
	t.Cleanup(func() { _ = srv.Stop() })
	pool, err := pgxpool.New(ctx, srv.DSN("postgres"))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrate.Up(ctx, pool, nil)
	require.NoError(t, err)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	logs := &syncBuffer{}
	c, err := monitor.New(pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	n := &notifier{env: &env{t: t, ctx: ctx, pool: pool, client: c}, c: c, logs: logs}

	s := newSink(t)
	var holding atomic.Bool
	held := make(chan struct{}, 64)
	release := make(chan struct{})
	s.setRespond(func(int, *http.Request) (int, string, http.Header) {
		if holding.Load() {
			held <- struct{}{}
			<-release
		}
		time.Sleep(5 * time.Millisecond)
		return http.StatusOK, "ok", nil
	})
	w := n.webhook("webhook", "w", secretURL(s, "TRESTART"), "")
	n.route(w, "ALL", "INFO")
	require.NoError(t, c.SetBatchConfig(ctx, monitor.BatchConfig{WebhookType: "webhook", Size: 1, Timeout: 0, MaxAttempts: 5}))
	const alerts = 400
	n.exec(`SELECT count(pggit.raise_alert('op' || g, '', 'ANOMALY', 'WARNING')) FROM generate_series(1, $1) g`, alerts)

	d := n.dispatcher(&monitor.DispatcherConfig{PollInterval: 50 * time.Millisecond, Lease: time.Minute})
	require.NoError(t, d.Start(ctx))
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	require.Eventually(t, func() bool { return len(s.received()) >= 60 }, 60*time.Second, time.Millisecond)
	// A 0.2 s restart while requests are in flight: the receiver answers
	// them while the server is down, so their outcomes cannot be recorded
	// at once.
	holding.Store(true)
	<-held
	require.NoError(t, srv.Pause(ctx))
	holding.Store(false)
	close(release)
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, srv.Resume(ctx))
	restartedAt := len(s.received())
	require.Less(t, restartedAt, alerts, "the run ended before the restart; the test proves nothing")

	require.Eventually(t, func() bool {
		var k int64
		return pool.QueryRow(ctx, `SELECT count(*) FROM pggit.alert_notification_queue WHERE status = 'sent'`).Scan(&k) == nil && k == alerts
	}, 3*time.Minute, 20*time.Millisecond)
	require.NoError(t, d.Stop(ctx))

	requireEachAlertSentOnce(t, s, alerts)
	// Each batch was claimed once: none waited for its lease to expire.
	var twice string
	require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(string_agg(format('batch %s: attempts %s, log %s', b.batch_id, b.attempts,
		(SELECT string_agg(l.attempt || ' ' || l.outcome || ' ' || coalesce(l.error, ''), '; ') FROM pggit.alert_notification_log l WHERE l.batch_id = b.batch_id)), E'\n'), '')
		FROM pggit.notification_batch_queue b WHERE b.attempts <> 1`).Scan(&twice))
	require.Empty(t, twice, "batches claimed again after their lease expired; dispatcher log:\n%s", logs.String())
	require.EqualValues(t, alerts, n.count(`SELECT count(*) FROM pggit.alert_notification_log WHERE outcome = 'sent'`))
	// The restart did interrupt recording (else this test proves nothing).
	require.Contains(t, logs.String(), "recording a delivery failed; retrying")
	t.Logf("restart after %d of %d deliveries; dispatcher stats %+v", restartedAt, alerts, d.Stats())
}
