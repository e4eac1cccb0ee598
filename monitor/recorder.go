package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
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
	// FlushTimeout bounds one flush: its COPY and, when the database refuses
	// the batch as data, the search for the samples at fault. Defaults to
	// DefaultRecorderFlushTimeout (30s).
	FlushTimeout time.Duration
	// OnReject, when set, is called for every sample the database refused as
	// invalid, with its reason, after it was counted in
	// RecorderStats.Rejected (from the flushing goroutine; keep it fast).
	OnReject func(RejectedSample)
}

// RejectedSample is a sample the database refused as invalid on its own (its
// values break a CHECK of pggit.performance_metrics, or a type refuses them:
// JSON that jsonb cannot store, a time out of range). It is not written.
type RejectedSample struct {
	// Sample is the refused sample; RecordedAt is set, Duration is in whole
	// microseconds.
	Sample Sample
	// Err is the database's reason: errors.As finds the *pgconn.PgError,
	// with a SQLSTATE of class 22 or 23 (a CHECK: 23514 and ConstraintName).
	Err error
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
	// Rejected counts samples the database refused as invalid on their own
	// (see RejectedSample and RecorderConfig.OnReject); they are not retried.
	// The other samples of their batch are written.
	Rejected uint64
	// FlushErrors counts flush attempts that left samples unwritten; those
	// samples are retried.
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
// dropped silently.
//
// Record checks each sample with the rules of the samples table, so the
// database should not refuse one. When it refuses a batch anyway (SQLSTATE
// class 22 or 23), the Recorder finds out which samples are invalid on their
// own, by writing the batch, halved until the culprits are found, into a
// temporary copy of the table without its triggers (in a transaction rolled
// back; this needs the TEMP privilege, which PostgreSQL grants by default).
// Only those samples are rejected (RecorderStats.Rejected,
// RecorderConfig.OnReject); the others are written. A refusal that no sample
// is at fault for, such as a trigger on the samples table failing with a
// class 22 or 23 error, is retried like an outage, and nothing is rejected.
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
	return r.enqueue(row)
}

// enqueue buffers one validated row.
func (r *Recorder) enqueue(row gen.CopyMetricsParams) error {
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

// flushOnce writes everything buffered and returns how many samples it
// tried. It returns an error when samples were left unwritten (put back in
// front of the buffer, to be retried); samples rejected as invalid are not an
// error.
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

	w := r.write(ctx, batch)

	r.mu.Lock()
	r.inflight = 0
	if len(w.keep) > 0 {
		// Put them back in front, in order; the bound still holds since
		// Record counted them while they were in flight.
		r.buf = append(w.keep, r.buf...)
		r.flushErrors.Add(1)
	}
	r.written.Add(uint64(w.written))
	r.rejected.Add(uint64(len(w.rejected)))
	r.mu.Unlock()

	if len(w.rejected) > 0 {
		first := w.rejected[0]
		r.logger.Error("pggit: recorder samples rejected by the database as invalid; discarded",
			slog.Int("samples", len(w.rejected)), slog.Int("batch", len(batch)),
			slog.String("operation_type", truncate(first.Sample.OperationType, 40)),
			slog.String("error", first.Err.Error()))
		if r.cfg.OnReject != nil {
			for _, rs := range w.rejected {
				r.cfg.OnReject(rs)
			}
		}
	}
	if len(w.keep) > 0 {
		msg := "pggit: recorder flush failed; will retry"
		if w.noCulprit {
			msg = "pggit: recorder flush refused by the database, though no sample is invalid on its own (a trigger on pggit.performance_metrics failing?); will retry"
		}
		r.logger.Warn(msg, slog.Int("samples", len(w.keep)), slog.String("error", w.err.Error()))
		return len(batch), mapError(w.err)
	}
	return len(batch), nil
}

// flushResult is what became of a batch: how many samples were committed, which
// were rejected, and which are kept for a retry because of err.
type flushResult struct {
	written  int
	rejected []RejectedSample
	keep     []gen.CopyMetricsParams
	err      error
	// noCulprit: err is a data error, but every sample kept is valid on its own.
	noCulprit bool
}

// write copies rows into pggit.performance_metrics. When the database refuses
// them as data (class 22 or 23), it rejects the rows that are invalid on their
// own and writes the others; what it could not write is kept, with the error.
func (r *Recorder) write(ctx context.Context, rows []gen.CopyMetricsParams) flushResult {
	_, err := r.client.queries.CopyMetrics(ctx, rows)
	if err == nil {
		return flushResult{written: len(rows)}
	}
	if !isDataError(err) {
		return flushResult{keep: rows, err: err}
	}
	bad, checkErr := r.invalidRows(ctx, rows)
	if checkErr != nil {
		r.logger.Warn("pggit: recorder could not check which samples the database refused; will retry them all",
			slog.Int("samples", len(rows)), slog.String("error", checkErr.Error()))
		return flushResult{keep: rows, err: err}
	}
	if len(bad) == 0 {
		// Every row is valid on its own: the refusal came from elsewhere
		// (a trigger), and it is retried like an outage.
		return flushResult{keep: rows, err: err, noCulprit: true}
	}
	var w flushResult
	rest := make([]gen.CopyMetricsParams, 0, len(rows)-len(bad))
	for i, row := range rows {
		if reason, ok := bad[i]; ok {
			w.rejected = append(w.rejected, RejectedSample{Sample: sampleOf(row), Err: mapError(reason)})
		} else {
			rest = append(rest, row)
		}
	}
	if len(rest) == 0 {
		return w
	}
	if _, err := r.client.queries.CopyMetrics(ctx, rest); err != nil {
		w.keep, w.err, w.noCulprit = rest, err, isDataError(err)
		return w
	}
	w.written = len(rest)
	return w
}

// recorderCheckTable is the temporary copy of pggit.performance_metrics that
// invalidRows writes into: its columns, types, defaults and CHECKs, no
// trigger. It has the same name so that the reasons read the same.
var recorderCheckTable = pgx.Identifier{"pg_temp", "performance_metrics"}

// invalidRows finds the rows the database refuses on their own, with the
// reason for each, by copying them into a temporary copy of the samples table
// without triggers, in a transaction that is rolled back: the whole batch
// first, then halves of each refused part, down to single rows. k invalid rows
// among n cost about 2k·log2(n/k) COPYs that write nothing.
func (r *Recorder) invalidRows(ctx context.Context, rows []gen.CopyMetricsParams) (map[int]error, error) {
	tx, err := r.client.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE performance_metrics
		(LIKE pggit.performance_metrics INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY) ON COMMIT DROP`); err != nil {
		return nil, err
	}
	columns := []string{"operation_type", "duration_microseconds", "recorded_at", "scope", "user_name", "metadata"}
	bad := map[int]error{}
	var check func(lo, hi int) error
	check = func(lo, hi int) error {
		sp, err := tx.Begin(ctx) // a savepoint
		if err != nil {
			return err
		}
		_, err = sp.CopyFrom(ctx, recorderCheckTable, columns, pgx.CopyFromSlice(hi-lo, func(i int) ([]any, error) {
			p := rows[lo+i]
			return []any{p.OperationType, p.DurationMicroseconds, p.RecordedAt, p.Scope, p.UserName, p.Metadata}, nil
		}))
		if rbErr := sp.Rollback(ctx); rbErr != nil && err == nil {
			return rbErr
		}
		switch {
		case err == nil:
			return nil
		case !isDataError(err):
			return err
		case hi-lo == 1:
			bad[lo] = err
			return nil
		}
		mid := lo + (hi-lo)/2
		if err := check(lo, mid); err != nil {
			return err
		}
		return check(mid, hi)
	}
	if err := check(0, len(rows)); err != nil {
		return nil, err
	}
	return bad, nil
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
