package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pggit/pggit-monitor/monitor"
)

// Targets of the alerting and notification benchmarks.
const (
	targetDelivered  = 5000.0 // alerts delivered per second with batching, at least
	targetLatencyP99 = 200 * time.Millisecond
)

// benchSnooze measures pggit.is_alert_snoozed with 10,000 snoozes stored.
func benchSnooze(ctx context.Context, e *env, o *options) (*section, error) {
	if err := e.exec(ctx, `DELETE FROM pggit.alert_snooze`); err != nil {
		return nil, err
	}
	// 10,000 snoozes: 6,000 active on distinct operations, 2,000 expired,
	// 2,000 cancelled, none of them 'ALL' (so every probe is a miss or a hit
	// on one operation, not a blanket match).
	if err := e.exec(ctx, `INSERT INTO pggit.alert_snooze
		(operation_type, alert_type, snooze_until, created_by, created_at, is_active, cancelled_at, cancelled_by)
		SELECT 'op_' || g, CASE WHEN g % 2 = 0 THEN 'THRESHOLD_EXCEEDED' ELSE 'ANOMALY' END,
		       CASE WHEN g <= 8000 AND g > 6000 THEN now() - interval '1 hour' ELSE now() + interval '1 day' END,
		       'bench', now() - interval '2 days', g <= 8000, CASE WHEN g > 8000 THEN now() END,
		       CASE WHEN g > 8000 THEN 'bench' END
		FROM generate_series(1, 10000) g`); err != nil {
		return nil, err
	}
	if err := e.exec(ctx, `ANALYZE pggit.alert_snooze`); err != nil {
		return nil, err
	}
	const calls = 20000
	probe := func(i int) string { return fmt.Sprintf("op_%d", i%12000+1) } // hits, misses, expired, cancelled
	roundTrip := &variant{name: "reference: SELECT 1 round trip", run: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		for range calls {
			var x int
			if err := e.pool.QueryRow(ctx, `SELECT 1`).Scan(&x); err != nil {
				return 0, err
			}
		}
		return time.Since(start) / calls, nil
	}}
	snoozed := &variant{name: "pggit.is_alert_snoozed(op, 'THRESHOLD_EXCEEDED') round trip", run: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		hits := 0
		for i := range calls {
			ok, err := e.client.IsAlertSnoozed(ctx, probe(i), "THRESHOLD_EXCEEDED")
			if err != nil {
				return 0, err
			}
			if ok {
				hits++
			}
		}
		if hits == 0 || hits == calls {
			return 0, fmt.Errorf("%d of %d probes snoozed: the probe mix is wrong", hits, calls)
		}
		return time.Since(start) / calls, nil
	}}
	inServer := &variant{name: "pggit.is_alert_snoozed inside the server (100,000 calls in one query)", run: func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		var n int64
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM generate_series(1, 100000) g
			WHERE pggit.is_alert_snoozed('op_' || (g % 12000 + 1), 'THRESHOLD_EXCEEDED')`).Scan(&n); err != nil {
			return 0, err
		}
		return time.Since(start) / 100000, nil
	}}
	variants := []*variant{roundTrip, snoozed, inServer}
	if err := measure(ctx, e, o.runs, variants, nil); err != nil {
		return nil, err
	}
	plan, err := explain(ctx, e.pool, `SELECT s.snooze_id FROM pggit.alert_snooze s
		WHERE s.is_active AND s.operation_type IN ('op_4242', 'ALL') AND s.alert_type IN ('THRESHOLD_EXCEEDED', 'ALL')
		  AND s.snooze_until > now() ORDER BY s.snooze_until DESC LIMIT 1`)
	if err != nil {
		return nil, err
	}
	r := snoozed.median().Seconds() / roundTrip.median().Seconds()
	return &section{
		title: "is_alert_snoozed with 10,000 snoozes stored (per call)",
		notes: []string{
			"10,000 snoozes: 6,000 active (distinct operations), 2,000 expired, 2,000 cancelled; probes cycle over 12,000 operation names (hits, misses, expired, cancelled).",
			"Round trips run sequentially on one connection; the in-server figure divides one query's time by its 100,000 calls.",
			"The plan below is the function's query with the values of one probe: an index scan of alert_snooze_match_idx, whatever the number of snoozes.",
		},
		variants: variants,
		plan:     plan,
		planOf:   "the snooze lookup inside pggit.is_alert_snoozed",
		ratios:   []ratio{{name: "is_alert_snoozed / SELECT 1 (per-call latency)", value: r}},
	}, nil
}

// benchDelivery measures the dispatcher: alerts delivered per second to a
// local no-op HTTP sink with batching, and, with batching off, the latency
// from an alert's insert to its receipt.
func benchDelivery(ctx context.Context, e *env, o *options) (*section, error) {
	ring, err := monitor.NewKeyRing(map[string][]byte{"bench": randomKey()}, "bench")
	if err != nil {
		return nil, err
	}
	client, err := monitor.New(e.pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	var received atomic.Int64
	var mu sync.Mutex
	arrivals := map[int64]time.Time{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		body, _ := io.ReadAll(r.Body)
		var msg struct {
			Alerts []struct {
				ID int64 `json:"alert_id"`
			} `json:"alerts"`
		}
		_ = json.Unmarshal(body, &msg)
		mu.Lock()
		for _, a := range msg.Alerts {
			if _, seen := arrivals[a.ID]; !seen {
				arrivals[a.ID] = now
			}
		}
		mu.Unlock()
		received.Add(int64(len(msg.Alerts)))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	w, err := client.StoreWebhook(ctx, monitor.WebhookParams{Type: monitor.WebhookGeneric, Name: "bench-sink", Secret: monitor.Secret(sink.URL + "/hook")})
	if err != nil {
		return nil, err
	}
	if _, err := client.RouteAlerts(ctx, monitor.RouteParams{WebhookID: w.ID, MinSeverity: monitor.SeverityInfo}); err != nil {
		return nil, err
	}
	reset := func(ctx context.Context) error {
		received.Store(0)
		mu.Lock()
		clear(arrivals)
		mu.Unlock()
		for _, q := range []string{`DELETE FROM pggit.alert_notification_log`, `DELETE FROM pggit.alert_notification_queue`,
			`DELETE FROM pggit.notification_batch_queue`, `DELETE FROM pggit.performance_alerts`,
			`DELETE FROM pggit.alert_snooze`} { // snoozed alerts are not notified
			if err := e.exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	}

	const alerts = 20000
	delivered := &variant{name: fmt.Sprintf("dispatcher: %s queued alerts, batches of 10, to a no-op HTTP sink", fmtInt(alerts)), samples: alerts,
		run: func(ctx context.Context) (time.Duration, error) {
			if err := reset(ctx); err != nil {
				return 0, err
			}
			if err := client.SetBatchConfig(ctx, monitor.BatchConfig{WebhookType: monitor.WebhookGeneric, Size: 10, Timeout: 0, MaxAttempts: 3}); err != nil {
				return 0, err
			}
			if err := e.exec(ctx, `SELECT count(pggit.raise_alert('dlv_' || g, '', 'ANOMALY', 'WARNING')) FROM generate_series(1, $1::integer) g`, alerts); err != nil {
				return 0, err
			}
			d, err := client.NewDispatcher(&monitor.DispatcherConfig{Worker: "bench", Concurrency: 8})
			if err != nil {
				return 0, err
			}
			start := time.Now()
			for received.Load() < alerts {
				if _, err := d.RunOnce(ctx); err != nil {
					return 0, err
				}
				if time.Since(start) > 2*time.Minute {
					var summary, lastErr string
					_ = e.pool.QueryRow(ctx, `SELECT string_agg(status || '=' || n, ' '), max(e) FROM (SELECT status, count(*) n, max(last_error) e FROM pggit.notification_batch_queue GROUP BY status) s`).Scan(&summary, &lastErr)
					return 0, fmt.Errorf("only %d of %d alerts arrived; batches: %s; last error: %s", received.Load(), alerts, summary, lastErr)
				}
			}
			return time.Since(start), nil
		}}
	// Reference: the same 2,000 HTTP requests with the same bodies and the
	// same concurrency, straight from memory: what the sink and the HTTP stack
	// allow without any database work.
	var bodies [][]byte
	rawHTTP := &variant{name: "reference: the same 2,000 POSTs of pre-formatted batches, Concurrency 8, no database", samples: alerts,
		run: func(ctx context.Context) (time.Duration, error) {
			if bodies == nil {
				for i := 0; i < alerts; i += 10 {
					ids := make([]int64, 10)
					for k := range ids {
						ids[k] = int64(i + k + 1)
					}
					var msg string
					if err := e.pool.QueryRow(ctx, `SELECT pggit.format_alert_batch(array_agg(alert_id ORDER BY alert_id), 'json')
						FROM (SELECT alert_id FROM pggit.performance_alerts ORDER BY alert_id LIMIT 10 OFFSET $1) a`, i%1000).Scan(&msg); err != nil {
						return 0, err
					}
					bodies = append(bodies, []byte(msg))
				}
			}
			received.Store(0)
			start := time.Now()
			work := make(chan []byte)
			var wg sync.WaitGroup
			var failed atomic.Int64
			for range 8 {
				wg.Go(func() {
					for b := range work {
						resp, err := http.Post(sink.URL+"/hook", "application/json", bytes.NewReader(b))
						if err != nil {
							failed.Add(1)
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
			for _, b := range bodies {
				work <- b
			}
			close(work)
			wg.Wait()
			if failed.Load() > 0 {
				return 0, fmt.Errorf("%d requests failed", failed.Load())
			}
			return time.Since(start), nil
		}}
	variants := []*variant{delivered, rawHTTP}
	if err := measure(ctx, e, o.runs, variants, nil); err != nil {
		return nil, err
	}

	// Latency, batching off: one alert at a time into a running dispatcher
	// whose polling is slow, so LISTEN/NOTIFY is what wakes it.
	if err := reset(ctx); err != nil {
		return nil, err
	}
	if err := client.SetBatchConfig(ctx, monitor.BatchConfig{WebhookType: monitor.WebhookGeneric, Size: 1, Timeout: 0, MaxAttempts: 3}); err != nil {
		return nil, err
	}
	d, err := client.NewDispatcher(&monitor.DispatcherConfig{Worker: "bench-latency", PollInterval: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := d.Start(ctx); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond) // LISTEN is up
	const probes = 300
	inserted := map[int64]time.Time{}
	for i := range probes {
		var id int64
		at := time.Now()
		if err := e.pool.QueryRow(ctx, `SELECT (pggit.raise_alert($1, '', 'ANOMALY', 'CRITICAL')).alert_id`, fmt.Sprintf("lat_%d", i)).Scan(&id); err != nil {
			_ = d.Stop(ctx)
			return nil, err
		}
		inserted[id] = at
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < probes && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := d.Stop(ctx); err != nil {
		return nil, err
	}
	var lat []time.Duration
	mu.Lock()
	for id, at := range inserted {
		if got, ok := arrivals[id]; ok {
			lat = append(lat, got.Sub(at))
		}
	}
	mu.Unlock()
	if len(lat) != probes {
		return nil, fmt.Errorf("latency: %d of %d alerts arrived", len(lat), probes)
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	latency := &variant{name: fmt.Sprintf("batching off: alert insert to receipt, %d alerts, p50", probes), times: []time.Duration{p50}}
	latency99 := &variant{name: "batching off: alert insert to receipt, p99 (polling every 5 s: NOTIFY does the waking)", times: []time.Duration{p99}}

	rate := delivered.rate()
	vsHTTP := rate / rawHTTP.rate()
	return &section{
		title: "Notification delivery (dispatcher to a local HTTP sink)",
		notes: []string{
			"Throughput: 20,000 alerts raised and queued first (pggit.raise_alert, routed to one generic webhook, batches of 10 = 2,000 HTTP requests); timed from the first claim until the sink has received every alert. One dispatcher, Concurrency 8, RunOnce passes (each claims Concurrency = 8 batches at a time, delivers them, and claims again; the claim also releases held notifications whose snooze ended and queues due reminders).",
			"Each batch costs: the claim (FOR UPDATE SKIP LOCKED, shared by up to 1,000 batches), decrypting the webhook, formatting the batch in SQL, one HTTP POST, recording the outcome.",
			"Latency: batch size 1, timeout 0; alerts raised one every 10 ms into a started dispatcher; the sink timestamps each arrival.",
		},
		variants: []*variant{delivered, rawHTTP, latency, latency99},
		ratios: []ratio{
			{name: "dispatcher / bare HTTP POSTs of the same batches (throughput)", value: vsHTTP},
			{name: "delivered alerts per second (batching on)", value: rate, unit: "/s", target: fmt.Sprintf(">= %s/s", fmtInt(int64(targetDelivered))), pass: rate >= targetDelivered},
			{name: "insert-to-receipt p99, batching off", value: float64(p99) / float64(time.Millisecond), unit: " ms", target: fmt.Sprintf("< %d ms", targetLatencyP99/time.Millisecond), pass: p99 < targetLatencyP99},
		},
	}, nil
}

func randomKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}
