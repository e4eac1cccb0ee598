// Package demo is the guided tour behind `pggit-monitor demo` and `make demo`:
// a day of synthetic traffic for a few operations, rolling baselines, two
// regressions (one rolled back, one still on) found by the detectors, a
// snooze, delivery to local Slack-, Mattermost- and PagerDuty-style sinks,
// the recovery closing its alerts, and baselines that leave regressions out.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
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
	began := time.Now()
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

	// Sample time: 30 hours of history up to now (the detectors want a day
	// of it to know an operation's daily rhythm), with two regressions.
	now := time.Now().Truncate(time.Minute)
	start := now.Add(-30 * time.Hour)
	mergeFrom, mergeTo := now.Add(-95*time.Minute), now.Add(-45*time.Minute)
	historyFrom := now.Add(-20 * time.Minute)
	slower := func(op operation, at time.Time) float64 {
		switch {
		case op.name == "merge_branches" && op.scope == "" && !at.Before(mergeFrom) && at.Before(mergeTo):
			return 4 // a bad deploy, rolled back 50 minutes later
		case op.name == "get_history" && !at.Before(historyFrom):
			return 3 // still slow now
		}
		return 1
	}

	step("Recording 30 hours of traffic (10 samples a minute per operation) through the Recorder")
	rng := rand.New(rand.NewPCG(7, 42))
	rec, err := client.NewRecorder(nil)
	if err != nil {
		return err
	}
	for at := start; at.Before(now); at = at.Add(6 * time.Second) {
		for _, op := range operations {
			if err := rec.RecordSample(monitor.Sample{
				OperationType: op.name, Scope: op.scope, RecordedAt: at,
				Duration: time.Duration(float64(lognormal(rng, op.median, op.sigma)) * slower(op, at)),
			}); err != nil {
				return err
			}
		}
		if at.Equal(mergeFrom) {
			// The baselines of the day before the regressions.
			if err := rec.Flush(ctx); err != nil {
				return err
			}
			step("Recalculating every baseline in one pass (7-day window), before the regressions")
			run, err := client.RecalculateAllBaselinesRolling(ctx, nil)
			if err != nil {
				return err
			}
			printRun(w, run)
			if err := printBaselines(ctx, w, client); err != nil {
				return err
			}
			step("Snoozing get_history THRESHOLD_EXCEEDED alerts for 2 hours (index rebuild in progress)")
			snoozeID, err := client.SnoozeAlerts(ctx, monitor.SnoozeParams{
				OperationType: "get_history", Type: monitor.AlertThresholdExceeded,
				Duration: 2 * time.Hour, Reason: "index rebuild in progress", CreatedBy: "demo",
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "snooze %d: get_history / THRESHOLD_EXCEEDED\n", snoozeID)
			fmt.Fprintf(w, "\n(merge_branches runs 4x slower from %s to %s; get_history 3x slower from %s on)\n",
				clock(mergeFrom), clock(mergeTo), clock(historyFrom))
		}
	}
	if err := rec.Close(ctx); err != nil {
		return err
	}
	st := rec.Stats()
	fmt.Fprintf(w, "recorded %d, written %d, dropped %d\n", st.Recorded, st.Written, st.Dropped)

	// The worker runs detection every minute and delivers as it goes; the
	// demo does it at two moments of sample time.
	step("Detecting up to %s (sample time): every detector over every minute since the first sample, in one catch-up call", clock(mergeFrom.Add(30*time.Minute)))
	if err := detectAndDeliver(ctx, w, client, sinks, mergeFrom.Add(30*time.Minute)); err != nil {
		return err
	}
	step("Detecting up to now: merge_branches recovered at %s and its alerts close themselves after 30 healthy minutes", clock(mergeTo))
	if err := detectAndDeliver(ctx, w, client, sinks, now); err != nil {
		return err
	}

	step("Recalculating again: the regressions stay out of the baselines")
	before, err := client.Baselines(ctx, "")
	if err != nil {
		return err
	}
	run, err := client.RecalculateAllBaselinesRolling(ctx, nil)
	if err != nil {
		return err
	}
	printRun(w, run)
	for _, b := range before {
		if b.Scope != "" || (b.OperationType != "merge_branches" && b.OperationType != "get_history") {
			continue
		}
		after, err := client.Baseline(ctx, b.OperationType, b.Scope)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s p99: %s before, %s after (%+.1f%%): its regression is left out\n", b.OperationType,
			ms(b.P99), ms(after.P99), (float64(after.P99)/float64(b.P99)-1)*100)
	}

	step("Resolving get_history by hand: the index rebuild is done")
	if err := sinks.resolveAndDeliver(ctx, client, w); err != nil {
		return err
	}

	step("Status: the dashboard views (pggit-monitor status)")
	if err := status.Print(ctx, pool, w); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nDone in %s. Next: `make test`, `go run ./cmd/pggit-monitor -h`, and docs/.\n", time.Since(began).Round(time.Millisecond))
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

// detectAndDeliver runs detection up to asOf, lists the alerts, and
// delivers the notifications.
func detectAndDeliver(ctx context.Context, w io.Writer, client *monitor.Client, sinks *sinks, asOf time.Time) error {
	changed, err := client.RunDetection(ctx, asOf)
	if err != nil {
		return err
	}
	if err := printDetected(ctx, w, client); err != nil {
		return err
	}
	if run, err := client.LastDetectionRun(ctx); err == nil {
		fmt.Fprintf(w, "detection: %d alerts opened, changed or resolved; %s of sample time judged in %s\n",
			len(changed), run.To.Sub(run.From).Round(time.Minute), run.Duration.Round(time.Millisecond))
	}
	fmt.Fprintln(w, "delivering:")
	return sinks.deliver(ctx, client, w)
}

// printDetected lists every alert with its sample times and what it saw.
func printDetected(ctx context.Context, w io.Writer, client *monitor.Client) error {
	alerts, err := client.ListAlerts(ctx, nil)
	if err != nil {
		return err
	}
	slices.Reverse(alerts)
	fmt.Fprintf(w, "%d alerts (times are sample times; a resolved one closed itself after 30 healthy minutes):\n", len(alerts))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tOPERATION\tTYPE\tSEVERITY\tFIRST SEEN\tDETECTED\tRESOLVED\tSNOOZED\tWHAT")
	for _, a := range alerts {
		snoozed, resolved := "no", "open"
		if a.Snoozed {
			snoozed = fmt.Sprintf("yes (snooze %d)", a.SnoozeID)
		}
		if !a.Open() {
			resolved = clock(a.ResolvedAt) + " by " + a.ResolvedBy
		}
		var d struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(a.Details, &d)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.OperationType, a.Type, a.Severity,
			clock(a.FirstSeenAt), clock(a.DetectedAt), resolved, snoozed, d.Message)
	}
	return tw.Flush()
}

// clock shows a time of day.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("15:04")
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
