package monitor

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pggit/pggit-monitor/gen"
)

// DefaultPagerDutyURL is the PagerDuty Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// NotifyChannel is the LISTEN/NOTIFY channel on which the database announces
// batches ready to send.
const NotifyChannel = "pggit_notifications"

// Defaults of DispatcherConfig.
const (
	DefaultDispatcherPollInterval   = time.Second
	DefaultDispatcherConcurrency    = 4
	DefaultDispatcherLease          = time.Minute
	DefaultDispatcherRequestTimeout = 10 * time.Second
	DefaultDispatcherRetryBase      = 2 * time.Second
	DefaultDispatcherRetryMax       = 10 * time.Minute
)

// DispatcherConfig configures a Dispatcher. A nil *DispatcherConfig means all
// defaults.
type DispatcherConfig struct {
	// Worker names this dispatcher in leases and the delivery log. Defaults
	// to <hostname>-<pid>-<random>.
	Worker string
	// PollInterval is the fallback when no notification arrives (batch
	// timeouts, retries, expired leases). Defaults to 1s.
	PollInterval time.Duration
	// Concurrency is how many batches are delivered at once. Defaults to 4.
	Concurrency int
	// Lease is how long a claimed batch belongs to this dispatcher; a batch
	// whose lease expires (the dispatcher died) is taken over by another.
	// The dispatcher extends it every Lease/3 while it works on a batch, and
	// sends only when the request can end before the lease does. At least
	// twice RequestTimeout. Defaults to 1m.
	Lease time.Duration
	// RequestTimeout bounds one delivery (HTTP request or SMTP session).
	// Defaults to 10s.
	RequestTimeout time.Duration
	// RetryBase and RetryMax shape the exponential backoff between attempts
	// (with jitter): base x 2^(attempt-1), at most max. A 429's Retry-After
	// wins when it says more. Default to 2s and 10m.
	RetryBase, RetryMax time.Duration
	// HTTPClient sends webhook requests. Defaults to a client without
	// redirects to other hosts.
	HTTPClient *http.Client
	// PagerDutyURL is the Events API endpoint. Defaults to DefaultPagerDutyURL.
	PagerDutyURL string
	// SMTPTLSConfig verifies SMTP servers (STARTTLS and smtps). Defaults to
	// the system roots.
	SMTPTLSConfig *tls.Config
	// OnDelivery, when set, is called after every delivery attempt has been
	// recorded (from the delivering goroutine; keep it fast). Metrics hook
	// in here.
	OnDelivery func(DeliveryEvent)
}

// DeliveryEvent describes one delivery attempt of a batch.
type DeliveryEvent struct {
	BatchID     int64
	WebhookID   int64
	WebhookType string // empty when the webhook could not be read
	// Outcome is "sent", "retry" or "dead" (after the last attempt, a retry is dead).
	Outcome    string
	Alerts     int
	Attempt    int
	HTTPStatus int // 0 when none
	Latency    time.Duration
}

func (c *DispatcherConfig) validate() (DispatcherConfig, error) {
	var v DispatcherConfig
	if c != nil {
		v = *c
	}
	if v.Worker == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		v.Worker = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if v.PollInterval == 0 {
		v.PollInterval = DefaultDispatcherPollInterval
	}
	if v.Concurrency == 0 {
		v.Concurrency = DefaultDispatcherConcurrency
	}
	if v.Lease == 0 {
		v.Lease = DefaultDispatcherLease
	}
	if v.RequestTimeout == 0 {
		v.RequestTimeout = DefaultDispatcherRequestTimeout
	}
	if v.RetryBase == 0 {
		v.RetryBase = DefaultDispatcherRetryBase
	}
	if v.RetryMax == 0 {
		v.RetryMax = DefaultDispatcherRetryMax
	}
	if v.HTTPClient == nil {
		v.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if v.PagerDutyURL == "" {
		v.PagerDutyURL = DefaultPagerDutyURL
	}
	switch {
	case len(v.Worker) > 200:
		return v, argError("Worker", "must be at most 200 characters")
	case v.PollInterval < time.Millisecond:
		return v, argError("PollInterval", "must be at least 1ms, got %s", v.PollInterval)
	case v.Concurrency < 1 || v.Concurrency > 256:
		return v, argError("Concurrency", "must be between 1 and 256, got %d", v.Concurrency)
	case v.Lease < time.Second || v.Lease > time.Hour || v.Lease%time.Second != 0:
		return v, argError("Lease", "must be whole seconds between 1s and 1h, got %s", v.Lease)
	case v.RequestTimeout <= 0 || v.RequestTimeout > v.Lease/2:
		return v, argError("RequestTimeout", "must be positive and at most half the Lease (%s), got %s", v.Lease, v.RequestTimeout)
	case v.RetryBase <= 0 || v.RetryMax < v.RetryBase:
		return v, argError("RetryBase", "must be positive and at most RetryMax, got %s and %s", v.RetryBase, v.RetryMax)
	}
	return v, nil
}

// DispatcherStats counts delivery attempts since the dispatcher started.
type DispatcherStats struct {
	Sent    uint64 // batches delivered
	Retried uint64 // attempts that failed and will be tried again
	Dead    uint64 // batches given up
	Lost    uint64 // completions refused because another dispatcher took the lease
}

// Dispatcher delivers queued notifications: it claims due batches with FOR
// UPDATE SKIP LOCKED and a lease, wakes on LISTEN/NOTIFY (with a polling
// fallback), sends one message per batch and records the outcome. Several
// dispatchers may share a database. Delivery is at least once: a dispatcher
// that dies mid-send loses nothing, since its lease expires and another
// dispatcher sends the batch, with the same dedup key.
type Dispatcher struct {
	client *Client
	cfg    DispatcherConfig
	logger *slog.Logger

	mu         sync.Mutex
	running    bool
	stopLoop   context.CancelFunc // stops claiming
	stopSend   context.CancelFunc // abandons in-flight deliveries
	stopKeeper func()             // stops extending leases, and waits
	loopDone   chan struct{}
	inflight   sync.WaitGroup
	slots      chan struct{}
	wake       chan struct{}

	leaseMu sync.Mutex
	leases  map[int64]*claimed // batches in flight, by id

	sent, retried, dead, lost atomic.Uint64
}

// NewDispatcher returns a Dispatcher; Start runs it.
func (c *Client) NewDispatcher(cfg *DispatcherConfig) (*Dispatcher, error) {
	v, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &Dispatcher{
		client: c,
		cfg:    v,
		logger: c.logger.With(slog.String("worker", v.Worker)),
		slots:  make(chan struct{}, v.Concurrency),
		wake:   make(chan struct{}, 1),
		leases: make(map[int64]*claimed),
	}, nil
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() DispatcherStats {
	return DispatcherStats{Sent: d.sent.Load(), Retried: d.retried.Load(), Dead: d.dead.Load(), Lost: d.lost.Load()}
}

// Start begins claiming and delivering in the background until Stop.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		return errors.New("pggit: dispatcher already started")
	}
	loopCtx, stopLoop := context.WithCancel(WithoutTracing(context.WithoutCancel(ctx)))
	sendCtx, stopSend := context.WithCancel(context.WithoutCancel(ctx))
	d.running, d.stopLoop, d.stopSend = true, stopLoop, stopSend
	d.loopDone = make(chan struct{})
	listenDone := make(chan struct{})
	go func() {
		defer close(listenDone)
		d.listen(loopCtx)
	}()
	keeperCtx, stopKeeper := context.WithCancel(context.WithoutCancel(ctx))
	keeperDone := make(chan struct{})
	go func() {
		defer close(keeperDone)
		d.keepLeases(keeperCtx)
	}()
	d.stopKeeper = func() {
		stopKeeper()
		<-keeperDone
	}
	go func() {
		defer close(d.loopDone)
		d.loop(loopCtx, sendCtx)
		<-listenDone
	}()
	return nil
}

// Stop stops claiming and waits for in-flight deliveries to finish (graceful
// drain). If ctx ends first, in-flight deliveries are abandoned: their batches
// are released for a retry and Stop returns ctx's error.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return nil
	}
	d.running = false
	d.mu.Unlock()

	d.stopLoop()
	<-d.loopDone
	drained := make(chan struct{})
	go func() {
		d.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		d.stopSend()
		d.stopKeeper()
		return nil
	case <-ctx.Done():
		d.stopSend()
		<-drained
		d.stopKeeper()
		return ctx.Err()
	}
}

// listen turns NOTIFYs on NotifyChannel into wake-ups, reconnecting on error.
func (d *Dispatcher) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		d.logger.Warn("pggit: dispatcher LISTEN connection lost; polling meanwhile", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// listenOnce listens on a dedicated connection, outside the pool, so that a
// dispatcher never holds a pool connection for its whole life.
func (d *Dispatcher) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, d.client.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	d.poke() // batches may have become ready while no one listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		d.poke()
	}
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) loop(ctx, sendCtx context.Context) {
	ticker := time.NewTicker(d.cfg.PollInterval)
	defer ticker.Stop()
	for {
		for ctx.Err() == nil {
			n, err := d.claimAndSend(ctx, sendCtx)
			if err != nil {
				if ctx.Err() == nil {
					d.logger.Warn("pggit: dispatcher claim failed", slog.String("error", err.Error()))
				}
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-d.wake:
		}
	}
}

// claimAndSend claims as many batches as there are free slots and starts
// their delivery; it returns how many it claimed.
func (d *Dispatcher) claimAndSend(ctx, sendCtx context.Context) (int, error) {
	// Wait for at least one free slot.
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, nil
	}
	free := 1
	for free < cap(d.slots) {
		select {
		case d.slots <- struct{}{}:
			free++
			continue
		default:
		}
		break
	}
	claims, err := d.claim(ctx, free)
	for i := len(claims); i < free; i++ {
		<-d.slots // give back what was not used
	}
	if err != nil {
		return 0, err
	}
	for _, c := range claims {
		d.inflight.Add(1)
		go func() {
			defer func() {
				<-d.slots
				d.inflight.Done()
			}()
			d.deliver(sendCtx, c)
		}()
	}
	return len(claims), nil
}

// claimed is a batch this dispatcher holds, with the local time by which its
// lease ends at the latest (taken before the claim or the extension was
// asked for, so never later than the database's lease_until).
type claimed struct {
	b        gen.NotificationBatch
	hook     webhookResult
	deadline atomic.Pointer[time.Time] // with its monotonic reading: a clock step cannot stretch it
}

func (c *claimed) remaining() time.Duration {
	return time.Until(*c.deadline.Load())
}

func (c *claimed) extendFrom(asked time.Time, lease time.Duration) {
	t := asked.Add(lease)
	c.deadline.Store(&t)
}

// claim claims up to n due batches, decrypts their webhooks and registers
// them with the lease keeper.
func (d *Dispatcher) claim(ctx context.Context, n int) ([]*claimed, error) {
	asked := time.Now()
	batches, err := d.client.queries.ClaimNotificationBatches(ctx, d.cfg.Worker, int32(n), int32(d.cfg.Lease/time.Second))
	if err != nil {
		return nil, mapError(err)
	}
	hooks := d.webhooks(ctx, batches)
	out := make([]*claimed, len(batches))
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	for i, b := range batches {
		c := &claimed{b: b, hook: hooks[b.WebhookID]}
		c.extendFrom(asked, d.cfg.Lease)
		d.leases[b.BatchID] = c
		out[i] = c
	}
	return out, nil
}

func (d *Dispatcher) forget(c *claimed) {
	d.leaseMu.Lock()
	if d.leases[c.b.BatchID] == c { // not a later claim of the same batch
		delete(d.leases, c.b.BatchID)
	}
	d.leaseMu.Unlock()
}

// keepLeases extends the leases of the batches in flight every third of the
// lease until ctx ends, so a slow send or a slow database does not let
// another dispatcher take a batch over while this one still works on it. An
// extension that fails leaves the deadline where it was: delivery then stops
// at the old deadline (see deliver).
func (d *Dispatcher) keepLeases(ctx context.Context) {
	t := time.NewTicker(d.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.leaseMu.Lock()
		ids := make([]int64, 0, len(d.leases))
		for id := range d.leases {
			ids = append(ids, id)
		}
		d.leaseMu.Unlock()
		if len(ids) == 0 {
			continue
		}
		asked := time.Now()
		ectx, cancel := context.WithTimeout(ctx, d.cfg.Lease/3)
		kept, err := d.client.queries.ExtendNotificationLeases(ectx, int32(d.cfg.Lease/time.Second), ids, d.cfg.Worker)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				d.logger.Warn("pggit: extending leases failed; in-flight batches keep their deadlines", slog.String("error", err.Error()))
			}
			continue
		}
		d.leaseMu.Lock()
		for _, id := range kept {
			if c, ok := d.leases[id]; ok {
				c.extendFrom(asked, d.cfg.Lease)
			}
		}
		d.leaseMu.Unlock()
	}
}

// margin is the part of a lease kept free of work: clock drift between
// steps, and the round trip of the completion.
func (d *Dispatcher) margin() time.Duration { return d.cfg.Lease / 10 }

// beforeSend is how long c's lease leaves for work before its request must
// start: the rest of the lease less one request and the margin. Reading the
// webhook and formatting get this much; at or below zero, nothing is sent.
func (d *Dispatcher) beforeSend(c *claimed) time.Duration {
	return c.remaining() - d.margin() - d.cfg.RequestTimeout
}

// webhookResult is a decrypted webhook, or why it could not be had.
type webhookResult struct {
	w   *Webhook
	err error
}

// webhooks decrypts the webhooks of the claimed batches, once each.
func (d *Dispatcher) webhooks(ctx context.Context, batches []gen.NotificationBatch) map[int64]webhookResult {
	out := make(map[int64]webhookResult)
	for _, b := range batches {
		if _, ok := out[b.WebhookID]; !ok {
			w, err := d.client.Webhook(ctx, b.WebhookID)
			out[b.WebhookID] = webhookResult{w, err}
		}
	}
	return out
}

// RunOnce makes one pass synchronously: it claims batches due now,
// Concurrency at a time (so a claimed batch never waits for a slot while its
// lease runs), delivers them, records the outcomes, and returns how many it
// handled. For tools and tests that do not run a background dispatcher; a
// failed batch is retried by a later pass.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	kctx, stopKeeper := context.WithCancel(ctx)
	keeperDone := make(chan struct{})
	go func() {
		defer close(keeperDone)
		d.keepLeases(kctx)
	}()
	defer func() {
		stopKeeper()
		<-keeperDone
	}()
	total, handled := 0, map[int64]bool{}
	for total < 1000 && ctx.Err() == nil {
		claims, err := d.claim(ctx, d.cfg.Concurrency)
		if err != nil {
			return total, err
		}
		again := false
		var wg sync.WaitGroup
		for _, c := range claims {
			if handled[c.b.BatchID] {
				// Due again (a quick retry): that is the next pass's.
				again = true
				d.release(ctx, c, "already attempted in this pass")
				d.forget(c)
				continue
			}
			handled[c.b.BatchID] = true
			total++
			wg.Go(func() { d.deliver(ctx, c) })
		}
		wg.Wait()
		if again || len(claims) < d.cfg.Concurrency {
			break
		}
	}
	return total, nil
}

// attempt is the result of one delivery attempt.
type attempt struct {
	outcome    string // sent, retry, dead
	httpStatus *int32
	smtpReply  *string
	err        string
	retryAfter time.Duration // from a 429's Retry-After
}

// deliver formats, sends and records one claimed batch within its lease:
// formatting gets what the lease leaves after a request and the margin; the
// request starts only if it can end before the lease does (else the batch is
// released, not sent); the outcome is recorded with retries until the lease
// ends. So no other dispatcher can claim the batch while this one may still
// send it, however slow the database or the receiver.
func (d *Dispatcher) deliver(ctx context.Context, c *claimed) {
	defer d.forget(c)
	b := c.b
	start := time.Now()
	res, sent := d.attempt(ctx, c)
	if !sent {
		d.release(ctx, c, res.err)
		return
	}
	latency := float64(time.Since(start).Microseconds()) / 1000

	var retryAt *time.Time
	if res.outcome == "retry" {
		at := time.Now().Add(d.backoff(int(b.Attempts), res.retryAfter))
		retryAt = &at
	}
	var errText *string
	if res.err != "" {
		errText = &res.err
	}
	// Record even when the dispatcher is being stopped: the batch goes back to
	// the queue for a retry instead of waiting for its lease to expire.
	ok, err := d.complete(context.WithoutCancel(ctx), c, gen.CompleteNotificationBatchParams{
		BatchID: b.BatchID, Worker: d.cfg.Worker, Outcome: res.outcome,
		HttpStatus: res.httpStatus, SmtpReply: res.smtpReply, LatencyMs: latency,
		Error: errText, RetryAt: retryAt, Attempt: &b.Attempts,
	})
	if d.cfg.OnDelivery != nil && err == nil && ok {
		ev := DeliveryEvent{BatchID: b.BatchID, WebhookID: b.WebhookID, Outcome: res.outcome, Alerts: int(b.ItemCount),
			Attempt: int(b.Attempts), Latency: time.Duration(latency * float64(time.Millisecond))}
		if c.hook.w != nil {
			ev.WebhookType = c.hook.w.Type
		}
		if res.outcome == "retry" && b.Attempts >= b.MaxAttempts {
			ev.Outcome = "dead"
		}
		if res.httpStatus != nil {
			ev.HTTPStatus = int(*res.httpStatus)
		}
		d.cfg.OnDelivery(ev)
	}
	attrs := []any{slog.Int64("batch_id", b.BatchID), slog.Int64("webhook_id", b.WebhookID),
		slog.Int("attempt", int(b.Attempts)), slog.Int("alerts", int(b.ItemCount))}
	switch {
	case err != nil:
		d.logger.Error("pggit: recording a delivery failed until the lease ended; the batch will be retried after it",
			append(attrs, slog.String("error", err.Error()))...)
	case !ok:
		d.lost.Add(1)
		d.logger.Warn("pggit: lease lost before the delivery was recorded; another dispatcher owns the batch", attrs...)
	case res.outcome == "sent":
		d.sent.Add(1)
	case res.outcome == "dead" || int(b.Attempts) >= int(b.MaxAttempts):
		d.dead.Add(1)
		d.logger.Error("pggit: notification batch dead", append(attrs, slog.String("error", res.err))...)
	default:
		d.retried.Add(1)
		d.logger.Warn("pggit: delivery failed; will retry", append(attrs, slog.String("error", res.err), slog.Time("retry_at", *retryAt))...)
	}
}

// complete records an outcome, retrying with backoff while the connection
// fails (a database restart) until the lease ends. Recording is idempotent,
// so a retry after a reply was lost is harmless.
func (d *Dispatcher) complete(ctx context.Context, c *claimed, p gen.CompleteNotificationBatchParams) (ok bool, err error) {
	err = d.withRetry(ctx, c, c.remaining, "recording a delivery", func(ctx context.Context) error {
		ok, err = d.client.queries.CompleteNotificationBatch(ctx, p)
		return err
	})
	return ok, mapError(err)
}

// withRetry runs call, and runs it again with backoff while it fails for
// the connection's sake (retryable), as long as budget() leaves time for the
// wait. Each call is bounded by what budget() leaves (at least a second).
func (d *Dispatcher) withRetry(ctx context.Context, c *claimed, budget func() time.Duration, what string,
	call func(context.Context) error) error {
	wait := 50 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, max(budget(), time.Second))
		err := call(cctx)
		cancel()
		if err == nil || !retryable(err) || ctx.Err() != nil || budget() < wait {
			return err
		}
		d.logger.Warn("pggit: "+what+" failed; retrying", slog.Int64("batch_id", c.b.BatchID), slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// retryable tells a failure of the connection (a server restarting or
// unreachable, a connection cut, a call that timed out) from an error about
// the call itself, which a retry would only repeat.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "57", "53", "40": // connection, operator intervention (shutdown), resources, serialization/deadlock
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// release gives back a batch that was not sent, so it is due again at once
// without counting an attempt.
func (d *Dispatcher) release(ctx context.Context, c *claimed, why string) {
	var ok bool
	err := d.withRetry(context.WithoutCancel(ctx), c, c.remaining, "releasing an unsent batch", func(ctx context.Context) (err error) {
		ok, err = d.client.queries.ReleaseNotificationBatch(ctx, c.b.BatchID, d.cfg.Worker, &c.b.Attempts)
		return err
	})
	attrs := []any{slog.Int64("batch_id", c.b.BatchID), slog.Int64("webhook_id", c.b.WebhookID), slog.String("reason", why)}
	switch {
	case err != nil:
		d.logger.Warn("pggit: releasing an unsent batch failed; it is retried when its lease ends", append(attrs, slog.String("error", err.Error()))...)
	case !ok:
		d.lost.Add(1)
		d.logger.Warn("pggit: lease lost before an unsent batch was released", attrs...)
	default:
		d.logger.Info("pggit: batch not sent within its lease; released for another attempt", attrs...)
	}
}

// backoff is base x 2^(attempt-1), at most max, with equal jitter; a longer
// Retry-After wins.
func (d *Dispatcher) backoff(attempt int, retryAfter time.Duration) time.Duration {
	delay := d.cfg.RetryBase
	for i := 1; i < attempt && delay < d.cfg.RetryMax; i++ {
		delay *= 2
	}
	delay = min(delay, d.cfg.RetryMax)
	half := int64(delay / 2)
	jitter, _ := rand.Int(rand.Reader, big.NewInt(half+1))
	delay = time.Duration(half + jitter.Int64())
	if retryAfter > delay {
		delay = min(retryAfter, time.Hour)
	}
	return delay
}

// attempt formats and sends one claimed batch. sent is false when nothing
// was sent because the lease would not last: the batch is then released.
func (d *Dispatcher) attempt(ctx context.Context, c *claimed) (res attempt, sent bool) {
	budget := func() time.Duration { return d.beforeSend(c) }
	w, err := c.hook.w, c.hook.err
	if err != nil && !errors.Is(err, ErrNotFound) && retryable(err) {
		// Reading the webhook failed with the connection (a restart between
		// the claim and the read): read it again within the lease.
		err = d.withRetry(ctx, c, budget, "reading a webhook", func(ctx context.Context) (err error) {
			w, err = d.client.Webhook(ctx, c.b.WebhookID)
			return err
		})
		if err != nil && ctx.Err() == nil && retryable(err) {
			return attempt{err: "the webhook could not be read within the lease: " + err.Error()}, false
		}
	}
	if ctx.Err() != nil {
		// Stopping (or RunOnce's context ended) before anything was sent:
		// give the batch back rather than count an attempt.
		return attempt{err: "stopped before sending"}, false
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return attempt{outcome: "dead", err: "webhook no longer exists"}, true
		}
		return attempt{outcome: "retry", err: err.Error()}, true
	}
	if !w.Enabled {
		return attempt{outcome: "dead", err: "webhook disabled"}, true
	}
	format := w.Type
	switch w.Type {
	case WebhookGeneric:
		format = FormatJSON
	case WebhookPagerDuty:
		format = FormatPagerDuty // batches of one
	}
	// Formatting may use what the lease leaves after a request and the
	// margin; a connection failure (a database restart) is retried within
	// that, and formatting that cannot finish in it sends nothing.
	if budget() <= 0 {
		return attempt{err: "no time left in the lease to format"}, false
	}
	var msg string
	err = d.withRetry(ctx, c, budget, "formatting a batch", func(fctx context.Context) (err error) {
		if budget() <= 0 {
			return context.DeadlineExceeded
		}
		fctx, cancel := context.WithTimeout(fctx, budget())
		defer cancel()
		msg, err = d.client.queries.FormatNotificationBatch(fctx, c.b.BatchID, format)
		return err
	})
	if ctx.Err() != nil {
		return attempt{err: "stopped before sending"}, false
	}
	if err != nil {
		var argErr *ArgumentError
		if errors.As(mapError(err), &argErr) && argErr.Argument == "p_batch_id" {
			return attempt{outcome: "dead", err: "batch holds no alert (alerts deleted): " + argErr.Message}, true
		}
		if errors.Is(err, context.DeadlineExceeded) || retryable(err) {
			return attempt{err: "formatting did not finish within the lease: " + mapError(err).Error()}, false
		}
		return attempt{outcome: "retry", err: mapError(err).Error()}, true
	}
	if budget() < 0 {
		return attempt{err: "no time left in the lease to send"}, false
	}
	return d.send(ctx, w, msg, fmt.Sprintf("pggit-batch-%d", c.b.BatchID)), true
}

// send delivers a formatted message to w.
func (d *Dispatcher) send(ctx context.Context, w *Webhook, msg, dedup string) attempt {
	switch w.Type {
	case WebhookSlack, WebhookMattermost:
		return d.post(ctx, w, []byte(msg), dedup)
	case WebhookGeneric:
		payload, err := withField([]byte(msg), "dedup_key", dedup)
		if err != nil {
			return attempt{outcome: "retry", err: err.Error()}
		}
		return d.post(ctx, w, payload, dedup)
	case WebhookPagerDuty:
		payload, err := withField([]byte(msg), "routing_key", w.Secret.Reveal())
		if err != nil {
			return attempt{outcome: "retry", err: err.Error()}
		}
		return d.post(ctx, w, payload, dedup)
	case WebhookEmail:
		return d.mail(ctx, w, msg, dedup)
	case WebhookAlertmanager:
		return d.post(ctx, w, []byte(msg), dedup)
	}
	return attempt{outcome: "dead", err: fmt.Sprintf("unknown webhook type %q", w.Type)}
}

// withField adds key to a JSON object.
func withField(obj []byte, key, value string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, fmt.Errorf("message is not a JSON object: %w", err)
	}
	v, _ := json.Marshal(value)
	m[key] = v
	return json.Marshal(m)
}

// post sends one HTTP request to w (its URL, or the PagerDuty endpoint) and
// classifies the answer: delivered decides success;
// 408, 429 and 5xx are retried (429 honouring Retry-After); other statuses
// fail at once. Errors never carry the URL or the secret.
func (d *Dispatcher) post(ctx context.Context, w *Webhook, body []byte, dedup string) attempt {
	target := w.Secret.Reveal() // the incoming-webhook URL
	switch w.Type {
	case WebhookPagerDuty:
		target = d.cfg.PagerDutyURL // the secret is the routing key, in the body
	case WebhookAlertmanager:
		target = alertmanagerEndpoint(target)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return attempt{outcome: "dead", err: "invalid webhook URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pggit-monitor")
	req.Header.Set("X-Pggit-Dedup-Key", dedup)
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // drop the URL
		}
		return attempt{outcome: "retry", err: redact("request failed: "+err.Error(), w)}
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	status := int32(resp.StatusCode)
	res := attempt{httpStatus: &status}
	switch {
	case delivered(w.Type, resp.StatusCode, respBody):
		res.outcome = "sent"
		return res
	case resp.StatusCode == http.StatusTooManyRequests:
		res.outcome = "retry"
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500 || resp.StatusCode < 400:
		res.outcome = "retry"
	default:
		res.outcome = "dead"
	}
	res.err = redact(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(truncateBytes(respBody, 200)))), w)
	return res
}

// alertmanagerEndpoint is the API v2 alerts endpoint of an Alertmanager base
// URL (which may already name it).
func alertmanagerEndpoint(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base // post reports the bad URL
	}
	if !strings.HasSuffix(u.Path, "/api/v2/alerts") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v2/alerts"
	}
	return u.String()
}

// delivered is each channel's rule of success: Slack and Mattermost answer
// 200 with body "ok", PagerDuty 202, a generic webhook any 2xx.
func delivered(webhookType string, status int, body []byte) bool {
	switch webhookType {
	case WebhookSlack, WebhookMattermost:
		return status == http.StatusOK && strings.TrimSpace(string(body)) == "ok"
	case WebhookPagerDuty:
		return status == http.StatusAccepted
	}
	return status >= 200 && status < 300
}

func truncateBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// TestWebhook sends a test message to the webhook and records the result
// (last tested at, status ok or failed, error without secrets). A PagerDuty
// test triggers and resolves an event with dedup key pggit-test-<id>.
func (c *Client) TestWebhook(ctx context.Context, id int64, cfg *DispatcherConfig) (*Webhook, error) {
	d, err := c.NewDispatcher(cfg)
	if err != nil {
		return nil, err
	}
	w, err := c.Webhook(ctx, id)
	if err != nil {
		return nil, err
	}
	dedup := fmt.Sprintf("pggit-test-%d", w.ID)
	text := fmt.Sprintf("pggit-monitor test message for webhook %q", w.Name)
	var res attempt
	switch w.Type {
	case WebhookSlack, WebhookMattermost:
		body, _ := json.Marshal(map[string]string{"text": text})
		res = d.post(ctx, w, body, dedup)
	case WebhookGeneric:
		body, _ := json.Marshal(map[string]any{"source": "pggit-monitor", "test": true, "text": text, "dedup_key": dedup})
		res = d.post(ctx, w, body, dedup)
	case WebhookAlertmanager:
		// An empty list: Alertmanager checks the request (URL,
		// credentials, API version) and no alert fires anywhere.
		res = d.post(ctx, w, []byte("[]"), dedup)
	case WebhookPagerDuty:
		for _, action := range []string{"trigger", "resolve"} {
			ev := map[string]any{"routing_key": w.Secret.Reveal(), "event_action": action, "dedup_key": dedup}
			if action == "trigger" {
				ev["payload"] = map[string]string{"summary": text, "source": "pggit-monitor", "severity": "info"}
			}
			body, _ := json.Marshal(ev)
			if res = d.post(ctx, w, body, dedup); res.outcome != "sent" {
				break
			}
		}
	case WebhookEmail:
		res = d.mail(ctx, w, "Subject: [pggit] test message\n\n"+text+"\n", dedup)
	}
	status := "ok"
	var errText *string
	if res.outcome != "sent" {
		status = "failed"
		errText = &res.err
	}
	row, err := c.queries.RecordWebhookTest(ctx, status, errText, w.ID)
	if err != nil {
		return nil, mapError(err)
	}
	return webhookFromRow(row), nil
}
