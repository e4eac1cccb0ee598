package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/pggit/pggit-monitor/monitor"
)

// cmdPartitions lists the partitions of samples, or creates them for a past
// or future range (-from, -to): backfilling history, or moving the samples
// the default partition caught into partitions of their own.
func cmdPartitions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("partitions", "partitions [-from TIME [-to TIME]]", stderr)
	from := fs.String("from", "", "create the missing partitions from this time (RFC 3339, YYYY-MM-DD local, or a duration ago such as 720h)")
	to := fs.String("to", "", "... up to this time (default: now plus samples_partition_ahead_days)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var fromAt, toAt time.Time
	var err error
	if *from != "" {
		if fromAt, err = parseTime(*from); err != nil {
			return fmt.Errorf("-from: %w", err)
		}
	}
	if *to != "" {
		if *from == "" {
			return fmt.Errorf("-to needs -from")
		}
		if toAt, err = parseTime(*to); err != nil {
			return fmt.Errorf("-to: %w", err)
		}
	}
	pool, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := monitor.New(pool, &monitor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if !fromAt.IsZero() {
		created, err := client.CreateSamplePartitions(ctx, fromAt, toAt)
		if err != nil {
			return err
		}
		for _, p := range created {
			fmt.Fprintf(stdout, "created %s [%s, %s), %d samples moved from the default partition\n",
				p.Name, p.Start.UTC().Format(time.DateTime), p.End.UTC().Format(time.DateTime), p.MovedRows)
		}
		if len(created) == 0 {
			fmt.Fprintln(stdout, "no partition missing")
		}
		return nil
	}
	parts, err := client.SamplePartitions(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tFROM (UTC)\tTO (UTC)\tROWS (EST.)\tSIZE")
	for _, p := range parts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, bound(p.Start, p.Default, "MINVALUE"), bound(p.End, p.Default, "MAXVALUE"),
			estimate(p.RowEstimate), byteSize(p.Bytes))
	}
	return tw.Flush()
}

// printPartitions writes the state of the partitions of samples for
// `status`: settings, what they cover, and a warning when samples fell into
// the default partition or partitions do not reach a day ahead.
func printPartitions(ctx context.Context, client *monitor.Client, w io.Writer) error {
	settings, err := client.PartitionSettings(ctx)
	if err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	parts, err := client.SamplePartitions(ctx)
	if err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	strays, err := client.DefaultPartitionRows(ctx)
	if err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	fmt.Fprintf(w, "\n== Sample partitions (%s wide, created %d days ahead)\n", settings.Width, settings.AheadDays)
	var n int
	var size int64
	var first, last time.Time
	for _, p := range parts {
		size += p.Bytes
		if p.Default {
			continue
		}
		if n == 0 {
			first = p.Start
		}
		n++
		last = p.End
	}
	fmt.Fprintf(w, "%d partitions, %s on disk", n, byteSize(size))
	if n > 0 {
		fmt.Fprintf(w, ", from %s to %s (UTC)", bound(first, false, "MINVALUE"), bound(last, false, "MAXVALUE"))
	}
	fmt.Fprintln(w)
	if strays > 0 {
		fmt.Fprintf(w, "WARNING: %d samples in the default partition (performance_metrics_default): recorded outside every partition.\n"+
			"  `pggit-monitor partitions -from <oldest> -to <newest>` creates partitions for them and moves them in.\n", strays)
	}
	if n > 0 && !last.IsZero() && time.Until(last) < 24*time.Hour {
		fmt.Fprintf(w, "WARNING: partitions end %s: is a worker running (job %s)?\n", last.UTC().Format(time.DateTime), monitor.JobPartitions)
	}
	return nil
}

func bound(t time.Time, isDefault bool, unbounded string) string {
	switch {
	case isDefault:
		return "DEFAULT"
	case t.IsZero():
		return unbounded
	}
	return t.UTC().Format(time.DateTime)
}

func estimate(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d kB", n>>10)
}
