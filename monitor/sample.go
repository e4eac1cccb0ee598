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
	// OperationType names the operation ("merge_branches"): not blank, at
	// most 200 characters, no control characters (CR, LF, tab, ...). Required.
	OperationType string
	// Duration is how long it took; must be positive. Stored in whole
	// microseconds, rounded up (a 300ns call is stored as 1µs).
	Duration time.Duration
	// Scope narrows the baseline (a branch, a tenant); empty means global.
	// At most 200 characters, no control characters, not only spaces.
	// Baselines are kept per (operation, scope).
	Scope string
	// UserName is optional; when set, a name like OperationType.
	UserName string
	// Metadata is optional JSON.
	Metadata json.RawMessage
	// RecordedAt defaults to the time of the Record call.
	RecordedAt time.Time
}

// isValidName is pggit.is_valid_name: valid UTF-8 of at most maxLength
// characters, no control character (Unicode Cc: C0, DEL, C1), and not only
// spaces; empty only when allowEmpty. It is the rule of the CHECKs on
// pggit.performance_metrics, so a sample that passes is not refused for its
// names.
func isValidName(name string, maxLength int, allowEmpty bool) bool {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxLength {
		return false
	}
	if name == "" {
		return allowEmpty
	}
	if strings.Trim(name, " ") == "" { // btrim trims spaces only
		return false
	}
	// U+2028 and U+2029 are controls to [[:cntrl:]] in glibc locales.
	return strings.IndexFunc(name, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }) < 0
}

func validateName(argument, name string) error {
	if !isValidName(name, 200, false) {
		return argError(argument, "must be a non-blank name of at most 200 characters without control characters, got %q", truncate(name, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// validate checks s with the rules of pggit.performance_metrics' CHECKs.
func (s *Sample) validate() error {
	if err := validateName("OperationType", s.OperationType); err != nil {
		return err
	}
	if s.Duration <= 0 {
		return argError("Duration", "must be greater than 0, got %s", s.Duration)
	}
	if !isValidName(s.Scope, 200, true) {
		return argError("Scope", "must be empty (global) or a non-blank name of at most 200 characters without control characters, got %q", truncate(s.Scope, 40))
	}
	if s.UserName != "" {
		if err := validateName("UserName", s.UserName); err != nil {
			return err
		}
	}
	if s.Metadata != nil && !json.Valid(s.Metadata) {
		return argError("Metadata", "must be valid JSON or nil")
	}
	return nil
}

// row validates s and converts it to the COPY row.
func (s *Sample) row(now time.Time) (gen.CopyMetricsParams, error) {
	if err := s.validate(); err != nil {
		return gen.CopyMetricsParams{}, err
	}
	return s.toRow(now), nil
}

// toRow converts s to the COPY row; RecordedAt defaults to now.
func (s *Sample) toRow(now time.Time) gen.CopyMetricsParams {
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
	}
}

// sampleOf is the Sample of a COPY row (Duration in whole microseconds).
func sampleOf(p gen.CopyMetricsParams) Sample {
	s := Sample{
		OperationType: p.OperationType,
		Duration:      time.Duration(p.DurationMicroseconds) * time.Microsecond,
		Scope:         p.Scope,
		Metadata:      p.Metadata,
		RecordedAt:    p.RecordedAt,
	}
	if p.UserName != nil {
		s.UserName = *p.UserName
	}
	return s
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
