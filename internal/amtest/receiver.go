package amtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Notification is the payload Alertmanager's webhook receiver gets: one
// notification for one alert group (webhook payload version 4).
type Notification struct {
	Version  string `json:"version"`
	GroupKey string `json:"groupKey"`
	// TruncatedAlerts counts the alerts left out by max_alerts (0 here: no
	// limit is configured).
	TruncatedAlerts int `json:"truncatedAlerts"`
	// Status is "firing" while any alert of the group fires, else "resolved".
	Status            string              `json:"status"`
	Receiver          string              `json:"receiver"`
	GroupLabels       map[string]string   `json:"groupLabels"`
	CommonLabels      map[string]string   `json:"commonLabels"`
	CommonAnnotations map[string]string   `json:"commonAnnotations"`
	ExternalURL       string              `json:"externalURL"`
	Alerts            []NotificationAlert `json:"alerts"`
}

// NotificationAlert is one alert of a Notification.
type NotificationAlert struct {
	// Status is "firing" or "resolved".
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	// EndsAt is the zero time for a firing alert.
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

// Alert returns the first alert of n whose labels include all of labels.
func (n Notification) Alert(labels map[string]string) (NotificationAlert, bool) {
	for _, a := range n.Alerts {
		if hasLabels(a.Labels, labels) {
			return a, true
		}
	}
	return NotificationAlert{}, false
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// receiver records the notifications POSTed to it.
type receiver struct {
	t       testing.TB
	mu      sync.Mutex
	got     []Notification
	changed chan struct{} // closed and replaced on every notification
}

func newReceiver(t testing.TB) *receiver {
	return &receiver{t: t, changed: make(chan struct{})}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/webhook" {
		r.t.Errorf("amtest receiver: unexpected %s %s", req.Method, req.URL.Path)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var n Notification
	if err := json.NewDecoder(req.Body).Decode(&n); err != nil {
		r.t.Errorf("amtest receiver: decoding a notification: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, n)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *receiver) notifications() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) waitNotification(ctx context.Context, match func(Notification) bool) (Notification, error) {
	seen := 0
	for {
		r.mu.Lock()
		got, changed := r.got[seen:], r.changed
		r.mu.Unlock()
		for _, n := range got {
			if match(n) {
				return n, nil
			}
		}
		seen += len(got)
		select {
		case <-changed:
		case <-ctx.Done():
			return Notification{}, fmt.Errorf("amtest: no matching notification (%w); received %s", ctx.Err(), summarize(r.notifications()))
		}
	}
}

// summarize describes notifications in one line each, for error messages.
func summarize(ns []Notification) string {
	if len(ns) == 0 {
		return "none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", len(ns))
	for _, n := range ns {
		fmt.Fprintf(&b, "\n  %s group %v:", n.Status, sorted(n.GroupLabels))
		for _, a := range n.Alerts {
			fmt.Fprintf(&b, " %s%v", a.Status, sorted(a.Labels))
		}
	}
	return b.String()
}

func sorted(m map[string]string) []string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s = append(s, k+"="+m[k])
	}
	return s
}
