package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pggit/pggit-monitor/gen"
)

// Defaults of RecorderConfig.
const (
	DefaultRecorderBatchSize     = 5000
	DefaultRecorderFlushInterval = time.Second
	DefaultRecorderMaxBuffered   = 200_000
	DefaultRecorderFlushTimeout  = 30 * time.Second
	maxRecorderRetryBackoff      = 30 * time.Second
)

// RecorderConfig configures a Recorder. A nil *RecorderConfig means all
// defaults.
type RecorderConfig struct {
	// BatchSize starts a flush as soon as this many samples are buffered.
	// Defaults to DefaultRecorderBatchSize (5000).
	BatchSize int
	// FlushInterval flushes whatever is buffered at least this often.
	// Defaults to DefaultRecorderFlushInterval (1s).
	FlushInterval time.Duration
	// MaxBuffered bounds the samples held in memory, buffered or being
	// written. When it is reached, Record drops the sample, counts it in
	// RecorderStats.Dropped and returns ErrBufferFull. Defaults to
	// DefaultRecorderMaxBuffered (200,000; about 30 MB).
	MaxBuffered int
	// FlushTimeout bounds one COPY. Defaults to DefaultRecorderFlushTimeout (30s).
	FlushTimeout time.Duration
}

func (c *RecorderConfig) validate() (RecorderConfig, error) {
	var v RecorderConfig
	if c != nil {
		v = *c
	}
	if v.BatchSize == 0 {
		v.BatchSize = DefaultRecorderBatchSize
	}
	if v.FlushInterval == 0 {
		v.FlushInterval = DefaultRecorderFlushInterval
	}
	if v.MaxBuffered == 0 {
		v.MaxBuffered = DefaultRecorderMaxBuffered
	}
	if v.FlushTimeout == 0 {
		v.FlushTimeout = DefaultRecorderFlushTimeout
	}
	switch {
	case v.BatchSize < 1:
		return v, argError("BatchSize", "must be at least 1 (0 for the default %d), got %d", DefaultRecorderBatchSize, v.BatchSize)
	case v.FlushInterval < time.Millisecond:
		return v, argError("FlushInterval", "must be at least 1ms (0 for the default %s), got %s", DefaultRecorderFlushInterval, v.FlushInterval)
	case v.MaxBuffered < v.BatchSize:
		return v, argError("MaxBuffered", "must be at least BatchSize (%d), got %d", v.BatchSize, v.MaxBuffered)
	case v.FlushTimeout < time.Millisecond:
		return v, argError("FlushTimeout", "must be at least 1ms (0 for the default %s), got %s", DefaultRecorderFlushTimeout, v.FlushTimeout)
	}
	return v, nil
}

// RecorderStats are the Recorder's counters since it was created. Every
// sample Record accepted ends up Written, Rejected or Dropped (at Close), or
// is still Buffered.
type RecorderStats struct {
	// Recorded counts samples accepted by Record.
	Recorded uint64
	// Written counts samples committed to the database.
	Written uint64
	// Dropped counts samples lost: refused by Record because the buffer was
	// full, or still unwritten when Close gave up.
	Dropped uint64
	// Rejected counts samples in batches the database refused as invalid
	// (a data error, not an outage); such a batch is not retried.
	Rejected uint64
	// FlushErrors counts failed flush attempts; their samples are retried.
	FlushErrors uint64
	// Buffered is the number of samples in memory now.
	Buffered int
}

// Recorder is the ingestion path for host services: Record is cheap and never
// blocks; samples are written in batches with COPY when BatchSize are buffered
// or every FlushInterval, by one background goroutine.
//
// When the database is slow or down, samples stay in memory and the failed
// batch is retried with exponential backoff (FlushInterval doubling, at most
// 30s). Memory is bounded by MaxBuffered: past it, Record drops the sample and
// returns ErrBufferFull, and RecorderStats.Dropped says how many. Nothing is
// dropped silently. A batch that the database refuses as invalid data (SQLSTATE
// class 22 or 23) is discarded and counted in Rejected; Record validates each
// sample first, so this should not happen.
//
// Delivery is at least once: a COPY whose commit reached the database but
// whose reply was lost (a timeout at exactly that moment) is retried.
//
// Close flushes what is left. A Recorder is safe for concurrent use.
type Recorder struct {
	client *Client
	cfg    RecorderConfig
	logger *slog.Logger

	mu       sync.Mutex
	buf      []gen.CopyMetricsParams
	inflight int
	closed   bool

	flushMu  sync.Mutex // one COPY at a time
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	recorded, written, dropped, rejected, flushErrors atomic.Uint64
}

// NewRecorder starts a Recorder. Close it to flush and stop it.
func (c *Client) NewRecorder(cfg *RecorderConfig) (*Recorder, error) {
	v, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	r := &Recorder{
		client: c,
		cfg:    v,
		logger: c.logger,
		buf:    make([]gen.CopyMetricsParams, 0, v.BatchSize),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go r.loop()
	return r, nil
}

// Record buffers one sample of operationType that took d. It returns an
// *ArgumentError for a bad sample, ErrBufferFull when the buffer is full, and
// ErrRecorderClosed after Close; it never blocks on the database.
func (r *Recorder) Record(operationType string, d time.Duration) error {
	return r.RecordSample(Sample{OperationType: operationType, Duration: d})
}

// RecordSample buffers one sample; see Record.
func (r *Recorder) RecordSample(s Sample) error {
	row, err := s.row(time.Now())
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrRecorderClosed
	}
	if len(r.buf)+r.inflight >= r.cfg.MaxBuffered {
		r.mu.Unlock()
		r.dropped.Add(1)
		return ErrBufferFull
	}
	r.buf = append(r.buf, row)
	full := len(r.buf) >= r.cfg.BatchSize
	r.mu.Unlock()
	r.recorded.Add(1)
	if full {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Stats returns the Recorder's counters.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	buffered := len(r.buf) + r.inflight
	r.mu.Unlock()
	return RecorderStats{
		Recorded:    r.recorded.Load(),
		Written:     r.written.Load(),
		Dropped:     r.dropped.Load(),
		Rejected:    r.rejected.Load(),
		FlushErrors: r.flushErrors.Load(),
		Buffered:    buffered,
	}
}

// Flush writes everything buffered now and returns the first error.
func (r *Recorder) Flush(ctx context.Context) error {
	for {
		n, err := r.flushOnce(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// Close stops accepting samples and writes what is buffered, retrying until
// ctx is done. Samples still unwritten then are counted as Dropped and
// reported in the error.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done

	backoff := r.cfg.FlushInterval
	var lastErr error
	for {
		n, err := r.flushOnce(ctx)
		if err == nil && n == 0 {
			return nil
		}
		if err != nil {
			lastErr = err
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
				backoff = min(backoff*2, maxRecorderRetryBackoff)
				continue
			}
			r.mu.Lock()
			lost := len(r.buf)
			r.buf = nil
			r.mu.Unlock()
			r.dropped.Add(uint64(lost))
			return fmt.Errorf("pggit: recorder closed with %d samples not written: %w", lost, lastErr)
		}
	}
}

func (r *Recorder) loop() {
	defer close(r.done)
	ticker := time.NewTicker(r.cfg.FlushInterval)
	defer ticker.Stop()
	var notBefore time.Time
	backoff := r.cfg.FlushInterval
	for {
		select {
		case <-r.stop:
			return
		case <-ticker.C:
		case <-r.kick:
		}
		if time.Now().Before(notBefore) {
			continue
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.FlushTimeout)
			n, err := r.flushOnce(ctx)
			cancel()
			if err != nil {
				notBefore = time.Now().Add(backoff)
				backoff = min(backoff*2, maxRecorderRetryBackoff)
				break
			}
			backoff = r.cfg.FlushInterval
			// Keep going while full batches wait, unless asked to stop.
			if n == 0 || r.bufferedLen() < r.cfg.BatchSize {
				break
			}
			select {
			case <-r.stop:
				return
			default:
			}
		}
	}
}

func (r *Recorder) bufferedLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buf)
}

// flushOnce writes everything buffered in one COPY and returns how many
// samples it tried.
func (r *Recorder) flushOnce(ctx context.Context) (int, error) {
	ctx = WithoutTracing(ctx) // never record the Recorder's own writes
	r.flushMu.Lock()
	defer r.flushMu.Unlock()

	r.mu.Lock()
	batch := r.buf
	if len(batch) == 0 {
		r.mu.Unlock()
		return 0, nil
	}
	r.buf = make([]gen.CopyMetricsParams, 0, max(r.cfg.BatchSize, len(batch)/2))
	r.inflight = len(batch)
	r.mu.Unlock()

	_, err := r.client.queries.CopyMetrics(ctx, batch)

	r.mu.Lock()
	r.inflight = 0
	switch {
	case err == nil:
		r.written.Add(uint64(len(batch)))
	case isDataError(err):
		r.rejected.Add(uint64(len(batch)))
	default:
		// Put the batch back in front, in order; the bound still holds since
		// Record counted it while it was in flight.
		r.buf = append(batch, r.buf...)
		r.flushErrors.Add(1)
	}
	r.mu.Unlock()

	if err != nil {
		if isDataError(err) {
			r.logger.Error("pggit: recorder batch rejected by the database; samples discarded",
				slog.Int("samples", len(batch)), slog.String("error", err.Error()))
		} else {
			r.logger.Warn("pggit: recorder flush failed; will retry",
				slog.Int("samples", len(batch)), slog.String("error", err.Error()))
		}
		return len(batch), mapError(err)
	}
	return len(batch), nil
}

// isDataError reports errors that retrying cannot fix: SQLSTATE classes 22
// (data exception) and 23 (integrity constraint violation).
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return len(pgErr.Code) == 5 && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23")
}
