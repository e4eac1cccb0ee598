package monitor_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
)

// baseline gives op an active baseline whose every percentile is us, and opts
// it in to the per-sample rule (MinWindowCount 1): one sample over the
// threshold raises, as the seed's rule did, once detection runs.
func (e *env) baseline(op string, us int64) {
	e.t.Helper()
	e.setSamples(op, us)
	r, err := e.client.RecalculateBaseline(e.ctx, op, "", &monitor.RecalculateOpts{Force: true})
	require.NoError(e.t, err)
	require.Equal(e.t, monitor.StatusUpdated, r.Status, r.Message)
	_, err = e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: op, MinWindowCount: ptr(1)})
	require.NoError(e.t, err)
}

// detect runs detection over every minute bucket up to and including the
// one at holds, and returns the alerts it opened, changed or resolved.
func (e *env) detect(at time.Time) []*monitor.Alert {
	e.t.Helper()
	as, err := e.client.RunDetection(e.ctx, at.Truncate(time.Minute).Add(time.Minute))
	require.NoError(e.t, err)
	return as
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

// type7 is percentile_cont: the exact quantile the histograms approximate.
func type7(xs []int64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	h := q * float64(len(s)-1)
	lo := int(math.Floor(h))
	hi := min(lo+1, len(s)-1)
	return float64(s[lo]) + (h-float64(lo))*float64(s[hi]-s[lo])
}

func TestDetectionThroughEveryWritePath(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, op := range []string{"via_function", "via_copy", "via_insert", "via_recorder", "via_client"} {
		e.baseline(op, 1000)
	}
	now := time.Now()
	e.exec(`SELECT pggit.record_performance_metric('via_function', 2500, p_recorded_at => $1)`, now)
	e.copySamples("via_copy", "", now, 900, 2600, 1000)
	e.exec(`INSERT INTO pggit.performance_metrics (operation_type, duration_microseconds, recorded_at)
		VALUES ('via_insert', 2700, $1)`, now)
	rec, err := e.client.NewRecorder(nil)
	require.NoError(t, err)
	require.NoError(t, rec.RecordSample(monitor.Sample{OperationType: "via_recorder", Duration: 2800 * time.Microsecond, RecordedAt: now}))
	require.NoError(t, rec.RecordSample(monitor.Sample{OperationType: "via_recorder", Duration: 500 * time.Microsecond, RecordedAt: now}))
	require.NoError(t, rec.Close(e.ctx))
	_, err = e.client.RecordSample(e.ctx, monitor.Sample{OperationType: "via_client", Duration: 2900 * time.Microsecond, RecordedAt: now})
	require.NoError(t, err)

	// Nothing is raised as samples are written; detection raises one alert
	// per operation, its window's p99 against the baseline p99.
	require.Empty(t, e.alerts(nil))
	opened := e.detect(now)
	require.Len(t, opened, 5)
	windows := map[string][]int64{"via_function": {2500}, "via_copy": {900, 2600, 1000}, "via_insert": {2700},
		"via_recorder": {2800, 500}, "via_client": {2900}}
	for op, w := range windows {
		a := e.openAlert(op)
		p99 := type7(w, 0.99)
		require.Equal(t, monitor.SeverityWarning, a.Severity, op)
		require.EqualValues(t, 1, a.Occurrences, op)
		require.InEpsilon(t, p99, float64(a.ActualDuration/time.Microsecond), 0.01, op)
		require.Equal(t, time.Millisecond, a.BaselineP99, op)
		require.InEpsilon(t, p99/1000, a.ViolationMultiplier, 0.01, op)
		require.Equal(t, 2.0, a.ThresholdMultiplier)
		require.NotZero(t, a.BaselineID)
		require.False(t, a.Snoozed)
		// Sample times: the window is the minute of the samples.
		require.Equal(t, now.Truncate(time.Minute), a.FirstSeenAt.Truncate(time.Minute), op)
		require.Equal(t, now.Truncate(time.Minute).Add(time.Minute), a.DetectedAt, op)
		require.Contains(t, string(a.Details), `"window_p99_ms"`)
	}
	require.Len(t, e.alerts(nil), 5)
	// Idempotent: the same as-of again changes nothing.
	require.Empty(t, e.detect(now))
	require.Len(t, e.alerts(nil), 5)
}

func TestSingleSampleNeverAlertsByDefault(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("op", 1000)
	_, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "op", MinWindowCount: ptr(20)})
	require.NoError(t, err)
	now := time.Now().Truncate(time.Minute)
	// 30 normal samples and one 50x outlier in a minute: the window p99 is over
	// 2x, but one sample is not a regression.
	d := make([]int64, 30)
	for i := range d {
		d[i] = 900 + int64(i)*5
	}
	e.copySamples("op", "", now, append(d, 50000)...)
	require.Empty(t, e.detect(now))
	// Five of them in the next minute's window are.
	e.copySamples("op", "", now.Add(time.Minute), append(d, 50000, 50000, 50000, 50000, 50000)...)
	opened := e.detect(now.Add(time.Minute))
	require.Len(t, opened, 1)
	require.Equal(t, monitor.AlertThresholdExceeded, opened[0].Type)
	require.Equal(t, monitor.SeverityCritical, opened[0].Severity)
}

func TestSeverityBoundaries(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Histograms resolve durations to 1%: the boundaries are checked 2-3%
	// either side.
	cases := []struct {
		op       string
		us       int64
		severity string // "" = no alert
	}{
		{"default", 1950, ""},         // 1.95x
		{"default", 2050, "WARNING"},  // 2.05x
		{"default", 4900, "WARNING"},  // 4.9x
		{"default", 5100, "CRITICAL"}, // 5.1x
		{"custom", 2900, ""},          // below its 3x
		{"custom", 3090, "WARNING"},   // 3.09x
		{"custom", 3900, "WARNING"},   // 3.9x
		{"custom", 4100, "CRITICAL"},  // 4.1x
		{"default", 100000, "CRITICAL"},
	}
	now := time.Now()
	for i, c := range cases {
		op := fmt.Sprintf("%s_%d", c.op, i)
		e.baseline(op, 1000)
		if c.op == "custom" {
			_, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: op,
				ThresholdMultiplier: ptr(3.0), CriticalMultiplier: ptr(4.0)})
			require.NoError(t, err)
		}
		e.copySamples(op, "", now, c.us)
	}
	e.detect(now)
	for i, c := range cases {
		op := fmt.Sprintf("%s_%d", c.op, i)
		as := e.alerts(&monitor.AlertFilter{OperationType: op})
		if c.severity == "" {
			require.Empty(t, as, "%s at %d", op, c.us)
			continue
		}
		require.Len(t, as, 1, "%s at %d", op, c.us)
		require.Equal(t, c.severity, as[0].Severity, "%s at %dus", op, c.us)
	}

	// A critical multiplier below the threshold is refused, naming it.
	_, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "custom_4", CriticalMultiplier: ptr(2.5)})
	var argErr *monitor.ArgumentError
	require.ErrorAs(t, err, &argErr)
	require.Equal(t, "CriticalMultiplier", argErr.Argument)
	// An untracked operation raises nothing.
	e.baseline("quiet", 1000)
	_, err = e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "quiet", Tracked: ptr(false)})
	require.NoError(t, err)
	e.copySamples("quiet", "", now.Add(time.Minute), 9000)
	e.detect(now.Add(time.Minute))
	require.Empty(t, e.alerts(&monitor.AlertFilter{OperationType: "quiet"}))
}

func TestAlertDedupEscalationAndReopen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("merge", 1000)
	t0 := time.Now().Truncate(time.Minute)

	// A burst of 10,000 slow samples in one COPY is one alert.
	burst := make([]int64, 10000)
	for i := range burst {
		burst[i] = 2000 + int64(i%500)
	}
	e.copySamples("merge", "", t0, burst...)
	e.detect(t0)
	a := e.openAlert("merge")
	require.EqualValues(t, 1, a.Occurrences)
	require.Equal(t, monitor.SeverityWarning, a.Severity)
	require.InEpsilon(t, type7(burst, 0.99), float64(a.ActualDuration/time.Microsecond), 0.01)
	first := a.ID

	// Later minutes add to it; a worse one escalates; a milder one never lowers it.
	e.copySamples("merge", "", t0.Add(time.Minute), 6000, 900)
	e.copySamples("merge", "", t0.Add(2*time.Minute), 2100)
	changed := e.detect(t0.Add(2 * time.Minute))
	require.Len(t, changed, 1) // escalated
	a = e.openAlert("merge")
	require.Equal(t, first, a.ID)
	require.EqualValues(t, 3, a.Occurrences)
	require.Equal(t, monitor.SeverityCritical, a.Severity)
	require.Equal(t, t0.Add(3*time.Minute), a.LastSeenAt)
	require.Equal(t, t0, a.FirstSeenAt)

	// Scope is part of the key: a branch's regression is its own alert.
	e.copySamples("merge", "feature-x", t0.Add(3*time.Minute), 1) // registers the scope, no baseline yet
	e.detect(t0.Add(3 * time.Minute))
	require.Len(t, e.alerts(&monitor.AlertFilter{OperationType: "merge"}), 1)

	// Resolved, then the next violation opens a new alert.
	resolved, err := e.client.ResolveAlert(e.ctx, first, "oncall", "index rebuilt")
	require.NoError(t, err)
	require.False(t, resolved.Open())
	require.Equal(t, "oncall", resolved.ResolvedBy)
	require.Equal(t, "index rebuilt", resolved.ResolutionNote)
	e.copySamples("merge", "", t0.Add(4*time.Minute), 2500)
	e.detect(t0.Add(4 * time.Minute))
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
	now := time.Now()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			rows := make([]gen.CopyMetricsParams, per)
			for i := range rows {
				rows[i] = gen.CopyMetricsParams{OperationType: "hot", DurationMicroseconds: int64(3000 + w), RecordedAt: now}
			}
			_, err := gen.New(e.pool).CopyMetrics(context.Background(), rows)
			require.NoError(t, err)
		})
	}
	close(start)
	wg.Wait()
	// Every batch is in the histograms (one partial row each), exactly.
	require.EqualValues(t, writers*per, e.count(`SELECT sum(sample_count) FROM pggit.performance_histograms WHERE operation_type = 'hot' AND bucket_start >= $1`, now.Truncate(time.Minute)))
	e.detect(now)
	as := e.alerts(&monitor.AlertFilter{OperationType: "hot"})
	require.Len(t, as, 1)
	require.InEpsilon(t, 3000+writers-1, float64(as[0].ActualDuration/time.Microsecond), 0.01)
}

func TestAcknowledgeAndResolve(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.baseline("op", 1000)
	t0 := time.Now().Truncate(time.Minute)
	e.copySamples("op", "", t0, 3000)
	e.detect(t0)
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
	e.copySamples("op", "", t0.Add(time.Minute), 3000)
	e.detect(t0.Add(time.Minute))
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
	now := time.Now()
	e.copySamples("merge_branches", "", now, 9000)
	e.copySamples("commit", "", now, 9000)
	e.detect(now)

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
	e.detect(time.Now())

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
	now := time.Now()
	e.copySamples("a", "", now, 2500)
	e.copySamples("b", "", now, 7000)
	e.detect(now)
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
