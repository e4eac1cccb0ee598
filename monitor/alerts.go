package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pggit/pggit-monitor/gen"
)

// Alert types.
const (
	AlertThresholdExceeded   = "THRESHOLD_EXCEEDED"
	AlertAnomaly             = "ANOMALY"
	AlertDegradation         = "DEGRADATION"
	AlertCorrelation         = "CORRELATION"
	AlertBaselineRecalcError = "BASELINE_RECALC_ERROR"
)

// Severities, from the most to the least urgent.
const (
	SeverityCritical = "CRITICAL"
	SeverityWarning  = "WARNING"
	SeverityInfo     = "INFO"
)

// All matches every operation or every alert type in a snooze.
const All = "ALL"

// DefaultSnooze is the length of a snooze when SnoozeParams.Duration is zero.
const DefaultSnooze = time.Hour

// ErrAlreadyResolved is returned by ResolveAlert for an alert that is resolved.
var ErrAlreadyResolved = errors.New("pggit: alert already resolved")

// Alert is a regression (or another condition) of one (operation, scope).
// There is at most one open alert per (operation, scope, type): further
// violations add to its occurrence count and can only raise its severity.
type Alert struct {
	ID            int64
	OperationType string
	Scope         string
	Type          string // AlertThresholdExceeded, ...
	Severity      string // SeverityCritical, SeverityWarning, SeverityInfo
	// The worst violation while open: the sample's duration, the baseline p99
	// it was compared with, and their ratio.
	ActualDuration      time.Duration
	BaselineP99         time.Duration
	ViolationMultiplier float64
	// ThresholdMultiplier in force when the alert opened.
	ThresholdMultiplier float64
	CreatedAt           time.Time
	FirstSeenAt         time.Time
	LastSeenAt          time.Time
	Occurrences         int64
	// MetricID is the sample that opened the alert, WorstMetricID the worst one.
	MetricID      int64
	WorstMetricID int64
	BaselineID    int64
	ExecutionID   int64 // recalculation run, for BASELINE_RECALC_ERROR
	// DetectedAt is the sample time at which a detector raised the alert
	// (zero for alerts raised by hand or by a recalculation). FirstSeenAt is
	// the start of the first offending window, or the change point.
	DetectedAt     time.Time
	AcknowledgedAt time.Time
	AcknowledgedBy string
	ResolvedAt     time.Time
	ResolvedBy     string
	ResolutionNote string
	Details        json.RawMessage
	// Snoozed says a snooze matched when the alert was raised: it is recorded
	// but not notified. SnoozeID is that snooze.
	Snoozed  bool
	SnoozeID int64
}

// Open reports whether the alert is not resolved.
func (a *Alert) Open() bool { return a.ResolvedAt.IsZero() }

// Acknowledged reports whether someone acknowledged the alert.
func (a *Alert) Acknowledged() bool { return !a.AcknowledgedAt.IsZero() }

// AlertFilter selects alerts for ListAlerts. A nil *AlertFilter lists the
// newest DefaultAlertLimit alerts.
type AlertFilter struct {
	// OpenOnly leaves out resolved alerts.
	OpenOnly bool
	// Severity, Type and OperationType match exactly when not empty.
	Severity      string
	Type          string
	OperationType string
	// Since keeps alerts last seen at or after it, when not zero.
	Since time.Time
	// Limit is the most alerts returned, newest first. Defaults to
	// DefaultAlertLimit; at most 10,000.
	Limit int
}

// DefaultAlertLimit is the default AlertFilter.Limit.
const DefaultAlertLimit = 100

// ListAlerts returns alerts, newest first.
func (c *Client) ListAlerts(ctx context.Context, f *AlertFilter) ([]*Alert, error) {
	var v AlertFilter
	if f != nil {
		v = *f
	}
	if v.Limit == 0 {
		v.Limit = DefaultAlertLimit
	}
	if v.Limit < 1 || v.Limit > 10000 {
		return nil, argError("Limit", "must be between 1 and 10000 (0 for the default %d), got %d", DefaultAlertLimit, v.Limit)
	}
	if v.Severity != "" && v.Severity != SeverityCritical && v.Severity != SeverityWarning && v.Severity != SeverityInfo {
		return nil, argError("Severity", "must be one of CRITICAL, WARNING, INFO (or empty for all), got %q", v.Severity)
	}
	if v.Type != "" && !validAlertType(v.Type) {
		return nil, argError("Type", "must be one of THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION, CORRELATION, BASELINE_RECALC_ERROR (or empty for all), got %q", v.Type)
	}
	var since *time.Time
	if !v.Since.IsZero() {
		since = &v.Since
	}
	rows, err := c.queries.ListAlerts(ctx, gen.ListAlertsParams{
		OpenOnly:      v.OpenOnly,
		Severity:      nonEmpty(v.Severity),
		AlertType:     nonEmpty(v.Type),
		OperationType: nonEmpty(v.OperationType),
		Since:         since,
		MaxRows:       int32(v.Limit),
	})
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]*Alert, 0, len(rows))
	for _, r := range rows {
		out = append(out, alertFromRow(r))
	}
	return out, nil
}

// Alert returns one alert, or ErrNotFound.
func (c *Client) Alert(ctx context.Context, id int64) (*Alert, error) {
	row, err := c.queries.GetAlert(ctx, id)
	if err != nil {
		return nil, mapError(err)
	}
	return alertFromRow(row), nil
}

// AcknowledgeAlert records that by (defaults to the database user when empty)
// has seen the alert. The first acknowledgement is kept; acknowledging again
// changes nothing. ErrNotFound when there is no such alert.
func (c *Client) AcknowledgeAlert(ctx context.Context, id int64, by string) (*Alert, error) {
	return acknowledgeAlert(ctx, c.queries, id, by)
}

// AcknowledgeAlertTx is AcknowledgeAlert inside the caller's transaction.
func (c *Client) AcknowledgeAlertTx(ctx context.Context, tx pgx.Tx, id int64, by string) (*Alert, error) {
	return acknowledgeAlert(ctx, c.queries.WithTx(tx), id, by)
}

func acknowledgeAlert(ctx context.Context, q *gen.Queries, id int64, by string) (*Alert, error) {
	row, err := q.AcknowledgeAlert(ctx, id, nonEmpty(by))
	if err != nil {
		return nil, mapAlertError(err)
	}
	return alertFromRow(row), nil
}

// ResolveAlert closes the alert; the next violation of the same (operation,
// scope, type) opens a new one. by defaults to the database user when empty.
// ErrNotFound when there is no such alert, ErrAlreadyResolved when it is
// resolved already.
func (c *Client) ResolveAlert(ctx context.Context, id int64, by, notes string) (*Alert, error) {
	return resolveAlert(ctx, c.queries, id, by, notes)
}

// ResolveAlertTx is ResolveAlert inside the caller's transaction.
func (c *Client) ResolveAlertTx(ctx context.Context, tx pgx.Tx, id int64, by, notes string) (*Alert, error) {
	return resolveAlert(ctx, c.queries.WithTx(tx), id, by, notes)
}

func resolveAlert(ctx context.Context, q *gen.Queries, id int64, by, notes string) (*Alert, error) {
	row, err := q.ResolveAlert(ctx, id, nonEmpty(by), nonEmpty(notes))
	if err != nil {
		return nil, mapAlertError(err)
	}
	return alertFromRow(row), nil
}

// mapAlertError adds the alert-specific SQLSTATEs to mapError.
func mapAlertError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "P0002": // no_data_found
			return fmt.Errorf("%w: %s", ErrNotFound, pgErr.Message)
		case "55000": // object_not_in_prerequisite_state
			return fmt.Errorf("%w: %s", ErrAlreadyResolved, pgErr.Message)
		}
	}
	return mapError(err)
}

// SnoozeParams describe a snooze: alerts of OperationType (or All) and Type
// (or All) raised before it ends are recorded, marked snoozed, and not
// notified.
type SnoozeParams struct {
	// OperationType is an operation name or All. Defaults to All.
	OperationType string
	// Type is an alert type or All. Defaults to All.
	Type string
	// Duration of the snooze, 1 minute..30 days, rounded up to whole
	// minutes. Defaults to DefaultSnooze (1 hour).
	Duration time.Duration
	// Reason is kept for the audit trail.
	Reason string
	// CreatedBy defaults to the database user.
	CreatedBy string
}

// SnoozeAlerts stores a snooze and returns its id. Bad parameters return an
// *ArgumentError and store nothing.
func (c *Client) SnoozeAlerts(ctx context.Context, p SnoozeParams) (int64, error) {
	return snoozeAlerts(ctx, c.queries, p)
}

// SnoozeAlertsTx is SnoozeAlerts inside the caller's transaction.
func (c *Client) SnoozeAlertsTx(ctx context.Context, tx pgx.Tx, p SnoozeParams) (int64, error) {
	return snoozeAlerts(ctx, c.queries.WithTx(tx), p)
}

func snoozeAlerts(ctx context.Context, q *gen.Queries, p SnoozeParams) (int64, error) {
	if p.OperationType == "" {
		p.OperationType = All
	}
	if p.Type == "" {
		p.Type = All
	}
	if p.Duration == 0 {
		p.Duration = DefaultSnooze
	}
	minutes := int64(math.Ceil(p.Duration.Minutes()))
	if p.Duration < 0 {
		minutes = int64(p.Duration / time.Minute) // negative; the database names the range
	}
	minutes = max(min(minutes, math.MaxInt32), math.MinInt32)
	id, err := q.SnoozeAlerts(ctx, gen.SnoozeAlertsParams{
		OperationType: p.OperationType,
		AlertType:     p.Type,
		SnoozeMinutes: int32(minutes),
		SnoozeReason:  nonEmpty(p.Reason),
		CreatedBy:     nonEmpty(p.CreatedBy),
	})
	return id, mapError(err)
}

// IsAlertSnoozed reports whether an active snooze matches (operationType,
// alertType) exactly or through All, now.
func (c *Client) IsAlertSnoozed(ctx context.Context, operationType, alertType string) (bool, error) {
	ok, err := c.queries.IsAlertSnoozed(ctx, operationType, alertType)
	return ok, mapError(err)
}

// Snooze is a stored snooze.
type Snooze struct {
	ID            int64
	OperationType string
	Type          string
	Until         time.Time
	Reason        string
	CreatedBy     string
	CreatedAt     time.Time
	// Cancelled is set when the snooze was ended early by Unsnooze.
	CancelledAt time.Time
	CancelledBy string
}

// Active reports whether the snooze matches alerts at time now.
func (s *Snooze) Active(now time.Time) bool { return s.CancelledAt.IsZero() && now.Before(s.Until) }

// Unsnooze ends a snooze early; it is kept for audit. by defaults to the
// database user when empty. Ending an ended snooze changes nothing.
// ErrNotFound when there is no such snooze.
func (c *Client) Unsnooze(ctx context.Context, id int64, by string) (*Snooze, error) {
	return unsnooze(ctx, c.queries, id, by)
}

// UnsnoozeTx is Unsnooze inside the caller's transaction.
func (c *Client) UnsnoozeTx(ctx context.Context, tx pgx.Tx, id int64, by string) (*Snooze, error) {
	return unsnooze(ctx, c.queries.WithTx(tx), id, by)
}

func unsnooze(ctx context.Context, q *gen.Queries, id int64, by string) (*Snooze, error) {
	row, err := q.UnsnoozeAlerts(ctx, id, nonEmpty(by))
	if err != nil {
		return nil, mapAlertError(err)
	}
	return snoozeFromRow(row), nil
}

// ListSnoozes returns snoozes, newest first: only those matching now when
// activeOnly. At most limit (1..10,000; 0 means DefaultAlertLimit).
func (c *Client) ListSnoozes(ctx context.Context, activeOnly bool, limit int) ([]*Snooze, error) {
	if limit == 0 {
		limit = DefaultAlertLimit
	}
	if limit < 1 || limit > 10000 {
		return nil, argError("limit", "must be between 1 and 10000 (0 for the default %d), got %d", DefaultAlertLimit, limit)
	}
	rows, err := c.queries.ListSnoozes(ctx, activeOnly, int32(limit))
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]*Snooze, 0, len(rows))
	for _, r := range rows {
		out = append(out, snoozeFromRow(r))
	}
	return out, nil
}

func validAlertType(t string) bool {
	switch t {
	case AlertThresholdExceeded, AlertAnomaly, AlertDegradation, AlertCorrelation, AlertBaselineRecalcError:
		return true
	}
	return false
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// AlertFromRow converts a row of pggit.performance_alerts, as the generated
// queries return it, to an Alert.
func AlertFromRow(r *gen.Alert) *Alert { return alertFromRow(*r) }

func alertFromRow(r gen.Alert) *Alert {
	return &Alert{
		ID:                  r.AlertID,
		OperationType:       r.OperationType,
		Scope:               r.Scope,
		Type:                r.AlertType,
		Severity:            r.Severity,
		ActualDuration:      time.Duration(deref(r.ActualDurationMicroseconds)) * time.Microsecond,
		BaselineP99:         microsPtr(r.BaselineP99Microseconds),
		ViolationMultiplier: deref(r.ViolationMultiplier),
		ThresholdMultiplier: deref(r.ThresholdMultiplier),
		CreatedAt:           r.CreatedAt,
		FirstSeenAt:         r.FirstSeenAt,
		LastSeenAt:          r.LastSeenAt,
		Occurrences:         r.OccurrenceCount,
		MetricID:            deref(r.MetricID),
		WorstMetricID:       deref(r.WorstMetricID),
		BaselineID:          deref(r.BaselineID),
		ExecutionID:         deref(r.ExecutionID),
		DetectedAt:          deref(r.DetectedAt),
		AcknowledgedAt:      deref(r.AcknowledgedAt),
		AcknowledgedBy:      deref(r.AcknowledgedBy),
		ResolvedAt:          deref(r.ResolvedAt),
		ResolvedBy:          deref(r.ResolvedBy),
		ResolutionNote:      deref(r.ResolutionNotes),
		Details:             r.Details,
		Snoozed:             r.Snoozed,
		SnoozeID:            deref(r.SnoozeID),
	}
}

func snoozeFromRow(r gen.Snooze) *Snooze {
	return &Snooze{
		ID:            r.SnoozeID,
		OperationType: r.OperationType,
		Type:          r.AlertType,
		Until:         r.SnoozeUntil,
		Reason:        deref(r.SnoozeReason),
		CreatedBy:     r.CreatedBy,
		CreatedAt:     r.CreatedAt,
		CancelledAt:   deref(r.CancelledAt),
		CancelledBy:   deref(r.CancelledBy),
	}
}
