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
    sqlc.arg(reason)::text,
    sqlc.arg(method)::text
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
    (operation_type, category, is_tracked, alert_threshold_multiplier, critical_multiplier, description,
     min_window_count, anomaly_warning_z, anomaly_critical_z, anomaly_confirm_k, anomaly_confirm_n,
     degradation_warning_ratio, degradation_critical_ratio, degradation_threshold, resolve_after_minutes)
VALUES (
    sqlc.arg(operation_type)::text,
    coalesce(sqlc.narg(category)::text, 'general'),
    coalesce(sqlc.narg(is_tracked)::boolean, true),
    coalesce(sqlc.narg(alert_threshold_multiplier)::double precision, 2.0),
    coalesce(sqlc.narg(critical_multiplier)::double precision, 5.0),
    sqlc.narg(description)::text,
    coalesce(sqlc.narg(min_window_count)::integer, 20),
    coalesce(sqlc.narg(anomaly_warning_z)::double precision, 3.5),
    coalesce(sqlc.narg(anomaly_critical_z)::double precision, 5.0),
    coalesce(sqlc.narg(anomaly_confirm_k)::integer, 2),
    coalesce(sqlc.narg(anomaly_confirm_n)::integer, 3),
    coalesce(sqlc.narg(degradation_warning_ratio)::double precision, 1.3),
    coalesce(sqlc.narg(degradation_critical_ratio)::double precision, 1.5),
    coalesce(sqlc.narg(degradation_threshold)::double precision, 12.0),
    coalesce(sqlc.narg(resolve_after_minutes)::integer, 30)
)
ON CONFLICT (operation_type) DO UPDATE SET
    category                   = coalesce(sqlc.narg(category)::text, t.category),
    is_tracked                 = coalesce(sqlc.narg(is_tracked)::boolean, t.is_tracked),
    alert_threshold_multiplier = coalesce(sqlc.narg(alert_threshold_multiplier)::double precision,
                                          t.alert_threshold_multiplier),
    critical_multiplier        = coalesce(sqlc.narg(critical_multiplier)::double precision,
                                          t.critical_multiplier),
    description                = coalesce(sqlc.narg(description)::text, t.description),
    min_window_count           = coalesce(sqlc.narg(min_window_count)::integer, t.min_window_count),
    anomaly_warning_z          = coalesce(sqlc.narg(anomaly_warning_z)::double precision, t.anomaly_warning_z),
    anomaly_critical_z         = coalesce(sqlc.narg(anomaly_critical_z)::double precision, t.anomaly_critical_z),
    anomaly_confirm_k          = coalesce(sqlc.narg(anomaly_confirm_k)::integer, t.anomaly_confirm_k),
    anomaly_confirm_n          = coalesce(sqlc.narg(anomaly_confirm_n)::integer, t.anomaly_confirm_n),
    degradation_warning_ratio  = coalesce(sqlc.narg(degradation_warning_ratio)::double precision,
                                          t.degradation_warning_ratio),
    degradation_critical_ratio = coalesce(sqlc.narg(degradation_critical_ratio)::double precision,
                                          t.degradation_critical_ratio),
    degradation_threshold      = coalesce(sqlc.narg(degradation_threshold)::double precision, t.degradation_threshold),
    resolve_after_minutes      = coalesce(sqlc.narg(resolve_after_minutes)::integer, t.resolve_after_minutes),
    updated_at                 = now()
RETURNING *;
