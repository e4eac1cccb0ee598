package monitor

import (
	"context"
	"net/url"
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
	// FormatAlertmanager is Alertmanager's API v2 body: a JSON array of
	// postable alerts (labels, annotations, startsAt, endsAt, generatorURL).
	FormatAlertmanager = "alertmanager"
)

// Notification lifecycle defaults (Alertmanager's).
const (
	// DefaultRepeatInterval is how often an open, unacknowledged alert is
	// sent again to a route's webhook.
	DefaultRepeatInterval = 4 * time.Hour
	// NoRepeat as RouteParams.RepeatInterval sends no reminders.
	NoRepeat time.Duration = -1
	// DefaultAlertmanagerResend is how often open alerts are posted again to
	// an Alertmanager webhook, acknowledged or not, so that Alertmanager
	// (resolve_timeout, 5m by default) does not end them.
	DefaultAlertmanagerResend = 2 * time.Minute
)

// RouteParams route alerts to a webhook: alerts of Type (or All) with
// MinSeverity or worse are queued for it when they open, escalate or resolve,
// and reminded while open. When several routes send one alert to one webhook,
// the webhook gets one notification per event, the shortest RepeatInterval
// applies, and the resolve is sent if any route sends resolved messages.
type RouteParams struct {
	WebhookID int64
	// Type is an alert type or All. Defaults to All.
	Type string
	// MinSeverity defaults to SeverityWarning.
	MinSeverity string
	// Enabled defaults to true.
	Enabled *bool
	// RepeatInterval sends an alert again while it is open and not
	// acknowledged, this long after it was last sent: whole minutes from 1m
	// to 30 days. Defaults to DefaultRepeatInterval (4h); NoRepeat disables
	// reminders.
	RepeatInterval time.Duration
	// SendResolved sends a message when an alert resolves (only to webhooks
	// that were told it opened). Defaults to true.
	SendResolved *bool
}

// Route is a stored routing rule.
type Route struct {
	ID          int64
	WebhookID   int64
	Type        string
	MinSeverity string
	Enabled     bool
	// RepeatInterval is 0 when reminders are off.
	RepeatInterval time.Duration
	SendResolved   bool
	CreatedAt      time.Time
}

// RouteAlerts stores (or updates, per webhook and type) a routing rule.
func (c *Client) RouteAlerts(ctx context.Context, p RouteParams) (*Route, error) {
	up, err := p.upsert("")
	if err != nil {
		return nil, err
	}
	if _, err := c.queries.GetWebhook(ctx, p.WebhookID); err != nil {
		if mapped := mapError(err); mapped == ErrNotFound {
			return nil, argError("WebhookID", "must name a stored webhook, got %d", p.WebhookID)
		}
		return nil, mapError(err)
	}
	row, err := c.queries.UpsertRoute(ctx, up)
	if err != nil {
		return nil, mapError(err)
	}
	return routeFromRow(row), nil
}

// upsert validates p, fills in its defaults and returns the row to store.
// Errors name the field with prefix (e.g. "Routes[0].").
func (p RouteParams) upsert(prefix string) (gen.UpsertRouteParams, error) {
	if p.Type == "" {
		p.Type = All
	}
	if p.MinSeverity == "" {
		p.MinSeverity = SeverityWarning
	}
	if p.Type != All && !validAlertType(p.Type) {
		return gen.UpsertRouteParams{}, argError(prefix+"Type", "must be one of ALL, THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION, CORRELATION, BASELINE_RECALC_ERROR, got %q", p.Type)
	}
	if !validSeverity(p.MinSeverity) {
		return gen.UpsertRouteParams{}, argError(prefix+"MinSeverity", "must be one of CRITICAL, WARNING, INFO, got %q", p.MinSeverity)
	}
	var repeat time.Duration
	switch {
	case p.RepeatInterval == 0:
		repeat = DefaultRepeatInterval
	case p.RepeatInterval == NoRepeat:
	case p.RepeatInterval < time.Minute || p.RepeatInterval > 30*24*time.Hour || p.RepeatInterval%time.Second != 0:
		return gen.UpsertRouteParams{}, argError(prefix+"RepeatInterval", "must be whole seconds between 1m and 720h, or NoRepeat, got %s", p.RepeatInterval)
	default:
		repeat = p.RepeatInterval
	}
	enabled, sendResolved := true, true
	if p.Enabled != nil {
		enabled = *p.Enabled
	}
	if p.SendResolved != nil {
		sendResolved = *p.SendResolved
	}
	return gen.UpsertRouteParams{
		AlertType: p.Type, MinSeverity: p.MinSeverity, WebhookID: p.WebhookID, Enabled: enabled,
		RepeatIntervalSeconds: int32(repeat / time.Second), SendResolved: sendResolved,
	}, nil
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
	// Resend posts open alerts again this often, acknowledged or not,
	// instead of the routes' RepeatInterval: 10s..24h, 0 for none. For
	// alertmanager it is required and defaults to DefaultAlertmanagerResend
	// (2m), shorter than Alertmanager's resolve_timeout.
	Resend time.Duration
}

// SetBatchConfig changes the batching of one webhook type. It applies to
// batches opened afterwards.
func (c *Client) SetBatchConfig(ctx context.Context, b BatchConfig) error {
	switch {
	case !validWebhookType(b.WebhookType):
		return argError("WebhookType", "must be one of slack, mattermost, pagerduty, email, webhook, alertmanager, got %q", b.WebhookType)
	case b.Size < 1 || b.Size > 100:
		return argError("Size", "must be between 1 and 100, got %d", b.Size)
	case b.WebhookType == WebhookPagerDuty && b.Size != 1:
		return argError("Size", "must be 1 for pagerduty (the Events API takes one event per request), got %d", b.Size)
	case b.Timeout < 0 || b.Timeout > time.Hour || b.Timeout%time.Second != 0:
		return argError("Timeout", "must be whole seconds between 0s and 1h, got %s", b.Timeout)
	case b.MaxAttempts < 1 || b.MaxAttempts > 50:
		return argError("MaxAttempts", "must be between 1 and 50, got %d", b.MaxAttempts)
	case b.Resend != 0 && (b.Resend < 10*time.Second || b.Resend > 24*time.Hour || b.Resend%time.Second != 0):
		return argError("Resend", "must be 0 or whole seconds between 10s and 24h, got %s", b.Resend)
	}
	if b.WebhookType == WebhookAlertmanager && b.Resend == 0 {
		b.Resend = DefaultAlertmanagerResend
	}
	var resend *int32
	if b.Resend > 0 {
		s := int32(b.Resend / time.Second)
		resend = &s
	}
	_, err := c.queries.UpdateBatchConfig(ctx, gen.UpdateBatchConfigParams{
		BatchSize: int32(b.Size), BatchTimeoutSeconds: int32(b.Timeout / time.Second), MaxAttempts: int32(b.MaxAttempts),
		ResendSeconds: resend, WebhookType: b.WebhookType,
	})
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

// SetConsoleBaseURL sets the web console's address as users reach it:
// Alertmanager alerts then link to <base>/alerts/<id> (generatorURL). Empty
// unsets it.
func (c *Client) SetConsoleBaseURL(ctx context.Context, base string) error {
	if base != "" {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return argError("base", "must be an http or https URL with a host, or empty, got %q", truncate(base, 60))
		}
	}
	return mapError(c.queries.SetMonitorSetting(ctx, "console_base_url", base))
}

func validSeverity(s string) bool {
	return s == SeverityCritical || s == SeverityWarning || s == SeverityInfo
}

func validWebhookType(t string) bool {
	switch t {
	case WebhookSlack, WebhookMattermost, WebhookPagerDuty, WebhookEmail, WebhookGeneric, WebhookAlertmanager:
		return true
	}
	return false
}

func routeFromRow(r gen.Route) *Route {
	return &Route{ID: r.SettingID, WebhookID: r.WebhookID, Type: r.AlertType, MinSeverity: r.MinSeverity, Enabled: r.Enabled,
		RepeatInterval: time.Duration(r.RepeatIntervalSeconds) * time.Second, SendResolved: r.SendResolved, CreatedAt: r.CreatedAt}
}
