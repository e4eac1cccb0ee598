package monitor

import "context"

type contextKey int

const (
	operationKey contextKey = iota
	scopeKey
	untracedKey
)

// WithOperation returns a context that names the operation of every query
// run with it: a query tracer (package pgxtrace) records each of them as a
// sample of operationType, ahead of the query's own sqlc name. It can wrap a
// single call or several (each query is then one sample of the same
// operation; to time a group of queries as one sample, use Recorder.Record).
func WithOperation(ctx context.Context, operationType string) context.Context {
	return context.WithValue(ctx, operationKey, operationType)
}

// OperationFromContext returns the name given by WithOperation, if any.
func OperationFromContext(ctx context.Context) (string, bool) {
	name, ok := ctx.Value(operationKey).(string)
	return name, ok && name != ""
}

// WithScope returns a context whose queries are recorded under scope (a
// branch, a tenant) by a query tracer. Baselines are kept per (operation,
// scope).
func WithScope(ctx context.Context, scope string) context.Context {
	return context.WithValue(ctx, scopeKey, scope)
}

// ScopeFromContext returns the scope given by WithScope, or "".
func ScopeFromContext(ctx context.Context) string {
	scope, _ := ctx.Value(scopeKey).(string)
	return scope
}

// WithoutTracing returns a context whose queries a query tracer does not
// record. The library marks its own background work with it (the Recorder's
// writes, the worker), so that a traced pool shared with the host service
// does not record the monitor's own queries.
func WithoutTracing(ctx context.Context) context.Context {
	return context.WithValue(ctx, untracedKey, true)
}

// TracingDisabled reports whether ctx was marked by WithoutTracing.
func TracingDisabled(ctx context.Context) bool {
	off, _ := ctx.Value(untracedKey).(bool)
	return off
}
