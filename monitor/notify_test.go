package monitor_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/messages")

// notifier is a test env with a key ring, fast retries and captured logs.
type notifier struct {
	*env
	c    *monitor.Client
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func setupNotify(t *testing.T) *notifier {
	t.Helper()
	e := setup(t)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	logs := &syncBuffer{}
	c, err := monitor.New(e.pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	// Batches go out at once unless a test says otherwise.
	for _, typ := range []string{"slack", "mattermost", "email", "webhook", "pagerduty"} {
		size := 10
		if typ == "pagerduty" {
			size = 1
		}
		require.NoError(t, c.SetBatchConfig(e.ctx, monitor.BatchConfig{WebhookType: typ, Size: size, Timeout: 0, MaxAttempts: 3}))
	}
	return &notifier{env: e, c: c, logs: logs}
}

func (n *notifier) webhook(typ, name, secret, channel string) *monitor.Webhook {
	n.t.Helper()
	w, err := n.c.StoreWebhook(n.ctx, monitor.WebhookParams{Type: typ, Name: name, Secret: monitor.Secret(secret), Channel: channel})
	require.NoError(n.t, err)
	return w
}

func (n *notifier) route(w *monitor.Webhook, alertType, minSeverity string) {
	n.t.Helper()
	_, err := n.c.RouteAlerts(n.ctx, monitor.RouteParams{WebhookID: w.ID, Type: alertType, MinSeverity: minSeverity})
	require.NoError(n.t, err)
}

func (n *notifier) raise(op, typ, severity string) int64 {
	n.t.Helper()
	a, err := gen.New(n.pool).RaiseAlert(n.ctx, gen.RaiseAlertParams{OperationType: op, AlertType: typ, Severity: severity, Details: []byte(`{}`)})
	require.NoError(n.t, err)
	return a.AlertID
}

func (n *notifier) dispatcher(cfg *monitor.DispatcherConfig) *monitor.Dispatcher {
	n.t.Helper()
	if cfg == nil {
		cfg = &monitor.DispatcherConfig{}
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = time.Millisecond, 2*time.Millisecond
	}
	d, err := n.c.NewDispatcher(cfg)
	require.NoError(n.t, err)
	return d
}

func (n *notifier) runOnce(d *monitor.Dispatcher) int {
	n.t.Helper()
	k, err := d.RunOnce(n.ctx)
	require.NoError(n.t, err)
	return k
}

type queued struct {
	AlertID   int64
	WebhookID int64
	Event     string
	Severity  string
	Status    string
}

func (n *notifier) queue() []queued {
	n.t.Helper()
	rows, err := n.pool.Query(n.ctx, `SELECT alert_id, webhook_id, event, severity, status FROM pggit.alert_notification_queue ORDER BY notification_id`)
	require.NoError(n.t, err)
	defer rows.Close()
	var out []queued
	for rows.Next() {
		var q queued
		require.NoError(n.t, rows.Scan(&q.AlertID, &q.WebhookID, &q.Event, &q.Severity, &q.Status))
		out = append(out, q)
	}
	require.NoError(n.t, rows.Err())
	return out
}

func TestRoutingByTypeAndSeverity(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	all := n.webhook("webhook", "all-warn", "http://127.0.0.1:9/all", "")
	crit := n.webhook("webhook", "threshold-crit", "http://127.0.0.1:9/crit", "")
	recalc := n.webhook("webhook", "recalc-only", "http://127.0.0.1:9/recalc", "")
	off := n.webhook("webhook", "disabled", "http://127.0.0.1:9/off", "")
	n.route(all, "ALL", "WARNING")
	n.route(crit, "THRESHOLD_EXCEEDED", "CRITICAL")
	n.route(recalc, "BASELINE_RECALC_ERROR", "INFO")
	n.route(off, "ALL", "INFO")
	_, err := n.c.StoreWebhook(n.ctx, monitor.WebhookParams{Type: "webhook", Name: "disabled", Secret: "http://127.0.0.1:9/off", Enabled: ptr(false)})
	require.NoError(t, err)

	// A WARNING threshold alert from a real sample: the ALL route only.
	n.baseline("merge", 1000)
	t0 := time.Now().Truncate(time.Minute)
	n.copySamples("merge", "", t0, 2500)
	n.detect(t0)
	a := n.openAlert("merge")
	require.Equal(t, []queued{{a.ID, all.ID, "opened", "WARNING", "pending"}}, n.queue())
	// More occurrences at the same severity notify nobody.
	n.copySamples("merge", "", t0.Add(time.Minute), 2600)
	n.detect(t0.Add(time.Minute))
	require.Len(t, n.queue(), 1)
	// Escalation reaches the CRITICAL route too.
	n.copySamples("merge", "", t0.Add(2*time.Minute), 9000)
	n.detect(t0.Add(2 * time.Minute))
	q := n.queue()
	require.Len(t, q, 3)
	require.Equal(t, queued{a.ID, all.ID, "escalated", "CRITICAL", "pending"}, q[1])
	require.Equal(t, queued{a.ID, crit.ID, "escalated", "CRITICAL", "pending"}, q[2])
	// Resolution goes where the alert went.
	_, err = n.c.ResolveAlert(n.ctx, a.ID, "alice", "")
	require.NoError(t, err)
	q = n.queue()
	require.Len(t, q, 5)
	require.Equal(t, "resolved", q[3].Event)
	require.Equal(t, "resolved", q[4].Event)

	// INFO is below the ALL route's WARNING; the recalc route takes its type.
	info := n.raise("x", "BASELINE_RECALC_ERROR", "INFO")
	q = n.queue()
	require.Len(t, q, 6)
	require.Equal(t, queued{info, recalc.ID, "opened", "INFO", "pending"}, q[5])

	// Snoozed alerts are held, not sent; resolved before anyone was told,
	// their notifications are suppressed (the snooze acts like a silence).
	_, err = n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{OperationType: "quiet"})
	require.NoError(t, err)
	s := n.raise("quiet", "ANOMALY", "WARNING")
	n.raise("quiet", "ANOMALY", "CRITICAL")
	q = n.queue()
	require.Equal(t, []queued{{s, all.ID, "opened", "WARNING", "held"}, {s, all.ID, "escalated", "CRITICAL", "held"}}, q[6:])
	_, err = n.c.ResolveAlert(n.ctx, s, "bob", "")
	require.NoError(t, err)
	q = n.queue()
	require.Len(t, q, 8)
	for _, it := range q[6:] {
		require.Equal(t, "suppressed", it.Status)
	}

	// Bad routes are refused, naming the field.
	for _, p := range []monitor.RouteParams{
		{WebhookID: all.ID, Type: "SLOW"},
		{WebhookID: all.ID, MinSeverity: "LOUD"},
		{WebhookID: 424242},
	} {
		_, err := n.c.RouteAlerts(n.ctx, p)
		require.ErrorIs(t, err, monitor.ErrInvalidArgument)
	}
}

// goldenAlert inserts one alert with fixed values, so messages are stable.
func (n *notifier) goldenAlert(op, scope, typ, severity string, actualUS int64, p99 float64, occurrences int, resolved bool) int64 {
	n.t.Helper()
	var id int64
	require.NoError(n.t, n.pool.QueryRow(n.ctx, `INSERT INTO pggit.performance_alerts
		(operation_type, scope, alert_type, severity, actual_duration_microseconds, baseline_p99_microseconds,
		 violation_multiplier, threshold_multiplier, created_at, first_seen_at, last_seen_at, occurrence_count,
		 resolved_at, resolved_by, details)
		VALUES ($1, $2, $3, $4, $5::bigint, $6::float8, $5::bigint / $6::float8, 2.0, '2026-11-27 10:00:00+00', '2026-11-27 10:00:00+00',
		        '2026-11-27 10:05:00+00', $7,
		        CASE WHEN $8::boolean THEN timestamptz '2026-11-27 11:00:00+00' END, CASE WHEN $8::boolean THEN 'alice' END,
		        '{"critical_multiplier": 5}')
		RETURNING alert_id`, op, scope, typ, severity, actualUS, p99, occurrences, resolved).Scan(&id))
	return id
}

func TestFormatAlertMessageGolden(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	require.NoError(t, n.c.SetRunbookBaseURL(n.ctx, "https://runbooks.example/pggit"))
	crit := n.goldenAlert("merge_branches", "", "THRESHOLD_EXCEEDED", "CRITICAL", 641950, 115620, 576, false)
	warn := n.goldenAlert("get_history", "main", "THRESHOLD_EXCEEDED", "WARNING", 69210, 19050, 25, false)
	done := n.goldenAlert("commit", "", "THRESHOLD_EXCEEDED", "WARNING", 4500, 2000, 3, true)

	check := func(name, got string) {
		t.Helper()
		path := filepath.Join("..", "testdata", "messages", name+".golden")
		if *update {
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err, "run go test ./monitor -run Golden -update to create it")
		require.Equal(t, string(want), got, name)
	}
	for _, f := range []string{"json", "slack", "mattermost", "text", "pagerduty", "email"} {
		msg, err := n.c.FormatAlertMessage(n.ctx, crit, f)
		require.NoError(t, err)
		check("critical."+f, msg)
		if f != "text" && f != "email" {
			require.True(t, json.Valid([]byte(msg)), f)
		}
	}
	resolved, err := n.c.FormatAlertMessage(n.ctx, done, "pagerduty")
	require.NoError(t, err)
	check("resolved.pagerduty", resolved)
	for _, f := range []string{"json", "slack", "mattermost", "email"} {
		msg, err := n.c.FormatAlertBatch(n.ctx, []int64{crit, warn, done}, f)
		require.NoError(t, err)
		check("batch."+f, msg)
	}

	// The facts every channel must carry.
	slack, err := n.c.FormatAlertMessage(n.ctx, crit, "slack")
	require.NoError(t, err)
	for _, want := range []string{"merge_branches", "CRITICAL", "5.55x", "641.95 ms", "115.62 ms", "https://runbooks.example/pggit/threshold_exceeded.md", `"danger"`} {
		require.Contains(t, slack, want)
	}
	var pd map[string]any
	msg, err := n.c.FormatAlertMessage(n.ctx, crit, "pagerduty")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(msg), &pd))
	require.NotContains(t, pd, "routing_key")
	require.Equal(t, fmt.Sprintf("pggit-alert-%d", crit), pd["dedup_key"])
	require.Equal(t, "critical", pd["payload"].(map[string]any)["severity"])

	// Bad inputs: a clear error each.
	_, err = n.c.FormatAlertMessage(n.ctx, crit, "html")
	var argErr *monitor.ArgumentError
	require.ErrorAs(t, err, &argErr)
	require.Equal(t, "p_format", argErr.Argument)
	require.Contains(t, argErr.Message, "one of json, slack, mattermost, text, pagerduty, email, alertmanager, got 'html'")
	_, err = n.c.FormatAlertMessage(n.ctx, 999999, "json")
	require.ErrorIs(t, err, monitor.ErrNotFound)
	_, err = n.c.FormatAlertMessage(n.ctx, 999999, "slack")
	require.ErrorIs(t, err, monitor.ErrNotFound)
	_, err = n.c.FormatAlertBatch(n.ctx, []int64{crit, warn}, "pagerduty")
	require.ErrorAs(t, err, &argErr)
	require.Contains(t, argErr.Message, "one alert id for the pagerduty format")
	_, err = n.c.FormatAlertBatch(n.ctx, nil, "json")
	require.ErrorAs(t, err, &argErr)
	require.Equal(t, "p_alert_ids", argErr.Argument)
}

// secretURL points a webhook at the sink through a secret-looking path.
func secretURL(s *sink, token string) string { return s.URL + "/hooks/" + token }

func TestDispatcherDeliversToEveryChannel(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	slack, mm, hook, pd := newSink(t), newSink(t), newSink(t), newSink(t)
	hook.setRespond(func(int, *http.Request) (int, string, http.Header) { return http.StatusNoContent, "", nil })
	pd.setRespond(func(int, *http.Request) (int, string, http.Header) {
		return http.StatusAccepted, `{"status":"success"}`, nil
	})
	smtpSrv, roots := newSMTPServer(t, true, "alerts", "hunter2")

	ws := n.webhook("slack", "slack", secretURL(slack, "SLACKTOKEN"), "#alerts")
	wm := n.webhook("mattermost", "mm", secretURL(mm, "MMTOKEN"), "")
	wh := n.webhook("webhook", "generic", secretURL(hook, "HOOKTOKEN"), "")
	wp := n.webhook("pagerduty", "pd", "PDROUTINGKEY00000000000000000001", "")
	we := n.webhook("email", "mail", "smtp://alerts:hunter2@"+smtpSrv.addr()+"?from=pggit@example.com", "oncall@example.com, DBA <dba@example.com>")
	for _, w := range []*monitor.Webhook{ws, wm, wh, wp, we} {
		n.route(w, "ALL", "WARNING")
	}
	id := n.raise("merge_branches", "ANOMALY", "CRITICAL")

	d := n.dispatcher(&monitor.DispatcherConfig{PagerDutyURL: pd.URL + "/v2/enqueue", SMTPTLSConfig: &tls.Config{RootCAs: roots}})
	require.Equal(t, 5, n.runOnce(d))
	require.Equal(t, monitor.DispatcherStats{Sent: 5}, d.Stats())

	wantSlack, err := n.c.FormatAlertBatch(n.ctx, []int64{id}, "slack")
	require.NoError(t, err)
	got := slack.received()
	require.Len(t, got, 1)
	require.Equal(t, "/hooks/SLACKTOKEN", got[0].Path)
	require.JSONEq(t, wantSlack, string(got[0].Body))
	require.Equal(t, "application/json", got[0].Header.Get("Content-Type"))
	dedup := got[0].Header.Get("X-Pggit-Dedup-Key")
	require.Regexp(t, `^pggit-batch-\d+$`, dedup)

	wantMM, err := n.c.FormatAlertBatch(n.ctx, []int64{id}, "mattermost")
	require.NoError(t, err)
	require.JSONEq(t, wantMM, string(mm.received()[0].Body))
	require.Contains(t, string(mm.received()[0].Body), `"fallback"`)

	var generic map[string]any
	require.NoError(t, json.Unmarshal(hook.received()[0].Body, &generic))
	require.Equal(t, "pggit-monitor", generic["source"])
	require.EqualValues(t, 1, generic["count"])
	require.Regexp(t, `^pggit-batch-\d+$`, generic["dedup_key"])
	require.Equal(t, "merge_branches", generic["alerts"].([]any)[0].(map[string]any)["operation_type"])

	var event map[string]any
	require.NoError(t, json.Unmarshal(pd.received()[0].Body, &event))
	require.Equal(t, "/v2/enqueue", pd.received()[0].Path)
	require.Equal(t, "PDROUTINGKEY00000000000000000001", event["routing_key"])
	require.Equal(t, "trigger", event["event_action"])
	require.Equal(t, fmt.Sprintf("pggit-alert-%d", id), event["dedup_key"])

	mails := smtpSrv.received()
	require.Len(t, mails, 1)
	require.True(t, mails[0].TLS, "STARTTLS was offered, so it must be used")
	require.Equal(t, "alerts", mails[0].Auth)
	require.Equal(t, "pggit@example.com", mails[0].From)
	require.Equal(t, []string{"oncall@example.com", "dba@example.com"}, mails[0].To)
	require.Contains(t, mails[0].Data, "Subject: [pggit] CRITICAL ANOMALY merge_branches\r\n")
	require.Contains(t, mails[0].Data, "Message-ID: <pggit-batch-")
	require.Contains(t, mails[0].Data, "CRITICAL ANOMALY: merge_branches")

	// Every attempt is logged with its status.
	rows, err := n.pool.Query(n.ctx, `SELECT w.webhook_type, l.outcome, l.http_status, l.smtp_reply
		FROM pggit.alert_notification_log l JOIN pggit.alert_notification_webhooks w USING (webhook_id) ORDER BY w.webhook_type`)
	require.NoError(t, err)
	var lines []string
	for rows.Next() {
		var typ, outcome string
		var status *int32
		var reply *string
		require.NoError(t, rows.Scan(&typ, &outcome, &status, &reply))
		lines = append(lines, fmt.Sprintf("%s %s %v %v", typ, outcome, deref(status), deref(reply)))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"email sent 0 250", "mattermost sent 200 ", "pagerduty sent 202 ", "slack sent 200 ", "webhook sent 204 "}, lines)

	// Resolving sends PagerDuty a resolve with the same dedup key.
	_, err = n.c.ResolveAlert(n.ctx, id, "alice", "")
	require.NoError(t, err)
	require.Equal(t, 5, n.runOnce(d))
	require.NoError(t, json.Unmarshal(pd.received()[1].Body, &event))
	require.Equal(t, "resolve", event["event_action"])
	require.Equal(t, fmt.Sprintf("pggit-alert-%d", id), event["dedup_key"])
	require.Contains(t, string(slack.received()[1].Body), `"color": "good"`)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// TestBatchingUsesIndexesAfterTheQueueWasVacuumedEmpty raises 2,000 alerts
// in one statement after the queue tables were vacuumed while empty (what
// autovacuum does when the queue drains): their statistics then say "empty",
// and the plans PL/pgSQL caches for batching's key lookups must still be
// index scans. With sequential scans each notification rescans everything
// queued before it in the transaction (quadratic: 100,000 alerts took longer
// than 5 minutes). Counted with the tables' seq_scan statistics, not timed.
func TestBatchingUsesIndexesAfterTheQueueWasVacuumedEmpty(t *testing.T) {
	n := setupNotify(t)
	n.route(n.webhook("webhook", "bulk", "https://hooks.example.com/bulk", ""), "ALL", "WARNING")
	conn, err := n.pool.Acquire(n.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(n.ctx, `VACUUM ANALYZE pggit.alert_notification_queue, pggit.notification_batch_queue, pggit.notification_batch_open`)
	require.NoError(t, err)
	tables := `'alert_notification_queue', 'notification_batch_queue', 'notification_batch_open'`
	seqScans := func() (scans, inserted int64) {
		t.Helper()
		// Another backend's view of this one's flushed counters.
		require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT coalesce(sum(seq_scan), 0)::bigint, coalesce(sum(n_tup_ins), 0)::bigint
			FROM pg_stat_user_tables WHERE schemaname = 'pggit' AND relname IN (`+tables+`)`).Scan(&scans, &inserted))
		return scans, inserted
	}
	flush := func() {
		t.Helper()
		_, err := conn.Exec(n.ctx, `SELECT pg_stat_force_next_flush()`)
		require.NoError(t, err)
		_, err = conn.Exec(n.ctx, `SELECT 1`)
		require.NoError(t, err)
	}
	flush()
	before, ins0 := seqScans()

	const alerts = 2000
	_, err = conn.Exec(n.ctx, `INSERT INTO pggit.performance_alerts
		(operation_type, scope, alert_type, severity, actual_duration_microseconds, baseline_p99_microseconds,
		 violation_multiplier, created_at, first_seen_at, last_seen_at, occurrence_count)
		SELECT 'bulk_' || g, '', 'THRESHOLD_EXCEEDED', 'WARNING', 30000, 10000, 3.0, now(), now(), now(), 1
		FROM generate_series(1, $1::integer) g`, alerts)
	require.NoError(t, err)
	require.Equal(t, int64(alerts), n.count(`SELECT count(*) FROM pggit.alert_notification_queue`))

	// The counters reach the shared statistics when that backend flushes.
	var after, ins1 int64
	require.Eventually(t, func() bool {
		flush()
		after, ins1 = seqScans()
		return ins1-ins0 >= alerts
	}, 10*time.Second, 50*time.Millisecond, "the statistics of the queue tables never showed the inserts")
	require.Less(t, after-before, int64(20),
		"batching %d notifications scanned the queue tables sequentially %d times: key lookups lost their index", alerts, after-before)
}
