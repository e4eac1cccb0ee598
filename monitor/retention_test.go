package monitor_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

// age moves an alert, its queue items, their batches and those batches' log
// rows days into the past, as if all of it had happened then.
func (n *notifier) age(alertID int64, days int) {
	n.t.Helper()
	n.exec(`UPDATE pggit.performance_alerts SET created_at = created_at - make_interval(days => $2),
		first_seen_at = first_seen_at - make_interval(days => $2), last_seen_at = last_seen_at - make_interval(days => $2),
		resolved_at = resolved_at - make_interval(days => $2) WHERE alert_id = $1`, alertID, days)
	n.exec(`UPDATE pggit.notification_batch_queue SET opened_at = opened_at - make_interval(days => $2),
		due_at = due_at - make_interval(days => $2), next_attempt_at = next_attempt_at - make_interval(days => $2),
		sent_at = sent_at - make_interval(days => $2)
		WHERE batch_id IN (SELECT batch_id FROM pggit.alert_notification_queue WHERE alert_id = $1)`, alertID, days)
	n.exec(`UPDATE pggit.alert_notification_log SET created_at = created_at - make_interval(days => $2)
		WHERE batch_id IN (SELECT batch_id FROM pggit.alert_notification_queue WHERE alert_id = $1)`, alertID, days)
	n.exec(`UPDATE pggit.alert_notification_queue SET created_at = created_at - make_interval(days => $2),
		next_attempt_at = next_attempt_at - make_interval(days => $2), sent_at = sent_at - make_interval(days => $2)
		WHERE alert_id = $1`, alertID, days)
}

// ids returns the first column of a query's rows.
func (e *env) ids(sql string, args ...any) []int64 {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, sql, args...)
	require.NoError(e.t, err)
	defer rows.Close()
	out := []int64{}
	for rows.Next() {
		var id int64
		require.NoError(e.t, rows.Scan(&id))
		out = append(out, id)
	}
	require.NoError(e.t, rows.Err())
	return out
}

// strings returns the first column of a query's rows.
func (e *env) strings(sql string, args ...any) []string {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, sql, args...)
	require.NoError(e.t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(e.t, err)
	return out
}

func (n *notifier) resolve(id int64) {
	n.t.Helper()
	_, err := n.c.ResolveAlert(n.ctx, id, "test", "")
	require.NoError(n.t, err)
}

// itemsOf counts the queue items, batches and log rows of an alert's
// notifications (batches and log rows found through its items).
func (n *notifier) itemsOf(alertID int64) (items, batches int64) {
	n.t.Helper()
	return n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE alert_id = $1`, alertID),
		n.count(`SELECT count(DISTINCT batch_id) FROM pggit.alert_notification_queue WHERE alert_id = $1`, alertID)
}

// runRetention runs the worker's retention job now, due or not.
func (n *notifier) runRetention() {
	n.t.Helper()
	n.exec(`UPDATE pggit.scheduled_jobs SET last_started_at = NULL WHERE job_name = $1`, monitor.JobRetention)
	w, err := n.c.NewWorker(nil)
	require.NoError(n.t, err)
	ran, err := w.RunDueJob(n.ctx, monitor.JobRetention)
	require.NoError(n.t, err)
	require.True(n.t, ran)
}

func TestRetentionDeletesOldResolvedAlertsWithTheirNotifications(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	s := newSink(t)
	w := n.webhook("webhook", "w", secretURL(s, "TRETAIN"), "")
	n.route(w, "ALL", "INFO")
	d := n.dispatcher(&monitor.DispatcherConfig{RetryBase: time.Hour, RetryMax: time.Hour})
	send := func(want int) {
		t.Helper()
		require.Equal(t, want, n.runOnce(d))
	}

	// Every alert's notifications go in batches of their own.
	open := n.raise("open", "ANOMALY", "WARNING")
	send(1)
	old := n.raise("old", "ANOMALY", "WARNING")
	send(1)
	n.resolve(old)
	send(1)
	recent := n.raise("recent", "ANOMALY", "WARNING")
	send(1)
	n.resolve(recent)
	send(1)
	// Resolved long ago, but its "resolved" notification is still being
	// retried: the batch is unfinished.
	pending := n.raise("pending", "ANOMALY", "WARNING")
	send(1)
	s.setRespond(func(int, *http.Request) (int, string, http.Header) { return http.StatusBadGateway, "down", nil })
	n.resolve(pending)
	send(1)
	var pendingBatch int64
	require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT batch_id FROM pggit.alert_notification_queue
		WHERE alert_id = $1 AND event = 'resolved'`, pending).Scan(&pendingBatch))
	require.Equal(t, "failed", n.batch(pendingBatch).Status)
	// An open alert, snoozed by a snooze that ended long ago.
	snooze, err := n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{OperationType: "snoozed", Duration: time.Hour, CreatedBy: "test"})
	require.NoError(t, err)
	snoozed := n.raise("snoozed", "ANOMALY", "WARNING")
	ended, err := n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{OperationType: "other", Duration: time.Hour, CreatedBy: "test"})
	require.NoError(t, err)
	current, err := n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{OperationType: "current", Duration: time.Hour, CreatedBy: "test"})
	require.NoError(t, err)
	n.exec(`UPDATE pggit.alert_snooze SET created_at = created_at - interval '101 days',
		snooze_until = snooze_until - interval '101 days' WHERE snooze_id IN ($1, $2)`, snooze, ended)

	n.age(open, 200)
	n.age(snoozed, 200)
	n.age(old, 100)
	n.age(recent, 10)
	n.age(pending, 100)
	require.EqualValues(t, 7, n.count(`SELECT count(*) FROM pggit.alert_notification_log`))
	n.runRetention()

	alive := func(id int64) bool {
		return n.count(`SELECT count(*) FROM pggit.performance_alerts WHERE alert_id = $1`, id) == 1
	}
	require.False(t, alive(old), "resolved 100 days ago")
	items, _ := n.itemsOf(old)
	require.Zero(t, items)
	// Its two batches and their log rows went with it (and the pending
	// alert's first batch, below): left are the open alert's, the recent
	// alert's two and the pending one; log rows of the recent alert and of
	// the pending batch.
	require.EqualValues(t, 4, n.count(`SELECT count(*) FROM pggit.notification_batch_queue`))
	require.EqualValues(t, 3, n.count(`SELECT count(*) FROM pggit.alert_notification_log`))

	// Open alerts, however old, keep their notifications and batches.
	for _, id := range []int64{open, snoozed} {
		require.True(t, alive(id))
	}
	items, batches := n.itemsOf(open)
	require.Equal(t, [2]int64{1, 1}, [2]int64{items, batches})
	require.True(t, alive(recent), "resolved 10 days ago")
	items, batches = n.itemsOf(recent)
	require.Equal(t, [2]int64{2, 2}, [2]int64{items, batches})
	// The pending alert and its unfinished batch, with its log row, stay;
	// only its sent "opened" notification (a batch of its own, 100 days
	// old) went.
	require.True(t, alive(pending))
	require.Equal(t, []string{"failed"}, n.batch(pendingBatch).ItemStatuses)
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.alert_notification_log WHERE batch_id = $1`, pendingBatch))
	items, _ = n.itemsOf(pending)
	require.EqualValues(t, 1, items)
	// The ended snooze an open alert references stays; the other goes.
	require.EqualValues(t, 2, n.count(`SELECT count(*) FROM pggit.alert_snooze`))
	require.EqualValues(t, 2, n.count(`SELECT count(*) FROM pggit.alert_snooze WHERE snooze_id IN ($1, $2)`, snooze, current))

	// The open alert's delivery log row (200 days old) is past its own window.
	require.Zero(t, n.count(`SELECT count(*) FROM pggit.alert_notification_log l
		JOIN pggit.alert_notification_queue q USING (batch_id) WHERE q.alert_id = $1`, open))

	// Once resolved, notified and past the window, the open alert goes too;
	// so does the pending alert once its notification is delivered.
	n.resolve(open)
	s.setRespond(nil)
	send(2)
	n.age(open, 100)
	n.age(pending, 100)
	n.runRetention()
	require.False(t, alive(open))
	require.False(t, alive(pending))
	require.Equal(t, []int64{recent, snoozed}, n.ids(`SELECT alert_id FROM pggit.performance_alerts ORDER BY alert_id`))
	// Left: the recent alert's two batches, and the webhook's last batch,
	// which pggit.notification_batch_open names: it carries the snoozed
	// alert's notification, held while its snooze lasted and sent by the
	// first claim after the snooze ended (the alert is open: it stays).
	require.EqualValues(t, 3, n.count(`SELECT count(*) FROM pggit.notification_batch_queue`))
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.notification_batch_queue b
		JOIN pggit.notification_batch_open o USING (batch_id)
		JOIN pggit.alert_notification_queue q USING (batch_id)
		WHERE b.status = 'sent' AND q.alert_id = $1 AND q.held_snooze_id = $2`, snoozed, snooze))
}

func TestRetentionDeletesOldRunRecords(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.copySamples("op", "", time.Now().Add(-time.Hour), 100, 200, 300, 400, 500)
	// Four forced runs: four baselines b[0..3], each replacing the one before.
	var runs, b []int64
	for range 4 {
		res := e.recalc(&monitor.RecalculateOpts{Force: true, MinSamples: 1})
		runs = append(runs, res.Execution.ID)
		b = append(b, res.Operations[0].BaselineID)
	}
	recent := e.recalc(&monitor.RecalculateOpts{MinSamples: 1}).Execution.ID
	// A run that never finished (its worker died), and two failed runs long
	// ago, one of which an open alert names.
	var running, failed, named int64
	require.NoError(t, e.pool.QueryRow(e.ctx, `INSERT INTO pggit.baseline_recalc_execution
		(started_at, reason, lookback_days, min_samples, force, window_start, window_end)
		VALUES (now() - interval '200 days', 'manual', 7, 1, false, now() - interval '207 days', now() - interval '200 days')
		RETURNING execution_id`).Scan(&running))
	for _, id := range []*int64{&failed, &named} {
		require.NoError(t, e.pool.QueryRow(e.ctx, `INSERT INTO pggit.baseline_recalc_execution
			(started_at, finished_at, status, reason, lookback_days, min_samples, force, window_start, window_end)
			VALUES (now() - interval '200 days', now() - interval '200 days', 'FAILED', 'scheduled', 7, 1, false,
			        now() - interval '207 days', now() - interval '200 days')
			RETURNING execution_id`).Scan(id))
	}
	e.exec(`SELECT pggit.raise_alert('pggit.recalculation', '', 'BASELINE_RECALC_ERROR', 'CRITICAL', '{}', $1)`, named)
	// An alert resolved 10 days ago names the first baseline.
	e.exec(`SELECT pggit.resolve_alert(alert_id, 'test') FROM (
		SELECT (pggit.raise_alert('op', '', 'ANOMALY', 'WARNING')).alert_id) a`)
	e.exec(`UPDATE pggit.performance_alerts SET baseline_id = $1, resolved_at = resolved_at - interval '10 days'
		WHERE operation_type = 'op'`, b[0])
	e.exec(`UPDATE pggit.baseline_recalc_execution SET started_at = started_at - interval '100 days',
		finished_at = finished_at - interval '100 days' WHERE execution_id = ANY($1)`, runs)
	e.exec(`UPDATE pggit.performance_baseline_history SET changed_at = changed_at - interval '100 days'`)
	e.exec(`UPDATE pggit.performance_baselines SET deactivated_at = deactivated_at - interval '100 days',
		calculated_at = calculated_at - interval '100 days'`)
	e.exec(`INSERT INTO pggit.detection_runs (started_at, finished_at, as_of, evaluated_from, evaluated_to) VALUES
		(now() - interval '100 days', now() - interval '100 days', now(), now(), now()),
		(now() - interval '40 days', now() - interval '40 days', now(), now(), now()),
		(now() - interval '1 hour', now() - interval '1 hour', now(), now(), now())`)

	w, err := e.client.NewWorker(nil)
	require.NoError(t, err)
	ran, err := w.RunDueJob(e.ctx, monitor.JobRetention)
	require.NoError(t, err)
	require.True(t, ran)

	ids := e.ids
	// Baselines: the first stays (an alert names it), the second goes, the
	// third stays (the history row of the active one names it as replaced),
	// the fourth is active.
	require.Equal(t, []int64{b[0], b[2], b[3]}, ids(`SELECT baseline_id FROM pggit.performance_baselines ORDER BY baseline_id`))
	// History: only the change that made the active baseline.
	require.Equal(t, []int64{b[3]}, ids(`SELECT baseline_id FROM pggit.performance_baseline_history`))
	// Runs stay while a kept baseline or alert names them; the recent and the
	// unfinished ones stay; the others go.
	require.Equal(t, []int64{runs[0], runs[2], runs[3], recent, running, named},
		ids(`SELECT execution_id FROM pggit.baseline_recalc_execution ORDER BY execution_id`))
	// Results of every old run went, the recent run's stay.
	require.Equal(t, []int64{recent}, ids(`SELECT DISTINCT execution_id FROM pggit.baseline_recalc_results ORDER BY 1`))
	// Detection runs: the one 100 days old went; 40 days is inside the window.
	require.EqualValues(t, 2, e.count(`SELECT count(*) FROM pggit.detection_runs`))
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.detection_runs WHERE started_at < now() - interval '90 days'`))

	// A shorter window for runs.
	require.NoError(t, e.client.SetRetentionSettings(e.ctx, monitor.RetentionSettings{RunsDays: 30}))
	res, err := e.client.ApplyRetention(e.ctx, 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Deleted["detection_runs"])
	require.EqualValues(t, 1, res.Total())
	require.Equal(t, 2, res.Steps) // one row, then nothing
}

func TestRetentionDeletesInBoundedSteps(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	w := n.webhook("webhook", "w", "http://127.0.0.1:9/x", "")
	n.route(w, "ALL", "INFO")
	require.NoError(t, n.c.SetBatchConfig(n.ctx, monitor.BatchConfig{WebhookType: "webhook", Size: 3, Timeout: 0, MaxAttempts: 3}))
	// Five alerts, opened and resolved: ten notifications in four batches,
	// all sent 91 days ago.
	n.exec(`SELECT count(pggit.resolve_alert((pggit.raise_alert('op' || g, '', 'ANOMALY', 'WARNING')).alert_id, 'test'))
		FROM generate_series(1, 5) g`)
	n.exec(`UPDATE pggit.performance_alerts SET resolved_at = resolved_at - interval '91 days'`)
	// An accepted regression names one more old resolved alert (its
	// notifications, held under a snooze and then suppressed, are removed):
	// it stays.
	_, err := n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{OperationType: "accepted", CreatedBy: "test"})
	require.NoError(t, err)
	n.exec(`INSERT INTO pggit.performance_baseline_floors (operation_type, scope, since, alert_id, accepted_by)
		SELECT 'accepted', '', now(), (pggit.resolve_alert((pggit.raise_alert('accepted', '', 'DEGRADATION', 'WARNING')).alert_id, 'test')).alert_id, 'test'`)
	n.exec(`DELETE FROM pggit.alert_notification_queue q USING pggit.performance_alerts a
		WHERE a.alert_id = q.alert_id AND a.operation_type = 'accepted' AND q.status = 'suppressed'`)
	n.exec(`UPDATE pggit.performance_alerts SET resolved_at = resolved_at - interval '91 days' WHERE operation_type = 'accepted'`)
	n.exec(`UPDATE pggit.notification_batch_queue SET status = 'sent', sent_at = now() - interval '91 days',
		next_attempt_at = now() - interval '91 days', opened_at = now() - interval '91 days'`)
	n.exec(`UPDATE pggit.alert_notification_queue SET status = 'sent', sent_at = now() - interval '91 days'`)
	require.EqualValues(t, 10, n.count(`SELECT count(*) FROM pggit.alert_notification_queue`))
	require.EqualValues(t, 4, n.count(`SELECT count(*) FROM pggit.notification_batch_queue`))

	totals := map[string]int64{}
	var tables []string
	for step := 1; ; step++ {
		require.Less(t, step, 20)
		rows, err := n.pool.Query(n.ctx, `SELECT table_name, deleted FROM pggit.apply_retention(2)`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			Table   string
			Deleted int64
		}])
		require.NoError(t, err)
		tables = tables[:0]
		var sum int64
		for _, r := range got {
			require.LessOrEqual(t, r.Deleted, int64(2), "step %d, %s", step, r.Table)
			tables = append(tables, r.Table)
			totals[r.Table] += r.Deleted
			sum += r.Deleted
		}
		if sum == 0 {
			break
		}
	}
	require.ElementsMatch(t, []string{"alert_notification_log", "alert_notification_queue", "alert_snooze",
		"baseline_recalc_execution", "baseline_recalc_results", "detection_runs", "notification_batch_queue",
		"performance_alerts", "performance_baseline_history", "performance_baselines", "performance_histograms"}, tables)
	require.EqualValues(t, 5, totals["performance_alerts"])
	require.EqualValues(t, 10, totals["alert_notification_queue"])
	// The last batch stays while pggit.notification_batch_open names it.
	require.EqualValues(t, 3, totals["notification_batch_queue"])
	require.Equal(t, []string{"accepted"}, n.strings(`SELECT operation_type FROM pggit.performance_alerts`))
}

func TestRetentionSettingsAreValidated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	got, err := e.client.RetentionSettings(e.ctx)
	require.NoError(t, err)
	defaults := monitor.RetentionSettings{AlertsDays: 90, NotificationsDays: 90, DeliveryLogDays: 90, RunsDays: 90, BaselineHistoryDays: 90}
	require.Equal(t, defaults, got)

	for _, c := range []struct{ name, value, msg string }{
		{"retention_alerts_days", "0", "retention_alerts_days must be a whole number of days between 1 and 36500, got '0'"},
		{"retention_runs_days", "36501", "got '36501'"},
		{"retention_delivery_log_days", "-1", "got '-1'"},
		{"retention_notifications_days", "1.5", "got '1.5'"},
		{"retention_baseline_history_days", " 30", "got ' 30'"},
		{"retention_alerts_days", "thirty", "got 'thirty'"},
		{"retention_alerts_days", "", "got ''"},
	} {
		_, err := e.pool.Exec(e.ctx, `UPDATE pggit.monitor_settings SET setting_value = $2 WHERE setting_name = $1`, c.name, c.value)
		pgErr := requirePgError(t, err, "22023", c.msg)
		require.Equal(t, c.name, pgErr.ColumnName)
	}
	_, err = e.pool.Exec(e.ctx, `INSERT INTO pggit.monitor_settings (setting_name, setting_value) VALUES ('retention_alert_days', '30')`)
	pgErr := requirePgError(t, err, "22023", "setting_name must be one of retention_alerts_days", "got 'retention_alert_days'")
	require.Equal(t, "setting_name", pgErr.ColumnName)

	for _, c := range []struct {
		s   monitor.RetentionSettings
		arg string
	}{
		{monitor.RetentionSettings{AlertsDays: 30, RunsDays: -1}, "RunsDays"},
		{monitor.RetentionSettings{DeliveryLogDays: 36501}, "DeliveryLogDays"},
	} {
		err := e.client.SetRetentionSettings(e.ctx, c.s)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr)
		require.Equal(t, c.arg, argErr.Argument)
	}
	got, err = e.client.RetentionSettings(e.ctx)
	require.NoError(t, err)
	require.Equal(t, defaults, got, "nothing changed")

	require.NoError(t, e.client.SetRetentionSettings(e.ctx, monitor.RetentionSettings{AlertsDays: 30, DeliveryLogDays: 7}))
	got, err = e.client.RetentionSettings(e.ctx)
	require.NoError(t, err)
	require.Equal(t, monitor.RetentionSettings{AlertsDays: 30, NotificationsDays: 90, DeliveryLogDays: 7, RunsDays: 90, BaselineHistoryDays: 90}, got)

	_, err = e.pool.Exec(e.ctx, `SELECT * FROM pggit.apply_retention(0)`)
	requirePgError(t, err, "22023", "p_batch must be between 1 and 1000000, got 0")
	_, err = e.client.ApplyRetention(e.ctx, 0)
	require.ErrorIs(t, err, monitor.ErrInvalidArgument)
}

// A bad value stored behind the trigger's back stops retention before it
// deletes anything: not even samples.
func TestRetentionWithABadStoredSettingDeletesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.copySamples("op", "", time.Now().Add(-40*24*time.Hour), 1, 2, 3)
	e.exec(`SELECT count(pggit.resolve_alert((pggit.raise_alert('op' || g, '', 'ANOMALY', 'WARNING')).alert_id, 'test'))
		FROM generate_series(1, 3) g`)
	e.exec(`UPDATE pggit.performance_alerts SET resolved_at = resolved_at - interval '200 days'`)
	e.exec(`ALTER TABLE pggit.monitor_settings DISABLE TRIGGER monitor_settings_check_retention`)
	e.exec(`UPDATE pggit.monitor_settings SET setting_value = '0' WHERE setting_name = 'retention_runs_days'`)
	e.exec(`ALTER TABLE pggit.monitor_settings ENABLE TRIGGER monitor_settings_check_retention`)

	_, err := e.pool.Exec(e.ctx, `SELECT * FROM pggit.apply_retention(100)`)
	requirePgError(t, err, "22023", "retention_runs_days must be a whole number of days between 1 and 36500, got '0'")
	w, err := e.client.NewWorker(nil)
	require.NoError(t, err)
	ran, err := w.RunDueJob(e.ctx, monitor.JobRetention)
	require.True(t, ran)
	var argErr *monitor.ArgumentError
	require.ErrorAs(t, err, &argErr)
	require.Equal(t, "retention_runs_days", argErr.Argument)
	require.EqualValues(t, 3, e.count(`SELECT count(*) FROM pggit.performance_alerts`))
	require.EqualValues(t, 3, e.count(`SELECT count(*) FROM pggit.performance_metrics`))
	var status string
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT last_status FROM pggit.scheduled_jobs WHERE job_name = $1`, monitor.JobRetention).Scan(&status))
	require.Equal(t, "failed", status)
	_, err = e.client.RetentionSettings(e.ctx)
	require.ErrorIs(t, err, monitor.ErrInvalidArgument)
}

// An alert that opened and resolved under a snooze leaves only suppressed
// notifications: they count as finished, so the alert and its items go when
// its window passes; a held notification of an open alert keeps it.
func TestRetentionTreatsSuppressedAsFinishedAndHeldAsPending(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	w := n.webhook("webhook", "w", "http://127.0.0.1:9/x", "")
	n.route(w, "ALL", "INFO")
	_, err := n.c.SnoozeAlerts(n.ctx, monitor.SnoozeParams{Reason: "maintenance", CreatedBy: "test"})
	require.NoError(t, err)
	gone := n.raise("gone", "ANOMALY", "WARNING")
	n.resolve(gone)
	held := n.raise("held", "ANOMALY", "WARNING")
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE alert_id = $1 AND status = 'suppressed'`, gone))
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE alert_id = $1 AND status = 'held'`, held))
	n.age(gone, 100)
	n.age(held, 100)
	n.runRetention()
	require.Zero(t, n.count(`SELECT count(*) FROM pggit.performance_alerts WHERE alert_id = $1`, gone))
	require.Zero(t, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE alert_id = $1`, gone))
	require.EqualValues(t, 1, n.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE alert_id = $1 AND status = 'held'`, held))
}
