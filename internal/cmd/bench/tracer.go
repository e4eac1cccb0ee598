package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/pgxtrace"
)

// targetTracer is the largest overhead of the pgx tracer on a round trip.
const targetTracer = 1.05

// tracerQuery is a sqlc-style named query, so the tracer records every call.
const tracerQuery = "-- name: Ping :one\nSELECT 1"

// tracerCalls and tracerBlock: queries per run of each variant, and the
// blocks they interleave in.
const (
	tracerCalls = 20_000
	tracerBlock = 100
)

// benchTracer runs a tight loop of one-row queries on one connection with the
// pgx tracer switched on and off between blocks, and compares the time and
// the allocations per query: once with a Recorder that only buffers during
// the loop (the tracer's cost on the query path), once with a Recorder
// writing every second in the background, as in a service, whose COPY shares
// the machine's two cores with the loop.
func benchTracer(ctx context.Context, e *env, o *options) (*section, error) {
	// One connection for both loops: two connections differ by more than
	// the tracer costs (their server backends land on different cores; an
	// A/A run of two untraced pools gave 0.66x to 1.06x).
	cfg, err := pgxpool.ParseConfig(e.pool.Config().ConnString())
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 1
	sw := &switchTracer{}
	cfg.ConnConfig.Tracer = sw
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	runs := max(o.runs, 11)
	type result struct {
		without, with *variant
		ratios        []float64
		allocs        [2]float64 // per query: without, with
	}
	measureWith := func(label string, rcfg *monitor.RecorderConfig) (*result, error) {
		rec, err := e.client.NewRecorder(rcfg)
		if err != nil {
			return nil, err
		}
		tracer, err := pgxtrace.New(rec, nil)
		if err != nil {
			return nil, err
		}
		sw.t.Store(tracer)
		res := &result{
			without: &variant{name: "QueryRow(SELECT 1), tracer off" + label},
			with:    &variant{name: "QueryRow(SELECT 1), pgxtrace recording every query" + label},
		}
		var mallocs [2]uint64
		loop := func(on bool) (time.Duration, error) {
			sw.on.Store(on)
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			start := time.Now()
			var one int
			for range tracerBlock {
				if err := pool.QueryRow(ctx, tracerQuery).Scan(&one); err != nil {
					return 0, err
				}
			}
			d := time.Since(start)
			runtime.ReadMemStats(&ms1)
			i := 0
			if on {
				i = 1
			}
			mallocs[i] += ms1.Mallocs - ms0.Mallocs
			return d, nil
		}
		if _, err := loop(false); err != nil { // warm: connection, statement cache
			return nil, err
		}
		mallocs = [2]uint64{}
		for r := range runs {
			var t [2]time.Duration
			for b := range tracerCalls / tracerBlock {
				// Interleaved, the order alternating, so both see the same
				// drift of the machine.
				for k := range 2 {
					on := (b+k)%2 == 1
					d, err := loop(on)
					if err != nil {
						return nil, err
					}
					if on {
						t[1] += d
					} else {
						t[0] += d
					}
				}
			}
			res.without.times = append(res.without.times, t[0]/tracerCalls)
			res.with.times = append(res.with.times, t[1]/tracerCalls)
			res.ratios = append(res.ratios, t[1].Seconds()/t[0].Seconds())
			e.logf("run %d/%d: tracer%s: %s off, %s on", r+1, runs, label, fmtDuration(t[0]/tracerCalls), fmtDuration(t[1]/tracerCalls))
		}
		slices.Sort(res.ratios)
		n := float64(runs * tracerCalls)
		res.allocs = [2]float64{float64(mallocs[0]) / n, float64(mallocs[1]) / n}
		if err := rec.Close(ctx); err != nil {
			return nil, err
		}
		if st := tracer.Stats(); st.Recorded != uint64(runs*tracerCalls) || st.RecordErrors != 0 {
			return nil, fmt.Errorf("tracer stats %+v: want all %d queries recorded", st, runs*tracerCalls)
		}
		return res, nil
	}
	// Buffering only: room for every sample, no flush until Close.
	quiet, err := measureWith("", &monitor.RecorderConfig{FlushInterval: time.Hour,
		BatchSize: runs * tracerCalls, MaxBuffered: runs * tracerCalls})
	if err != nil {
		return nil, err
	}
	busy, err := measureWith(", Recorder writing in the background", nil)
	if err != nil {
		return nil, err
	}
	r := quiet.ratios[runs/2]
	rb := busy.ratios[runs/2]
	return &section{
		title: fmt.Sprintf("pgx tracer: %s one-row queries per run and variant, one connection", fmtInt(tracerCalls)),
		notes: []string{
			"One pool of one connection on the bench database. Its ConnConfig.Tracer is a switch that calls a pgxtrace.Tracer (pgxtrace.New(recorder, nil)) or nothing, flipped between blocks of 100 queries that interleave, the order alternating. The query carries a sqlc name (-- name: Ping :one), so with the tracer on every call becomes a sample.",
			"Query path: the Recorder only buffers during the loops (flushed at the end): what the tracer costs the query. Ratio per run: " + fmtRatios(quiet.ratios) + ".",
			"As in a service: client.NewRecorder(nil) writes the samples every second in the background (about 15,000 a second here), and its COPY and the server's histogram trigger share the two cores with the loop. Ratio per run: " + fmtRatios(busy.ratios) + ".",
			fmt.Sprintf("Go heap allocations per query (runtime.MemStats, process-wide): query path %.1f off, %.1f on; with background writes %.1f off, %.1f on (the COPY's encoding lands in whichever block it overlaps).",
				quiet.allocs[0], quiet.allocs[1], busy.allocs[0], busy.allocs[1]),
		},
		variants: []*variant{quiet.without, quiet.with, busy.without, busy.with},
		ratios: []ratio{
			{name: "round trip with tracer / without (query path)", value: r, target: fmt.Sprintf("<= %.2fx", targetTracer), pass: r <= targetTracer},
			{name: "round trip with tracer / without (Recorder writing in the background, same 2 cores)", value: rb},
			{name: "allocations per query added on the query path", value: quiet.allocs[1] - quiet.allocs[0], unit: " allocs"},
		},
	}, nil
}

func fmtRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2fx", r)
	}
	return strings.Join(parts, ", ")
}

// switchTracer calls the tracer it holds while on, nothing otherwise: one
// connection measured with and without it.
type switchTracer struct {
	on atomic.Bool
	t  atomic.Pointer[pgxtrace.Tracer]
}

func (s *switchTracer) TraceQueryStart(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if s.on.Load() {
		return s.t.Load().TraceQueryStart(ctx, c, d)
	}
	return ctx
}

func (s *switchTracer) TraceQueryEnd(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryEndData) {
	if s.on.Load() {
		s.t.Load().TraceQueryEnd(ctx, c, d)
	}
}
