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
	days                 *int
}

type retentionFlagSet []retentionFlag

// retentionFlags adds the -retention-*-days flags to fs. 0 (the default)
// keeps the stored setting.
func retentionFlags(fs *flag.FlagSet) retentionFlagSet {
	var out retentionFlagSet
	for _, f := range retentionTable {
		f.days = fs.Int(f.name, 0, fmt.Sprintf("days %s are kept, 1..%d (stored in pggit.monitor_settings as %s; 0: keep the stored value, default %d)",
			f.keeps, monitor.MaxRetentionDays, f.setting, monitor.DefaultRetentionDays))
		out = append(out, f)
	}
	return out
}

// retentionTable lists the settings in the order of monitor.RetentionSettings.
var retentionTable = []retentionFlag{
	{name: "retention-alerts-days", setting: monitor.SettingRetentionAlerts,
		keeps: "resolved alerts (with their notifications) and ended snoozes"},
	{name: "retention-notifications-days", setting: monitor.SettingRetentionNotifications,
		keeps: "sent or dead notification batches and their queue items"},
	{name: "retention-delivery-log-days", setting: monitor.SettingRetentionDeliveryLog,
		keeps: "delivery log rows"},
	{name: "retention-runs-days", setting: monitor.SettingRetentionRuns,
		keeps: "finished recalculation runs (with their results) and detection runs"},
	{name: "retention-baseline-history-days", setting: monitor.SettingRetentionBaselineHistory,
		keeps: "baseline history rows and inactive baselines"},
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
		DeliveryLogDays: *fs[2].days, RunsDays: *fs[3].days, BaselineHistoryDays: *fs[4].days}
}

// printRetention writes the retention settings in force and the last run of
// the retention job.
func printRetention(ctx context.Context, client *monitor.Client, w io.Writer) error {
	s, err := client.RetentionSettings(ctx)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	days := []int{s.AlertsDays, s.NotificationsDays, s.DeliveryLogDays, s.RunsDays, s.BaselineHistoryDays}
	fmt.Fprintln(w, "\n== Retention (days kept after a record ended)")
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
