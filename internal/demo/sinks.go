package demo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pggit/pggit-monitor/monitor"
)

// demoKeyRing is the configured key ring, or a key made for this run.
func demoKeyRing() (*monitor.KeyRing, string, error) {
	ring, err := monitor.LoadKeyRing()
	if err != nil {
		return nil, "", err
	}
	if ring != nil {
		return ring, "key " + ring.NewestKeyID() + " from " + monitor.EnvWebhookKeys, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, "", err
	}
	ring, err = monitor.NewKeyRing(map[string][]byte{"demo": key}, "demo")
	return ring, "with a key made for this run; set " + monitor.EnvWebhookKeys + " to keep one", err
}

// sinks are two local HTTP servers that answer like Slack and Mattermost
// incoming webhooks (200 "ok") and keep what they receive. The Mattermost one
// fails its first request with a 503, to show a retry.
type sinks struct {
	srv        *http.Server
	ln         net.Listener
	mu         sync.Mutex
	got        map[string][]string // channel -> attachment titles, per message
	shown      map[string]int      // channel -> lines of got already printed
	requests   int
	failed     bool
	hooks      []*monitor.Webhook
	dispatcher *monitor.Dispatcher
}

// resolveAndDeliver resolves the open alerts and delivers the resolutions:
// PagerDuty gets a resolve with the trigger's dedup key.
func (s *sinks) resolveAndDeliver(ctx context.Context, client *monitor.Client, w io.Writer) error {
	open, err := client.ListAlerts(ctx, &monitor.AlertFilter{OpenOnly: true})
	if err != nil {
		return err
	}
	for _, a := range open {
		if _, err := client.ResolveAlert(ctx, a.ID, "demo", "regression rolled back"); err != nil {
			return err
		}
		fmt.Fprintf(w, "alert %d (%s %s) resolved\n", a.ID, a.OperationType, a.Severity)
	}
	if s.dispatcher == nil {
		return nil
	}
	n, err := s.dispatcher.RunOnce(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(w, "%d batches delivered; pagerduty now has:\n", n)
	for _, line := range s.got["pagerduty"] {
		fmt.Fprintf(w, "  %s\n", line)
	}
	return nil
}

func startSinks() (*sinks, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sinks{ln: ln, got: map[string][]string{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// close stops the sinks and closes every connection at once. Shutdown would
// wait for a connection the dispatcher's transport dialed but never used
// (it counts as new, not idle, for 5 seconds) and leave it open.
func (s *sinks) close() {
	_ = s.srv.Close()
}

func (s *sinks) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	channel := "slack"
	switch {
	case strings.HasPrefix(r.URL.Path, "/mattermost/"):
		channel = "mattermost"
	case strings.HasPrefix(r.URL.Path, "/pagerduty/"):
		channel = "pagerduty"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if channel == "pagerduty" {
		var ev struct {
			Action   string `json:"event_action"`
			DedupKey string `json:"dedup_key"`
			Payload  struct {
				Severity string `json:"severity"`
				Summary  string `json:"summary"`
			} `json:"payload"`
		}
		_ = json.Unmarshal(body, &ev)
		line := fmt.Sprintf("%s %s", ev.Action, ev.DedupKey)
		if ev.Payload.Summary != "" {
			line += fmt.Sprintf(" [%s] %s", ev.Payload.Severity, ev.Payload.Summary)
		}
		s.got[channel] = append(s.got[channel], line)
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"success"}`)
		return
	}
	if channel == "mattermost" && !s.failed {
		s.failed = true
		http.Error(w, "service warming up", http.StatusServiceUnavailable)
		return
	}
	var msg struct {
		Attachments []struct {
			Color string `json:"color"`
			Title string `json:"title"`
		} `json:"attachments"`
	}
	_ = json.Unmarshal(body, &msg)
	for _, a := range msg.Attachments {
		s.got[channel] = append(s.got[channel], fmt.Sprintf("[%s] %s", a.Color, a.Title))
	}
	_, _ = io.WriteString(w, "ok")
}

func (s *sinks) register(ctx context.Context, client *monitor.Client, w io.Writer) error {
	base := "http://" + s.ln.Addr().String()
	for _, h := range []monitor.WebhookParams{
		{Type: monitor.WebhookSlack, Name: "demo-slack", Channel: "#pgit-alerts", Secret: monitor.Secret(base + "/slack/services/T000/B000/demo")},
		{Type: monitor.WebhookMattermost, Name: "demo-mattermost", Channel: "pgit-alerts", Secret: monitor.Secret(base + "/mattermost/hooks/demo")},
		{Type: monitor.WebhookPagerDuty, Name: "demo-pagerduty", Secret: "demo-routing-key-0000000000000000"},
	} {
		hook, err := client.StoreWebhook(ctx, h)
		if err != nil {
			return err
		}
		minSeverity, size := monitor.SeverityWarning, 10
		if h.Type == monitor.WebhookPagerDuty {
			minSeverity, size = monitor.SeverityCritical, 1 // page only for CRITICAL
		}
		if _, err := client.RouteAlerts(ctx, monitor.RouteParams{WebhookID: hook.ID, MinSeverity: minSeverity}); err != nil {
			return err
		}
		// Batches go out at once in the demo, not after 30 s.
		if err := client.SetBatchConfig(ctx, monitor.BatchConfig{WebhookType: h.Type, Size: size, MaxAttempts: 6}); err != nil {
			return err
		}
		s.hooks = append(s.hooks, hook)
		target := hook.Channel
		if target == "" {
			target = "CRITICAL only"
		}
		fmt.Fprintf(w, "webhook %d: %s %q -> %s, key %s (the database holds only ciphertext)\n", hook.ID, hook.Type, hook.Name, target, hook.KeyID)
	}
	return nil
}

func (s *sinks) deliver(ctx context.Context, client *monitor.Client, w io.Writer) error {
	// Deliver only when the demo's webhooks are the only ones: on a real
	// DATABASE_URL, never send anything anywhere else.
	all, err := client.ListWebhooks(ctx)
	if err != nil {
		return err
	}
	if len(all) != len(s.hooks) {
		fmt.Fprintf(w, "this database has %d other webhooks: not running a dispatcher here\n", len(all)-len(s.hooks))
		return nil
	}
	d, err := client.NewDispatcher(&monitor.DispatcherConfig{Worker: "demo", RetryBase: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		PagerDutyURL: "http://" + s.ln.Addr().String() + "/pagerduty/v2/enqueue"})
	if err != nil {
		return err
	}
	for pass := 1; pass <= 3; pass++ {
		n, err := d.RunOnce(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		fmt.Fprintf(w, "pass %d: %d batches\n", pass, n)
		time.Sleep(30 * time.Millisecond) // let the retry come due
	}
	st := d.Stats()
	fmt.Fprintf(w, "sent %d, retried %d, dead %d\n", st.Sent, st.Retried, st.Dead)
	s.dispatcher = d
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown == nil {
		s.shown = map[string]int{}
	}
	for _, ch := range []string{"slack", "mattermost", "pagerduty"} {
		lines := s.got[ch][s.shown[ch]:]
		s.shown[ch] = len(s.got[ch])
		fmt.Fprintf(w, "%s received %d alerts:\n", ch, len(lines))
		for _, line := range lines {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	return nil
}
