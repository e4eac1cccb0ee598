package monitor

import (
	"context"
	"time"

	"github.com/pggit/pggit-monitor/gen"
)

// Message formats of FormatAlertMessage.
const (
	FormatJSON       = "json"
	FormatSlack      = "slack"
	FormatMattermost = "mattermost"
	FormatText       = "text"
	FormatPagerDuty  = "pagerduty"
	FormatEmail      = "email"
)

// RouteParams route alerts to a webhook: alerts of Type (or All) with
// MinSeverity or worse are queued for it when they open, escalate or resolve.
type RouteParams struct {
	WebhookID int64
	// Type is an alert type or All. Defaults to All.
	Type string
	// MinSeverity defaults to SeverityWarning.
	MinSeverity string
	// Enabled defaults to true.
	Enabled *bool
}

// Route is a stored routing rule.
type Route struct {
	ID          int64
	WebhookID   int64
	Type        string
	MinSeverity string
	Enabled     bool
	CreatedAt   time.Time
}

// RouteAlerts stores (or updates, per webhook and type) a routing rule.
func (c *Client) RouteAlerts(ctx context.Context, p RouteParams) (*Route, error) {
	if p.Type == "" {
		p.Type = All
	}
	if p.MinSeverity == "" {
		p.MinSeverity = SeverityWarning
	}
	if p.Type != All && !validAlertType(p.Type) {
		return nil, argError("Type", "must be one of ALL, THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION, CORRELATION, BASELINE_RECALC_ERROR, got %q", p.Type)
	}
	if !validSeverity(p.MinSeverity) {
		return nil, argError("MinSeverity", "must be one of CRITICAL, WARNING, INFO, got %q", p.MinSeverity)
	}
	enabled := true
	if p.Enabled != nil {
		enabled = *p.Enabled
	}
	if _, err := c.queries.GetWebhook(ctx, p.WebhookID); err != nil {
		if mapped := mapError(err); mapped == ErrNotFound {
			return nil, argError("WebhookID", "must name a stored webhook, got %d", p.WebhookID)
		}
		return nil, mapError(err)
	}
	row, err := c.queries.UpsertRoute(ctx, p.Type, p.MinSeverity, p.WebhookID, enabled)
	if err != nil {
		return nil, mapError(err)
	}
	return routeFromRow(row), nil
}

// ListRoutes returns the routing rules.
func (c *Client) ListRoutes(ctx context.Context) ([]*Route, error) {
	rows, err := c.queries.ListRoutes(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]*Route, 0, len(rows))
	for _, r := range rows {
		out = append(out, routeFromRow(r))
	}
	return out, nil
}

// DeleteRoute removes a routing rule; ErrNotFound when there is none.
func (c *Client) DeleteRoute(ctx context.Context, id int64) error {
	n, err := c.queries.DeleteRoute(ctx, id)
	if err != nil {
		return mapError(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// BatchConfig groups notifications of one webhook type into one message.
type BatchConfig struct {
	WebhookType string
	// Size is the most alerts in one message, 1..100 (1 for pagerduty).
	Size int
	// Timeout sends a batch that is not full once its oldest item waited
	// this long, 0..1h in whole seconds; 0 sends at once.
	Timeout time.Duration
	// MaxAttempts before a batch is dead, 1..50.
	MaxAttempts int
}

// SetBatchConfig changes the batching of one webhook type. It applies to
// batches opened afterwards.
func (c *Client) SetBatchConfig(ctx context.Context, b BatchConfig) error {
	switch {
	case !validWebhookType(b.WebhookType):
		return argError("WebhookType", "must be one of slack, mattermost, pagerduty, email, webhook, got %q", b.WebhookType)
	case b.Size < 1 || b.Size > 100:
		return argError("Size", "must be between 1 and 100, got %d", b.Size)
	case b.WebhookType == WebhookPagerDuty && b.Size != 1:
		return argError("Size", "must be 1 for pagerduty (the Events API takes one event per request), got %d", b.Size)
	case b.Timeout < 0 || b.Timeout > time.Hour || b.Timeout%time.Second != 0:
		return argError("Timeout", "must be whole seconds between 0s and 1h, got %s", b.Timeout)
	case b.MaxAttempts < 1 || b.MaxAttempts > 50:
		return argError("MaxAttempts", "must be between 1 and 50, got %d", b.MaxAttempts)
	}
	_, err := c.queries.UpdateBatchConfig(ctx, int32(b.Size), int32(b.Timeout/time.Second), int32(b.MaxAttempts), b.WebhookType)
	return mapError(err)
}

// FormatAlertMessage renders one alert in format: FormatJSON, FormatSlack,
// FormatMattermost, FormatText, FormatPagerDuty (the Events API v2 body
// without the routing key) or FormatEmail ("Subject: ..." line, blank line,
// plain body).
func (c *Client) FormatAlertMessage(ctx context.Context, alertID int64, format string) (string, error) {
	msg, err := c.queries.FormatAlertMessage(ctx, alertID, format)
	return msg, mapAlertError(err)
}

// FormatAlertBatch renders 1..100 alerts as one message in format.
func (c *Client) FormatAlertBatch(ctx context.Context, alertIDs []int64, format string) (string, error) {
	msg, err := c.queries.FormatAlertBatch(ctx, alertIDs, format)
	return msg, mapAlertError(err)
}

// SetRunbookBaseURL sets the base of the runbook links in alert messages:
// <base>/<alert type in lower case>.md.
func (c *Client) SetRunbookBaseURL(ctx context.Context, base string) error {
	if base == "" {
		return argError("base", "must be a non-empty URL")
	}
	return mapError(c.queries.SetMonitorSetting(ctx, "runbook_base_url", base))
}

func validSeverity(s string) bool {
	return s == SeverityCritical || s == SeverityWarning || s == SeverityInfo
}

func validWebhookType(t string) bool {
	switch t {
	case WebhookSlack, WebhookMattermost, WebhookPagerDuty, WebhookEmail, WebhookGeneric:
		return true
	}
	return false
}

func routeFromRow(r gen.Route) *Route {
	return &Route{ID: r.SettingID, WebhookID: r.WebhookID, Type: r.AlertType, MinSeverity: r.MinSeverity, Enabled: r.Enabled, CreatedAt: r.CreatedAt}
}
