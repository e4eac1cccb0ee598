package amtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// PostableAlert is an alert as POST /api/v2/alerts takes it. A zero
// StartsAt is "now"; a zero EndsAt is now + resolve_timeout; an EndsAt in
// the past resolves the alert.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// GettableAlert is an alert as GET /api/v2/alerts returns it.
type GettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Receivers    []Receiver        `json:"receivers"`
	Status       AlertStatus       `json:"status"`
}

// Receiver names a receiver an alert is routed to.
type Receiver struct {
	Name string `json:"name"`
}

// AlertStatus is the state of a GettableAlert.
type AlertStatus struct {
	// State is "unprocessed", "active" or "suppressed".
	State       string   `json:"state"`
	SilencedBy  []string `json:"silencedBy"`
	InhibitedBy []string `json:"inhibitedBy"`
}

// PostAlerts posts alerts to POST /api/v2/alerts.
func (am *Alertmanager) PostAlerts(ctx context.Context, alerts []PostableAlert) error {
	return am.do(ctx, http.MethodPost, "/api/v2/alerts", alerts, nil)
}

// Alerts returns every alert Alertmanager holds (GET /api/v2/alerts):
// active, silenced, inhibited and unprocessed.
func (am *Alertmanager) Alerts(ctx context.Context) ([]GettableAlert, error) {
	var alerts []GettableAlert
	err := am.do(ctx, http.MethodGet, "/api/v2/alerts", nil, &alerts)
	return alerts, err
}

// CreateSilence creates a silence (POST /api/v2/silences) from now for dur
// that matches alerts whose labels equal matchers, and returns its id.
// createdBy and comment are stored with the silence as given.
func (am *Alertmanager) CreateSilence(ctx context.Context, matchers map[string]string, dur time.Duration, createdBy, comment string) (string, error) {
	if len(matchers) == 0 || dur <= 0 {
		return "", errors.New("amtest: CreateSilence needs at least one matcher and a positive duration")
	}
	type matcher struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual bool   `json:"isEqual"`
	}
	body := struct {
		Matchers  []matcher `json:"matchers"`
		StartsAt  time.Time `json:"startsAt"`
		EndsAt    time.Time `json:"endsAt"`
		CreatedBy string    `json:"createdBy"`
		Comment   string    `json:"comment"`
	}{CreatedBy: createdBy, Comment: comment}
	for _, k := range slices.Sorted(maps.Keys(matchers)) {
		body.Matchers = append(body.Matchers, matcher{Name: k, Value: matchers[k], IsEqual: true})
	}
	now := time.Now().UTC()
	body.StartsAt, body.EndsAt = now, now.Add(dur)
	var resp struct {
		SilenceID string `json:"silenceID"`
	}
	if err := am.do(ctx, http.MethodPost, "/api/v2/silences", body, &resp); err != nil {
		return "", err
	}
	if resp.SilenceID == "" {
		return "", errors.New("amtest: POST /api/v2/silences returned no silenceID")
	}
	return resp.SilenceID, nil
}

// ExpireSilence expires the silence id (DELETE /api/v2/silence/{id}).
func (am *Alertmanager) ExpireSilence(ctx context.Context, id string) error {
	return am.do(ctx, http.MethodDelete, "/api/v2/silence/"+url.PathEscape(id), nil, nil)
}

// do sends in as JSON (when not nil) and decodes a 200 response into out
// (when not nil).
func (am *Alertmanager) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("amtest: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, am.URL+path, body)
	if err != nil {
		return fmt.Errorf("amtest: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := am.client.Do(req)
	if err != nil {
		return fmt.Errorf("amtest: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("amtest: %s %s: reading the response: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("amtest: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("amtest: %s %s: decoding the response: %w", method, path, err)
		}
	}
	return nil
}
