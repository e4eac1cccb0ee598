package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pggit/pggit-monitor/gen"
)

// Webhook types.
const (
	WebhookSlack      = "slack"
	WebhookMattermost = "mattermost"
	WebhookPagerDuty  = "pagerduty"
	WebhookEmail      = "email"
	WebhookGeneric    = "webhook"
	// WebhookAlertmanager posts to an Alertmanager's API v2; its secret is
	// the Alertmanager base URL (http or https, credentials allowed), its
	// channel the value of the service label (default pggit-monitor).
	WebhookAlertmanager = "alertmanager"
)

// Secret is a webhook secret: a URL, a PagerDuty routing key or an SMTP URL
// with credentials. It prints as [redacted] in fmt (%v, %+v, %#v, %s), slog
// and JSON, so it cannot leak into logs or errors by accident; use Reveal to
// read it.
type Secret string

// Reveal returns the secret in clear.
func (s Secret) Reveal() string { return string(s) }

// String redacts the secret.
func (s Secret) String() string { return "[redacted]" }

// GoString redacts the secret.
func (s Secret) GoString() string { return "[redacted]" }

// LogValue redacts the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON redacts the secret, so a Webhook serialized for an API or a
// JSON log carries no secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// MarshalText redacts the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// WebhookParams describe a notification channel for StoreWebhook.
type WebhookParams struct {
	// Type is WebhookSlack, WebhookMattermost, WebhookPagerDuty, WebhookEmail or
	// WebhookGeneric.
	Type string
	// Name identifies the webhook with its Type (1..100 characters).
	Name string
	// Channel is the Slack/Mattermost channel (optional), or for email the
	// recipients, comma-separated (required).
	Channel string
	// Secret is, by type: the incoming-webhook URL (slack, mattermost,
	// webhook; http or https), the Events API v2 routing key (pagerduty), or
	// an SMTP URL smtp://user:password@host:port?from=alerts@example.com
	// (email). It is encrypted before it leaves the process.
	Secret Secret
	// Enabled defaults to true.
	Enabled *bool
	// Routes are stored with the webhook, in the same transaction, as
	// RouteAlerts stores them: if the webhook or any route is refused,
	// nothing is stored. Leave their WebhookID zero: they route to this
	// webhook.
	Routes []RouteParams
}

// Webhook is a stored notification channel. Secret is set only by
// Client.Webhook, which decrypts it; ListWebhooks never decrypts.
type Webhook struct {
	ID           int64
	Type         string
	Name         string
	Channel      string
	Enabled      bool
	KeyID        string // the key that encrypted the secret
	LastTestedAt time.Time
	TestStatus   string // untested, ok, failed
	TestError    string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Secret       Secret
	// Routes are the routes StoreWebhook stored with the webhook
	// (WebhookParams.Routes); empty elsewhere (see ListRoutes).
	Routes []*Route
}

func (p *WebhookParams) validate() error {
	if !validWebhookType(p.Type) {
		return argError("Type", "must be one of slack, mattermost, pagerduty, email, webhook, alertmanager, got %q", p.Type)
	}
	if strings.TrimSpace(p.Name) == "" || len(p.Name) > 100 {
		return argError("Name", "must be a non-empty name of at most 100 characters, got %q", truncate(p.Name, 40))
	}
	secret := p.Secret.Reveal()
	switch p.Type {
	case WebhookSlack, WebhookMattermost, WebhookGeneric, WebhookAlertmanager:
		u, err := url.Parse(secret)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Never echo the secret: say what is wrong, not what was given.
			return argError("Secret", "must be an http or https URL with a host for a %s webhook", p.Type)
		}
	case WebhookPagerDuty:
		if strings.TrimSpace(secret) == "" || len(secret) > 200 {
			return argError("Secret", "must be a PagerDuty Events API v2 routing key (1..200 characters)")
		}
	case WebhookEmail:
		u, err := url.Parse(secret)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			return argError("Secret", "must be an smtp:// or smtps:// URL with a host for an email webhook")
		}
		if _, err := mail.ParseAddress(u.Query().Get("from")); err != nil {
			return argError("Secret", "must name the sender as ?from=address in the SMTP URL")
		}
		if _, err := mail.ParseAddressList(p.Channel); err != nil {
			return argError("Channel", "must list the email recipients, comma-separated, got %q", truncate(p.Channel, 60))
		}
	}
	for i, r := range p.Routes {
		arg := fmt.Sprintf("Routes[%d].", i)
		if r.WebhookID != 0 {
			return argError(arg+"WebhookID", "must be left zero: the route goes to the webhook being stored, got %d", r.WebhookID)
		}
		if _, err := r.upsert(arg); err != nil {
			return err
		}
	}
	return nil
}

// Versions of a secret's associated data (column secret_aad_version).
const (
	// secretAADv1 binds webhook_id and webhook_type: rows sealed before
	// migration 00019. They still decrypt; RotateWebhookKeys moves them to v2.
	secretAADv1 = 1
	// secretAADv2 binds every field that decides where a message goes:
	// webhook_id, webhook_type, name and channel.
	secretAADv2 = 2
)

// secretAAD is the associated data that binds a ciphertext to its webhook
// row, in the given version. Version 2 length-prefixes its text fields, so no
// two rows share associated data. A row sealed under one version does not
// open under another: changing the version column, like changing a bound
// field, makes decryption fail.
func secretAAD(version int16, id int64, typ, name, channel string) ([]byte, error) {
	switch version {
	case secretAADv1:
		return fmt.Appendf(nil, "pggit-monitor webhook secret v1|%d|%s", id, typ), nil
	case secretAADv2:
		return fmt.Appendf(nil, "pggit-monitor webhook secret v2|%d|%d:%s|%d:%s|%d:%s",
			id, len(typ), typ, len(name), name, len(channel), channel), nil
	}
	return nil, fmt.Errorf("%w: unknown secret_aad_version %d", ErrSecretTampered, version)
}

// rowAAD is the associated data a stored row was sealed with.
func rowAAD(r gen.WebhookRow) ([]byte, error) {
	return secretAAD(r.SecretAadVersion, r.WebhookID, r.WebhookType, r.Name, deref(r.Channel))
}

// StoreWebhook creates the webhook of (Type, Name), or replaces its channel,
// secret and enabled flag, stores its Routes, and returns it without the
// secret, all in one transaction. The secret is encrypted with the newest key
// of the key ring, bound to the row's id, type, name and channel.
func (c *Client) StoreWebhook(ctx context.Context, p WebhookParams) (*Webhook, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if c.keys == nil {
		return nil, ErrNoKeyRing
	}
	enabled := true
	if p.Enabled != nil {
		enabled = *p.Enabled
	}
	for attempt := 0; ; attempt++ {
		w, err := c.storeWebhookOnce(ctx, p, enabled)
		var pgErr *pgconn.PgError
		if attempt == 0 && errors.As(err, &pgErr) && pgErr.Code == "23505" {
			continue // created concurrently under the same name: update it instead
		}
		if err != nil {
			return nil, mapError(err)
		}
		return w, nil
	}
}

func (c *Client) storeWebhookOnce(ctx context.Context, p WebhookParams, enabled bool) (*Webhook, error) {
	var out gen.WebhookRow
	var routes []*Route
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		q := c.queries.WithTx(tx)
		existing, err := q.LockWebhookByName(ctx, p.Type, p.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		id := existing.WebhookID
		if !exists {
			if id, err = q.NextWebhookID(ctx); err != nil {
				return err
			}
		}
		aad, err := secretAAD(secretAADv2, id, p.Type, p.Name, p.Channel)
		if err != nil {
			return err
		}
		ct, nonce, keyID, err := c.keys.seal([]byte(p.Secret.Reveal()), aad)
		if err != nil {
			return err
		}
		if exists {
			out, err = q.UpdateWebhook(ctx, gen.UpdateWebhookParams{
				WebhookID: id, Channel: nonEmpty(p.Channel), Enabled: enabled,
				SecretCiphertext: ct, SecretNonce: nonce, KeyID: keyID, SecretAadVersion: secretAADv2,
			})
		} else {
			out, err = q.InsertWebhook(ctx, gen.InsertWebhookParams{
				WebhookID: id, WebhookType: p.Type, Name: p.Name, Channel: nonEmpty(p.Channel), Enabled: enabled,
				SecretCiphertext: ct, SecretNonce: nonce, KeyID: keyID, SecretAadVersion: secretAADv2,
			})
		}
		if err != nil {
			return err
		}
		for _, r := range p.Routes { // validated
			up, _ := r.upsert("")
			up.WebhookID = id
			row, err := q.UpsertRoute(ctx, up)
			if err != nil {
				return err
			}
			routes = append(routes, routeFromRow(row))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	w := webhookFromRow(out)
	w.Routes = routes
	return w, nil
}

// Webhook returns a webhook with its secret decrypted, for delivery. It fails
// with ErrNoKeyRing, ErrUnknownKey or ErrSecretTampered when the secret cannot
// be decrypted, and ErrNotFound when there is no such webhook.
func (c *Client) Webhook(ctx context.Context, id int64) (*Webhook, error) {
	row, err := c.queries.GetWebhook(ctx, id)
	if err != nil {
		return nil, mapError(err)
	}
	w := webhookFromRow(row)
	secret, err := c.decrypt(row)
	if err != nil {
		return nil, fmt.Errorf("webhook %d (%s %q): %w", row.WebhookID, row.WebhookType, row.Name, err)
	}
	w.Secret = Secret(secret)
	return w, nil
}

func (c *Client) decrypt(row gen.WebhookRow) (string, error) {
	if c.keys == nil {
		return "", ErrNoKeyRing
	}
	aad, err := rowAAD(row)
	if err != nil {
		return "", err
	}
	pt, err := c.keys.open(row.SecretCiphertext, row.SecretNonce, row.KeyID, aad)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// ListWebhooks returns every webhook, without decrypting any secret.
func (c *Client) ListWebhooks(ctx context.Context) ([]*Webhook, error) {
	rows, err := c.queries.ListWebhooks(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	out := make([]*Webhook, 0, len(rows))
	for _, r := range rows {
		out = append(out, webhookFromRow(r))
	}
	return out, nil
}

// RotateWebhookKeys re-encrypts every webhook secret with the newest key of
// the key ring and the newest associated data (version 2, binding id, type,
// name and channel), in one transaction: either every row moves or none does.
// Rows already on the newest key are re-encrypted too, so version-1 rows are
// upgraded. It returns how many rows were re-encrypted. A secret that cannot
// be decrypted (unknown key, tampered row) aborts the rotation.
func (c *Client) RotateWebhookKeys(ctx context.Context) (int, error) {
	if c.keys == nil {
		return 0, ErrNoKeyRing
	}
	n := 0
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		q := c.queries.WithTx(tx)
		rows, err := q.LockAllWebhooks(ctx)
		if err != nil {
			return err
		}
		for _, r := range rows {
			secret, err := c.decrypt(r)
			if err != nil {
				return fmt.Errorf("webhook %d (%s %q): %w", r.WebhookID, r.WebhookType, r.Name, err)
			}
			aad, err := secretAAD(secretAADv2, r.WebhookID, r.WebhookType, r.Name, deref(r.Channel))
			if err != nil {
				return err
			}
			ct, nonce, keyID, err := c.keys.seal([]byte(secret), aad)
			if err != nil {
				return err
			}
			if err := q.SetWebhookSecret(ctx, gen.SetWebhookSecretParams{
				SecretCiphertext: ct, SecretNonce: nonce, KeyID: keyID, SecretAadVersion: secretAADv2, WebhookID: r.WebhookID,
			}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, mapError(err)
	}
	return n, nil
}

func webhookFromRow(r gen.WebhookRow) *Webhook {
	return &Webhook{
		ID:           r.WebhookID,
		Type:         r.WebhookType,
		Name:         r.Name,
		Channel:      deref(r.Channel),
		Enabled:      r.Enabled,
		KeyID:        r.KeyID,
		LastTestedAt: deref(r.LastTestedAt),
		TestStatus:   r.TestStatus,
		TestError:    deref(r.TestError),
		CreatedAt:    r.CreatedAt,
		UpdatedAt:    r.UpdatedAt,
	}
}
