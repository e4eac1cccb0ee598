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
}

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
	return v
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
	WindowStart  time.Time
	WindowEnd    time.Time
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

// OperationParams configure one operation. Nil fields keep the current value
// (or the default, for an operation not seen yet).
type OperationParams struct {
	OperationType string
	// Category groups operations in dashboards. Defaults to "general".
	Category *string
	// Tracked operations get baselines. Defaults to true.
	Tracked *bool
	// ThresholdMultiplier: a sample at or above p99 x this raises a
	// THRESHOLD_EXCEEDED alert, 1..1000. Defaults to 2.0. Detection uses it at
	// once; baselines record the value in force when they were calculated.
	ThresholdMultiplier *float64
	// CriticalMultiplier: a violation at or above p99 x this is CRITICAL,
	// below it WARNING; at least ThresholdMultiplier, at most 1000. Defaults
	// to 5.0.
	CriticalMultiplier *float64
	Description        *string
}

// Operation is a registered operation.
type Operation struct {
	OperationType       string
	Category            string
	Tracked             bool
	ThresholdMultiplier float64
	CriticalMultiplier  float64
	Description         string
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// ConfigureOperation registers or reconfigures an operation.
func (c *Client) ConfigureOperation(ctx context.Context, p OperationParams) (*Operation, error) {
	return c.configureOperation(ctx, c.queries, p)
}

// ConfigureOperationTx is ConfigureOperation inside the caller's transaction.
func (c *Client) ConfigureOperationTx(ctx context.Context, tx pgx.Tx, p OperationParams) (*Operation, error) {
	return c.configureOperation(ctx, c.queries.WithTx(tx), p)
}

func (c *Client) configureOperation(ctx context.Context, q *gen.Queries, p OperationParams) (*Operation, error) {
	if err := validateName("OperationType", p.OperationType); err != nil {
		return nil, err
	}
	if p.Category != nil && (len(*p.Category) == 0 || len(*p.Category) > 100) {
		return nil, argError("Category", "must be a non-empty name of at most 100 characters, got %q", *p.Category)
	}
	if m := p.ThresholdMultiplier; m != nil && (math.IsNaN(*m) || *m < 1 || *m > 1000) {
		return nil, argError("ThresholdMultiplier", "must be between 1 and 1000, got %v", *m)
	}
	if m := p.CriticalMultiplier; m != nil && (math.IsNaN(*m) || *m < 1 || *m > 1000) {
		return nil, argError("CriticalMultiplier", "must be between 1 and 1000, got %v", *m)
	}
	row, err := q.UpsertOperationType(ctx, gen.UpsertOperationTypeParams{
		OperationType:            p.OperationType,
		Category:                 p.Category,
		IsTracked:                p.Tracked,
		AlertThresholdMultiplier: p.ThresholdMultiplier,
		CriticalMultiplier:       p.CriticalMultiplier,
		Description:              p.Description,
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName == "performance_operation_types_critical_check" {
		return nil, argError("CriticalMultiplier", "must be at least the operation's ThresholdMultiplier; this change would put it below (set both together)")
	}
	if err != nil {
		return nil, mapError(err)
	}
	return &Operation{
		OperationType:       row.OperationType,
		Category:            row.Category,
		Tracked:             row.IsTracked,
		ThresholdMultiplier: row.AlertThresholdMultiplier,
		CriticalMultiplier:  row.CriticalMultiplier,
		Description:         deref(row.Description),
		CreatedAt:           row.CreatedAt,
		UpdatedAt:           row.UpdatedAt,
	}, nil
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
