-- v_operation_performance_trend computes the hours after the last rolled one
-- from the samples. Its bound came from a scalar subquery, so the plan was
-- made without its value: the planner guessed a third of each partition and
-- read today's partition whole (a sequential scan of every sample of the day,
-- 90 ms at 3.2 M samples a day in the 100 M benchmark, about 1 s at 400
-- samples/s), even when the rollup covered every hour and nothing was to be
-- read. pggit.trend_live_hours plans that read with the bound's value (a
-- custom plan every call), so it is an index range scan of the live samples
-- only. The view's rows and columns do not change.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION pggit.trend_live_hours(p_from timestamptz)
RETURNS TABLE (operation_type text, scope text, hour timestamptz, samples bigint,
               avg_ms double precision, p99_ms double precision)
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT m.operation_type, m.scope, date_trunc('hour', m.recorded_at),
           count(*),
           avg(m.duration_microseconds)::double precision / 1000.0,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY m.duration_microseconds) / 1000.0
    FROM pggit.performance_metrics m
    WHERE m.recorded_at >= p_from AND m.recorded_at <= now()
    GROUP BY 1, 2, 3;
END;
$$;
-- +goose StatementEnd

CREATE OR REPLACE VIEW pggit.v_operation_performance_trend AS
WITH mark AS (
    -- Rolled hours are read from the rollup; later ones from the samples.
    SELECT greatest(coalesce(max(hour) + interval '1 hour', now() - interval '24 hours'),
                    date_trunc('hour', now() - interval '24 hours')) AS live_from
    FROM pggit.performance_hourly
    WHERE hour > now() - interval '25 hours'
),
hours AS (
    SELECT r.operation_type, r.scope, r.hour, r.samples, r.avg_ms, r.p99_ms
    FROM pggit.performance_hourly r
    WHERE r.hour >= date_trunc('hour', now() - interval '24 hours')
      AND r.hour < (SELECT live_from FROM mark)
    UNION ALL
    -- Planned with the bound's value (pggit.trend_live_hours).
    SELECT l.operation_type, l.scope, l.hour, l.samples, l.avg_ms, l.p99_ms
    FROM pggit.trend_live_hours((SELECT live_from FROM mark)) l
)
SELECT h.operation_type,
       h.scope,
       h.hour,
       h.samples,
       h.avg_ms,
       h.p99_ms,
       b.p99_microseconds / 1000.0                     AS baseline_p99_ms,
       h.p99_ms / nullif(b.p99_microseconds / 1000.0, 0) AS p99_ratio,
       CASE
           WHEN b.baseline_id IS NULL THEN 'NO_BASELINE'
           WHEN h.p99_ms * 1000.0 >= b.p99_microseconds * coalesce(t.critical_multiplier, 5.0) THEN 'CRITICAL'
           WHEN h.p99_ms * 1000.0 >= b.p99_microseconds * coalesce(t.alert_threshold_multiplier, 2.0) THEN 'WARNING'
           ELSE 'NORMAL'
       END                                             AS status
FROM hours h
LEFT JOIN pggit.performance_baselines b
       ON b.operation_type = h.operation_type AND b.scope = h.scope AND b.is_active
LEFT JOIN pggit.performance_operation_types t
       ON t.operation_type = h.operation_type;

-- +goose Down
CREATE OR REPLACE VIEW pggit.v_operation_performance_trend AS
WITH mark AS (
    -- Rolled hours are read from the rollup; later ones from the samples.
    SELECT greatest(coalesce(max(hour) + interval '1 hour', now() - interval '24 hours'),
                    date_trunc('hour', now() - interval '24 hours')) AS live_from
    FROM pggit.performance_hourly
    WHERE hour > now() - interval '25 hours'
),
hours AS (
    SELECT r.operation_type, r.scope, r.hour, r.samples, r.avg_ms, r.p99_ms
    FROM pggit.performance_hourly r
    WHERE r.hour >= date_trunc('hour', now() - interval '24 hours')
      AND r.hour < (SELECT live_from FROM mark)
    UNION ALL
    -- A scalar subquery, not a join, so the bound is an index range scan key.
    SELECT m.operation_type, m.scope, date_trunc('hour', m.recorded_at),
           count(*),
           avg(m.duration_microseconds)::double precision / 1000.0,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY m.duration_microseconds) / 1000.0
    FROM pggit.performance_metrics m
    WHERE m.recorded_at >= (SELECT live_from FROM mark) AND m.recorded_at <= now()
    GROUP BY 1, 2, 3
)
SELECT h.operation_type,
       h.scope,
       h.hour,
       h.samples,
       h.avg_ms,
       h.p99_ms,
       b.p99_microseconds / 1000.0                     AS baseline_p99_ms,
       h.p99_ms / nullif(b.p99_microseconds / 1000.0, 0) AS p99_ratio,
       CASE
           WHEN b.baseline_id IS NULL THEN 'NO_BASELINE'
           WHEN h.p99_ms * 1000.0 >= b.p99_microseconds * coalesce(t.critical_multiplier, 5.0) THEN 'CRITICAL'
           WHEN h.p99_ms * 1000.0 >= b.p99_microseconds * coalesce(t.alert_threshold_multiplier, 2.0) THEN 'WARNING'
           ELSE 'NORMAL'
       END                                             AS status
FROM hours h
LEFT JOIN pggit.performance_baselines b
       ON b.operation_type = h.operation_type AND b.scope = h.scope AND b.is_active
LEFT JOIN pggit.performance_operation_types t
       ON t.operation_type = h.operation_type;

DROP FUNCTION pggit.trend_live_hours(timestamptz);
