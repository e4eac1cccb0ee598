package monitor

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/pggit/pggit-monitor/gen"
)

// Sample is one timed execution of an operation.
type Sample struct {
	// OperationType names the operation ("merge_branches"): non-empty, at most
	// 200 characters, no control characters. Required.
	OperationType string
	// Duration is how long it took; must be positive. Stored in whole
	// microseconds, rounded up (a 300ns call is stored as 1µs).
	Duration time.Duration
	// Scope narrows the baseline (a branch, a tenant); empty means global.
	// At most 200 characters, not blank, no control characters. Baselines
	// are kept per (operation, scope).
	Scope string
	// UserName is optional; when set, a name like OperationType.
	UserName string
	// Metadata is optional JSON.
	Metadata json.RawMessage
	// RecordedAt defaults to the time of the Record call.
	RecordedAt time.Time
}

func validateName(argument, name string) error {
	if strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > 200 || !utf8.ValidString(name) {
		return argError(argument, "must be a non-empty name of at most 200 characters, got %q", truncate(name, 40))
	}
	return validateNoControl(argument, name)
}

// validateNoControl refuses the characters pggit.is_valid_name refuses (the
// tables' CHECK constraints): C0 and C1 controls, and the line and paragraph
// separators some locales count with them. A COPY holding one such sample
// would fail with its whole batch.
func validateNoControl(argument, name string) error {
	if strings.IndexFunc(name, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }) >= 0 {
		return argError(argument, "must not hold control characters (CR, LF, tab...), got %q", truncate(name, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// row validates s and converts it to the COPY row.
func (s *Sample) row(now time.Time) (gen.CopyMetricsParams, error) {
	if err := validateName("OperationType", s.OperationType); err != nil {
		return gen.CopyMetricsParams{}, err
	}
	if s.Duration <= 0 {
		return gen.CopyMetricsParams{}, argError("Duration", "must be greater than 0, got %s", s.Duration)
	}
	if utf8.RuneCountInString(s.Scope) > 200 || !utf8.ValidString(s.Scope) {
		return gen.CopyMetricsParams{}, argError("Scope", "must be at most 200 characters (empty for global), got %q", truncate(s.Scope, 40))
	}
	if s.Scope != "" && strings.TrimSpace(s.Scope) == "" {
		return gen.CopyMetricsParams{}, argError("Scope", "must be empty (global) or not blank, got %q", truncate(s.Scope, 40))
	}
	if err := validateNoControl("Scope", s.Scope); err != nil {
		return gen.CopyMetricsParams{}, err
	}
	if s.UserName != "" {
		if err := validateName("UserName", s.UserName); err != nil {
			return gen.CopyMetricsParams{}, err
		}
	}
	if s.Metadata != nil && !json.Valid(s.Metadata) {
		return gen.CopyMetricsParams{}, argError("Metadata", "must be valid JSON or nil")
	}
	at := s.RecordedAt
	if at.IsZero() {
		at = now
	}
	var user *string
	if s.UserName != "" {
		u := s.UserName
		user = &u
	}
	return gen.CopyMetricsParams{
		OperationType:        s.OperationType,
		DurationMicroseconds: int64((s.Duration + time.Microsecond - 1) / time.Microsecond),
		RecordedAt:           at,
		Scope:                s.Scope,
		UserName:             user,
		Metadata:             s.Metadata,
	}, nil
}

// RecordSample writes one sample synchronously through
// pggit.record_performance_metric and returns its metric id. For volume, use a
// Recorder.
func (c *Client) RecordSample(ctx context.Context, s Sample) (int64, error) {
	return c.recordSample(ctx, c.queries, s)
}

// RecordSampleTx is RecordSample inside the caller's transaction: the sample
// is written only if the transaction commits.
func (c *Client) RecordSampleTx(ctx context.Context, tx pgx.Tx, s Sample) (int64, error) {
	return c.recordSample(ctx, c.queries.WithTx(tx), s)
}

func (c *Client) recordSample(ctx context.Context, q *gen.Queries, s Sample) (int64, error) {
	r, err := s.row(time.Now())
	if err != nil {
		return 0, err
	}
	id, err := q.RecordPerformanceMetric(ctx, gen.RecordPerformanceMetricParams{
		OperationType:        r.OperationType,
		DurationMicroseconds: r.DurationMicroseconds,
		Scope:                r.Scope,
		UserName:             r.UserName,
		Metadata:             r.Metadata,
		RecordedAt:           &r.RecordedAt,
	})
	return id, mapError(err)
}
