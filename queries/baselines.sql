-- name: RecordPerformanceMetric :one
-- Records one sample through pggit.record_performance_metric (validated, 22023
-- on bad input). Use the Recorder (CopyMetrics) for volume.
SELECT pggit.record_performance_metric(
    sqlc.arg(operation_type)::text,
    sqlc.arg(duration_microseconds)::bigint,
    sqlc.arg(scope)::text,
    sqlc.narg(user_name)::text,
    sqlc.narg(metadata)::jsonb,
    sqlc.narg(recorded_at)::timestamptz
)::bigint AS metric_id;

-- name: CopyMetrics :copyfrom
INSERT INTO pggit.performance_metrics
    (operation_type, duration_microseconds, recorded_at, scope, user_name, metadata)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: RecalculateAllBaselinesRolling :many
SELECT * FROM pggit.recalculate_all_baselines_rolling(
    sqlc.arg(lookback_days)::integer,
    sqlc.arg(min_samples)::integer,
    sqlc.arg(force)::boolean,
    sqlc.arg(max_execution_seconds)::integer,
    sqlc.arg(reason)::text
);

-- name: RecalculateSingleBaselineSafe :one
SELECT * FROM pggit.recalculate_single_baseline_safe(
    sqlc.arg(operation_type)::text,
    sqlc.arg(scope)::text,
    sqlc.arg(lookback_days)::integer,
    sqlc.arg(min_samples)::integer,
    sqlc.arg(force)::boolean,
    sqlc.arg(reason)::text
);

-- name: GetRecalcExecution :one
SELECT * FROM pggit.baseline_recalc_execution
WHERE execution_id = sqlc.arg(execution_id);

-- name: LastRecalcExecutionOfSession :one
-- The run most recently started by this session (connection): currval of the
-- execution identity. Call it on the connection that ran the recalculation.
SELECT * FROM pggit.baseline_recalc_execution
WHERE execution_id = currval(pg_get_serial_sequence('pggit.baseline_recalc_execution', 'execution_id'));

-- name: ListRecalcExecutions :many
SELECT * FROM pggit.baseline_recalc_execution
ORDER BY execution_id DESC
LIMIT sqlc.arg(max_rows);

-- name: ListRecalcResults :many
SELECT * FROM pggit.baseline_recalc_results
WHERE execution_id = sqlc.arg(execution_id)
ORDER BY operation_type, scope;

-- name: ListActiveBaselines :many
SELECT * FROM pggit.performance_baselines
WHERE is_active
  AND (sqlc.narg(operation_type)::text IS NULL OR operation_type = sqlc.narg(operation_type)::text)
ORDER BY operation_type, scope;

-- name: GetActiveBaseline :one
SELECT * FROM pggit.performance_baselines
WHERE is_active
  AND operation_type = sqlc.arg(operation_type)
  AND scope = sqlc.arg(scope);

-- name: ListBaselineHistory :many
SELECT * FROM pggit.performance_baseline_history
WHERE operation_type = sqlc.arg(operation_type)
  AND scope = sqlc.arg(scope)
ORDER BY history_id;

-- name: GetOperationType :one
SELECT * FROM pggit.performance_operation_types
WHERE operation_type = sqlc.arg(operation_type);

-- name: ListOperationTypes :many
SELECT * FROM pggit.performance_operation_types
ORDER BY operation_type;

-- name: UpsertOperationType :one
-- Registers or reconfigures an operation. NULL arguments keep the current value
-- (or the column default for a new operation).
INSERT INTO pggit.performance_operation_types AS t
    (operation_type, category, is_tracked, alert_threshold_multiplier, critical_multiplier, description)
VALUES (
    sqlc.arg(operation_type)::text,
    coalesce(sqlc.narg(category)::text, 'general'),
    coalesce(sqlc.narg(is_tracked)::boolean, true),
    coalesce(sqlc.narg(alert_threshold_multiplier)::double precision, 2.0),
    coalesce(sqlc.narg(critical_multiplier)::double precision, 5.0),
    sqlc.narg(description)::text
)
ON CONFLICT (operation_type) DO UPDATE SET
    category                   = coalesce(sqlc.narg(category)::text, t.category),
    is_tracked                 = coalesce(sqlc.narg(is_tracked)::boolean, t.is_tracked),
    alert_threshold_multiplier = coalesce(sqlc.narg(alert_threshold_multiplier)::double precision,
                                          t.alert_threshold_multiplier),
    critical_multiplier        = coalesce(sqlc.narg(critical_multiplier)::double precision,
                                          t.critical_multiplier),
    description                = coalesce(sqlc.narg(description)::text, t.description),
    updated_at                 = now()
RETURNING *;
