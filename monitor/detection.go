package monitor

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggit/pggit-monitor/gen"
)

// DefaultBacktestStep is how often a backtest runs detection when
// BacktestParams.Step is zero: every minute of sample time, as the worker does.
const DefaultBacktestStep = time.Minute

// MaxBacktestSpan is the longest history one backtest replays.
const MaxBacktestSpan = 31 * 24 * time.Hour

// RunDetection runs every detector (THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION,
// CORRELATION) over the minute buckets that end at or before asOf and were
// not evaluated yet, and returns the alerts it opened, changed (severity
// raised, members added) or resolved. A zero asOf means now, less the settle
// delay (setting detection_settle_seconds, 10 s) that lets recorders flush.
//
// Alert times are sample times, so a late call gives the alerts calls every
// minute would have given; a second call with the same asOf changes nothing;
// concurrent calls from several workers are serialized (one of them does the
// work). The worker calls it every minute.
func (c *Client) RunDetection(ctx context.Context, asOf time.Time) ([]*Alert, error) {
	return runDetection(ctx, c.queries, asOf)
}

// RunDetectionTx is RunDetection inside the caller's transaction.
func (c *Client) RunDetectionTx(ctx context.Context, tx pgx.Tx, asOf time.Time) ([]*Alert, error) {
	return runDetection(ctx, c.queries.WithTx(tx), asOf)
}

func runDetection(ctx context.Context, q *gen.Queries, asOf time.Time) ([]*Alert, error) {
	var at *time.Time
	if !asOf.IsZero() {
		at = &asOf
	}
	rows, err := q.RunDetection(ctx, at)
	if err != nil {
		return nil, mapError(err)
	}
	return alertsFromRows(rows), nil
}

// AcceptRegression accepts the regression of a THRESHOLD_EXCEEDED, ANOMALY or
// DEGRADATION alert as the operation's new normal: the alert is resolved by
// by (the database user when empty), its change point (FirstSeenAt) becomes
// the start of the operation's samples for baselines and detection, and the
// baseline is recalculated from it at once (reason "accepted", in the
// baseline history; a level within 5% of the old baseline keeps it).
//
// Until then, recalculations leave out the samples of an operation from the
// FirstSeenAt of its open regression alert, so a regression never becomes
// its own baseline. ErrNotFound when there is no such alert,
// ErrAlreadyResolved when it is resolved, an *ArgumentError for another type.
func (c *Client) AcceptRegression(ctx context.Context, id int64, by string) (*Alert, error) {
	return acceptRegression(ctx, c.queries, id, by)
}

// AcceptRegressionTx is AcceptRegression inside the caller's transaction.
func (c *Client) AcceptRegressionTx(ctx context.Context, tx pgx.Tx, id int64, by string) (*Alert, error) {
	return acceptRegression(ctx, c.queries.WithTx(tx), id, by)
}

func acceptRegression(ctx context.Context, q *gen.Queries, id int64, by string) (*Alert, error) {
	row, err := q.AcceptRegression(ctx, id, nonEmpty(by))
	if err != nil {
		return nil, mapAlertError(err)
	}
	return alertFromRow(row), nil
}

// BacktestParams select the history a backtest replays.
type BacktestParams struct {
	// From and To bound the replayed sample time; To - From is at most
	// MaxBacktestSpan. To defaults to now.
	From, To time.Time
	// OperationType restricts the replay to one operation (all when empty).
	OperationType string
	// Step is how often detection runs in the replay, a whole number of
	// minutes from 1 minute to 1 day. Defaults to DefaultBacktestStep.
	Step time.Duration
}

// BacktestResult is what a backtest found.
type BacktestResult struct {
	From, To time.Time
	// Alerts that would have fired, as they stand at To, by id.
	Alerts []*Alert
	// Summary counts the alerts by type and severity.
	Summary []BacktestCount
}

// BacktestCount is one line of a backtest summary.
type BacktestCount struct {
	Type     string
	Severity string
	// Alerts of this type and severity; Resolved of them were resolved by
	// To; Operations is how many operations they concern.
	Alerts, Resolved, Operations int
}

// Backtest replays detection over stored history, as if it had never run
// from p.From on (no detector state, references rebuilt from the history
// before From, detector alerts from From on set aside), and returns the
// alerts that would have fired. It writes nothing: the replay is rolled back
// inside the database before it returns. It holds the detection lock while it
// runs, so the worker's detection waits. This is how a team tunes its
// thresholds (ConfigureOperation) on its own data before turning paging on.
func (c *Client) Backtest(ctx context.Context, p BacktestParams) (*BacktestResult, error) {
	if p.To.IsZero() {
		p.To = time.Now()
	}
	if p.From.IsZero() {
		return nil, argError("From", "must be set (the start of the replayed history)")
	}
	if !p.From.Before(p.To) {
		return nil, argError("From", "must be before To, got %s and %s", p.From.Format(time.RFC3339), p.To.Format(time.RFC3339))
	}
	if p.To.Sub(p.From) > MaxBacktestSpan {
		return nil, argError("To", "must be at most %s after From, got %s", MaxBacktestSpan, p.To.Sub(p.From))
	}
	if p.Step == 0 {
		p.Step = DefaultBacktestStep
	}
	if p.Step < time.Minute || p.Step > 24*time.Hour || p.Step%time.Minute != 0 {
		return nil, argError("Step", "must be a whole number of minutes from 1m to 24h, got %s", p.Step)
	}
	rows, err := c.queries.BacktestDetection(ctx, p.From, p.To, nonEmpty(p.OperationType), int32(p.Step/time.Second))
	if err != nil {
		return nil, mapError(err)
	}
	res := &BacktestResult{From: p.From, To: p.To, Alerts: alertsFromRows(rows)}
	type key struct{ typ, sev string }
	counts := map[key]*BacktestCount{}
	ops := map[key]map[string]bool{}
	for _, a := range res.Alerts {
		k := key{a.Type, a.Severity}
		if counts[k] == nil {
			counts[k] = &BacktestCount{Type: a.Type, Severity: a.Severity}
			ops[k] = map[string]bool{}
		}
		counts[k].Alerts++
		if !a.Open() {
			counts[k].Resolved++
		}
		ops[k][a.OperationType+"\x00"+a.Scope] = true
	}
	for k, n := range counts {
		n.Operations = len(ops[k])
		res.Summary = append(res.Summary, *n)
	}
	sort.Slice(res.Summary, func(i, j int) bool {
		a, b := res.Summary[i], res.Summary[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return severityRank(a.Severity) > severityRank(b.Severity)
	})
	return res, nil
}

// DetectionRun is the record of one run of detection that evaluated new
// minute buckets.
type DetectionRun struct {
	ID         int64
	StartedAt  time.Time
	Duration   time.Duration
	AsOf       time.Time
	From, To   time.Time // the minute buckets evaluated: [From, To)
	Operations int       // operations judged in the last minute
	Opened     int
	Changed    int
	Resolved   int
}

// LastDetectionRun returns the newest detection run, or ErrNotFound before
// the first.
func (c *Client) LastDetectionRun(ctx context.Context) (*DetectionRun, error) {
	r, err := c.queries.LastDetectionRun(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	return &DetectionRun{
		ID:         r.RunID,
		StartedAt:  r.StartedAt,
		Duration:   time.Duration(deref(r.DurationMs) * float64(time.Millisecond)),
		AsOf:       r.AsOf,
		From:       r.EvaluatedFrom,
		To:         r.EvaluatedTo,
		Operations: int(r.Operations),
		Opened:     int(r.AlertsOpened),
		Changed:    int(r.AlertsChanged),
		Resolved:   int(r.AlertsResolved),
	}, nil
}

// LatencyQuantiles returns quantiles (each in [0, 1]) of (operationType,
// scope) over [from, to), from the histograms: each within 1% of the exact
// percentile_cont over the samples, whatever the window. Zero durations when
// the window holds no samples.
func (c *Client) LatencyQuantiles(ctx context.Context, operationType, scope string, from, to time.Time, quantiles ...float64) ([]time.Duration, error) {
	if len(quantiles) == 0 {
		return nil, argError("quantiles", "must hold at least one quantile")
	}
	for _, q := range quantiles {
		if !(q >= 0 && q <= 1) {
			return nil, argError("quantiles", "must be between 0 and 1, got %v", q)
		}
	}
	vals, err := c.queries.HistogramQuantiles(ctx, gen.HistogramQuantilesParams{
		OperationType: operationType, Scope: scope, FromTime: from, ToTime: to, Quantiles: quantiles})
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]time.Duration, len(quantiles))
	for i, v := range vals {
		out[i] = micros(v)
	}
	return out, nil
}

func alertsFromRows(rows []gen.Alert) []*Alert {
	out := make([]*Alert, 0, len(rows))
	for _, r := range rows {
		out = append(out, alertFromRow(r))
	}
	return out
}

func severityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 3
	case SeverityWarning:
		return 2
	case SeverityInfo:
		return 1
	}
	return 0
}

// String formats a backtest count for logs and the CLI.
func (b BacktestCount) String() string {
	return fmt.Sprintf("%s %s: %d alerts (%d resolved) on %d operations", b.Type, b.Severity, b.Alerts, b.Resolved, b.Operations)
}
