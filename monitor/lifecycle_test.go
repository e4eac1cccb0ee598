package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

// hookAlert is one alert of a generic webhook (json format) message.
type hookAlert struct {
	AlertID    int64  `json:"alert_id"`
	Operation  string `json:"operation_type"`
	State      string `json:"state"`
	Event      string `json:"event"`
	Summary    string `json:"summary"`
	SnoozeNote string `json:"snooze_note"`
}

// alertsOf decodes the alerts of every generic webhook message received.
func alertsOf(t *testing.T, reqs []sinkRequest) []hookAlert {
	t.Helper()
	var out []hookAlert
	for _, r := range reqs {
		var body struct {
			Alerts []hookAlert `json:"alerts"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &body), "%s", r.Body)
		out = append(out, body.Alerts...)
	}
	return out
}

// requireEachAlertSentOnce checks that the generic webhook sink s received
// each of alerts distinct alerts exactly once.
func requireEachAlertSentOnce(t *testing.T, s *sink, alerts int) {
	t.Helper()
	seen := map[int64]int{}
	for _, a := range alertsOf(t, s.received()) {
		seen[a.AlertID]++
	}
	require.Len(t, seen, alerts)
	for id, k := range seen {
		require.Equal(t, 1, k, "alert %d sent %d times", id, k)
	}
}

// A snooze holds notifications like an Alertmanager silence: nothing is sent
// while it lasts, and when it expires (while the dispatcher runs) the open
// alert is sent as it is then, saying who snoozed it and why.
func TestSnoozeHoldsNotificationsUntilItExpires(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	w := n.webhook("webhook", "w", secretURL(s, "TSNOOZE"), "")
	n.route(w, "ALL", "INFO")
	_, err := n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{OperationType: "deploy_op", Reason: "planned deploy", CreatedBy: "alice"})
	require.NoError(t, err)
	d := n.dispatcher(&monitor.DispatcherConfig{PollInterval: 20 * time.Millisecond})
	require.NoError(t, d.Start(n.ctx))
	t.Cleanup(func() { _ = d.Stop(context.Background()) })

	held := n.raise("deploy_op", "ANOMALY", "WARNING")
	n.raise("deploy_op", "ANOMALY", "CRITICAL") // escalates while snoozed
	other := n.raise("other_op", "ANOMALY", "WARNING")
	// The unsnoozed alert goes out; the snoozed one stays held meanwhile.
	require.Eventually(t, func() bool { return len(s.received()) >= 1 }, 30*time.Second, 10*time.Millisecond)
	got := alertsOf(t, s.received())
	require.Len(t, got, 1)
	require.Equal(t, other, got[0].AlertID)
	require.EqualValues(t, 2, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE alert_id = $1 AND status = 'held'`, held))

	// The snooze expires in a moment, with the dispatcher running.
	n.exec(`UPDATE pggit.alert_snooze SET snooze_until = clock_timestamp() + interval '300 milliseconds'`)
	require.Eventually(t, func() bool { return len(alertsOf(t, s.received())) >= 2 }, 30*time.Second, 10*time.Millisecond)
	got = alertsOf(t, s.received())
	require.Len(t, got, 2)
	a := got[1]
	require.Equal(t, held, a.AlertID)
	require.Equal(t, "CRITICAL", a.State)
	require.Equal(t, "escalated", a.Event)
	require.Contains(t, a.SnoozeNote, "snoozed by alice (planned deploy)")
	require.Contains(t, a.SnoozeNote, "ended at")
	require.EqualValues(t, 0, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE status = 'held'`))
}

// Unsnoozing releases open alerts at once; an alert that opened and resolved
// under the snooze is never sent; an alert sent before the snooze and
// resolved under it sends its resolve when the snooze ends.
func TestUnsnoozeReleasesOpenAlertsAndOnlyResolvesWhatWasSent(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	w := n.webhook("webhook", "w", secretURL(s, "TUNSNOOZE"), "")
	n.route(w, "ALL", "INFO")
	d := n.dispatcher(nil)

	before := n.raise("told_op", "ANOMALY", "WARNING")
	require.Equal(t, 1, n.runOnce(d))
	id, err := n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{Reason: "maintenance", CreatedBy: "alice"})
	require.NoError(t, err)
	open := n.raise("open_op", "DEGRADATION", "WARNING")
	gone := n.raise("gone_op", "ANOMALY", "WARNING")
	n.resolve(gone)
	n.resolve(before)
	require.Equal(t, 0, n.runOnce(d))

	_, err = n.c.Unsnooze(n.ctx, id, "bob")
	require.NoError(t, err)
	require.Equal(t, 1, n.runOnce(d)) // one batch: the open alert and the resolve
	got := alertsOf(t, s.received())
	require.Len(t, got, 3)
	require.Equal(t, before, got[0].AlertID)
	byID := map[int64]hookAlert{}
	for _, a := range got[1:] {
		byID[a.AlertID] = a
	}
	require.NotContains(t, byID, gone)
	require.Equal(t, "opened", byID[open].Event)
	require.Contains(t, byID[open].SnoozeNote, "snoozed by alice (maintenance)")
	require.Contains(t, byID[open].SnoozeNote, "cancelled by bob")
	require.Equal(t, "resolved", byID[before].Event)
	require.Equal(t, "RESOLVED", byID[before].State)
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE alert_id = $1 AND status = 'suppressed'`, gone))
}

// Reminders repeat while an alert is open and not acknowledged; an
// acknowledgement stops them; the resolve is sent once, where the route asks
// for it.
func TestRemindersRepeatUntilAcknowledgedAndResolvedIsSentOnce(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s, quiet := newSink(t), newSink(t)
	w := n.webhook("webhook", "w", secretURL(s, "TREMIND"), "")
	wq := n.webhook("webhook", "quiet", secretURL(quiet, "TQUIET"), "")
	_, err := n.c.RouteAlerts(n.ctx, monitor.RouteParams{WebhookID: w.ID, MinSeverity: "INFO", RepeatInterval: time.Hour})
	require.NoError(t, err)
	_, err = n.c.RouteAlerts(n.ctx, monitor.RouteParams{WebhookID: wq.ID, MinSeverity: "INFO",
		RepeatInterval: monitor.NoRepeat, SendResolved: ptr(false)})
	require.NoError(t, err)
	routes, err := n.c.ListRoutes(n.ctx)
	require.NoError(t, err)
	require.Equal(t, time.Hour, routes[0].RepeatInterval)
	require.True(t, routes[0].SendResolved)
	require.Equal(t, time.Duration(0), routes[1].RepeatInterval)
	require.False(t, routes[1].SendResolved)
	d := n.dispatcher(nil)
	due := func() { // the repeat interval passes
		n.exec(`UPDATE pggit.alert_notification_state SET next_repeat_at = clock_timestamp() WHERE next_repeat_at IS NOT NULL`)
	}

	a := n.raise("slow_op", "ANOMALY", "WARNING")
	require.Equal(t, 2, n.runOnce(d))
	require.Equal(t, 0, n.runOnce(d)) // not due yet
	due()
	require.Equal(t, 1, n.runOnce(d))
	due()
	require.Equal(t, 1, n.runOnce(d))
	got := alertsOf(t, s.received())
	require.Len(t, got, 3)
	for _, r := range got[1:] {
		require.Equal(t, "reminder", r.Event)
		require.True(t, strings.HasPrefix(r.Summary, "REMINDER WARNING ANOMALY"), r.Summary)
	}
	require.Len(t, quiet.received(), 1) // NoRepeat

	_, err = n.c.AcknowledgeAlert(n.ctx, a, "dave")
	require.NoError(t, err)
	due()
	require.Equal(t, 0, n.runOnce(d))
	n.resolve(a)
	require.Equal(t, 1, n.runOnce(d))
	due()
	require.Equal(t, 0, n.runOnce(d))
	got = alertsOf(t, s.received())
	require.Len(t, got, 4)
	require.Equal(t, "resolved", got[3].Event)
	require.Len(t, quiet.received(), 1) // SendResolved false

	// Bad repeat intervals are refused, naming the field.
	for _, p := range []monitor.RouteParams{
		{WebhookID: w.ID, RepeatInterval: time.Second},
		{WebhookID: w.ID, RepeatInterval: 31 * 24 * time.Hour},
		{WebhookID: w.ID, RepeatInterval: -2 * time.Second},
	} {
		_, err := n.c.RouteAlerts(n.ctx, p)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr)
		require.Equal(t, "RepeatInterval", argErr.Argument)
	}
}

// Per alert, PagerDuty gets its events in order and one at a time: the
// trigger first (retried until it is accepted, even though the alert
// resolved meanwhile), then the escalation, then the resolve.
func TestEventsReachAWebhookInOrderOneAtATime(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	var inflight, overlap atomic.Int32
	var mu sync.Mutex
	var order []string
	s.setRespond(func(k int, r *http.Request) (int, string, http.Header) {
		if inflight.Add(1) > 1 {
			overlap.Add(1)
		}
		defer inflight.Add(-1)
		time.Sleep(30 * time.Millisecond)
		if k <= 2 {
			return http.StatusServiceUnavailable, "busy", nil // the first trigger fails twice
		}
		return http.StatusAccepted, `{"status":"success"}`, nil
	})
	w := n.webhook("pagerduty", "pd", "PDKEY-ORDER", "")
	n.route(w, "ALL", "INFO")
	a := n.raise("op", "ANOMALY", "WARNING")
	n.raise("op", "ANOMALY", "CRITICAL")
	n.resolve(a)
	d := n.dispatcher(&monitor.DispatcherConfig{PagerDutyURL: s.URL + "/pd", Concurrency: 8, PollInterval: 10 * time.Millisecond})
	require.NoError(t, d.Start(n.ctx))
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	require.Eventually(t, func() bool {
		return n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE status = 'sent'`) == 3
	}, 30*time.Second, 10*time.Millisecond)

	for _, r := range s.received() {
		var ev struct {
			Action  string `json:"event_action"`
			Payload struct {
				Severity string `json:"severity"`
			} `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &ev))
		mu.Lock()
		order = append(order, strings.TrimSpace(ev.Action+" "+ev.Payload.Severity))
		mu.Unlock()
	}
	require.Equal(t, []string{"trigger warning", "trigger warning", "trigger warning", "trigger critical", "resolve"}, order)
	require.Zero(t, overlap.Load(), "two events of one alert were sent at the same time")
}

// Two dispatchers, a database that blocks formatting for longer than the
// lease (a lock held on purpose) and a slow receiver: every batch is still
// sent exactly once, because a dispatcher neither starts a request it cannot
// finish within its lease nor lets its lease lapse while it works.
func TestSlowDatabaseAndSlowReceiverSendEachBatchOnce(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	s.setRespond(func(int, *http.Request) (int, string, http.Header) {
		time.Sleep(700 * time.Millisecond)
		return http.StatusOK, "ok", nil
	})
	w := n.webhook("webhook", "slow", secretURL(s, "TSLOW"), "")
	n.route(w, "ALL", "INFO")
	require.NoError(t, n.c.SetBatchConfig(n.ctx, monitor.BatchConfig{WebhookType: "webhook", Size: 1, Timeout: 0, MaxAttempts: 10}))
	const alerts = 12
	for i := range alerts {
		n.raise(fmt.Sprintf("op%d", i), "ANOMALY", "WARNING")
	}

	// Formatting reads the monitor settings; hold them locked for twice the lease.
	tx, err := n.pool.Begin(n.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(n.ctx, `LOCK TABLE pggit.monitor_settings IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	var ds []*monitor.Dispatcher
	for i := range 2 {
		d := n.dispatcher(&monitor.DispatcherConfig{Worker: fmt.Sprintf("slow%d", i), Lease: 3 * time.Second,
			RequestTimeout: time.Second, Concurrency: 3, PollInterval: 50 * time.Millisecond})
		require.NoError(t, d.Start(n.ctx))
		ds = append(ds, d)
	}
	time.Sleep(6 * time.Second)
	require.NoError(t, tx.Rollback(n.ctx))

	require.Eventually(t, func() bool {
		return n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE status = 'sent'`) == alerts
	}, 60*time.Second, 20*time.Millisecond)
	for _, d := range ds {
		require.NoError(t, d.Stop(n.ctx))
	}
	requireEachAlertSentOnce(t, s, alerts)
	require.EqualValues(t, 0, n.count(`SELECT count(*) FROM pggit.alert_notification_log WHERE error LIKE '%lease lost%'`))
	require.EqualValues(t, alerts, n.count(`SELECT count(*) FROM pggit.alert_notification_log WHERE outcome = 'sent'`))
}

// An event on an alert whose snooze has ended, before any claim released
// what the snooze held, is held behind it: notifications of one alert to one
// webhook are batched in the order they were queued, so two batches can
// never wait on each other (with full batches of two they did: each held an
// alert's later event while the other held its earlier one).
func TestHeldNotificationsReleaseInOrderWithoutJammingBatches(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	w := n.webhook("webhook", "w", secretURL(s, "TJAM"), "")
	n.route(w, "ALL", "INFO")
	require.NoError(t, n.c.SetBatchConfig(n.ctx, monitor.BatchConfig{WebhookType: "webhook", Size: 2, Timeout: 0, MaxAttempts: 3}))
	id, err := n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{OperationType: "op_b", CreatedBy: "alice"})
	require.NoError(t, err)
	b := n.raise("op_b", "ANOMALY", "WARNING") // held
	_, err = n.c.Unsnooze(n.ctx, id, "bob")
	require.NoError(t, err)
	c := n.raise("op_c", "ANOMALY", "WARNING")
	n.raise("op_b", "ANOMALY", "CRITICAL") // the snooze ended, but the opening is still held
	require.EqualValues(t, 2, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE alert_id = $1 AND status = 'held'`, b))
	n.exec(`SELECT pggit.run_notification_followups()`) // releases, in order
	n.raise("op_c", "ANOMALY", "CRITICAL")

	d := n.dispatcher(nil)
	for range 5 {
		n.runOnce(d)
	}
	require.EqualValues(t, 4, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE status = 'sent'`))
	var order []string
	for _, r := range s.received() {
		for _, a := range alertsOf(t, []sinkRequest{r}) {
			order = append(order, fmt.Sprintf("%d %s", a.AlertID, a.Event))
		}
	}
	require.Less(t, slices.Index(order, fmt.Sprintf("%d opened", b)), slices.Index(order, fmt.Sprintf("%d escalated", b)), order)
	require.Less(t, slices.Index(order, fmt.Sprintf("%d opened", c)), slices.Index(order, fmt.Sprintf("%d escalated", c)), order)
}

// Recording is idempotent per attempt: a call repeated after its reply was
// lost returns what the first returned, logs nothing, and never lands on a
// later claim of the same batch by the same worker.
func TestRecordingAnOutcomeTwiceNeverTouchesALaterAttempt(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	n.route(n.webhook("webhook", "w", "http://127.0.0.1:9/x", ""), "ALL", "INFO")
	n.raise("op", "ANOMALY", "WARNING")
	batch := n.count(`SELECT batch_id FROM pggit.claim_notification_batches('w1', 10, 60)`)
	complete := func(attempt int) bool {
		var ok bool
		require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT pggit.complete_notification_batch($1, 'w1', 'retry', 503, NULL, 5, 'HTTP 503', now(), $2)`,
			batch, attempt).Scan(&ok))
		return ok
	}
	require.True(t, complete(1))
	require.True(t, complete(1)) // the reply was lost: the retry finds it recorded
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.alert_notification_log WHERE batch_id = $1`, batch))
	require.EqualValues(t, batch, n.count(`SELECT batch_id FROM pggit.claim_notification_batches('w1', 10, 60)`)) // attempt 2, same worker
	require.True(t, complete(1))                                                                                  // a late repeat of attempt 1
	require.Equal(t, "sending", n.batch(batch).Status)
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.alert_notification_log WHERE batch_id = $1`, batch))
	var released bool
	require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT pggit.release_notification_batch($1, 'w1', 1)`, batch).Scan(&released))
	require.False(t, released, "a release of attempt 1 must not give back attempt 2")
	require.True(t, complete(2))
	require.Equal(t, "failed", n.batch(batch).Status)
}
