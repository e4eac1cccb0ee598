package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

// TestRunDrainsOnSIGTERM runs the real binary, makes it deliver an alert to a
// sink that answers slowly, sends SIGTERM while the request is in flight, and
// checks the delivery completes, is recorded, and the process exits 0.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "pggit-monitor")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	dsn := monitortest.NewDB(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys := "k1:" + base64.StdEncoding.EncodeToString(key)
	ring, err := monitor.ParseKeyRing(keys)
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := monitor.New(pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)

	inFlight := make(chan struct{}, 1)
	release := make(chan struct{})
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case inFlight <- struct{}{}:
		default: // a retry after a failed test: never block the server's Close
		}
		select { // still answering when SIGTERM arrives
		case <-release:
		case <-time.After(20 * time.Second):
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(sink.Close)
	hook, err := client.StoreWebhook(ctx, monitor.WebhookParams{Type: monitor.WebhookSlack, Name: "s", Secret: monitor.Secret(sink.URL + "/hooks/T")})
	require.NoError(t, err)
	_, err = client.RouteAlerts(ctx, monitor.RouteParams{WebhookID: hook.ID, MinSeverity: monitor.SeverityInfo})
	require.NoError(t, err)
	require.NoError(t, client.SetBatchConfig(ctx, monitor.BatchConfig{WebhookType: monitor.WebhookSlack, Size: 10, MaxAttempts: 3}))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	var logs syncBuffer
	cmd := exec.Command(bin, "run", "-poll-interval", "50ms", "-name", "cli-worker", "-metrics-addr", metricsAddr,
		"-runbook-base-url", "https://wiki.example/runbooks", "-ui")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dsn, monitor.EnvWebhookKeys+"="+keys, "PGGIT_UI_TOKEN=0123456789abcdef-token")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	_, err = pool.Exec(ctx, `SELECT pggit.raise_alert('merge_branches', '', 'ANOMALY', 'CRITICAL')`)
	require.NoError(t, err)
	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatalf("no delivery; worker output:\n%s", logs.String())
	}
	// The worker serves its metrics while it runs.
	var scraped string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		scraped = string(b)
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, scraped, `pggit_alerts_open{severity="CRITICAL",type="ANOMALY"} 1`)
	require.Contains(t, scraped, "go_goroutines")
	// And the web console, on the same listener.
	resp, err := http.Get("http://" + metricsAddr + "/ui/alerts")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), "merge_branches")
	require.Contains(t, string(page), "Sign in", "a token is configured")
	resp, err = http.Post("http://"+metricsAddr+"/ui/snoozes", "application/x-www-form-urlencoded", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "no action without signing in")
	// The scheduler ran its six jobs once at start.
	require.Eventually(t, func() bool {
		var jobs int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM pggit.scheduled_jobs WHERE last_status = 'ok'`).Scan(&jobs)
		return jobs == 6
	}, 30*time.Second, 20*time.Millisecond)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	time.Sleep(200 * time.Millisecond) // the worker is draining, the request still open
	close(release)
	require.NoError(t, cmd.Wait(), "exit status; output:\n%s", logs.String())
	require.Equal(t, 0, cmd.ProcessState.ExitCode())

	var status, worker string
	require.NoError(t, pool.QueryRow(ctx, `SELECT b.status, l.worker FROM pggit.notification_batch_queue b
		JOIN pggit.alert_notification_log l USING (batch_id)`).Scan(&status, &worker))
	require.Equal(t, "sent", status)
	require.Equal(t, "cli-worker", worker)
	require.Contains(t, logs.String(), "draining in-flight deliveries")
	require.Contains(t, logs.String(), "sent=1")
	require.NotContains(t, logs.String(), "/hooks/T")
	var base string
	require.NoError(t, pool.QueryRow(ctx, `SELECT setting_value FROM pggit.monitor_settings WHERE setting_name = 'runbook_base_url'`).Scan(&base))
	require.Equal(t, "https://wiki.example/runbooks", base)
}

func TestConsoleToken(t *testing.T) {
	t.Setenv("PGGIT_UI_TOKEN", "")
	tok, err := consoleToken("")
	require.NoError(t, err)
	require.Empty(t, tok, "no token: read-only")
	t.Setenv("PGGIT_UI_TOKEN", "short")
	_, err = consoleToken("")
	require.ErrorContains(t, err, "at least 16 characters")
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("  from-a-file-0123456789\n"), 0o600))
	tok, err = consoleToken(file)
	require.NoError(t, err)
	require.Equal(t, "from-a-file-0123456789", tok, "the file wins, trimmed")
	_, err = consoleToken(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "-ui-token-file")
	_, err = runCLI(t, "run", "-ui", "-metrics-addr", "")
	require.ErrorContains(t, err, "-ui needs a listener")
}

// run -lease and -request-timeout reach the dispatcher, and bad values are
// refused before the worker starts, naming the setting.
func TestRunLeaseFlags(t *testing.T) {
	t.Setenv("DATABASE_URL", monitortest.NewEmptyDB(t))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-lease", "500ms"}, "Lease must be whole seconds between 1s and 1h, got 500ms"},
		{[]string{"-lease", "10s", "-request-timeout", "6s"}, "RequestTimeout must be positive and at most half the Lease (10s), got 6s"},
	} {
		_, err := runCLI(t, append([]string{"run", "-metrics-addr", ""}, c.args...)...)
		require.ErrorContains(t, err, c.want)
	}
}
