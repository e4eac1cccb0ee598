package monitor_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
)

// baseline gives op an active baseline whose every percentile is us.
func (e *env) baseline(op string, us int64) {
	e.t.Helper()
	e.setSamples(op, us)
	r, err := e.client.RecalculateBaseline(e.ctx, op, "", &monitor.RecalculateOpts{Force: true})
	require.NoError(e.t, err)
	require.Equal(e.t, monitor.StatusUpdated, r.Status, r.Message)
}

func (e *env) alerts(f *monitor.AlertFilter) []*monitor.Alert {
	e.t.Helper()
	as, err := e.client.ListAlerts(e.ctx, f)
	require.NoError(e.t, err)
	return as
}

func (e *env) openAlert(op string) *monitor.Alert {
	e.t.Helper()
	as := e.alerts(&monitor.AlertFilter{OpenOnly: true, OperationType: op, Type: monitor.AlertThresholdExceeded})
	require.Len(e.t, as, 1, "open alerts of %s", op)
	return as[0]
}

func TestDetectionThroughEveryWritePath(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, op := range []string{"via_function", "via_copy", "via_insert", "via_recorder", "via_client"} {
		e.baseline(op, 1000)
	}
	e.exec(`SELECT pggit.record_performance_metric('via_function', 2500)`)
	e.copySamples("via_copy", "", time.Now(), 900, 2600, 1000)
	e.exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
		VALUES ('via_insert', 2700, now())`)
	rec, err := e.client.NewRecorder(nil)
	require.NoError(t, err)
	require.NoError(t, rec.Record("via_recorder", 2800*time.Microsecond))
	require.NoError(t, rec.Record("via_recorder", 500*time.Microsecond))
	require.NoError(t, rec.Close(e.ctx))
	_, err = e.client.RecordSample(e.ctx, monitor.Sample{OperationType: "via_client", Duration: 2900 * time.Microsecond})
	require.NoError(t, err)

	for op, us := range map[string]int64{"via_function": 2500, "via_copy": 2600, "via_insert": 2700, "via_recorder": 2800, "via_client": 2900} {
		a := e.openAlert(op)
		require.Equal(t, monitor.SeverityWarning, a.Severity, op)
		require.EqualValues(t, 1, a.Occurrences, op)
		require.Equal(t, time.Duration(us)*time.Microsecond, a.ActualDuration, op)
		require.Equal(t, time.Millisecond, a.BaselineP99, op)
		require.InDelta(t, float64(us)/1000, a.ViolationMultiplier, 1e-12, op)
		require.Equal(t, 2.0, a.ThresholdMultiplier)
		require.NotZero(t, a.MetricID)
		require.Equal(t, a.MetricID, a.WorstMetricID)
		require.NotZero(t, a.BaselineID)
		require.False(t, a.Snoozed)
		var d int64
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT duration_microseconds FROM pggit.performance_metrics WHERE metric_id = $1`, a.MetricID).Scan(&d))
		require.Equal(t, us, d)
	}
	require.Len(t, e.alerts(nil), 5)
}

func TestSeverityBoundaries(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "custom",
		ThresholdMultiplier: ptr(3.0), CriticalMultiplier: ptr(4.0)})
	require.NoError(t, err)

	cases := []struct {
		op       string
		us       int64
		severity string // "" = no alert
	}{
		{"default", 1990, ""},         // 1.99x
		{"default", 2000, "WARNING"},  // 2.0x
		{"default", 4990, "WARNING"},  // 4.99x
		{"default", 5000, "CRITICAL"}, // 5.0x
		{"custom", 2999, ""},          // below its 3x
		{"custom", 3000, "WARNING"},   // 3x
		{"custom", 3999, "WARNING"},   // 3.999x
		{"custom", 4000, "CRITICAL"},  // 4x
		{"default", 100000, "CRITICAL"},
	}
	for i, c := range cases {
		op := fmt.Sprintf("%s_%d", c.op, i)
		if c.op == "custom" {
			_, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: op,
				ThresholdMultiplier: ptr(3.0), CriticalMultiplier: ptr(4.0)})
			require.NoError(t, err)
		}
		e.baseline(op, 1000)
		e.copySamples(op, "", time.Now(), c.us)
		as := e.alerts(&monitor.AlertFilter{OperationType: op})
		if c.severity == "" {
			require.Empty(t, as, "%s at %d", op, c.us)
			continue
		}
		require.Len(t, as, 1, "%s at %d", op, c.us)
		require.Equal(t, c.severity, as[0].Severity, "%s at %dus", op, c.us)
	}

	// A critical multiplier below the threshold is refused, naming it.
	_, err = e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "custom", CriticalMultiplier: ptr(2.5)})
	var argErr *monitor.ArgumentError
	require.ErrorAs(t, err, &argErr)
	require.Equal(t, "CriticalMultiplier", argErr.Argument)
	// An untracked operation raises nothing.
	e.baseline("quiet", 1000)
	_, err = e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "quiet", Tracked: ptr(false)})
	require.NoError(t, err)
	e.copySamples("quiet", "", time.Now(), 9000)
	require.Empty(t, e.alerts(&monitor.AlertFilter{OperationType: "quiet"}))
}

func TestAlertDedupEscalationAndReopen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("merge", 1000)

	// A burst of 10,000 slow samples in one COPY is one alert.
	burst := make([]int64, 10000)
	for i := range burst {
		burst[i] = 2000 + int64(i%500)
	}
	e.copySamples("merge", "", time.Now(), burst...)
	a := e.openAlert("merge")
	require.EqualValues(t, 10000, a.Occurrences)
	require.Equal(t, monitor.SeverityWarning, a.Severity)
	require.Equal(t, 2499*time.Microsecond, a.ActualDuration) // the worst of the burst
	first := a.ID

	// Later batches add to it; a worse one escalates; a milder one never lowers it.
	e.copySamples("merge", "", time.Now(), 6000, 900)
	e.copySamples("merge", "", time.Now(), 2100)
	a = e.openAlert("merge")
	require.Equal(t, first, a.ID)
	require.EqualValues(t, 10002, a.Occurrences)
	require.Equal(t, monitor.SeverityCritical, a.Severity)
	require.Equal(t, 6*time.Millisecond, a.ActualDuration)
	require.InDelta(t, 6.0, a.ViolationMultiplier, 1e-12)
	require.True(t, a.LastSeenAt.After(a.FirstSeenAt) || a.LastSeenAt.Equal(a.FirstSeenAt))

	// Scope is part of the key: a branch's regression is its own alert.
	e.copySamples("merge", "feature-x", time.Now(), 1) // registers the scope, no baseline yet
	require.Len(t, e.alerts(&monitor.AlertFilter{OperationType: "merge"}), 1)

	// Resolved, then the next violation opens a new alert.
	resolved, err := e.client.ResolveAlert(e.ctx, first, "oncall", "index rebuilt")
	require.NoError(t, err)
	require.False(t, resolved.Open())
	require.Equal(t, "oncall", resolved.ResolvedBy)
	require.Equal(t, "index rebuilt", resolved.ResolutionNote)
	e.copySamples("merge", "", time.Now(), 2500)
	b := e.openAlert("merge")
	require.NotEqual(t, first, b.ID)
	require.EqualValues(t, 1, b.Occurrences)
	require.Equal(t, monitor.SeverityWarning, b.Severity)
	require.Len(t, e.alerts(&monitor.AlertFilter{OperationType: "merge"}), 2)
}

func TestConcurrentBatchesGiveOneOpenAlert(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("hot", 1000)
	const writers, per = 8, 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			rows := make([]gen.CopyMetricsParams, per)
			for i := range rows {
				rows[i] = gen.CopyMetricsParams{OperationType: "hot", DurationMicroseconds: int64(3000 + w), RecordedAt: time.Now()}
			}
			_, err := gen.New(e.pool).CopyMetrics(context.Background(), rows)
			require.NoError(t, err)
		})
	}
	close(start)
	wg.Wait()
	as := e.alerts(&monitor.AlertFilter{OperationType: "hot"})
	require.Len(t, as, 1)
	require.EqualValues(t, writers*per, as[0].Occurrences)
	require.Equal(t, time.Duration(3000+writers-1)*time.Microsecond, as[0].ActualDuration)
}

func TestAcknowledgeAndResolve(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("op", 1000)
	e.copySamples("op", "", time.Now(), 3000)
	a := e.openAlert("op")
	require.False(t, a.Acknowledged())

	acked, err := e.client.AcknowledgeAlert(e.ctx, a.ID, "alice")
	require.NoError(t, err)
	require.True(t, acked.Acknowledged())
	require.Equal(t, "alice", acked.AcknowledgedBy)
	again, err := e.client.AcknowledgeAlert(e.ctx, a.ID, "bob")
	require.NoError(t, err)
	require.Equal(t, "alice", again.AcknowledgedBy) // the first acknowledgement stays
	require.Equal(t, acked.AcknowledgedAt, again.AcknowledgedAt)
	var ackFlag bool
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT acknowledged FROM pggit.performance_alerts WHERE alert_id = $1`, a.ID).Scan(&ackFlag))
	require.True(t, ackFlag)

	// The default actor is the database user.
	resolved, err := e.client.ResolveAlert(e.ctx, a.ID, "", "")
	require.NoError(t, err)
	require.Equal(t, "postgres", resolved.ResolvedBy)
	_, err = e.client.ResolveAlert(e.ctx, a.ID, "carol", "")
	require.ErrorIs(t, err, monitor.ErrAlreadyResolved)
	require.ErrorContains(t, err, fmt.Sprintf("alert %d was already resolved", a.ID))
	_, err = e.client.AcknowledgeAlert(e.ctx, 999999, "x")
	require.ErrorIs(t, err, monitor.ErrNotFound)
	_, err = e.client.ResolveAlert(e.ctx, 999999, "x", "")
	require.ErrorIs(t, err, monitor.ErrNotFound)
	_, err = e.client.Alert(e.ctx, 999999)
	require.ErrorIs(t, err, monitor.ErrNotFound)
	_, err = e.pool.Exec(e.ctx, `SELECT pggit.acknowledge_alert(1, '')`)
	requirePgError(t, err, "22023", "p_acknowledged_by must be a non-empty name")
	_, err = e.pool.Exec(e.ctx, `SELECT pggit.resolve_alert(NULL)`)
	requirePgError(t, err, "22023", "p_alert_id must not be NULL")

	// Tx twins: a rolled-back resolution leaves the alert open.
	e.copySamples("op", "", time.Now(), 3000)
	b := e.openAlert("op")
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = e.client.AcknowledgeAlertTx(e.ctx, tx, b.ID, "dave")
	require.NoError(t, err)
	_, err = e.client.ResolveAlertTx(e.ctx, tx, b.ID, "dave", "")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(e.ctx))
	b2, err := e.client.Alert(e.ctx, b.ID)
	require.NoError(t, err)
	require.True(t, b2.Open())
	require.False(t, b2.Acknowledged())
}

func TestSnoozeMatching(t *testing.T) {
	t.Parallel()
	probes := [][2]string{
		{"merge_branches", "THRESHOLD_EXCEEDED"},
		{"merge_branches", "ANOMALY"},
		{"commit", "THRESHOLD_EXCEEDED"},
		{"commit", "ANOMALY"},
	}
	cases := []struct {
		op, typ string
		want    [4]bool
	}{
		{"merge_branches", "THRESHOLD_EXCEEDED", [4]bool{true, false, false, false}},
		{"merge_branches", "ALL", [4]bool{true, true, false, false}},
		{"ALL", "THRESHOLD_EXCEEDED", [4]bool{true, false, true, false}},
		{"ALL", "ALL", [4]bool{true, true, true, true}},
	}
	for _, c := range cases {
		t.Run(c.op+"/"+c.typ, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			id, err := e.client.SnoozeAlerts(e.ctx, monitor.SnoozeParams{OperationType: c.op, Type: c.typ, Duration: 30 * time.Minute, Reason: "test"})
			require.NoError(t, err)
			for i, p := range probes {
				got, err := e.client.IsAlertSnoozed(e.ctx, p[0], p[1])
				require.NoError(t, err)
				require.Equal(t, c.want[i], got, "probe %v", p)
			}
			// Expiry: false from snooze_until on.
			e.exec(`UPDATE pggit.alert_snooze SET snooze_until = clock_timestamp() + interval '1 hour', created_at = clock_timestamp() - interval '1 hour' WHERE snooze_id = $1`, id)
			got, err := e.client.IsAlertSnoozed(e.ctx, probes[0][0], probes[0][1])
			require.NoError(t, err)
			require.True(t, got)
			e.exec(`UPDATE pggit.alert_snooze SET snooze_until = clock_timestamp() WHERE snooze_id = $1`, id)
			got, err = e.client.IsAlertSnoozed(e.ctx, probes[0][0], probes[0][1])
			require.NoError(t, err)
			require.False(t, got)
		})
	}

	t.Run("unsnooze", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		id, err := e.client.SnoozeAlerts(e.ctx, monitor.SnoozeParams{}) // ALL/ALL for an hour
		require.NoError(t, err)
		s, err := e.client.ListSnoozes(e.ctx, true, 0)
		require.NoError(t, err)
		require.Len(t, s, 1)
		require.Equal(t, "ALL", s[0].OperationType)
		require.Equal(t, "ALL", s[0].Type)
		require.Equal(t, "postgres", s[0].CreatedBy)
		require.WithinDuration(t, s[0].CreatedAt.Add(time.Hour), s[0].Until, time.Second)

		ended, err := e.client.Unsnooze(e.ctx, id, "bob")
		require.NoError(t, err)
		require.Equal(t, "bob", ended.CancelledBy)
		require.False(t, ended.Active(time.Now()))
		snoozed, err := e.client.IsAlertSnoozed(e.ctx, "anything", "ANOMALY")
		require.NoError(t, err)
		require.False(t, snoozed)
		again, err := e.client.Unsnooze(e.ctx, id, "carol") // no-op, kept for audit
		require.NoError(t, err)
		require.Equal(t, "bob", again.CancelledBy)
		active, err := e.client.ListSnoozes(e.ctx, true, 0)
		require.NoError(t, err)
		require.Empty(t, active)
		all, err := e.client.ListSnoozes(e.ctx, false, 0)
		require.NoError(t, err)
		require.Len(t, all, 1)
		_, err = e.client.Unsnooze(e.ctx, 424242, "x")
		require.ErrorIs(t, err, monitor.ErrNotFound)
	})
}

func TestSnoozedAlertsAreRecordedAndMarked(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("merge_branches", 1000)
	e.baseline("commit", 1000)
	id, err := e.client.SnoozeAlerts(e.ctx, monitor.SnoozeParams{OperationType: "merge_branches", Type: monitor.AlertThresholdExceeded, Duration: time.Hour})
	require.NoError(t, err)
	e.copySamples("merge_branches", "", time.Now(), 9000)
	e.copySamples("commit", "", time.Now(), 9000)

	m := e.openAlert("merge_branches")
	require.True(t, m.Snoozed)
	require.Equal(t, id, m.SnoozeID)
	require.Equal(t, monitor.SeverityCritical, m.Severity)
	c := e.openAlert("commit")
	require.False(t, c.Snoozed)
	require.Zero(t, c.SnoozeID)
}

func TestSnoozeBadInputs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sqlCases := []struct{ call, arg, msg string }{
		{`SELECT pggit.snooze_alerts(p_snooze_minutes => 0)`, "p_snooze_minutes", "between 1 and 43200 (30 days), got 0"},
		{`SELECT pggit.snooze_alerts(p_snooze_minutes => 43201)`, "p_snooze_minutes", "got 43201"},
		{`SELECT pggit.snooze_alerts(p_snooze_minutes => -5)`, "p_snooze_minutes", "got -5"},
		{`SELECT pggit.snooze_alerts(p_snooze_minutes => NULL)`, "p_snooze_minutes", "got NULL"},
		{`SELECT pggit.snooze_alerts(p_alert_type => 'BOGUS')`, "p_alert_type", "one of ALL, THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION, CORRELATION, BASELINE_RECALC_ERROR, got 'BOGUS'"},
		{`SELECT pggit.snooze_alerts(p_alert_type => 'all')`, "p_alert_type", "got 'all'"},
		{`SELECT pggit.snooze_alerts(p_alert_type => NULL)`, "p_alert_type", "got NULL"},
		{`SELECT pggit.snooze_alerts(p_operation_type => '')`, "p_operation_type", "operation name (at most 200 characters) or 'ALL', got ''"},
		{`SELECT pggit.snooze_alerts(p_operation_type => NULL)`, "p_operation_type", "got NULL"},
		{`SELECT pggit.snooze_alerts(p_created_by => NULL)`, "p_created_by", "non-empty name"},
		{`SELECT pggit.unsnooze_alerts(NULL)`, "p_snooze_id", "must not be NULL"},
	}
	for _, c := range sqlCases {
		_, err := e.pool.Exec(e.ctx, c.call)
		pgErr := requirePgError(t, err, "22023", c.arg, c.msg)
		require.Equal(t, c.arg, pgErr.ColumnName)
	}
	goCases := []struct {
		p   monitor.SnoozeParams
		arg string
		msg string
	}{
		{monitor.SnoozeParams{Duration: -time.Minute}, "p_snooze_minutes", "got -1"},
		{monitor.SnoozeParams{Duration: 31 * 24 * time.Hour}, "p_snooze_minutes", "got 44640"},
		{monitor.SnoozeParams{Type: "SLOW"}, "p_alert_type", "got 'SLOW'"},
		{monitor.SnoozeParams{OperationType: "   "}, "p_operation_type", "got '   '"},
	}
	for _, c := range goCases {
		_, err := e.client.SnoozeAlerts(e.ctx, c.p)
		var argErr *monitor.ArgumentError
		require.ErrorAs(t, err, &argErr)
		require.Equal(t, c.arg, argErr.Argument)
		require.Contains(t, argErr.Message, c.msg)
	}
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.alert_snooze`))

	// A 30-second snooze rounds up to one minute rather than being refused.
	id, err := e.client.SnoozeAlerts(e.ctx, monitor.SnoozeParams{Duration: 30 * time.Second})
	require.NoError(t, err)
	var minutes float64
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT extract(epoch FROM snooze_until - created_at) / 60 FROM pggit.alert_snooze WHERE snooze_id = $1`, id).Scan(&minutes))
	require.Equal(t, 1.0, minutes)

	_, err = e.client.ListAlerts(e.ctx, &monitor.AlertFilter{Severity: "LOUD"})
	require.ErrorIs(t, err, monitor.ErrInvalidArgument)
	_, err = e.client.ListAlerts(e.ctx, &monitor.AlertFilter{Type: "SLOW"})
	require.ErrorIs(t, err, monitor.ErrInvalidArgument)
	_, err = e.client.ListAlerts(e.ctx, &monitor.AlertFilter{Limit: -1})
	require.ErrorIs(t, err, monitor.ErrInvalidArgument)
}

func TestRunbookQueriesRunUnchanged(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("merge_branches", 1000)
	e.copySamples("merge_branches", "", time.Now(), 4200)

	raw, err := os.ReadFile("../testdata/runbook_queries.sql")
	require.NoError(t, err)
	var results []string
	for _, block := range strings.Split(string(raw), "\n\n") {
		var lines []string
		for _, l := range strings.Split(block, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		stmt := strings.TrimSpace(strings.Join(lines, "\n"))
		if stmt == "" {
			continue
		}
		rows, err := e.pool.Query(e.ctx, stmt)
		require.NoError(t, err, stmt)
		n := 0
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			results = append(results, fmt.Sprint(vals...))
			n++
		}
		require.NoError(t, rows.Err(), stmt)
		require.Positive(t, n, stmt)
	}
	// The recent-alerts query shows the regression in milliseconds; the
	// first is_alert_snoozed is false, the last true after the snoozes.
	require.Contains(t, results[0], "merge_branches")
	require.Contains(t, results[0], "WARNING")
	require.Contains(t, results[0], "4.2")
	require.Equal(t, "false", results[1])
	require.Equal(t, "true", results[len(results)-1])
	require.EqualValues(t, 3, e.count(`SELECT count(*) FROM pggit.alert_snooze`))
	require.EqualValues(t, 1, e.count(`SELECT count(*) FROM pggit.alert_snooze WHERE operation_type = 'ALL' AND alert_type = 'ALL'`))
}

func TestRecalculationErrorsRaiseAlerts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	now := time.Now().Add(-time.Hour)
	e.copySamples("ok", "", now, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
	e.copySamples("broken", "", now, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
	e.exec(`CREATE FUNCTION pggit.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.operation_type = 'broken' THEN RAISE EXCEPTION 'no space left' USING ERRCODE = '53100'; END IF;
			RETURN NEW;
		END $$`)
	e.exec(`CREATE TRIGGER test_refuse BEFORE INSERT ON pggit.performance_baselines
		FOR EACH ROW EXECUTE FUNCTION pggit.test_refuse()`)

	res := e.recalc(nil)
	require.Equal(t, monitor.RunPartial, res.Execution.Status)
	as := e.alerts(&monitor.AlertFilter{Type: monitor.AlertBaselineRecalcError})
	require.Len(t, as, 1)
	require.Equal(t, "broken", as[0].OperationType)
	require.Equal(t, monitor.SeverityWarning, as[0].Severity)
	require.Equal(t, res.Execution.ID, as[0].ExecutionID)
	require.JSONEq(t, fmt.Sprintf(`{"message": "no space left (SQLSTATE 53100)", "execution_id": %d}`, res.Execution.ID), string(as[0].Details))

	// The same failure again adds to the open alert.
	e.recalc(&monitor.RecalculateOpts{Force: true})
	as = e.alerts(&monitor.AlertFilter{Type: monitor.AlertBaselineRecalcError})
	require.Len(t, as, 1)
	require.EqualValues(t, 2, as[0].Occurrences)

	// A run that fails as a whole is CRITICAL.
	e.exec(`ALTER TABLE pggit.performance_metrics RENAME TO performance_metrics_gone`)
	_, err := e.client.RecalculateAllBaselinesRolling(e.ctx, nil)
	require.ErrorIs(t, err, monitor.ErrRecalcFailed)
	as = e.alerts(&monitor.AlertFilter{Type: monitor.AlertBaselineRecalcError, Severity: monitor.SeverityCritical})
	require.Len(t, as, 1)
	require.Equal(t, "pggit.recalculation", as[0].OperationType)
}

func TestListAlertsFilters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("a", 1000)
	e.baseline("b", 1000)
	e.copySamples("a", "", time.Now(), 2500)
	e.copySamples("b", "", time.Now(), 7000)
	require.Len(t, e.alerts(nil), 2)
	require.Len(t, e.alerts(&monitor.AlertFilter{Severity: monitor.SeverityCritical}), 1)
	require.Len(t, e.alerts(&monitor.AlertFilter{OperationType: "a"}), 1)
	require.Len(t, e.alerts(&monitor.AlertFilter{Since: time.Now().Add(time.Hour)}), 0)
	require.Len(t, e.alerts(&monitor.AlertFilter{Since: time.Now().Add(-time.Hour)}), 2)
	require.Len(t, e.alerts(&monitor.AlertFilter{Limit: 1}), 1)
	first := e.alerts(&monitor.AlertFilter{OperationType: "a"})[0]
	_, err := e.client.ResolveAlert(e.ctx, first.ID, "x", "")
	require.NoError(t, err)
	open := e.alerts(&monitor.AlertFilter{OpenOnly: true})
	require.Len(t, open, 1)
	require.Equal(t, "b", open[0].OperationType)
}
