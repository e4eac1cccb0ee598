package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

type batchState struct {
	Status       string
	Attempts     int
	LastError    string
	NextIn       time.Duration
	ItemStatuses []string
}

func (n *notifier) batch(id int64) batchState {
	n.t.Helper()
	var b batchState
	var lastErr *string
	var nextIn float64
	require.NoError(n.t, n.pool.QueryRow(n.ctx, `SELECT status, attempts, last_error,
		extract(epoch FROM next_attempt_at - clock_timestamp()) FROM pggit.notification_batch_queue WHERE batch_id = $1`, id).
		Scan(&b.Status, &b.Attempts, &lastErr, &nextIn))
	b.LastError = deref(lastErr)
	b.NextIn = time.Duration(nextIn * float64(time.Second))
	rows, err := n.pool.Query(n.ctx, `SELECT status FROM pggit.alert_notification_queue WHERE batch_id = $1 ORDER BY notification_id`, id)
	require.NoError(n.t, err)
	defer rows.Close()
	for rows.Next() {
		var s string
		require.NoError(n.t, rows.Scan(&s))
		b.ItemStatuses = append(b.ItemStatuses, s)
	}
	return b
}

func (n *notifier) onlyBatch() int64 {
	n.t.Helper()
	var id int64
	require.NoError(n.t, n.pool.QueryRow(n.ctx, `SELECT batch_id FROM pggit.notification_batch_queue`).Scan(&id))
	return id
}

// makeDue makes failed batches retryable now, as if their backoff had passed.
func (n *notifier) makeDue() {
	n.exec(`UPDATE pggit.notification_batch_queue SET next_attempt_at = clock_timestamp() WHERE status = 'failed'`)
}

func TestDeliveryRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	s.setRespond(func(i int, _ *http.Request) (int, string, http.Header) {
		if i == 1 {
			return http.StatusInternalServerError, "upstream down", nil
		}
		return http.StatusOK, "ok", nil
	})
	w := n.webhook("slack", "s", secretURL(s, "TOKEN500"), "")
	n.route(w, "ALL", "INFO")
	n.raise("op", "ANOMALY", "WARNING")
	d := n.dispatcher(&monitor.DispatcherConfig{RetryBase: time.Hour, RetryMax: time.Hour})

	require.Equal(t, 1, n.runOnce(d))
	b := n.batch(n.onlyBatch())
	require.Equal(t, "failed", b.Status)
	require.Equal(t, 1, b.Attempts)
	require.Equal(t, "HTTP 500: upstream down", b.LastError)
	require.Equal(t, []string{"failed"}, b.ItemStatuses)
	// Exponential backoff with jitter: between half and all of the base.
	require.Greater(t, b.NextIn, 29*time.Minute)
	require.LessOrEqual(t, b.NextIn, time.Hour)
	require.Zero(t, n.runOnce(d), "not due before its retry time")

	n.makeDue()
	require.Equal(t, 1, n.runOnce(d))
	b = n.batch(n.onlyBatch())
	require.Equal(t, "sent", b.Status)
	require.Equal(t, 2, b.Attempts)
	require.Equal(t, []string{"sent"}, b.ItemStatuses)
	require.Len(t, s.received(), 2)
	require.Equal(t, monitor.DispatcherStats{Sent: 1, Retried: 1}, d.Stats())
	require.EqualValues(t, 2, n.count(`SELECT count(*) FROM pggit.alert_notification_log`))
}

func TestDeliveryHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	s.setRespond(func(int, *http.Request) (int, string, http.Header) {
		return http.StatusTooManyRequests, "slow down", http.Header{"Retry-After": {"120"}}
	})
	w := n.webhook("webhook", "w", secretURL(s, "T429"), "")
	n.route(w, "ALL", "INFO")
	n.raise("op", "ANOMALY", "WARNING")
	d := n.dispatcher(nil) // retry base 1ms: Retry-After must win
	require.Equal(t, 1, n.runOnce(d))
	b := n.batch(n.onlyBatch())
	require.Equal(t, "failed", b.Status)
	require.Greater(t, b.NextIn, 110*time.Second)
	require.LessOrEqual(t, b.NextIn, 120*time.Second)
	var status int
	require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT http_status FROM pggit.alert_notification_log`).Scan(&status))
	require.Equal(t, 429, status)
}

func TestDeliveryClientErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status int
		want   string
	}{
		{http.StatusBadRequest, "dead"},
		{http.StatusNotFound, "dead"},
		{http.StatusForbidden, "dead"},
		{http.StatusRequestTimeout, "failed"}, // 408 is retried
	} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			t.Parallel()
			n := setupNotify(t)
			s := newSink(t)
			s.setRespond(func(int, *http.Request) (int, string, http.Header) { return c.status, "invalid_payload", nil })
			w := n.webhook("slack", "s", secretURL(s, "T4XX"), "")
			n.route(w, "ALL", "INFO")
			n.raise("op", "ANOMALY", "WARNING")
			d := n.dispatcher(&monitor.DispatcherConfig{RetryBase: time.Hour, RetryMax: time.Hour})
			require.Equal(t, 1, n.runOnce(d))
			b := n.batch(n.onlyBatch())
			require.Equal(t, c.want, b.Status)
			require.Equal(t, 1, b.Attempts)
			require.Equal(t, fmt.Sprintf("HTTP %d: invalid_payload", c.status), b.LastError)
		})
	}
}

func TestDeliveryTimeoutsAndDeadAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newSink(t)
	s.setRespond(func(int, *http.Request) (int, string, http.Header) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		return http.StatusOK, "ok", nil
	})
	w := n.webhook("mattermost", "m", secretURL(s, "TSLOW"), "")
	n.route(w, "ALL", "INFO")
	n.raise("op", "ANOMALY", "WARNING")
	d := n.dispatcher(&monitor.DispatcherConfig{RequestTimeout: 100 * time.Millisecond})

	for attempt := 1; attempt <= 3; attempt++ { // max attempts is 3 in setupNotify
		require.Equal(t, 1, n.runOnce(d), "attempt %d", attempt)
		b := n.batch(n.onlyBatch())
		require.Equal(t, attempt, b.Attempts)
		require.Contains(t, b.LastError, "context deadline exceeded")
		require.NotContains(t, b.LastError, "TSLOW")
		require.NotContains(t, b.LastError, "127.0.0.1")
		if attempt < 3 {
			require.Equal(t, "failed", b.Status)
			n.makeDue()
		} else {
			require.Equal(t, "dead", b.Status)
			require.Equal(t, []string{"dead"}, b.ItemStatuses)
		}
	}
	require.Zero(t, n.runOnce(d))
	require.Equal(t, monitor.DispatcherStats{Retried: 2, Dead: 1}, d.Stats())
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.alert_notification_log WHERE outcome = 'dead'`))
}

func TestBatchingBySizeAndByTimeout(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	w := n.webhook("slack", "s", secretURL(s, "TBATCH"), "")
	n.route(w, "ALL", "INFO")
	require.NoError(t, n.c.SetBatchConfig(n.ctx, monitor.BatchConfig{WebhookType: "slack", Size: 3, Timeout: 30 * time.Second, MaxAttempts: 3}))
	d := n.dispatcher(nil)

	// Five alerts: one full batch of three goes at once; two wait.
	for i := range 5 {
		n.raise(fmt.Sprintf("op%d", i), "ANOMALY", "WARNING")
	}
	require.Equal(t, 1, n.runOnce(d))
	got := s.received()
	require.Len(t, got, 1)
	var msg struct {
		Attachments []json.RawMessage `json:"attachments"`
	}
	require.NoError(t, json.Unmarshal(got[0].Body, &msg))
	require.Len(t, msg.Attachments, 3)
	require.Zero(t, n.runOnce(d), "the open batch is neither full nor due")

	// Its oldest item has waited the timeout: sent, not stuck.
	n.exec(`UPDATE pggit.notification_batch_queue SET due_at = clock_timestamp() WHERE status = 'accumulating'`)
	require.Equal(t, 1, n.runOnce(d))
	got = s.received()
	require.Len(t, got, 2)
	require.NoError(t, json.Unmarshal(got[1].Body, &msg))
	require.Len(t, msg.Attachments, 2)
	require.Contains(t, string(got[1].Body), "pgGit Performance Alerts (2)")

	// A new alert opens a new batch.
	n.raise("op9", "ANOMALY", "WARNING")
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.notification_batch_queue WHERE status = 'accumulating'`))
	require.EqualValues(t, 3, n.count(`SELECT count(*) FROM pggit.notification_batch_queue`))
}

func TestEnqueueIsRaceFree(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	w := n.webhook("webhook", "w", "http://127.0.0.1:9/x", "")
	n.route(w, "ALL", "INFO")
	require.NoError(t, n.c.SetBatchConfig(n.ctx, monitor.BatchConfig{WebhookType: "webhook", Size: 7, Timeout: time.Hour, MaxAttempts: 3}))
	const writers, per = 8, 60
	var wg sync.WaitGroup
	start := make(chan struct{})
	for wr := range writers {
		wg.Go(func() {
			<-start
			for i := range per {
				_, err := n.pool.Exec(context.Background(), `SELECT pggit.raise_alert($1, '', 'ANOMALY', 'WARNING')`, fmt.Sprintf("w%d-op%d", wr, i))
				require.NoError(t, err)
			}
		})
	}
	close(start)
	wg.Wait()
	require.EqualValues(t, writers*per, n.count(`SELECT count(*) FROM pggit.alert_notification_queue`))
	require.Zero(t, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE batch_id IS NULL`))
	require.Zero(t, n.count(`SELECT count(*) FROM pggit.notification_batch_queue WHERE item_count > 7`))
	require.Zero(t, n.count(`SELECT count(*) FROM pggit.notification_batch_queue b
		WHERE item_count <> (SELECT count(*) FROM pggit.alert_notification_queue q WHERE q.batch_id = b.batch_id)`))
	require.EqualValues(t, writers*per, n.count(`SELECT sum(item_count) FROM pggit.notification_batch_queue`))
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.notification_batch_queue WHERE status = 'accumulating'`))
	require.EqualValues(t, writers*per/7, n.count(`SELECT count(*) FROM pggit.notification_batch_queue WHERE status = 'ready'`))
}

func TestCrashedDispatcherLosesNothing(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	w := n.webhook("webhook", "w", secretURL(s, "TCRASH"), "")
	n.route(w, "ALL", "INFO")
	for i := range 4 {
		n.raise(fmt.Sprintf("op%d", i), "ANOMALY", "WARNING")
	}
	// A dispatcher claimed the batch with a one-second lease, then died
	// before sending or recording anything.
	n.exec(`SELECT * FROM pggit.claim_notification_batches('crashed-worker', 10, 1)`)
	d := n.dispatcher(&monitor.DispatcherConfig{PollInterval: 20 * time.Millisecond, Lease: 5 * time.Second, RequestTimeout: 2 * time.Second})
	require.Zero(t, n.runOnce(d), "the lease still holds")
	require.NoError(t, d.Start(n.ctx))
	require.Eventually(t, func() bool { return len(s.received()) == 1 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, d.Stop(n.ctx))
	var body struct {
		Count  int `json:"count"`
		Alerts []struct {
			Op string `json:"operation_type"`
		} `json:"alerts"`
	}
	require.NoError(t, json.Unmarshal(s.received()[0].Body, &body))
	require.Equal(t, 4, body.Count)
	b := n.batch(n.onlyBatch())
	require.Equal(t, "sent", b.Status)
	require.Equal(t, 2, b.Attempts) // the crashed one and this one

	// The dead worker wakes up and tries to record: refused, the batch stays sent.
	var ok bool
	require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT pggit.complete_notification_batch($1, 'crashed-worker', 'sent', 200, NULL, 1, NULL, NULL)`, n.onlyBatch()).Scan(&ok))
	require.False(t, ok)
	require.Equal(t, "sent", n.batch(n.onlyBatch()).Status)
}

func TestStoppedMidSendIsRetriedByAnother(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	inHandler := make(chan struct{}, 1)
	release := make(chan struct{})
	s.setRespond(func(i int, r *http.Request) (int, string, http.Header) {
		if i == 1 {
			inHandler <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return http.StatusServiceUnavailable, "gone", nil
		}
		return http.StatusOK, "ok", nil
	})
	w := n.webhook("webhook", "w", secretURL(s, "TSTOP"), "")
	n.route(w, "ALL", "INFO")
	n.raise("op", "ANOMALY", "WARNING")
	a := n.dispatcher(&monitor.DispatcherConfig{Worker: "a", PollInterval: 10 * time.Millisecond})
	require.NoError(t, a.Start(n.ctx))
	<-inHandler
	ctx, cancel := context.WithTimeout(n.ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, a.Stop(ctx), context.DeadlineExceeded) // drain gave up: the send is abandoned
	close(release)

	n.makeDue()
	b := n.dispatcher(&monitor.DispatcherConfig{Worker: "b"})
	require.Equal(t, 1, n.runOnce(b))
	st := n.batch(n.onlyBatch())
	require.Equal(t, "sent", st.Status)
	require.Len(t, s.received(), 2) // at least once: the abandoned attempt may have arrived
	var workers []string
	rows, err := n.pool.Query(n.ctx, `SELECT worker || ':' || outcome FROM pggit.alert_notification_log ORDER BY log_id`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		workers = append(workers, s)
	}
	require.Equal(t, []string{"a:retry", "b:sent"}, workers)
}

func TestManyDispatchersDeliverEachNotificationOnce(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	var mu sync.Mutex
	seen := map[float64]int{}
	s := newSink(t)
	s.setRespond(func(_ int, r *http.Request) (int, string, http.Header) { return http.StatusOK, "ok", nil })
	w := n.webhook("webhook", "w", secretURL(s, "TMANY"), "")
	n.route(w, "ALL", "INFO")
	require.NoError(t, n.c.SetBatchConfig(n.ctx, monitor.BatchConfig{WebhookType: "webhook", Size: 10, Timeout: 0, MaxAttempts: 3}))
	n.exec(`SELECT count(pggit.raise_alert('op' || g, '', 'ANOMALY', 'WARNING')) FROM generate_series(1, 10000) g`)
	require.EqualValues(t, 10000, n.count(`SELECT count(*) FROM pggit.alert_notification_queue`))

	var ds []*monitor.Dispatcher
	for i := range 4 {
		d := n.dispatcher(&monitor.DispatcherConfig{Worker: fmt.Sprintf("d%d", i), PollInterval: 20 * time.Millisecond})
		require.NoError(t, d.Start(n.ctx))
		ds = append(ds, d)
	}
	require.Eventually(t, func() bool {
		return n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE status = 'sent'`) == 10000
	}, 60*time.Second, 50*time.Millisecond)
	var total monitor.DispatcherStats
	for _, d := range ds {
		require.NoError(t, d.Stop(n.ctx))
		st := d.Stats()
		total.Sent += st.Sent
		total.Lost += st.Lost
		total.Retried += st.Retried
	}
	for _, r := range s.received() {
		var body struct {
			Alerts []struct {
				ID float64 `json:"alert_id"`
			} `json:"alerts"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &body))
		mu.Lock()
		for _, a := range body.Alerts {
			seen[a.ID]++
		}
		mu.Unlock()
	}
	require.Len(t, seen, 10000)
	for id, k := range seen {
		require.Equal(t, 1, k, "alert %v delivered %d times", id, k)
	}
	require.Len(t, s.received(), 1000)
	require.Equal(t, monitor.DispatcherStats{Sent: 1000}, total)
	// Everyone got a share.
	require.EqualValues(t, 4, n.count(`SELECT count(DISTINCT worker) FROM pggit.alert_notification_log`))
}

func TestNotifyWakesTheDispatcher(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	w := n.webhook("slack", "s", secretURL(s, "TWAKE"), "")
	n.route(w, "ALL", "INFO")
	// Polling is effectively off: only NOTIFY can wake it.
	d := n.dispatcher(&monitor.DispatcherConfig{PollInterval: time.Hour})
	require.NoError(t, d.Start(n.ctx))
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	require.Eventually(t, func() bool {
		var listening bool
		_ = n.pool.QueryRow(n.ctx, `SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'LISTEN pggit_notifications%'`).Scan(&listening)
		return listening
	}, 30*time.Second, 10*time.Millisecond)
	n.raise("op", "ANOMALY", "CRITICAL")
	require.Eventually(t, func() bool { return len(s.received()) == 1 }, 30*time.Second, 5*time.Millisecond)
}

func TestDeliveryLogsAndErrorsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	s.setRespond(func(_ int, r *http.Request) (int, string, http.Header) {
		// A hostile receiver echoes the request path back.
		return http.StatusInternalServerError, "cannot handle " + r.URL.Path, nil
	})
	w1 := n.webhook("slack", "echo", secretURL(s, "ECHOSECRET"), "")
	w2 := n.webhook("webhook", "refused", "http://127.0.0.1:1/hooks/REFUSEDSECRET", "")
	w3 := n.webhook("email", "mail", "smtp://u:MAILPASSWORD@127.0.0.1:1?from=a@example.com", "b@example.com")
	w4 := n.webhook("pagerduty", "pd", "PDSECRETKEY", "")
	for _, w := range []*monitor.Webhook{w1, w2, w3, w4} {
		n.route(w, "ALL", "INFO")
	}
	n.raise("op", "ANOMALY", "WARNING")
	d := n.dispatcher(&monitor.DispatcherConfig{PagerDutyURL: s.URL + "/pd/PDSECRETKEY"})
	require.Equal(t, 4, n.runOnce(d))
	for _, wt := range []*monitor.Webhook{w1, w2, w3, w4} {
		tested, err := n.c.TestWebhook(n.ctx, wt.ID, &monitor.DispatcherConfig{PagerDutyURL: s.URL + "/pd/PDSECRETKEY"})
		require.NoError(t, err)
		require.Equal(t, "failed", tested.TestStatus)
		require.NotEmpty(t, tested.TestError)
	}

	var dump string
	require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT coalesce(string_agg(l::text, E'\n'), '') FROM pggit.alert_notification_log l`).Scan(&dump))
	var dump2 string
	require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT string_agg(coalesce(last_error, '') || coalesce(test_error, ''), E'\n')
		FROM pggit.notification_batch_queue b FULL JOIN pggit.alert_notification_webhooks w USING (webhook_id)`).Scan(&dump2))
	logs := n.logs.String()
	require.Contains(t, logs, "delivery failed")
	for _, secret := range []string{"ECHOSECRET", "REFUSEDSECRET", "MAILPASSWORD", "PDSECRETKEY"} {
		require.NotContains(t, dump, secret)
		require.NotContains(t, dump2, secret)
		require.NotContains(t, logs, secret)
	}
	require.Contains(t, dump, "connection refused")
}

func TestTestWebhookRecordsTheResult(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	w := n.webhook("slack", "s", secretURL(s, "TTEST"), "")
	got, err := n.c.TestWebhook(n.ctx, w.ID, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", got.TestStatus)
	require.False(t, got.LastTestedAt.IsZero())
	require.JSONEq(t, `{"text": "pggit-monitor test message for webhook \"s\""}`, string(s.received()[0].Body))

	smtpSrv, _ := newSMTPServer(t, false, "", "")
	m := n.webhook("email", "m", "smtp://"+smtpSrv.addr()+"?from=pggit@example.com", "oncall@example.com")
	got, err = n.c.TestWebhook(n.ctx, m.ID, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", got.TestStatus, got.TestError)
	require.Contains(t, smtpSrv.received()[0].Data, "Subject: [pggit] test message")
	require.False(t, smtpSrv.received()[0].TLS)

	// A changed secret must be tested again.
	again := n.webhook("slack", "s", secretURL(s, "TTEST2"), "")
	require.Equal(t, "untested", again.TestStatus)
	_, err = n.c.TestWebhook(n.ctx, 31337, nil)
	require.ErrorIs(t, err, monitor.ErrNotFound)
}
