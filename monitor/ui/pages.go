package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pggit/pggit-monitor/gen"
	"github.com/pggit/pggit-monitor/monitor"
)

// openShown bounds the open alerts listed (with sparklines) on the overview.
const openShown = 50

var (
	alertTypes = []string{monitor.AlertThresholdExceeded, monitor.AlertAnomaly, monitor.AlertDegradation,
		monitor.AlertCorrelation, monitor.AlertBaselineRecalcError}
	severities = []string{monitor.SeverityCritical, monitor.SeverityWarning, monitor.SeverityInfo}
)

type openAlert struct {
	Alert   *monitor.Alert
	Message string
	Spark   template.HTML
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := h.client.Queries()
	now := h.now()
	health, err := q.SystemHealth(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	counts, err := q.OpenAlertCounts(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	open, err := h.client.ListAlerts(ctx, &monitor.AlertFilter{OpenOnly: true, Limit: 1000})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Most severe first, then the newest.
	rank := map[string]int{monitor.SeverityCritical: 0, monitor.SeverityWarning: 1, monitor.SeverityInfo: 2}
	sortAlerts(open, func(a, b *monitor.Alert) bool {
		if rank[a.Severity] != rank[b.Severity] {
			return rank[a.Severity] < rank[b.Severity]
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
	more := len(open) > openShown
	if more {
		open = open[:openShown]
	}
	// Sparklines: the mean per hour over the last 24 hours, from the
	// histograms' sums, for the operations listed.
	from := now.Add(-24 * time.Hour).Truncate(time.Hour)
	to := now.Truncate(time.Minute).Add(time.Minute)
	var ops, scopes []string
	seen := map[[2]string]bool{}
	for _, a := range open {
		k := [2]string{a.OperationType, a.Scope}
		if !seen[k] && a.OperationType != "" {
			seen[k] = true
			ops, scopes = append(ops, a.OperationType), append(scopes, a.Scope)
		}
	}
	sparks := map[[2]string][]point{}
	if len(ops) > 0 {
		rows, err := q.LatencySparklines(ctx, gen.LatencySparklinesParams{OperationTypes: ops, Scopes: scopes,
			FromTime: from, ToTime: to, StepSeconds: 3600})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, row := range rows {
			k := [2]string{row.OperationType, row.Scope}
			sparks[k] = append(sparks[k], point{At: row.BucketStart.Add(30 * time.Minute), Value: row.MeanUs / 1000})
		}
	}
	list := make([]openAlert, len(open))
	for i, a := range open {
		list[i] = openAlert{Alert: a, Message: alertMessage(a), Spark: sparkline(from, to, sparks[[2]string{a.OperationType, a.Scope}])}
	}
	queues, err := q.QueueHealth(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	det, err := h.client.LastDetectionRun(ctx)
	if err != nil && !errors.Is(err, monitor.ErrNotFound) {
		h.fail(w, r, err)
		return
	}
	lag := "-"
	if through, err := q.DetectionProgress(ctx); err == nil && through != nil {
		lag = ago(now, *through)
		lag = strings.TrimSuffix(lag, " ago")
	}
	var recalc *gen.RecalcExecution
	if runs, err := q.ListRecalcExecutions(ctx, 1); err != nil {
		h.fail(w, r, err)
		return
	} else if len(runs) > 0 {
		recalc = &runs[0]
	}
	h.render(w, r, http.StatusOK, "overview", "Overview", struct {
		Health       gen.SystemHealthRow
		Counts       []gen.OpenAlertCountsRow
		Open         []openAlert
		More         bool
		Queues       []gen.QueueHealthRow
		Detection    *monitor.DetectionRun
		DetectionLag string
		Recalc       *gen.RecalcExecution
	}{health, counts, list, more, queues, det, lag, recalc}, "")
}

func sortAlerts(a []*monitor.Alert, less func(x, y *monitor.Alert) bool) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && less(a[j], a[j-1]); j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

type link struct {
	Label, Href string
	Current     bool
}

type scopeLink struct{ Name, Href string }

func (h *Handler) operation(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := h.client.Queries()
	op := r.PathValue("op")
	scope := r.URL.Query().Get("scope")
	rng := r.URL.Query().Get("range")
	if rng == "" {
		rng = "24h"
	}
	var window time.Duration
	var step int32
	switch rng {
	case "24h":
		window, step = 24*time.Hour, 600
	case "7d":
		window, step = 7*24*time.Hour, 3600
	default:
		h.render(w, r, http.StatusBadRequest, "error", "Bad request", fmt.Sprintf("range must be 24h or 7d, got %q", rng), "")
		return
	}
	now := h.now()
	to := now.Truncate(time.Minute).Add(time.Minute)
	from := to.Add(-window)
	if _, err := h.client.Operation(ctx, op); err != nil {
		h.fail(w, r, err)
		return
	}
	pts, err := q.LatencySeries(ctx, gen.LatencySeriesParams{OperationType: op, Scope: scope, FromTime: from, ToTime: to, StepSeconds: step})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	half := time.Duration(step) * time.Second / 2
	s50 := series{Name: "p50", Class: "p50"}
	s90 := series{Name: "p90", Class: "p90"}
	s99 := series{Name: "p99", Class: "p99"}
	var samples int64
	for _, p := range pts {
		at := p.BucketStart.Add(half)
		s50.Pts = append(s50.Pts, point{at, p.P50Us / 1000})
		s90.Pts = append(s90.Pts, point{at, p.P90Us / 1000})
		s99.Pts = append(s99.Pts, point{at, p.P99Us / 1000})
		samples += p.SampleCount
	}
	c := &chart{From: from, To: to, Series: []series{s50, s90, s99}}
	base, err := h.client.Baseline(ctx, op, scope)
	if err != nil && !errors.Is(err, monitor.ErrNotFound) {
		h.fail(w, r, err)
		return
	}
	if base != nil {
		c.Band = &band{Low: float64(base.P50) / float64(time.Millisecond), High: float64(base.P99) / float64(time.Millisecond),
			Title: fmt.Sprintf("baseline p50 %s .. p99 %s", fmtDur(base.P50), fmtDur(base.P99))}
	}
	rows, err := q.OperationAlerts(ctx, op, scope, to, from)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	alerts := make([]*monitor.Alert, len(rows))
	for i := range rows {
		alerts[i] = monitor.AlertFromRow(&rows[i])
		a := alerts[i]
		end := a.ResolvedAt
		if end.IsZero() {
			end = to
		}
		c.Spans = append(c.Spans, span{From: a.FirstSeenAt, To: end, Class: strings.ToLower(a.Severity),
			Title: fmt.Sprintf("#%d %s %s", a.ID, a.Severity, a.Type)})
		if a.Type == monitor.AlertDegradation && !a.FirstSeenAt.Before(from) {
			c.Marks = append(c.Marks, mark{At: a.FirstSeenAt, Title: fmt.Sprintf("change point of #%d, %s", a.ID, fmtTime(a.FirstSeenAt))})
		}
	}
	hist, err := q.ListBaselineHistory(ctx, op, scope)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(hist) > 50 {
		hist = hist[:50]
	}
	scopeRows, err := q.OperationScopes(ctx, op)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	path := h.base + "/operations/" + url.PathEscape(op)
	var scopes []scopeLink
	for _, s := range scopeRows {
		scopes = append(scopes, scopeLink{Name: s, Href: path + "?scope=" + url.QueryEscape(s) + "&range=" + rng})
	}
	ranges := []link{
		{Label: "last 24 hours", Href: path + "?scope=" + url.QueryEscape(scope) + "&range=24h", Current: rng == "24h"},
		{Label: "last 7 days", Href: path + "?scope=" + url.QueryEscape(scope) + "&range=7d", Current: rng == "7d"},
	}
	stepLabel := (time.Duration(step) * time.Second).String()
	h.render(w, r, http.StatusOK, "operation", op, struct {
		Operation, Scope string
		Ranges           []link
		Scopes           []scopeLink
		Chart            template.HTML
		Buckets          int
		Step             string
		Samples          int64
		Baseline         *monitor.Baseline
		Alerts           []*monitor.Alert
		History          []gen.BaselineHistory
	}{op, scope, ranges, scopes, c.svg(), len(pts), stepLabel, samples, base, alerts, hist}, "")
}

func (h *Handler) alerts(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	status := v.Get("status")
	if status == "" {
		status = "open"
	}
	if status != "open" && status != "all" {
		h.render(w, r, http.StatusBadRequest, "error", "Bad request", fmt.Sprintf("status must be open or all, got %q", status), "")
		return
	}
	const limit = 200
	f := &monitor.AlertFilter{OpenOnly: status == "open", Severity: v.Get("severity"), Type: v.Get("type"),
		OperationType: v.Get("op"), Limit: limit}
	list, err := h.client.ListAlerts(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "alerts", "Alerts", struct {
		Status, Severity, Type, Op string
		Severities, Types          []string
		Alerts                     []*monitor.Alert
		Limited                    bool
	}{status, f.Severity, f.Type, f.OperationType, severities, alertTypes, list, len(list) == limit}, "")
}

func (h *Handler) alert(w http.ResponseWriter, r *http.Request) {
	id, ok := h.pathID(w, r, "alert")
	if !ok {
		return
	}
	a, err := h.client.Alert(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	notes, err := h.client.Queries().AlertNotifications(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	details := string(a.Details)
	var pretty any
	if json.Unmarshal(a.Details, &pretty) == nil {
		if b, err := json.MarshalIndent(pretty, "", "  "); err == nil {
			details = string(b)
		}
	}
	regression := a.Type == monitor.AlertThresholdExceeded || a.Type == monitor.AlertAnomaly || a.Type == monitor.AlertDegradation
	h.render(w, r, http.StatusOK, "alert", fmt.Sprintf("Alert #%d", a.ID), struct {
		Alert         *monitor.Alert
		Notifications []gen.AlertNotificationsRow
		Details       string
		Regression    bool
	}{a, notes, details, regression}, "")
}

type snoozePage struct {
	Snoozes []*monitor.Snooze
	Types   []string
	now     time.Time
}

// Active reports whether a snooze is in force now.
func (p snoozePage) Active(s *monitor.Snooze) bool { return s.Active(p.now) }

func (h *Handler) snoozes(w http.ResponseWriter, r *http.Request) {
	list, err := h.client.ListSnoozes(r.Context(), false, 200)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "snoozes", "Snoozes", snoozePage{Snoozes: list, Types: alertTypes, now: h.now()}, "")
}

type webhookView struct {
	Name, Type, Channel, TestStatus           string
	Enabled                                   bool
	TestedAt                                  time.Time
	Waiting, Retrying, Dead, Pending, Sending int64
}

func (h *Handler) webhooks(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rows, err := h.client.Queries().ListWebhooks(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	queues, err := h.client.Queries().QueueHealth(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	byID := map[int64]gen.QueueHealthRow{}
	for _, q := range queues {
		byID[q.WebhookID] = q
	}
	list := make([]webhookView, len(rows))
	for i, row := range rows {
		q := byID[row.WebhookID]
		// Only these fields: never the secret, its ciphertext or a URL.
		list[i] = webhookView{Name: row.Name, Type: row.WebhookType, Channel: deref(row.Channel), Enabled: row.Enabled,
			TestStatus: row.TestStatus, TestedAt: deref(row.LastTestedAt),
			Waiting: q.BatchesWaiting, Sending: q.BatchesSending, Retrying: q.BatchesRetrying,
			Dead: q.BatchesDead, Pending: q.NotificationsPending}
	}
	h.render(w, r, http.StatusOK, "webhooks", "Webhooks", struct{ Webhooks []webhookView }{list}, "")
}
