-- name: RunDetection :many
-- Runs every detector up to as_of (NULL: now less the settle delay) and
-- returns the alerts opened, changed or resolved.
SELECT * FROM pggit.run_detection(sqlc.narg(as_of)::timestamptz);

-- name: AcceptRegression :one
SELECT * FROM pggit.accept_regression(
    sqlc.arg(alert_id)::bigint,
    coalesce(sqlc.narg(accepted_by)::text, current_user)
);

-- name: BacktestDetection :many
SELECT * FROM pggit.backtest_detection(
    sqlc.arg(from_time)::timestamptz,
    sqlc.arg(to_time)::timestamptz,
    sqlc.narg(operation_type)::text,
    sqlc.arg(step_seconds)::integer
);

-- name: DetectionProgress :one
SELECT evaluated_through FROM pggit.detection_progress;

-- name: LastDetectionRun :one
SELECT * FROM pggit.detection_runs ORDER BY run_id DESC LIMIT 1;

-- name: MergeHistograms :many
-- The merged histogram of (operation, scope) over buckets starting in
-- [from_time, to_time): no row when there are no samples.
SELECT * FROM pggit.merge_histograms(
    sqlc.arg(operation_type)::text,
    sqlc.arg(scope)::text,
    sqlc.arg(from_time)::timestamptz,
    sqlc.arg(to_time)::timestamptz
);

-- name: HistogramQuantiles :one
-- Quantiles (in [0, 1]) of (operation, scope) over [from_time, to_time), in
-- microseconds, from the histograms (within 1% of percentile_cont); zeros
-- when there are no samples.
SELECT ARRAY(
    SELECT coalesce(q.v, 0)
    FROM unnest(pggit.histogram_window_quantiles(
             sqlc.arg(operation_type)::text,
             sqlc.arg(scope)::text,
             sqlc.arg(from_time)::timestamptz,
             sqlc.arg(to_time)::timestamptz,
             sqlc.arg(quantiles)::double precision[])) WITH ORDINALITY AS q(v, i)
    ORDER BY q.i
)::double precision[] AS quantiles;

-- name: CompactHistograms :one
SELECT pggit.compact_histograms(
    sqlc.arg(from_time)::timestamptz,
    sqlc.arg(to_time)::timestamptz,
    sqlc.arg(hours_before)::timestamptz
)::bigint AS rows_removed;
