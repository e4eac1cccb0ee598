// Package amtest runs a real Prometheus Alertmanager for tests: one process
// per test on a free loopback port, its notifications delivered to a webhook
// receiver the harness runs, both stopped when the test ends.
//
//	am := amtest.Start(t, nil) // group_wait 1s, group_interval 1s, grouped by alertname, operation
//	// ... make the code under test POST to am.URL + "/api/v2/alerts" ...
//	n, err := am.WaitNotification(ctx, func(n amtest.Notification) bool {
//		return n.Status == "firing" && n.GroupLabels["operation"] == "checkout"
//	})
//
// The binary is ALERTMANAGER_BIN, else alertmanager or prometheus-alertmanager
// on PATH (Debian: apt-get install prometheus-alertmanager; .ci/run does). A
// missing binary fails the test, never skips it.
package amtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BinEnv names the environment variable that gives the Alertmanager binary.
const BinEnv = "ALERTMANAGER_BIN"

// ReceiverName is the name of the webhook receiver every alert is routed
// to: Notification.Receiver.
const ReceiverName = "amtest"

// Defaults of Options.
const (
	DefaultGroupWait      = time.Second
	DefaultGroupInterval  = time.Second
	DefaultRepeatInterval = time.Hour
	DefaultResolveTimeout = 5 * time.Minute
)

// DefaultGroupBy is the route's group_by when Options.GroupBy is empty.
var DefaultGroupBy = []string{"alertname", "operation"}

// binNames are looked up on PATH, in order.
var binNames = []string{"alertmanager", "prometheus-alertmanager"}

// ErrNotFound is returned by Find when no Alertmanager binary is found.
var ErrNotFound = errors.New("amtest: no Alertmanager binary: set " + BinEnv + " or put alertmanager or prometheus-alertmanager on PATH (Debian: apt-get install prometheus-alertmanager; .ci/run does)")

// startTimeout bounds how long Start waits for the process to listen and
// report ready; stopTimeout how long Stop waits after SIGTERM before SIGKILL.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Options configure Start. A nil *Options is the defaults.
type Options struct {
	// GroupBy is the route's group_by. Defaults to DefaultGroupBy
	// (alertname, operation). []string{"..."} groups by all labels.
	GroupBy []string
	// GroupWait is the route's group_wait. Defaults to 1s.
	GroupWait time.Duration
	// GroupInterval is the route's group_interval. Defaults to 1s.
	GroupInterval time.Duration
	// RepeatInterval is the route's repeat_interval. Defaults to 1h.
	RepeatInterval time.Duration
	// ResolveTimeout is global.resolve_timeout: the endsAt Alertmanager
	// gives an alert posted without one. Defaults to 5m.
	ResolveTimeout time.Duration
}

func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	r.GroupBy = slices.Clone(r.GroupBy)
	if len(r.GroupBy) == 0 {
		r.GroupBy = slices.Clone(DefaultGroupBy)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"GroupWait", &r.GroupWait, DefaultGroupWait},
		{"GroupInterval", &r.GroupInterval, DefaultGroupInterval},
		{"RepeatInterval", &r.RepeatInterval, DefaultRepeatInterval},
		{"ResolveTimeout", &r.ResolveTimeout, DefaultResolveTimeout},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < time.Millisecond || *d.v%time.Millisecond != 0:
			return r, fmt.Errorf("amtest: Options.%s is %v; it must be a whole number of milliseconds, at least 1ms (0 for the default %v)", d.name, *d.v, d.def)
		}
	}
	return r, nil
}

// Find returns the path of the Alertmanager binary: the file named by
// ALERTMANAGER_BIN when that is set, else alertmanager or
// prometheus-alertmanager on PATH. The error wraps ErrNotFound and says what
// to install.
func Find() (string, error) {
	if p := os.Getenv(BinEnv); p != "" {
		lp, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%w (%s=%q is not an executable file: %v)", ErrNotFound, BinEnv, p, err)
		}
		return lp, nil
	}
	for _, name := range binNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Alertmanager is a running Alertmanager with its webhook receiver.
type Alertmanager struct {
	// URL is the base URL of its HTTP API, e.g. http://127.0.0.1:40123
	// (post alerts to URL + "/api/v2/alerts").
	URL string

	rcv    *receiver
	client *http.Client
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	logf   string
}

// Start starts an Alertmanager that routes every alert to a webhook receiver
// run by the harness (send_resolved: true), and waits until it reports
// ready on /-/ready. Both are stopped when the test ends; a missing binary
// or a failed start fails the test. Clustering is disabled and the storage
// is a temporary directory.
func Start(t testing.TB, opts *Options) *Alertmanager {
	t.Helper()
	o, err := opts.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	rcv := newReceiver(t)
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close) // after the process is stopped: no webhook is in flight

	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, configFile(o, srv.URL+"/webhook"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "alertmanager.log")
	log, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()

	am := &Alertmanager{
		rcv:    rcv,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second},
		done:   make(chan struct{}),
		logf:   logf,
	}
	am.cmd = exec.Command(bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:0",
		"--cluster.listen-address=",
		"--log.level=debug",
	)
	am.cmd.Stdout, am.cmd.Stderr = log, log
	am.cmd.SysProcAttr = procAttr()
	if err := am.cmd.Start(); err != nil {
		t.Fatalf("amtest: starting %s: %v", bin, err)
	}
	go func() {
		_ = am.cmd.Wait()
		close(am.done)
	}()
	t.Cleanup(func() {
		am.stop()
		if t.Failed() {
			t.Logf("amtest: Alertmanager log:\n%s", am.logTail())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	addr, err := am.waitListening(ctx)
	if err != nil {
		t.Fatalf("amtest: %s did not start: %v\n%s", bin, err, am.logTail())
	}
	am.URL = "http://" + addr
	if err := am.waitReady(ctx); err != nil {
		t.Fatalf("amtest: %s at %s not ready: %v\n%s", bin, am.URL, err, am.logTail())
	}
	return am
}

// Notifications returns the notifications the receiver got so far, oldest
// first.
func (am *Alertmanager) Notifications() []Notification { return am.rcv.notifications() }

// WaitNotification returns the first notification, oldest first, for which
// match returns true: one already received, else the next one that comes.
// When ctx ends first, the error lists the notifications received. It may be
// called from any goroutine.
func (am *Alertmanager) WaitNotification(ctx context.Context, match func(Notification) bool) (Notification, error) {
	return am.rcv.waitNotification(ctx, match)
}

// stop ends the process: SIGTERM, then SIGKILL after stopTimeout.
func (am *Alertmanager) stop() {
	_ = am.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-am.done:
	case <-time.After(stopTimeout):
		_ = am.cmd.Process.Kill()
		<-am.done
	}
}

// listening matches the line Alertmanager (exporter-toolkit) logs with the
// address it bound, the real port when asked for port 0.
var listening = regexp.MustCompile(`msg="Listening on" address=(127\.0\.0\.1:[0-9]+)`)

func (am *Alertmanager) waitListening(ctx context.Context) (string, error) {
	for {
		b, _ := os.ReadFile(am.logf)
		if m := listening.FindSubmatch(b); m != nil && !bytes.HasSuffix(m[1], []byte(":0")) {
			return string(m[1]), nil
		}
		select {
		case <-am.done:
			return "", fmt.Errorf("exited: %v", am.cmd.ProcessState)
		case <-ctx.Done():
			return "", errors.New("no \"Listening on\" address in its log")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (am *Alertmanager) waitReady(ctx context.Context) error {
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, am.URL+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := am.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		select {
		case <-am.done:
			return fmt.Errorf("exited: %v", am.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logTail returns the end of the process log, for failure messages.
func (am *Alertmanager) logTail() string {
	b, err := os.ReadFile(am.logf)
	if err != nil {
		return err.Error()
	}
	const max = 8 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimRight(string(b), "\n")
}

// configFile is the Alertmanager configuration: JSON, which is YAML.
func configFile(o Options, webhookURL string) []byte {
	ms := func(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
	cfg := map[string]any{
		"global": map[string]any{"resolve_timeout": ms(o.ResolveTimeout)},
		"route": map[string]any{
			"receiver":        ReceiverName,
			"group_by":        o.GroupBy,
			"group_wait":      ms(o.GroupWait),
			"group_interval":  ms(o.GroupInterval),
			"repeat_interval": ms(o.RepeatInterval),
		},
		"receivers": []any{map[string]any{
			"name": ReceiverName,
			"webhook_configs": []any{map[string]any{
				"url":           webhookURL,
				"send_resolved": true,
			}},
		}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // maps of strings and durations always marshal
	}
	return b
}
