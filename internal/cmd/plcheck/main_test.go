package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestMain(m *testing.M) { monitortest.Main(m, monitortest.CheckGoroutines()) }

// The shipped schema is clean (errors never, warnings only as accepted), and
// the defects that broke the original system are caught before anything
// runs: an ambiguous column reference, a format string with too few
// arguments, a misspelled column in a path no test takes.
func TestShippedSchemaIsCleanAndDefectsAreCaught(t *testing.T) {
	ctx := context.Background()
	pool := monitortest.New(t)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	allow, err := readAllow("../../../" + allowFile)
	require.NoError(t, err)

	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	found, checked, err := check(ctx, tx)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	require.Greater(t, checked, 40)
	for _, f := range found {
		require.NotEqual(t, "error", f.level, "%s", f)
		require.NotNil(t, match(allow, f), "warning not accepted: %s", f)
	}

	tx, err = conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, `
		CREATE FUNCTION pggit.broken_ambiguous(operation_type text) RETURNS bigint LANGUAGE plpgsql AS $$
		BEGIN
			RETURN (SELECT count(*) FROM pggit.performance_metrics WHERE operation_type = operation_type);
		END $$;
		CREATE FUNCTION pggit.broken_format(p text) RETURNS text LANGUAGE plpgsql AS $$
		BEGIN
			RETURN format('%s and %s', p);
		END $$;
		CREATE FUNCTION pggit.broken_column(p boolean) RETURNS bigint LANGUAGE plpgsql AS $$
		BEGIN
			IF p THEN
				RETURN (SELECT max(duration_micros) FROM pggit.performance_metrics);
			END IF;
			RETURN 0;
		END $$;`)
	require.NoError(t, err)
	found, _, err = check(ctx, tx)
	require.NoError(t, err)
	var msgs []string
	for _, f := range found {
		if strings.Contains(f.function, "broken_") {
			msgs = append(msgs, f.level+" "+f.function+": "+f.message)
		}
	}
	all := strings.Join(msgs, "\n")
	require.Contains(t, all, `error pggit.broken_ambiguous(text): column reference "operation_type" is ambiguous`)
	require.Contains(t, all, `pggit.broken_format(text): too few arguments for format()`)
	require.Contains(t, all, `error pggit.broken_column(boolean): column "duration_micros" does not exist`)
}
