package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pggit/pggit-monitor/gen"
)

// Defaults of RecalculateOpts.
const (
	DefaultLookbackDays = 7
	DefaultMinSamples   = 10
	DefaultMaxExecution = 60 * time.Second
)

// Config configures a Client. A nil *Config is valid and means all defaults.
type Config struct {
	// Logger receives the client's logs (run summaries, flush failures).
	// Defaults to slog.Default().
	Logger *slog.Logger
	// KeyRing encrypts and decrypts webhook secrets. Defaults to the key ring
	// in PGGIT_WEBHOOK_KEYS or PGGIT_WEBHOOK_KEYS_FILE (see LoadKeyRing); when
	// none is configured, webhook secrets cannot be stored or read
	// (ErrNoKeyRing) and everything else works.
	KeyRing *KeyRing
}

// Client is the entry point to pggit-monitor for a host service. It is safe for
// concurrent use.
type Client struct {
	pool    *pgxpool.Pool
	queries *gen.Queries
	logger  *slog.Logger
	keys    *KeyRing
}

// New returns a Client over pool. The pool's database must be migrated (see
// package migrate). The Client does not own the pool.
func New(pool *pgxpool.Pool, cfg *Config) (*Client, error) {
	if pool == nil {
		return nil, errors.New("pggit: New: pool must not be nil")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	keys := cfg.KeyRing
	if keys == nil {
		var err error
		if keys, err = LoadKeyRing(); err != nil {
			return nil, err
		}
	}
	return &Client{pool: pool, queries: gen.New(pool), logger: logger, keys: keys}, nil
}

// Queries returns the sqlc-generated queries bound to the client's pool, for
// calls this package does not wrap.
func (c *Client) Queries() *gen.Queries { return c.queries }

// Reason says why a recalculation ran; it is kept in the baseline history.
type Reason string

// Reasons a caller may give. A forced run is recorded with reason "force".
const (
	ReasonManual    Reason = "manual"
	ReasonScheduled Reason = "scheduled"
)

// RecalculateOpts are the options of a baseline recalculation. A nil
// *RecalculateOpts means all defaults.
type RecalculateOpts struct {
	// LookbackDays is the window of samples, 1..365. Defaults to
	// DefaultLookbackDays (7).
	LookbackDays int
	// MinSamples is the fewest samples that make a baseline, >= 1. Defaults to
	// DefaultMinSamples (10).
	MinSamples int
	// Force replaces baselines even when p99 moved less than 5%.
	Force bool
	// MaxExecution bounds the run's wall-clock time, 1s..24h, rounded up to
	// whole seconds; operations not reached in time are reported TIMEOUT.
	// Defaults to DefaultMaxExecution (60s). Ignored by RecalculateBaseline.
	MaxExecution time.Duration
	// Reason is recorded in the history. Defaults to ReasonManual.
	Reason Reason
	// Method is how RecalculateAllBaselinesRolling computes the statistics:
	// MethodExact, MethodHistogram or MethodAuto. Defaults to MethodAuto.
	// Ignored by RecalculateBaseline (always exact).
	Method Method
}

// Method is how a recalculation computes the statistics of a window.
type Method string

// Methods of RecalculateOpts.Method; a run records MethodExact or
// MethodHistogram (see docs/baselines.md).
const (
	// MethodAuto is exact while the window holds at most
	// recalc_exact_max_samples samples (a setting, default 1,000,000) and
	// starts after now() - retention_samples_days; histograms otherwise.
	MethodAuto Method = "auto"
	// MethodExact is percentile_cont over every sample of the window.
	MethodExact Method = "exact"
	// MethodHistogram merges the window's histograms: quantiles within 1% of
	// the exact ones; count, min, max and mean exact.
	MethodHistogram Method = "histogram"
)

func (o *RecalculateOpts) withDefaults() RecalculateOpts {
	var v RecalculateOpts
	if o != nil {
		v = *o
	}
	if v.LookbackDays == 0 {
		v.LookbackDays = DefaultLookbackDays
	}
	if v.MinSamples == 0 {
		v.MinSamples = DefaultMinSamples
	}
	if v.MaxExecution == 0 {
		v.MaxExecution = DefaultMaxExecution
	}
	if v.Reason == "" {
		v.Reason = ReasonManual
	}
	if v.Method == "" {
		v.Method = MethodAuto
	}
	return v
}

func (o *RecalculateOpts) validate() error {
	switch o.Method {
	case MethodAuto, MethodExact, MethodHistogram:
		return nil
	}
	return argError("Method", "must be one of auto, exact, histogram, got %q", string(o.Method))
}

// Result statuses of one operation in a recalculation.
const (
	StatusUpdated          = "UPDATED"
	StatusUnchanged        = "UNCHANGED"
	StatusInsufficientData = "INSUFFICIENT_DATA"
	StatusFailed           = "FAILED"
	StatusTimeout          = "TIMEOUT"
)

// Statuses of a recalculation run.
const (
	RunRunning = "RUNNING"
	RunSuccess = "SUCCESS"
	RunPartial = "PARTIAL"
	RunTimeout = "TIMEOUT"
	RunFailed  = "FAILED"
)

// OperationResult is what a recalculation did to one (operation, scope).
type OperationResult struct {
	OperationType string
	Scope         string
	// Status is one of StatusUpdated, StatusUnchanged, StatusInsufficientData,
	// StatusFailed, StatusTimeout.
	Status      string
	SampleCount int64
	// OldP99 is the p99 of the baseline before the run; zero when there was none.
	OldP99 time.Duration
	// NewP99 is the p99 computed by the run; zero when not computed.
	NewP99 time.Duration
	// PercentChange of p99, nil when there was no previous baseline or no new p99.
	PercentChange *float64
	// BaselineID is the active baseline after the run, 0 when there is none.
	BaselineID int64
	Message    string
	// Method is how the statistics were computed: MethodExact or
	// MethodHistogram.
	Method Method
}

// RecalcExecution is the record of one recalculation run.
type RecalcExecution struct {
	ID           int64
	Status       string // RunSuccess, RunPartial, RunTimeout, RunFailed
	Reason       string
	StartedAt    time.Time
	FinishedAt   time.Time
	Duration     time.Duration
	LookbackDays int
	MinSamples   int
	Force        bool
	// WindowStart and WindowEnd are the window actually used: from
	// histograms, aligned to their buckets as [WindowStart, WindowEnd).
	WindowStart time.Time
	WindowEnd   time.Time
	// Method is how the run computed statistics: MethodExact or
	// MethodHistogram.
	Method       Method
	Total        int
	Updated      int
	Unchanged    int
	Insufficient int
	Failed       int
	TimedOut     int
	// Error holds the run's failure, or a summary of the failed operations.
	Error string
}

// RecalculateResult is the outcome of RecalculateAllBaselinesRolling.
type RecalculateResult struct {
	Execution  *RecalcExecution
	Operations []*OperationResult
}

// RecalculateAllBaselinesRolling recalculates the baseline of every tracked
// (operation, scope) from one grouped pass over the samples of the lookback
// window. Per-operation failures and timeouts are reported in the result, not
// as an error; a run that failed as a whole returns its result and an error
// wrapping ErrRecalcFailed. Bad options return an *ArgumentError.
func (c *Client) RecalculateAllBaselinesRolling(ctx context.Context, opts *RecalculateOpts) (*RecalculateResult, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	defer conn.Release()
	q := gen.New(conn)
	rows, err := q.RecalculateAllBaselinesRolling(ctx, gen.RecalculateAllBaselinesRollingParams{
		LookbackDays:        int32(o.LookbackDays),
		MinSamples:          int32(o.MinSamples),
		Force:               o.Force,
		MaxExecutionSeconds: durationSeconds(o.MaxExecution),
		Reason:              string(o.Reason),
		Method:              string(o.Method),
	})
	if err != nil {
		return nil, mapError(err)
	}
	// The run is committed; its record is the last one this session started.
	exec, err := q.LastRecalcExecutionOfSession(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	res := &RecalculateResult{Execution: executionFromRow(exec), Operations: make([]*OperationResult, 0, len(rows))}
	for _, r := range rows {
		res.Operations = append(res.Operations, resultFromRow(r))
	}
	e := res.Execution
	c.logger.InfoContext(ctx, "pggit: baselines recalculated",
		slog.Int64("execution_id", e.ID), slog.String("status", e.Status),
		slog.Int("operations", e.Total), slog.Int("updated", e.Updated), slog.Int("unchanged", e.Unchanged),
		slog.Int("insufficient", e.Insufficient), slog.Int("failed", e.Failed), slog.Int("timed_out", e.TimedOut),
		slog.Duration("duration", e.Duration))
	if e.Status == RunFailed {
		return res, fmt.Errorf("%w: execution %d: %s", ErrRecalcFailed, e.ID, e.Error)
	}
	return res, nil
}

// RecalculateBaseline recalculates the baseline of one (operation, scope)
// with the same rules as RecalculateAllBaselinesRolling (MaxExecution is not
// used). The run is recorded as an execution of one operation.
func (c *Client) RecalculateBaseline(ctx context.Context, operationType, scope string, opts *RecalculateOpts) (*OperationResult, error) {
	o := opts.withDefaults()
	row, err := c.queries.RecalculateSingleBaselineSafe(ctx, gen.RecalculateSingleBaselineSafeParams{
		OperationType: operationType,
		Scope:         scope,
		LookbackDays:  int32(o.LookbackDays),
		MinSamples:    int32(o.MinSamples),
		Force:         o.Force,
		Reason:        string(o.Reason),
	})
	if err != nil {
		return nil, mapError(err)
	}
	return resultFromRow(row), nil
}

// RecalcExecution returns the record of one recalculation run.
func (c *Client) RecalcExecution(ctx context.Context, id int64) (*RecalcExecution, error) {
	row, err := c.queries.GetRecalcExecution(ctx, id)
	if err != nil {
		return nil, mapError(err)
	}
	return executionFromRow(row), nil
}

// Baseline is the active rolling baseline of one (operation, scope).
type Baseline struct {
	ID                  int64
	OperationType       string
	Scope               string
	SampleCount         int64
	Min, Max            time.Duration
	Mean, Stddev        time.Duration
	P50, P75, P90, P95  time.Duration
	P99                 time.Duration
	LookbackDays        int
	WindowStart         time.Time
	WindowEnd           time.Time
	ThresholdMultiplier float64
	CalculatedAt        time.Time
}

// Baselines returns the active baselines, of one operation when
// operationType is not empty, ordered by operation and scope.
func (c *Client) Baselines(ctx context.Context, operationType string) ([]*Baseline, error) {
	var filter *string
	if operationType != "" {
		filter = &operationType
	}
	rows, err := c.queries.ListActiveBaselines(ctx, filter)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]*Baseline, 0, len(rows))
	for _, r := range rows {
		out = append(out, baselineFromRow(r))
	}
	return out, nil
}

// Baseline returns the active baseline of (operationType, scope), or
// ErrNotFound.
func (c *Client) Baseline(ctx context.Context, operationType, scope string) (*Baseline, error) {
	row, err := c.queries.GetActiveBaseline(ctx, operationType, scope)
	if err != nil {
		return nil, mapError(err)
	}
	return baselineFromRow(row), nil
}

// OperationParams configure one operation: whether it is tracked and every
// detection threshold. Nil fields keep the current value (or the default, for
// an operation not seen yet). Detection uses a change at its next run.
type OperationParams struct {
	OperationType string
	// Category groups operations in dashboards. Defaults to "general".
	Category *string
	// Tracked operations get baselines and detection. Defaults to true.
	Tracked *bool
	// ThresholdMultiplier: a window whose p99 is at or above the baseline p99
	// x this raises THRESHOLD_EXCEEDED (WARNING), 1..1000. Defaults to 2.0.
	// Baselines record the value in force when they were calculated.
	ThresholdMultiplier *float64
	// CriticalMultiplier: at or above the baseline p99 x this the
	// THRESHOLD_EXCEEDED alert is CRITICAL; at least ThresholdMultiplier, at
	// most 1000. Defaults to 5.0.
	CriticalMultiplier *float64
	// MinWindowCount is the fewest samples in a window that can raise an
	// alert (THRESHOLD_EXCEEDED, ANOMALY); sparse operations get longer
	// windows, up to 1 hour. 1 opts in to the per-sample rule: any sample
	// over the threshold raises. 1..100000. Defaults to 20.
	MinWindowCount *int
	// AnomalyWarningZ and AnomalyCriticalZ: robust z-scores of a window's log
	// latency against the operation's history for that hour of day, 1..100,
	// critical >= warning. Default to 3.5 and 5.0.
	AnomalyWarningZ, AnomalyCriticalZ *float64
	// AnomalyConfirmK of the last AnomalyConfirmN windows must be anomalous
	// (1 <= k <= n <= 20). Default to 2 and 3.
	AnomalyConfirmK, AnomalyConfirmN *int
	// DegradationWarningRatio is the smallest sustained shift DEGRADATION
	// looks for (p99 after/before; the CUSUM is tuned to it), and
	// DegradationCriticalRatio makes it CRITICAL; > 1, critical >= warning,
	// at most 100. Default to 1.3 and 1.5.
	DegradationWarningRatio, DegradationCriticalRatio *float64
	// DegradationThreshold is the CUSUM's decision threshold (a
	// log-likelihood ratio), 1..1000: higher is slower and quieter.
	// Defaults to 12.
	DegradationThreshold *float64
	// ResolveAfter: an alert resolves itself after the operation has been
	// healthy this long, whole minutes from 1 minute to 7 days. Defaults to
	// 30 minutes.
	ResolveAfter *time.Duration
	Description  *string
}

// Operation is a registered operation with its settings.
type Operation struct {
	OperationType            string
	Category                 string
	Tracked                  bool
	ThresholdMultiplier      float64
	CriticalMultiplier       float64
	MinWindowCount           int
	AnomalyWarningZ          float64
	AnomalyCriticalZ         float64
	AnomalyConfirmK          int
	AnomalyConfirmN          int
	DegradationWarningRatio  float64
	DegradationCriticalRatio float64
	DegradationThreshold     float64
	ResolveAfter             time.Duration
	Description              string
	CreatedAt                time.Time
	UpdatedAt                time.Time
}

// ConfigureOperation registers or reconfigures an operation.
func (c *Client) ConfigureOperation(ctx context.Context, p OperationParams) (*Operation, error) {
	return c.configureOperation(ctx, c.queries, p)
}

// ConfigureOperationTx is ConfigureOperation inside the caller's transaction.
func (c *Client) ConfigureOperationTx(ctx context.Context, tx pgx.Tx, p OperationParams) (*Operation, error) {
	return c.configureOperation(ctx, c.queries.WithTx(tx), p)
}

// operationConstraints name the field a violated CHECK of
// pggit.performance_operation_types is about, for the settings that depend on
// each other (the current value may be the other half).
var operationConstraints = map[string]struct{ field, msg string }{
	"performance_operation_types_critical_check": {"CriticalMultiplier",
		"must be at least the operation's ThresholdMultiplier; this change would put it below (set both together)"},
	"performance_operation_types_anomaly_z_check": {"AnomalyCriticalZ",
		"must be at least the operation's AnomalyWarningZ; this change would put it below (set both together)"},
	"performance_operation_types_anomaly_confirm_check": {"AnomalyConfirmK",
		"must be at most the operation's AnomalyConfirmN; this change would put it above (set both together)"},
	"performance_operation_types_degradation_ratio_check": {"DegradationCriticalRatio",
		"must be at least the operation's DegradationWarningRatio; this change would put it below (set both together)"},
}

func (c *Client) configureOperation(ctx context.Context, q *gen.Queries, p OperationParams) (*Operation, error) {
	if err := validateName("OperationType", p.OperationType); err != nil {
		return nil, err
	}
	if p.Category != nil && (len(*p.Category) == 0 || len(*p.Category) > 100) {
		return nil, argError("Category", "must be a non-empty name of at most 100 characters, got %q", *p.Category)
	}
	for _, f := range []struct {
		name     string
		v        *float64
		min, max float64
		open     bool // min excluded
	}{
		{"ThresholdMultiplier", p.ThresholdMultiplier, 1, 1000, false},
		{"CriticalMultiplier", p.CriticalMultiplier, 1, 1000, false},
		{"AnomalyWarningZ", p.AnomalyWarningZ, 1, 100, false},
		{"AnomalyCriticalZ", p.AnomalyCriticalZ, 1, 100, false},
		{"DegradationWarningRatio", p.DegradationWarningRatio, 1, 100, true},
		{"DegradationCriticalRatio", p.DegradationCriticalRatio, 1, 100, true},
		{"DegradationThreshold", p.DegradationThreshold, 1, 1000, false},
	} {
		if f.v == nil {
			continue
		}
		if v := *f.v; math.IsNaN(v) || v > f.max || v < f.min || (f.open && v == f.min) {
			lo := "between %v and %v"
			if f.open {
				lo = "greater than %v and at most %v"
			}
			return nil, argError(f.name, "must be "+lo+", got %v", f.min, f.max, v)
		}
	}
	for _, f := range []struct {
		name     string
		v        *int
		min, max int
	}{
		{"MinWindowCount", p.MinWindowCount, 1, 100000},
		{"AnomalyConfirmK", p.AnomalyConfirmK, 1, 20},
		{"AnomalyConfirmN", p.AnomalyConfirmN, 1, 20},
	} {
		if f.v != nil && (*f.v < f.min || *f.v > f.max) {
			return nil, argError(f.name, "must be between %d and %d, got %d", f.min, f.max, *f.v)
		}
	}
	var resolveMinutes *int32
	if d := p.ResolveAfter; d != nil {
		if *d < time.Minute || *d > 7*24*time.Hour || *d%time.Minute != 0 {
			return nil, argError("ResolveAfter", "must be a whole number of minutes from 1m to 168h, got %s", *d)
		}
		m := int32(*d / time.Minute)
		resolveMinutes = &m
	}
	row, err := q.UpsertOperationType(ctx, gen.UpsertOperationTypeParams{
		OperationType:            p.OperationType,
		Category:                 p.Category,
		IsTracked:                p.Tracked,
		AlertThresholdMultiplier: p.ThresholdMultiplier,
		CriticalMultiplier:       p.CriticalMultiplier,
		Description:              p.Description,
		MinWindowCount:           int32Ptr(p.MinWindowCount),
		AnomalyWarningZ:          p.AnomalyWarningZ,
		AnomalyCriticalZ:         p.AnomalyCriticalZ,
		AnomalyConfirmK:          int32Ptr(p.AnomalyConfirmK),
		AnomalyConfirmN:          int32Ptr(p.AnomalyConfirmN),
		DegradationWarningRatio:  p.DegradationWarningRatio,
		DegradationCriticalRatio: p.DegradationCriticalRatio,
		DegradationThreshold:     p.DegradationThreshold,
		ResolveAfterMinutes:      resolveMinutes,
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if c, ok := operationConstraints[pgErr.ConstraintName]; ok {
			return nil, argError(c.field, "%s", c.msg)
		}
	}
	if err != nil {
		return nil, mapError(err)
	}
	return operationFromRow(row), nil
}

// Operation returns one registered operation with its settings, or
// ErrNotFound.
func (c *Client) Operation(ctx context.Context, operationType string) (*Operation, error) {
	row, err := c.queries.GetOperationType(ctx, operationType)
	if err != nil {
		return nil, mapError(err)
	}
	return operationFromRow(row), nil
}

func operationFromRow(row gen.OperationType) *Operation {
	return &Operation{
		OperationType:            row.OperationType,
		Category:                 row.Category,
		Tracked:                  row.IsTracked,
		ThresholdMultiplier:      row.AlertThresholdMultiplier,
		CriticalMultiplier:       row.CriticalMultiplier,
		MinWindowCount:           int(row.MinWindowCount),
		AnomalyWarningZ:          row.AnomalyWarningZ,
		AnomalyCriticalZ:         row.AnomalyCriticalZ,
		AnomalyConfirmK:          int(row.AnomalyConfirmK),
		AnomalyConfirmN:          int(row.AnomalyConfirmN),
		DegradationWarningRatio:  row.DegradationWarningRatio,
		DegradationCriticalRatio: row.DegradationCriticalRatio,
		DegradationThreshold:     row.DegradationThreshold,
		ResolveAfter:             time.Duration(row.ResolveAfterMinutes) * time.Minute,
		Description:              deref(row.Description),
		CreatedAt:                row.CreatedAt,
		UpdatedAt:                row.UpdatedAt,
	}
}

func int32Ptr(p *int) *int32 {
	if p == nil {
		return nil
	}
	v := int32(*p)
	return &v
}

func durationSeconds(d time.Duration) int32 {
	if d <= 0 {
		return int32(d / time.Second) // let the database name the bad value
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(s)
}

func micros(us float64) time.Duration {
	return time.Duration(math.Round(us * float64(time.Microsecond)))
}

func microsPtr(us *float64) time.Duration {
	if us == nil {
		return 0
	}
	return micros(*us)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func resultFromRow(r gen.RecalcResult) *OperationResult {
	return &OperationResult{
		OperationType: r.OperationType,
		Scope:         r.Scope,
		Status:        r.Status,
		SampleCount:   r.SampleCount,
		OldP99:        microsPtr(r.OldP99Microseconds),
		NewP99:        microsPtr(r.NewP99Microseconds),
		PercentChange: r.PercentChange,
		BaselineID:    deref(r.BaselineID),
		Message:       r.Message,
		Method:        Method(r.Method),
	}
}

func executionFromRow(r gen.RecalcExecution) *RecalcExecution {
	return &RecalcExecution{
		ID:           r.ExecutionID,
		Status:       r.Status,
		Reason:       r.Reason,
		StartedAt:    r.StartedAt,
		FinishedAt:   deref(r.FinishedAt),
		Duration:     time.Duration(deref(r.DurationMs) * float64(time.Millisecond)),
		LookbackDays: int(r.LookbackDays),
		MinSamples:   int(r.MinSamples),
		Force:        r.Force,
		WindowStart:  r.WindowStart,
		WindowEnd:    r.WindowEnd,
		Method:       Method(r.Method),
		Total:        int(r.OperationsTotal),
		Updated:      int(r.OperationsUpdated),
		Unchanged:    int(r.OperationsUnchanged),
		Insufficient: int(r.OperationsInsufficient),
		Failed:       int(r.OperationsFailed),
		TimedOut:     int(r.OperationsTimedOut),
		Error:        deref(r.ErrorMessage),
	}
}

func baselineFromRow(r gen.Baseline) *Baseline {
	return &Baseline{
		ID:                  r.BaselineID,
		OperationType:       r.OperationType,
		Scope:               r.Scope,
		SampleCount:         r.SampleCount,
		Min:                 time.Duration(r.MinMicroseconds) * time.Microsecond,
		Max:                 time.Duration(r.MaxMicroseconds) * time.Microsecond,
		Mean:                micros(r.MeanMicroseconds),
		Stddev:              micros(r.StddevMicroseconds),
		P50:                 micros(r.P50Microseconds),
		P75:                 micros(r.P75Microseconds),
		P90:                 micros(r.P90Microseconds),
		P95:                 micros(r.P95Microseconds),
		P99:                 micros(r.P99Microseconds),
		LookbackDays:        int(r.LookbackDays),
		WindowStart:         r.WindowStart,
		WindowEnd:           r.WindowEnd,
		ThresholdMultiplier: r.AlertThresholdMultiplier,
		CalculatedAt:        r.CalculatedAt,
	}
}
