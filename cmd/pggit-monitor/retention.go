package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pggit/pggit-monitor/monitor"
)

// retentionFlag is one retention setting as a flag of `run`.
type retentionFlag struct {
	name, setting, keeps string
	def                  int // the setting's default
	days                 *int
}

type retentionFlagSet []retentionFlag

// retentionFlags adds the -retention-*-days flags to fs. 0 (the default)
// keeps the stored setting.
func retentionFlags(fs *flag.FlagSet) retentionFlagSet {
	var out retentionFlagSet
	for _, f := range retentionTable {
		f.days = fs.Int(f.name, 0, fmt.Sprintf("days %s are kept, 1..%d (stored in pggit.monitor_settings as %s; 0: keep the stored value, default %d)",
			f.keeps, monitor.MaxRetentionDays, f.setting, f.def))
		out = append(out, f)
	}
	return out
}

// retentionTable lists the settings in the order of monitor.RetentionSettings.
var retentionTable = []retentionFlag{
	{name: "retention-alerts-days", setting: monitor.SettingRetentionAlerts, def: monitor.DefaultRetentionDays,
		keeps: "resolved alerts (with their notifications) and ended snoozes"},
	{name: "retention-notifications-days", setting: monitor.SettingRetentionNotifications, def: monitor.DefaultRetentionDays,
		keeps: "sent or dead notification batches and their queue items"},
	{name: "retention-delivery-log-days", setting: monitor.SettingRetentionDeliveryLog, def: monitor.DefaultRetentionDays,
		keeps: "delivery log rows"},
	{name: "retention-runs-days", setting: monitor.SettingRetentionRuns, def: monitor.DefaultRetentionDays,
		keeps: "finished recalculation runs (with their results) and detection runs"},
	{name: "retention-baseline-history-days", setting: monitor.SettingRetentionBaselineHistory, def: monitor.DefaultRetentionDays,
		keeps: "baseline history rows and inactive baselines"},
	{name: "retention-samples-days", setting: monitor.SettingRetentionSamples, def: monitor.DefaultRetentionSamplesDays,
		keeps: "raw samples (older partitions are dropped whole)"},
	{name: "retention-histograms-days", setting: monitor.SettingRetentionHistograms, def: monitor.DefaultRetentionHistogramsDays,
		keeps: "latency histograms (what recalculation, detection and the console read)"},
}

func (fs retentionFlagSet) validate() error {
	for _, f := range fs {
		if *f.days < 0 || *f.days > monitor.MaxRetentionDays {
			return fmt.Errorf("-%s must be between 1 and %d (0: keep the stored value), got %d", f.name, monitor.MaxRetentionDays, *f.days)
		}
	}
	return nil
}

func (fs retentionFlagSet) settings() monitor.RetentionSettings {
	return monitor.RetentionSettings{AlertsDays: *fs[0].days, NotificationsDays: *fs[1].days,
		DeliveryLogDays: *fs[2].days, RunsDays: *fs[3].days, BaselineHistoryDays: *fs[4].days,
		SamplesDays: *fs[5].days, HistogramsDays: *fs[6].days}
}

// printRetention writes the retention settings in force and the last run of
// the retention job.
func printRetention(ctx context.Context, client *monitor.Client, w io.Writer) error {
	s, err := client.RetentionSettings(ctx)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	days := []int{s.AlertsDays, s.NotificationsDays, s.DeliveryLogDays, s.RunsDays, s.BaselineHistoryDays,
		s.SamplesDays, s.HistogramsDays}
	fmt.Fprintln(w, "\n== Retention (days kept after a record ended; samples and histograms by their time)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tDAYS\tKEEPS")
	for i, f := range retentionTable {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", f.setting, days[i], f.keeps)
	}
	jobs, err := client.Queries().ListScheduledJobs(ctx)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	last := "never ran"
	for _, j := range jobs {
		if j.JobName != monitor.JobRetention || j.LastStartedAt == nil {
			continue
		}
		last = fmt.Sprintf("%s, %s", j.LastStartedAt.Local().Format(time.DateTime), deref(j.LastStatus))
		if j.LastError != nil {
			last += ": " + *j.LastError
		}
	}
	fmt.Fprintf(tw, "\nlast run of %s: %s\n", monitor.JobRetention, last)
	return tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
