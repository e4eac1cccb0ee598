package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pggit/pggit-monitor/monitor"
)

// withClient connects and hands a client to f.
func withClient(ctx context.Context, f func(*monitor.Client) error) error {
	pool, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := monitor.New(pool, &monitor.Config{Logger: quietLogger()})
	if err != nil {
		return err
	}
	return f(client)
}

// subcommand parses "<verb> [flags] [args]" for a noun.
func subcommand(args []string, noun, verbs string) (string, []string, error) {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintf(os.Stdout, "Usage: pggit-monitor %s <%s> [flags]\nRun 'pggit-monitor %s <subcommand> -h' for its flags.\n",
			noun, strings.ReplaceAll(verbs, ", ", "|"), noun)
		return "", nil, flag.ErrHelp
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, fmt.Errorf("%s: want one of %s", noun, verbs)
	}
	return args[0], args[1:], nil
}

func idArg(fs *flag.FlagSet, what string) (int64, error) {
	if fs.NArg() != 1 {
		return 0, fmt.Errorf("want one %s id", what)
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("%s id must be a positive number, got %q", what, fs.Arg(0))
	}
	return id, nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func cmdSnooze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	verb, rest, err := subcommand(args, "snooze", "add, list, cancel")
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		fs := newFlags("snooze add", "snooze add [-operation NAME|ALL] [-type TYPE|ALL] [-for 1h] [-reason TEXT] [-by NAME]", stderr)
		op := fs.String("operation", monitor.All, "operation to silence, or ALL")
		typ := fs.String("type", monitor.All, "alert type to silence, or ALL")
		dur := fs.Duration("for", monitor.DefaultSnooze, "how long, 1m..720h (rounded up to minutes)")
		reason := fs.String("reason", "", "why, for the audit trail")
		by := fs.String("by", "", "who (default: the database user)")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if *dur <= 0 {
			return fmt.Errorf("-for must be between 1m and 720h, got %s", *dur)
		}
		return withClient(ctx, func(c *monitor.Client) error {
			id, err := c.SnoozeAlerts(ctx, monitor.SnoozeParams{OperationType: *op, Type: *typ, Duration: *dur, Reason: *reason, CreatedBy: *by})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "snooze %d: %s / %s for %s\n", id, *op, *typ, *dur)
			return nil
		})
	case "list":
		fs := newFlags("snooze list", "snooze list [-all]", stderr)
		all := fs.Bool("all", false, "include ended and cancelled snoozes")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return withClient(ctx, func(c *monitor.Client) error {
			snoozes, err := c.ListSnoozes(ctx, !*all, 1000)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tOPERATION\tTYPE\tUNTIL\tBY\tREASON\tSTATE")
			now := time.Now()
			for _, s := range snoozes {
				state := "active"
				switch {
				case !s.CancelledAt.IsZero():
					state = "cancelled by " + s.CancelledBy
				case !s.Active(now):
					state = "ended"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.OperationType, s.Type, fmtTime(s.Until), s.CreatedBy, s.Reason, state)
			}
			return tw.Flush()
		})
	case "cancel":
		fs := newFlags("snooze cancel", "snooze cancel [-by NAME] ID", stderr)
		by := fs.String("by", "", "who (default: the database user)")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		id, err := idArg(fs, "snooze")
		if err != nil {
			return err
		}
		return withClient(ctx, func(c *monitor.Client) error {
			s, err := c.Unsnooze(ctx, id, *by)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "snooze %d cancelled at %s by %s\n", s.ID, fmtTime(s.CancelledAt), s.CancelledBy)
			return nil
		})
	}
	return fmt.Errorf("snooze: unknown subcommand %q (want add, list, cancel)", verb)
}

func cmdAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	verb, rest, err := subcommand(args, "alerts", "list, ack, resolve, accept")
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		fs := newFlags("alerts list", "alerts list [-open] [-severity S] [-type T] [-operation NAME] [-since 24h] [-limit N]", stderr)
		open := fs.Bool("open", false, "only unresolved alerts")
		sev := fs.String("severity", "", "CRITICAL, WARNING or INFO")
		typ := fs.String("type", "", "alert type")
		op := fs.String("operation", "", "operation")
		since := fs.Duration("since", 0, "only alerts seen within this long (0: any time)")
		limit := fs.Int("limit", monitor.DefaultAlertLimit, "most alerts shown, newest first")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		f := &monitor.AlertFilter{OpenOnly: *open, Severity: *sev, Type: *typ, OperationType: *op, Limit: *limit}
		if *since > 0 {
			f.Since = time.Now().Add(-*since)
		}
		return withClient(ctx, func(c *monitor.Client) error {
			alerts, err := c.ListAlerts(ctx, f)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tOPERATION\tSCOPE\tTYPE\tSEVERITY\tOCCURRENCES\tMULTIPLIER\tLAST SEEN\tSTATE")
			for _, a := range alerts {
				state := "open"
				switch {
				case !a.Open():
					state = "resolved by " + a.ResolvedBy
				case a.Acknowledged():
					state = "acknowledged by " + a.AcknowledgedBy
				}
				if a.Snoozed {
					state += " (snoozed)"
				}
				mult := "-"
				if a.ViolationMultiplier > 0 {
					mult = fmt.Sprintf("%.2fx", a.ViolationMultiplier)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.ID, a.OperationType, a.Scope, a.Type, a.Severity,
					a.Occurrences, mult, fmtTime(a.LastSeenAt), state)
			}
			return tw.Flush()
		})
	case "ack", "resolve", "accept":
		synopsis := map[string]string{
			"ack":     "alerts ack [-by NAME] ID",
			"resolve": "alerts resolve [-by NAME] [-notes TEXT] ID",
			"accept":  "alerts accept [-by NAME] ID  (the regression is the new normal: resolve and re-baseline from its change point)",
		}[verb]
		fs := newFlags("alerts "+verb, synopsis, stderr)
		by := fs.String("by", "", "who (default: the database user)")
		notes := fs.String("notes", "", "resolution notes")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		id, err := idArg(fs, "alert")
		if err != nil {
			return err
		}
		return withClient(ctx, func(c *monitor.Client) error {
			switch verb {
			case "ack":
				a, err := c.AcknowledgeAlert(ctx, id, *by)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "alert %d acknowledged by %s at %s\n", a.ID, a.AcknowledgedBy, fmtTime(a.AcknowledgedAt))
				return nil
			case "accept":
				a, err := c.AcceptRegression(ctx, id, *by)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "alert %d accepted by %s: %s's baseline starts again at %s\n", a.ID, a.ResolvedBy,
					a.OperationType, fmtTime(a.FirstSeenAt))
				return nil
			}
			a, err := c.ResolveAlert(ctx, id, *by, *notes)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "alert %d resolved by %s at %s\n", a.ID, a.ResolvedBy, fmtTime(a.ResolvedAt))
			return nil
		})
	}
	return fmt.Errorf("alerts: unknown subcommand %q (want list, ack, resolve, accept)", verb)
}

func cmdWebhook(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	verb, rest, err := subcommand(args, "webhook", "add, list, test, rotate-keys")
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		fs := newFlags("webhook add", "webhook add -type TYPE -name NAME [-channel C] (-secret-env VAR | -secret-file PATH | -secret-stdin) [-route-type T] [-min-severity S]", stderr)
		typ := fs.String("type", "", "slack, mattermost, pagerduty, email, webhook or alertmanager")
		name := fs.String("name", "", "name, unique per type")
		channel := fs.String("channel", "", "Slack/Mattermost channel, or email recipients")
		secretEnv := fs.String("secret-env", "", "read the secret (URL, routing key or SMTP URL) from this environment variable")
		secretFile := fs.String("secret-file", "", "read the secret from this file")
		secretStdin := fs.Bool("secret-stdin", false, "read the secret from standard input")
		routeType := fs.String("route-type", "", "also route alerts of this type (or ALL) to the webhook")
		minSeverity := fs.String("min-severity", monitor.SeverityWarning, "with -route-type: the least severity routed")
		disabled := fs.Bool("disabled", false, "store the webhook disabled")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		secret, err := readSecret(*secretEnv, *secretFile, *secretStdin, stdin)
		if err != nil {
			return err
		}
		enabled := !*disabled
		p := monitor.WebhookParams{Type: *typ, Name: *name, Channel: *channel, Secret: secret, Enabled: &enabled}
		if *routeType != "" {
			// Stored with the webhook in one transaction: a refused route
			// leaves no webhook behind.
			p.Routes = []monitor.RouteParams{{Type: *routeType, MinSeverity: *minSeverity}}
		}
		return withClient(ctx, func(c *monitor.Client) error {
			w, err := c.StoreWebhook(ctx, p)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "webhook %d: %s %q stored, secret encrypted with key %s\n", w.ID, w.Type, w.Name, w.KeyID)
			for _, r := range w.Routes {
				fmt.Fprintf(stdout, "route %d: %s alerts of %s or worse -> webhook %d\n", r.ID, r.Type, r.MinSeverity, w.ID)
			}
			return nil
		})
	case "list":
		fs := newFlags("webhook list", "webhook list", stderr)
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return withClient(ctx, func(c *monitor.Client) error {
			hooks, err := c.ListWebhooks(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tNAME\tCHANNEL\tENABLED\tKEY\tTESTED\tTEST")
			for _, w := range hooks {
				test := w.TestStatus
				if w.TestError != "" {
					test += ": " + w.TestError
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", w.ID, w.Type, w.Name, w.Channel, w.Enabled, w.KeyID, fmtTime(w.LastTestedAt), test)
			}
			return tw.Flush()
		})
	case "test":
		fs := newFlags("webhook test", "webhook test [-pagerduty-url URL] ID", stderr)
		pd := fs.String("pagerduty-url", monitor.DefaultPagerDutyURL, "PagerDuty Events API v2 endpoint")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		id, err := idArg(fs, "webhook")
		if err != nil {
			return err
		}
		return withClient(ctx, func(c *monitor.Client) error {
			w, err := c.TestWebhook(ctx, id, &monitor.DispatcherConfig{PagerDutyURL: *pd})
			if err != nil {
				return err
			}
			if w.TestStatus != "ok" {
				return fmt.Errorf("webhook %d test failed: %s", w.ID, w.TestError)
			}
			fmt.Fprintf(stdout, "webhook %d: test message delivered\n", w.ID)
			return nil
		})
	case "rotate-keys":
		fs := newFlags("webhook rotate-keys", "webhook rotate-keys", stderr)
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return withClient(ctx, func(c *monitor.Client) error {
			n, err := c.RotateWebhookKeys(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%d webhook secrets re-encrypted with the newest key\n", n)
			return nil
		})
	}
	return fmt.Errorf("webhook: unknown subcommand %q (want add, list, test, rotate-keys)", verb)
}

// readSecret takes the secret from exactly one place that is not the command
// line (which other users can read in the process list).
func readSecret(env, file string, stdin bool, in io.Reader) (monitor.Secret, error) {
	n := 0
	for _, set := range []bool{env != "", file != "", stdin} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "", errors.New("give the secret with exactly one of -secret-env, -secret-file, -secret-stdin (never on the command line)")
	}
	var s string
	switch {
	case env != "":
		s = os.Getenv(env)
		if s == "" {
			return "", fmt.Errorf("environment variable %s is empty", env)
		}
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the secret file: %w", err)
		}
		s = string(b)
	default:
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && line == "" {
			return "", errors.New("no secret on standard input")
		}
		s = line
	}
	return monitor.Secret(strings.TrimSpace(s)), nil
}

func cmdDetect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("detect", "detect [-as-of TIME]", stderr)
	asOf := fs.String("as-of", "", "judge the minute buckets that end by this time (RFC 3339; default now less the settle delay)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var at time.Time
	if *asOf != "" {
		var err error
		if at, err = parseTime(*asOf); err != nil {
			return fmt.Errorf("-as-of: %w", err)
		}
	}
	return withClient(ctx, func(c *monitor.Client) error {
		changed, err := c.RunDetection(ctx, at)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d alerts opened, changed or resolved\n", len(changed))
		return printDetected(stdout, changed)
	})
}

func cmdBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backtest", "backtest -from TIME [-to TIME] [-op NAME] [-step 1m]", stderr)
	from := fs.String("from", "", "start of the replayed history (RFC 3339, or a duration ago such as 24h)")
	to := fs.String("to", "", "end of the replayed history (RFC 3339, or a duration ago; default now)")
	op := fs.String("op", "", "replay one operation only")
	step := fs.Duration("step", monitor.DefaultBacktestStep, "how often detection runs in the replay")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" {
		return errors.New("-from is required")
	}
	p := monitor.BacktestParams{OperationType: *op, Step: *step}
	var err error
	if p.From, err = parseTime(*from); err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	if *to != "" {
		if p.To, err = parseTime(*to); err != nil {
			return fmt.Errorf("-to: %w", err)
		}
	}
	return withClient(ctx, func(c *monitor.Client) error {
		res, err := c.Backtest(ctx, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "backtest %s .. %s: %d alerts would have fired (nothing was written)\n",
			fmtTime(res.From), fmtTime(res.To), len(res.Alerts))
		if err := printDetected(stdout, res.Alerts); err != nil {
			return err
		}
		if len(res.Summary) > 0 {
			fmt.Fprintln(stdout, "\nsummary:")
			for _, s := range res.Summary {
				fmt.Fprintf(stdout, "  %s\n", s)
			}
		}
		return nil
	})
}

// printDetected lists alerts with their sample times and what they measured.
func printDetected(w io.Writer, alerts []*monitor.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOPERATION\tSCOPE\tTYPE\tSEVERITY\tFIRST SEEN\tDETECTED\tRESOLVED\tWHAT")
	for _, a := range alerts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.OperationType, a.Scope, a.Type, a.Severity,
			fmtTime(a.FirstSeenAt), fmtTime(a.DetectedAt), fmtTime(a.ResolvedAt), detailMessage(a))
	}
	return tw.Flush()
}

func detailMessage(a *monitor.Alert) string {
	var d struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(a.Details, &d)
	return d.Message
}

// parseTime reads RFC 3339 (or a date and time without zone, local), or a
// duration meaning that long ago.
func parseTime(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("want RFC 3339 (2026-11-28T09:00:00Z), 2006-01-02 15:04, or a duration ago (24h), got %q", s)
}
