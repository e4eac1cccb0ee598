package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

// exampleClient returns a client on a fresh migrated database (the tests'
// harness); a host service would use pgxpool.New and migrate.Up instead.
func exampleClient() (*monitor.Client, func()) {
	dsn, drop, err := monitortest.ExampleDB()
	if err != nil {
		panic(err)
	}
	cfg, err := monitortest.PoolConfig(dsn)
	if err != nil {
		panic(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	client, err := monitor.New(pool, nil)
	if err != nil {
		panic(err)
	}
	return client, func() { pool.Close(); drop() }
}

func ExampleClient_RecalculateAllBaselinesRolling() {
	client, done := exampleClient()
	defer done()
	ctx := context.Background()

	rec, err := client.NewRecorder(nil)
	if err != nil {
		panic(err)
	}
	for i := range 100 {
		_ = rec.Record("merge_branches", time.Duration(40+i%5)*time.Millisecond)
	}
	if err := rec.Close(ctx); err != nil {
		panic(err)
	}

	res, err := client.RecalculateAllBaselinesRolling(ctx, nil)
	if err != nil {
		panic(err)
	}
	for _, op := range res.Operations {
		fmt.Println(op.OperationType, op.Status, op.SampleCount, "p99", op.NewP99)
	}
	b, err := client.Baseline(ctx, "merge_branches", "")
	if err != nil {
		panic(err)
	}
	fmt.Println("p50", b.P50, "alert above", time.Duration(float64(b.P99)*b.ThresholdMultiplier))
	// Output:
	// merge_branches UPDATED 100 p99 44ms
	// p50 42ms alert above 88ms
}

func ExampleArgumentError() {
	client, done := exampleClient()
	defer done()

	_, err := client.RecalculateAllBaselinesRolling(context.Background(), &monitor.RecalculateOpts{LookbackDays: 400})
	var argErr *monitor.ArgumentError
	if errors.As(err, &argErr) {
		fmt.Println(argErr.Argument, argErr.SQLState)
		fmt.Println(argErr.Message)
	}
	// Output:
	// p_lookback_days 22023
	// p_lookback_days must be between 1 and 365, got 400
}

func ExampleClient_SnoozeAlerts() {
	client, done := exampleClient()
	defer done()
	ctx := context.Background()

	// Maintenance window: silence every alert type of one operation for two hours.
	_, err := client.SnoozeAlerts(ctx, monitor.SnoozeParams{
		OperationType: "merge_branches",
		Duration:      2 * time.Hour,
		Reason:        "Database maintenance window",
	})
	if err != nil {
		panic(err)
	}
	for _, op := range []string{"merge_branches", "commit"} {
		snoozed, err := client.IsAlertSnoozed(ctx, op, monitor.AlertThresholdExceeded)
		if err != nil {
			panic(err)
		}
		fmt.Println(op, snoozed)
	}
	// Output:
	// merge_branches true
	// commit false
}

func ExampleClient_FormatAlertMessage() {
	client, done := exampleClient()
	defer done()
	ctx := context.Background()
	if err := client.SetRunbookBaseURL(ctx, "https://runbooks.example"); err != nil {
		panic(err)
	}

	// A baseline with p99 = 10 ms, then a minute of 55 ms samples: 5.5x, CRITICAL.
	rec, err := client.NewRecorder(nil)
	if err != nil {
		panic(err)
	}
	for range 20 {
		_ = rec.RecordSample(monitor.Sample{OperationType: "merge_branches", Duration: 10 * time.Millisecond, RecordedAt: time.Now().Add(-time.Hour)})
	}
	if err := rec.Flush(ctx); err != nil {
		panic(err)
	}
	if _, err := client.RecalculateAllBaselinesRolling(ctx, nil); err != nil {
		panic(err)
	}
	now := time.Now()
	for range 20 {
		_ = rec.RecordSample(monitor.Sample{OperationType: "merge_branches", Duration: 55 * time.Millisecond, RecordedAt: now})
	}
	if err := rec.Close(ctx); err != nil {
		panic(err)
	}
	// Detection judges the minutes up to now (a later time judges the minute
	// of the samples at once).
	alerts, err := client.RunDetection(ctx, now.Truncate(time.Minute).Add(time.Minute))
	if err != nil {
		panic(err)
	}
	msg, err := client.FormatAlertMessage(ctx, alerts[0].ID, monitor.FormatText)
	if err != nil {
		panic(err)
	}
	summary, _, _ := strings.Cut(msg, ", since") // the rest is the time of the samples
	fmt.Println(summary)
	// Output:
	// CRITICAL THRESHOLD_EXCEEDED: merge_branches: p99 55.00 ms over 5 min (20 samples), 5.50x the baseline p99 of 10.00 ms
}
