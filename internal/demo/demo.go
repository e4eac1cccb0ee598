// Package demo is the guided tour behind `pggit-monitor demo` and `make demo`:
// synthetic traffic for a few operations, rolling baselines, regressions that
// raise alerts, a snooze, and delivery to local Slack- and Mattermost-style
// sinks.
package demo

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pggit/pggit-monitor/internal/status"
	"github.com/pggit/pggit-monitor/migrate"
	"github.com/pggit/pggit-monitor/monitor"
)

// operation is a synthetic operation: median latency and spread.
type operation struct {
	name   string
	scope  string
	median time.Duration
	sigma  float64
}

var operations = []operation{
	{"commit", "", 900 * time.Microsecond, 0.35},
	{"merge_branches", "", 41 * time.Millisecond, 0.45},
	{"merge_branches", "main", 55 * time.Millisecond, 0.40},
	{"get_history", "", 6 * time.Millisecond, 0.5},
	{"rollback_commit", "", 12 * time.Millisecond, 0.3},
}

// Run migrates the database behind pool and runs the tour, writing to w.
func Run(ctx context.Context, pool *pgxpool.Pool, w io.Writer) error {
	start := time.Now()
	step := func(format string, args ...any) { fmt.Fprintf(w, "\n== "+format+"\n", args...) }

	step("Migrating the pggit schema")
	res, err := migrate.Up(ctx, pool, nil)
	if err != nil {
		return err
	}
	if len(res) == 0 {
		fmt.Fprintln(w, "schema already current")
	}
	for _, r := range res {
		fmt.Fprintf(w, "applied %s (%s)\n", r.Name, r.Duration.Round(time.Millisecond))
	}

	keys, note, err := demoKeyRing()
	if err != nil {
		return err
	}
	client, err := monitor.New(pool, &monitor.Config{Logger: discard(), KeyRing: keys})
	if err != nil {
		return err
	}

	step("Routing alerts to local Slack- and Mattermost-style sinks (webhook URLs encrypted at rest, %s)", note)
	sinks, err := startSinks()
	if err != nil {
		return err
	}
	defer sinks.close()
	if err := sinks.register(ctx, client, w); err != nil {
		return err
	}

	const perOp = 4000
	step("Recording %d samples per operation over the last 6 days (Recorder, batched COPY)", perOp)
	rng := rand.New(rand.NewPCG(7, 42))
	rec, err := client.NewRecorder(nil)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, op := range operations {
		for i := range perOp {
			at := now.Add(-time.Duration(float64(6*24*time.Hour) * float64(i) / perOp))
			if err := rec.RecordSample(monitor.Sample{
				OperationType: op.name, Scope: op.scope, RecordedAt: at,
				Duration: lognormal(rng, op.median, op.sigma),
			}); err != nil {
				return err
			}
		}
	}
	if err := rec.Close(ctx); err != nil {
		return err
	}
	st := rec.Stats()
	fmt.Fprintf(w, "recorded %d, written %d, dropped %d\n", st.Recorded, st.Written, st.Dropped)

	step("Recalculating every baseline in one pass (7-day window)")
	run, err := client.RecalculateAllBaselinesRolling(ctx, nil)
	if err != nil {
		return err
	}
	printRun(w, run)
	if err := printBaselines(ctx, w, client); err != nil {
		return err
	}

	step("Snoozing get_history alerts for 30 minutes (index rebuild in progress)")
	snoozeID, err := client.SnoozeAlerts(ctx, monitor.SnoozeParams{
		OperationType: "get_history", Type: monitor.AlertThresholdExceeded,
		Duration: 30 * time.Minute, Reason: "index rebuild in progress", CreatedBy: "demo",
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "snooze %d: get_history / THRESHOLD_EXCEEDED\n", snoozeID)

	step("Injecting regressions in the last 10 minutes: merge_branches 4x slower, get_history 3x slower")
	rec, err = client.NewRecorder(nil)
	if err != nil {
		return err
	}
	regressions := []struct {
		op     string
		n      int
		median time.Duration
	}{
		{"merge_branches", 2500, 164 * time.Millisecond},
		{"get_history", 400, 18 * time.Millisecond},
	}
	for _, r := range regressions {
		for i := range r.n {
			at := now.Add(-time.Duration(float64(10*time.Minute) * float64(i) / float64(r.n)))
			if err := rec.RecordSample(monitor.Sample{
				OperationType: r.op, RecordedAt: at, Duration: lognormal(rng, r.median, 0.45),
			}); err != nil {
				return err
			}
		}
	}
	if err := rec.Close(ctx); err != nil {
		return err
	}
	if err := printAlerts(ctx, w, client); err != nil {
		return err
	}

	step("Delivering the queued notifications (dispatcher: claim, format, POST, record)")
	if err := sinks.deliver(ctx, client, w); err != nil {
		return err
	}

	step("Recalculating again: only what moved by 5%% or more is replaced")
	run, err = client.RecalculateAllBaselinesRolling(ctx, nil)
	if err != nil {
		return err
	}
	printRun(w, run)

	step("Resolving: the regression is rolled back")
	if err := sinks.resolveAndDeliver(ctx, client, w); err != nil {
		return err
	}

	step("Status: the dashboard views (pggit-monitor status)")
	if err := status.Print(ctx, pool, w); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nDone in %s. Next: `make test`, `go run ./cmd/pggit-monitor -h`, and docs/.\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func lognormal(rng *rand.Rand, median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(rng.NormFloat64()*sigma))
}

func printRun(w io.Writer, run *monitor.RecalculateResult) {
	e := run.Execution
	fmt.Fprintf(w, "run %d: %s in %s: %d operations, %d updated, %d unchanged, %d insufficient, %d failed, %d timed out\n",
		e.ID, e.Status, e.Duration.Round(time.Microsecond), e.Total, e.Updated, e.Unchanged, e.Insufficient, e.Failed, e.TimedOut)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATION\tSCOPE\tSTATUS\tSAMPLES\tOLD P99\tNEW P99\tCHANGE")
	for _, r := range run.Operations {
		change := "-"
		if r.PercentChange != nil {
			change = fmt.Sprintf("%+.1f%%", *r.PercentChange)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.OperationType, scope(r.Scope), r.Status, r.SampleCount,
			ms(r.OldP99), ms(r.NewP99), change)
	}
	tw.Flush()
}

func printAlerts(ctx context.Context, w io.Writer, client *monitor.Client) error {
	alerts, err := client.ListAlerts(ctx, &monitor.AlertFilter{OpenOnly: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d open alerts (detected as the samples were written; one per operation, not one per sample):\n", len(alerts))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tOPERATION\tTYPE\tSEVERITY\tOCCURRENCES\tWORST\tP99\tMULTIPLIER\tSNOOZED")
	for _, a := range alerts {
		snoozed := "no"
		if a.Snoozed {
			snoozed = fmt.Sprintf("yes (snooze %d)", a.SnoozeID)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%.2fx\t%s\n", a.ID, a.OperationType, a.Type, a.Severity,
			a.Occurrences, ms(a.ActualDuration), ms(a.BaselineP99), a.ViolationMultiplier, snoozed)
	}
	return tw.Flush()
}

func printBaselines(ctx context.Context, w io.Writer, client *monitor.Client) error {
	bs, err := client.Baselines(ctx, "")
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "OPERATION\tSCOPE\tSAMPLES\tP50\tP75\tP90\tP95\tP99\tMEAN\tSTDDEV\tALERT ABOVE\t")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", b.OperationType, scope(b.Scope), b.SampleCount,
			ms(b.P50), ms(b.P75), ms(b.P90), ms(b.P95), ms(b.P99), ms(b.Mean), ms(b.Stddev),
			ms(time.Duration(float64(b.P99)*b.ThresholdMultiplier)))
	}
	return tw.Flush()
}

func scope(s string) string {
	if s == "" {
		return "(global)"
	}
	return s
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
