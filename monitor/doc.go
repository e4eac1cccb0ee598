// Package monitor gives a Go service rolling performance baselines for the
// operations it runs against PostgreSQL.
//
// A host service records how long each operation took with a [Recorder]
// (batched COPY, never blocking), and recalculates the per-operation
// baselines (p50/p75/p90/p95/p99, mean, stddev over a lookback window) with
// [Client.RecalculateAllBaselinesRolling]. Everything lives in the pggit
// schema, applied with package migrate.
//
//	pool, _ := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	if _, err := migrate.Up(ctx, pool, nil); err != nil { ... }
//	client, _ := monitor.New(pool, nil)
//
//	rec, _ := client.NewRecorder(nil)
//	start := time.Now()
//	mergeBranches()
//	_ = rec.Record("merge_branches", time.Since(start))
//	...
//	_ = rec.Close(ctx)
//
//	res, err := client.RecalculateAllBaselinesRolling(ctx, nil)
//
// Bad arguments return an [*ArgumentError] (SQLSTATE 22023) that names the
// argument and the allowed values; missing rows return [ErrNotFound].
package monitor
