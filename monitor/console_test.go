package monitor_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLatencyFunctionsRejectBadArguments: every bad argument of the
// console's latency functions is a 22023 that names it and its allowed
// values.
func TestLatencyFunctionsRejectBadArguments(t *testing.T) {
	e := setup(t)
	now := time.Now().UTC().Truncate(time.Minute)
	day := now.Add(-24 * time.Hour)
	series := `SELECT count(*) FROM pggit.latency_series($1, $2, $3, $4, $5)`
	sparks := `SELECT count(*) FROM pggit.latency_sparklines($1, $2, $3, $4, $5)`
	for _, c := range []struct {
		sql       string
		args      []any
		fragments []string
	}{
		{series, []any{"", "", day, now, 600}, []string{"p_operation_type", "non-empty"}},
		{series, []any{"op", nil, day, now, 600}, []string{"p_scope"}},
		{series, []any{"op", "", day, now, 90}, []string{"p_step_seconds", "whole number of minutes between 60 and 86400"}},
		{series, []any{"op", "", day, now, nil}, []string{"p_step_seconds", "NULL"}},
		{series, []any{"op", "", now, day, 600}, []string{"p_from", "before p_to"}},
		{series, []any{"op", "", now.Add(-30 * 24 * time.Hour), now, 60}, []string{"p_step_seconds", "at most 2000 buckets"}},
		{sparks, []any{[]string{"a"}, []string{}, day, now, 3600}, []string{"p_operation_types", "same length"}},
		{sparks, []any{[]string{"a"}, []string{""}, day, now, 30}, []string{"p_step_seconds", "between 60 and 86400"}},
		{sparks, []any{[]string{"a"}, []string{""}, now, now, 3600}, []string{"p_from", "before p_to"}},
		{sparks, []any{[]string{"a"}, []string{""}, day, now, 60}, []string{"p_step_seconds", "at most 200 buckets"}},
	} {
		_, err := e.pool.Exec(e.ctx, c.sql, c.args...)
		requirePgError(t, err, "22023", c.fragments...)
	}
	// Good arguments on no data: no rows, no error.
	require.Zero(t, e.count(series, "op", "", day, now, 600))
}
