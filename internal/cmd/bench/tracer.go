package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pggit/pggit-monitor/monitor/pgxtrace"
)

// targetTracer is the largest overhead of the pgx tracer on a round trip.
const targetTracer = 1.05

// tracerQuery is a sqlc-style named query, so the tracer records every call.
const tracerQuery = "-- name: Ping :one\nSELECT 1"

// benchTracer runs a tight loop of one-row queries through two pools on the
// same database, one with the pgx tracer installed (feeding a Recorder that
// writes to that database, as in a service) and one without, and compares
// the time and the allocations per query.
func benchTracer(ctx context.Context, e *env, o *options) (*section, error) {
	const calls = 20_000
	rec, err := e.client.NewRecorder(nil)
	if err != nil {
		return nil, err
	}
	defer rec.Close(ctx)

	plainCfg, err := pgxpool.ParseConfig(e.pool.Config().ConnString())
	if err != nil {
		return nil, err
	}
	plainCfg.MaxConns = 1
	tracedCfg := plainCfg.Copy()
	tracer, err := pgxtrace.Install(tracedCfg.ConnConfig, rec, nil)
	if err != nil {
		return nil, err
	}
	plain, err := pgxpool.NewWithConfig(ctx, plainCfg)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	traced, err := pgxpool.NewWithConfig(ctx, tracedCfg)
	if err != nil {
		return nil, err
	}
	defer traced.Close()

	allocs := map[*pgxpool.Pool]float64{}
	loop := func(pool *pgxpool.Pool) func(context.Context) (time.Duration, error) {
		return func(ctx context.Context) (time.Duration, error) {
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			start := time.Now()
			var one int
			for range calls {
				if err := pool.QueryRow(ctx, tracerQuery).Scan(&one); err != nil {
					return 0, err
				}
			}
			d := time.Since(start)
			runtime.ReadMemStats(&ms1)
			allocs[pool] = float64(ms1.Mallocs-ms0.Mallocs) / calls
			return d / calls, nil
		}
	}
	without := &variant{name: "QueryRow(SELECT 1) through pgxpool, no tracer", run: loop(plain)}
	with := &variant{name: "QueryRow(SELECT 1) through pgxpool, pgxtrace recording every query", run: loop(traced)}
	// Warm both pools (connection, statement cache).
	for _, p := range []*pgxpool.Pool{plain, traced} {
		var one int
		if err := p.QueryRow(ctx, tracerQuery).Scan(&one); err != nil {
			return nil, err
		}
	}
	variants := []*variant{without, with}
	if err := measure(ctx, e, max(o.runs, 5), variants, nil); err != nil {
		return nil, err
	}
	if err := rec.Flush(ctx); err != nil {
		return nil, err
	}
	if st := tracer.Stats(); st.Recorded == 0 || st.RecordErrors != 0 {
		return nil, fmt.Errorf("tracer stats %+v: want every query recorded", st)
	}
	r := with.median().Seconds() / without.median().Seconds()
	return &section{
		title: fmt.Sprintf("pgx tracer: %s one-row queries per run on one connection", fmtInt(calls)),
		notes: []string{
			"Two pools of one connection each on the bench database; the traced one has pgxtrace.Install(cfg.ConnConfig, recorder, nil), and the query carries a sqlc name, so every call becomes a sample handed to a Recorder (client.NewRecorder(nil)) that writes to the same database in the background.",
			"Times are per query, the median of the runs; allocations are the Go heap allocations per query of the whole loop (pgx's own included), from runtime.MemStats.",
			fmt.Sprintf("Allocations per query: %.1f without the tracer, %.1f with it.", allocs[plain], allocs[traced]),
		},
		variants: variants,
		ratios: []ratio{
			{name: "round trip with tracer / without", value: r, target: fmt.Sprintf("<= %.2fx", targetTracer), pass: r <= targetTracer},
			{name: "allocations per query added by the tracer", value: allocs[traced] - allocs[plain], unit: " allocs/query"},
		},
	}, nil
}
