package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

// crashHelperEnv holds the JSON crashHelper configuration of a dispatcher
// that TestHelperProcessDispatcher runs in a child process.
const crashHelperEnv = "PGGIT_TEST_CRASH_HELPER"

// crashChildHeader marks the requests of the child's dispatcher, so the sink
// can hold them.
const crashChildHeader = "X-Test-Killed-Worker"

type crashHelper struct {
	DSN            string        `json:"dsn"`
	Key            []byte        `json:"key"`
	Worker         string        `json:"worker"`
	Lease          time.Duration `json:"lease"`
	RequestTimeout time.Duration `json:"request_timeout"`
	Concurrency    int           `json:"concurrency"`
}

// markChild adds crashChildHeader to every request.
type markChild struct{ next http.RoundTripper }

func (m markChild) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(crashChildHeader, "1")
	return m.next.RoundTrip(r)
}

// TestHelperProcessDispatcher is not a test of its own: it does nothing unless
// PGGIT_TEST_CRASH_HELPER is set. TestKilledDispatcherProcessLosesNothing runs
// the test binary again with it set, to get a dispatcher in a process of its
// own that can be killed with SIGKILL. It dispatches until killed (or exits
// after two minutes, should the parent never kill it).
func TestHelperProcessDispatcher(t *testing.T) {
	raw := os.Getenv(crashHelperEnv)
	if raw == "" {
		return
	}
	var h crashHelper
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(h.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "" // as the harness does: unqualified names fail
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": h.Key}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	client, err := monitor.New(pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	d, err := client.NewDispatcher(&monitor.DispatcherConfig{
		Worker: h.Worker, Lease: h.Lease, RequestTimeout: h.RequestTimeout, Concurrency: h.Concurrency,
		PollInterval: 20 * time.Millisecond, RetryBase: time.Hour, RetryMax: time.Hour,
		HTTPClient: &http.Client{Transport: markChild{http.DefaultTransport}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Minute)
	os.Exit(3)
}

// TestKilledDispatcherProcessLosesNothing runs a dispatcher in a child
// process, kills it with SIGKILL while the receiver holds its requests, and
// checks that a second dispatcher delivers every notification once the
// killed one's leases expire, and that the only notifications delivered
// twice are those the killed process had in flight.
func TestKilledDispatcherProcessLosesNothing(t *testing.T) {
	t.Parallel()
	const (
		alerts      = 20
		batchSize   = 4
		concurrency = 2
		lease       = 3 * time.Second
	)
	e := setup(t)
	key := newKey(t)
	ring, err := monitor.NewKeyRing(map[string][]byte{"k1": key}, "k1")
	require.NoError(t, err)
	c, err := monitor.New(e.pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, c.SetBatchConfig(e.ctx, monitor.BatchConfig{WebhookType: "webhook", Size: batchSize, Timeout: 0, MaxAttempts: 5}))

	// The receiver holds the killed worker's requests until their connection
	// is gone, and answers everyone else at once.
	held := make(chan struct{}, 100)
	release := make(chan struct{})
	s := newSink(t)
	t.Cleanup(func() { close(release) }) // before the sink closes
	s.setRespond(func(_ int, r *http.Request) (int, string, http.Header) {
		if r.Header.Get(crashChildHeader) == "" {
			return http.StatusOK, "ok", nil
		}
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return http.StatusServiceUnavailable, "held", nil
	})
	w, err := c.StoreWebhook(e.ctx, monitor.WebhookParams{Type: "webhook", Name: "w", Secret: monitor.Secret(secretURL(s, "TKILL"))})
	require.NoError(t, err)
	_, err = c.RouteAlerts(e.ctx, monitor.RouteParams{WebhookID: w.ID, Type: "ALL", MinSeverity: "INFO"})
	require.NoError(t, err)
	e.exec(`SELECT count(pggit.raise_alert('op' || g, '', 'ANOMALY', 'WARNING')) FROM generate_series(1, $1) g`, alerts)
	require.EqualValues(t, alerts/batchSize, e.count(`SELECT count(*) FROM pggit.notification_batch_queue WHERE status = 'ready'`))

	// The child process.
	cfg, err := json.Marshal(crashHelper{DSN: e.dsn, Key: key, Worker: "killed", Lease: lease,
		RequestTimeout: lease / 3, Concurrency: concurrency})
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessDispatcher$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+string(cfg))
	childLogs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = childLogs, childLogs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("child process output:\n%s", childLogs.String())
		}
	})
	select {
	case <-held: // the child is sending: the receiver holds at least one request
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("the child exited before sending: %v\n%s", err, childLogs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the child sent nothing in 60s\n%s", childLogs.String())
	}
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no drain, no recording, nothing
	werr := <-exited
	exited <- werr // for the cleanup
	var exitErr *exec.ExitError
	require.True(t, errors.As(werr, &exitErr), "%v", werr)
	require.Equal(t, syscall.SIGKILL, exitErr.Sys().(syscall.WaitStatus).Signal())

	// What the killed worker held: leased batches, and the alerts in them.
	type leased struct {
		alerts []int64
		until  time.Time
	}
	claimed := map[int64]leased{}
	rows, err := e.pool.Query(e.ctx, `SELECT b.batch_id, b.lease_until, array_agg(q.alert_id ORDER BY q.alert_id)
		FROM pggit.notification_batch_queue b JOIN pggit.alert_notification_queue q USING (batch_id)
		WHERE b.status = 'sending' AND b.leased_by = 'killed' GROUP BY b.batch_id, b.lease_until`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id int64
		var l leased
		require.NoError(t, rows.Scan(&id, &l.until, &l.alerts))
		claimed[id] = l
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, claimed)
	require.LessOrEqual(t, len(claimed), concurrency)

	// Another dispatcher takes over.
	d, err := c.NewDispatcher(&monitor.DispatcherConfig{Worker: "survivor", PollInterval: 20 * time.Millisecond,
		RetryBase: time.Millisecond, RetryMax: 2 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, d.Start(e.ctx))
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM pggit.alert_notification_queue WHERE status = 'sent'`) == alerts
	}, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, d.Stop(e.ctx))
	require.EqualValues(t, alerts/batchSize, d.Stats().Sent) // every batch, the killed worker's included

	// Every alert reached the receiver in an answered request, once.
	type message struct {
		Alerts []struct {
			ID int64 `json:"alert_id"`
		} `json:"alerts"`
	}
	delivered := map[int64]int{}
	heldAlerts := map[int64]bool{}
	seen := map[string]int{}
	heldKeys := map[string]bool{}
	for _, r := range s.received() {
		var m message
		require.NoError(t, json.Unmarshal(r.Body, &m))
		key := r.Header.Get("X-Pggit-Dedup-Key")
		require.NotEmpty(t, key)
		seen[key]++
		for _, a := range m.Alerts {
			if r.Header.Get(crashChildHeader) != "" {
				heldAlerts[a.ID] = true
			} else {
				delivered[a.ID]++
			}
		}
		if r.Header.Get(crashChildHeader) != "" {
			heldKeys[key] = true
		}
	}
	require.Len(t, delivered, alerts)
	for id, n := range delivered {
		require.Equal(t, 1, n, "alert %d answered %d times", id, n)
	}
	// Duplicates: exactly the killed worker's requests, each sent once more
	// by the survivor; no more than it had claimed.
	dups := map[string]bool{}
	for k, n := range seen {
		require.LessOrEqual(t, n, 2, "dedup key %s seen %d times", k, n)
		if n == 2 {
			dups[k] = true
		}
	}
	require.Equal(t, heldKeys, dups)
	require.LessOrEqual(t, len(dups), len(claimed))
	inClaimed := map[int64]bool{}
	for _, l := range claimed {
		for _, a := range l.alerts {
			inClaimed[a] = true
		}
	}
	for a := range heldAlerts {
		require.True(t, inClaimed[a], "alert %d was held but not in a batch the killed worker claimed", a)
	}

	// The killed worker's batches were sent by the survivor, only after
	// their lease had expired.
	for id, l := range claimed {
		var sentAt time.Time
		var worker string
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT created_at, worker FROM pggit.alert_notification_log
			WHERE batch_id = $1 AND outcome = 'sent'`, id).Scan(&sentAt, &worker))
		require.Equal(t, "survivor", worker)
		require.True(t, sentAt.After(l.until), "batch %d sent at %s, its lease ran to %s", id, sentAt, l.until)
	}
	require.Zero(t, e.count(`SELECT count(*) FROM pggit.notification_batch_queue WHERE status <> 'sent'`))
}
