// Package pgxtrace records the duration of every query a pgx connection or
// pool runs as a performance sample, so that a service gets baselines and
// regression alerts for all its queries with a few lines of setup:
//
//	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
//	pgxtrace.Install(cfg.ConnConfig, recorder, nil) // keeps any tracer already set
//	pool, err := pgxpool.NewWithConfig(ctx, cfg)
//
// Each query is named, in order, by:
//  1. the operation put on its context with monitor.WithOperation;
//  2. the sqlc query name of its leading "-- name: GetAuthor :one" comment;
//  3. the fallback of Options.Fallback: by default the query is not recorded;
//     with FallbackFingerprint it is named by its normalised text (literals,
//     parameters and comments removed).
//
// The scope of a sample comes from monitor.WithScope. Queries whose context
// was marked with monitor.WithoutTracing are not recorded (the library marks
// its own background work so).
//
// What a sample measures follows pgx: for Exec and QueryRow, the whole call;
// for Query, from the call until the rows are closed (so it includes the time
// the caller spends reading them); for a batch, the whole batch as one sample
// (see TraceBatchStart); for CopyFrom, the whole copy as one sample.
//
// The tracer never blocks a query: it hands samples to a Recorder, whose
// Record never waits on the database, and it allocates once per recorded
// query (none for a query it does not record).
package pgxtrace

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pggit/pggit-monitor/monitor"
)

// Recorder receives the samples; *monitor.Recorder is one.
type Recorder interface {
	RecordSample(monitor.Sample) error
}

// Fallback says what happens to a query that has neither a context name nor
// a sqlc name.
type Fallback int

const (
	// FallbackNone leaves the query unrecorded (the default): only named
	// queries become operations.
	FallbackNone Fallback = iota
	// FallbackFingerprint names the query by its normalised text: comments
	// dropped, literals and parameters replaced by ?, lists of them folded,
	// keywords and unquoted names lower-cased, whitespace collapsed, cut to
	// 200 characters. Distinct names are still bounded by MaxOperations.
	FallbackFingerprint
)

// Errors says which failed queries are recorded.
type Errors int

const (
	// ErrorsServer records a query that failed with a server error (one that
	// has a SQLSTATE) or ran into its context deadline, with metadata
	// {"error": "<SQLSTATE>"} (or "deadline_exceeded"). This is the default:
	// a statement timeout or a lock timeout is the strongest sign of a
	// regression, and dropping it would hide exactly the slow executions.
	// Queries cancelled by their caller and client-side failures (a broken
	// connection) are not recorded: their duration says nothing about the
	// query.
	ErrorsServer Errors = iota
	// ErrorsNone records successful queries only.
	ErrorsNone
)

// DefaultMaxOperations is the default bound on distinct operation names.
const DefaultMaxOperations = 1000

// Options tune a Tracer. A nil *Options means all defaults.
type Options struct {
	// Fallback names queries that have no context or sqlc name. Default
	// FallbackNone.
	Fallback Fallback
	// Errors selects which failed queries are recorded. Default ErrorsServer.
	Errors Errors
	// SampleRate is the fraction of queries recorded, in (0, 1]. 0 means 1
	// (every query). Sampling thins the samples evenly; baselines and
	// detection need fewer samples a minute when it is low (see
	// docs/detection.md on traffic).
	SampleRate float64
	// MaxOperations bounds the distinct operation names this tracer records
	// (default DefaultMaxOperations). Queries under a name first seen after
	// the bound are dropped and counted in Stats.DroppedNames.
	MaxOperations int
}

// Stats are a Tracer's counters since it was created.
type Stats struct {
	// Recorded samples handed to the Recorder and accepted by it.
	Recorded uint64
	// Unnamed queries skipped because they had no name (FallbackNone).
	Unnamed uint64
	// DroppedNames counts queries skipped because their name would have
	// exceeded MaxOperations; Names is how many distinct names are in use.
	DroppedNames uint64
	Names        int
	// Errors counts failed queries not recorded (by the Errors policy, or
	// cancelled by their caller).
	Errors uint64
	// RecordErrors counts samples the Recorder refused (its buffer full, or
	// closed).
	RecordErrors uint64
}

// Tracer implements pgx's QueryTracer, BatchTracer and CopyFromTracer. It is
// safe for concurrent use by every connection of a pool.
type Tracer struct {
	rec        Recorder
	fallback   Fallback
	errors     Errors
	sampleRate float64
	maxNames   int

	names   atomic.Pointer[map[string]struct{}] // copy on write
	namesMu sync.Mutex
	prints  sync.Map // SQL text -> fingerprint, bounded
	nprints atomic.Int64

	recorded, unnamed, droppedNames, failed, recordErrors atomic.Uint64
}

var (
	_ pgx.QueryTracer    = (*Tracer)(nil)
	_ pgx.BatchTracer    = (*Tracer)(nil)
	_ pgx.CopyFromTracer = (*Tracer)(nil)
)

// New returns a Tracer that hands samples to rec. It returns an error for bad
// options.
func New(rec Recorder, opts *Options) (*Tracer, error) {
	if rec == nil {
		return nil, errors.New("pgxtrace: a Recorder is required")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	switch o.Fallback {
	case FallbackNone, FallbackFingerprint:
	default:
		return nil, errors.New("pgxtrace: Options.Fallback must be FallbackNone or FallbackFingerprint")
	}
	switch o.Errors {
	case ErrorsServer, ErrorsNone:
	default:
		return nil, errors.New("pgxtrace: Options.Errors must be ErrorsServer or ErrorsNone")
	}
	if o.SampleRate == 0 {
		o.SampleRate = 1
	}
	if !(o.SampleRate > 0 && o.SampleRate <= 1) {
		return nil, errors.New("pgxtrace: Options.SampleRate must be in (0, 1] (0 means 1)")
	}
	if o.MaxOperations == 0 {
		o.MaxOperations = DefaultMaxOperations
	}
	if o.MaxOperations < 0 {
		return nil, errors.New("pgxtrace: Options.MaxOperations must be positive (0 means the default)")
	}
	t := &Tracer{rec: rec, fallback: o.Fallback, errors: o.Errors, sampleRate: o.SampleRate, maxNames: o.MaxOperations}
	empty := map[string]struct{}{}
	t.names.Store(&empty)
	return t, nil
}

// Install creates a Tracer and sets it on cfg (a pgx.ConnConfig, also
// reachable as pgxpool.Config.ConnConfig). A tracer already set on cfg (an
// OpenTelemetry tracer, tracelog) keeps running: both are chained with pgx's
// multitracer, the existing one first.
func Install(cfg *pgx.ConnConfig, rec Recorder, opts *Options) (*Tracer, error) {
	t, err := New(rec, opts)
	if err != nil {
		return nil, err
	}
	cfg.Tracer = Chain(cfg.Tracer, t)
	return t, nil
}

// Chain returns one tracer that calls each of tracers (nil ones skipped) for
// every event each of them implements, in order: pgx's multitracer.
func Chain(tracers ...pgx.QueryTracer) pgx.QueryTracer {
	var live []pgx.QueryTracer
	for _, t := range tracers {
		if t != nil {
			live = append(live, t)
		}
	}
	if len(live) == 1 {
		return live[0]
	}
	return multitracer.New(live...)
}

// Stats returns the Tracer's counters.
func (t *Tracer) Stats() Stats {
	return Stats{
		Recorded:     t.recorded.Load(),
		Unnamed:      t.unnamed.Load(),
		DroppedNames: t.droppedNames.Load(),
		Names:        len(*t.names.Load()),
		Errors:       t.failed.Load(),
		RecordErrors: t.recordErrors.Load(),
	}
}

// span carries a traced call from its start to its end: it is the context
// the start hook returns, so a recorded query costs this one allocation.
type span struct {
	context.Context
	start time.Time
	name  string
	scope string
}

type spanKey struct{}

func (s *span) Value(key any) any {
	if key == (spanKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if monitor.TracingDisabled(ctx) {
		return ctx
	}
	name, ok := monitor.OperationFromContext(ctx)
	if !ok {
		name, ok = t.queryName(data.SQL)
	}
	return t.begin(ctx, name, ok)
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	t.end(ctx, data.Err)
}

// TraceBatchStart implements pgx.BatchTracer. A batch is one sample, from
// SendBatch until its results are closed: pgx pipelines a batch and the
// server returns its results together, so the time of one query inside it
// cannot be told apart. The batch is named by its context; else by the sqlc
// name its queries share (a sqlc :batchexec/:batchone/:batchmany call);
// else, under FallbackFingerprint, by the fingerprint of its queries when
// they all share one; else it is not recorded.
func (t *Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if monitor.TracingDisabled(ctx) {
		return ctx
	}
	name, ok := monitor.OperationFromContext(ctx)
	if !ok && data.Batch != nil && len(data.Batch.QueuedQueries) > 0 {
		name, ok = t.batchName(data.Batch.QueuedQueries)
	}
	return t.begin(ctx, name, ok)
}

// batchName is the name shared by every query of a batch.
func (t *Tracer) batchName(queries []*pgx.QueuedQuery) (string, bool) {
	first, ok := t.queryName(queries[0].SQL)
	if !ok {
		return "", false
	}
	for _, q := range queries[1:] {
		if n, ok := t.queryName(q.SQL); !ok || n != first {
			return "", false
		}
	}
	return first, true
}

// TraceBatchQuery implements pgx.BatchTracer; the batch is timed as a whole.
func (t *Tracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *Tracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	t.end(ctx, data.Err)
}

// TraceCopyFromStart implements pgx.CopyFromTracer. A copy is named by its
// context, else (FallbackFingerprint) "copy <table>".
func (t *Tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	if monitor.TracingDisabled(ctx) {
		return ctx
	}
	name, ok := monitor.OperationFromContext(ctx)
	if !ok && t.fallback == FallbackFingerprint {
		name, ok = truncateName("copy "+strings.ToLower(data.TableName.Sanitize())), true
	}
	return t.begin(ctx, name, ok)
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *Tracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	t.end(ctx, data.Err)
}

// begin starts the span of a call named name (ok false: unnamed, counted and
// not recorded), under the name bound and the sample rate.
func (t *Tracer) begin(ctx context.Context, name string, ok bool) context.Context {
	if !ok {
		t.unnamed.Add(1)
		return ctx
	}
	if !t.admit(name) || !t.sampled() {
		return ctx
	}
	return &span{Context: ctx, start: time.Now(), name: name, scope: monitor.ScopeFromContext(ctx)}
}

// end records the span begun for ctx, if any.
func (t *Tracer) end(ctx context.Context, err error) {
	if s, ok := ctx.Value(spanKey{}).(*span); ok {
		t.record(ctx, s.name, s.scope, time.Since(s.start), err)
	}
}

// queryName names a query by its sqlc comment, else its fingerprint under
// FallbackFingerprint.
func (t *Tracer) queryName(sql string) (string, bool) {
	if name, ok := SQLCName(sql); ok {
		return name, true
	}
	if t.fallback == FallbackFingerprint {
		return t.fingerprint(sql)
	}
	return "", false
}

func (t *Tracer) sampled() bool {
	return t.sampleRate >= 1 || rand.Float64() < t.sampleRate
}

// admit reports whether name may be recorded under the bound on distinct
// names, adding it when there is room.
func (t *Tracer) admit(name string) bool {
	if _, ok := (*t.names.Load())[name]; ok {
		return true
	}
	t.namesMu.Lock()
	defer t.namesMu.Unlock()
	cur := *t.names.Load()
	if _, ok := cur[name]; ok {
		return true
	}
	if len(cur) >= t.maxNames {
		t.droppedNames.Add(1)
		return false
	}
	next := make(map[string]struct{}, len(cur)+1)
	for k := range cur {
		next[k] = struct{}{}
	}
	next[strings.Clone(name)] = struct{}{}
	t.names.Store(&next)
	return true
}

// record hands one sample to the Recorder, applying the error policy.
func (t *Tracer) record(ctx context.Context, name, scope string, d time.Duration, err error) {
	var meta []byte
	if err != nil {
		meta = t.errorMetadata(ctx, err)
		if meta == nil {
			t.failed.Add(1)
			return
		}
	}
	if d <= 0 {
		d = time.Microsecond
	}
	if t.rec.RecordSample(monitor.Sample{OperationType: name, Scope: scope, Duration: d, Metadata: meta}) != nil {
		t.recordErrors.Add(1)
		return
	}
	t.recorded.Add(1)
}

// errorMetadata returns the metadata of a failed query to record, or nil when
// it is not recorded.
func (t *Tracer) errorMetadata(ctx context.Context, err error) []byte {
	if t.errors == ErrorsNone {
		return nil
	}
	// The context decides first: a query stopped by its caller's deadline
	// may come back as the server's 57014 of the cancel request pgx sent.
	switch ctx.Err() {
	case context.DeadlineExceeded:
		return []byte(`{"error":"deadline_exceeded"}`)
	case context.Canceled:
		return nil
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && validSQLState(pgErr.Code):
		return []byte(`{"error":"` + pgErr.Code + `"}`)
	case errors.Is(err, context.DeadlineExceeded):
		return []byte(`{"error":"deadline_exceeded"}`)
	}
	return nil
}

func validSQLState(code string) bool {
	if len(code) != 5 {
		return false
	}
	for i := 0; i < 5; i++ {
		c := code[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// SQLCName returns the query name of sqlc's leading "-- name: X :kind"
// comment, without allocating.
func SQLCName(sql string) (string, bool) {
	s := strings.TrimLeft(sql, " \t\r\n")
	const prefix = "-- name:"
	if !strings.HasPrefix(s, prefix) {
		return "", false
	}
	s = strings.TrimLeft(s[len(prefix):], " \t")
	end := strings.IndexAny(s, " \t\r\n")
	if end <= 0 {
		return "", false
	}
	name, rest := s[:end], strings.TrimLeft(s[end:], " \t")
	if !strings.HasPrefix(rest, ":") || utf8.RuneCountInString(name) > 200 {
		return "", false
	}
	return name, true
}

// maxFingerprints bounds the cache of SQL text -> fingerprint.
const maxFingerprints = 4096

func (t *Tracer) fingerprint(sql string) (string, bool) {
	if v, ok := t.prints.Load(sql); ok {
		return v.(string), true
	}
	fp := Fingerprint(sql)
	if fp == "" {
		return "", false
	}
	if t.nprints.Load() < maxFingerprints {
		if _, loaded := t.prints.LoadOrStore(strings.Clone(sql), fp); !loaded {
			t.nprints.Add(1)
		}
	}
	return fp, true
}

func truncateName(s string) string {
	if utf8.RuneCountInString(s) <= 200 {
		return s
	}
	n := 0
	for i := range s {
		if n == 200 {
			return s[:i]
		}
		n++
	}
	return s
}
