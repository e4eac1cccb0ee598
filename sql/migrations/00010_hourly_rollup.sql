-- Hourly rollup of samples, so the hourly trend view does not compute
-- percentiles over a day of samples on every read. The worker refreshes it
-- every few minutes (pggit.rollup_performance_hours); the view reads the rolled
-- hours and computes only the hours after the last rolled one from the samples.

-- +goose Up
CREATE TABLE pggit.performance_hourly (
    operation_type text             NOT NULL,
    scope          text             NOT NULL,
    hour           timestamptz      NOT NULL,
    samples        bigint           NOT NULL,
    avg_ms         double precision NOT NULL,
    p99_ms         double precision NOT NULL,
    max_ms         double precision NOT NULL,
    rolled_at      timestamptz      NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (operation_type, scope, hour)
);
CREATE INDEX performance_hourly_hour_idx ON pggit.performance_hourly (hour);

-- Computes exact statistics for every complete hour from p_from up to p_until
-- (exclusive, truncated to the hour) and upserts them. By default it rolls the
-- hours that ended at least 5 minutes ago, recomputing the last two rolled
-- hours so that samples arriving late are counted. Returns the hours written.
-- +goose StatementBegin
CREATE FUNCTION pggit.rollup_performance_hours(
    p_until timestamptz DEFAULT NULL,
    p_from  timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_until timestamptz := date_trunc('hour', coalesce(p_until, clock_timestamp() - interval '5 minutes'));
    v_from  timestamptz;
    v_n     integer;
BEGIN
    v_from := coalesce(p_from,
                       (SELECT max(hour) - interval '1 hour' FROM pggit.performance_hourly),
                       v_until - interval '48 hours');
    v_from := greatest(date_trunc('hour', v_from), v_until - interval '31 days');
    IF v_from >= v_until THEN
        RETURN 0;
    END IF;
    INSERT INTO pggit.performance_hourly AS h (operation_type, scope, hour, samples, avg_ms, p99_ms, max_ms)
    SELECT m.operation_type, m.scope, date_trunc('hour', m.recorded_at),
           count(*),
           avg(m.duration_microseconds)::double precision / 1000.0,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY m.duration_microseconds) / 1000.0,
           max(m.duration_microseconds) / 1000.0
    FROM pggit.performance_metrics m
    WHERE m.recorded_at >= v_from AND m.recorded_at < v_until
    GROUP BY 1, 2, 3
    ON CONFLICT (operation_type, scope, hour) DO UPDATE SET
        samples = EXCLUDED.samples, avg_ms = EXCLUDED.avg_ms, p99_ms = EXCLUDED.p99_ms,
        max_ms = EXCLUDED.max_ms, rolled_at = clock_timestamp();
    GET DIAGNOSTICS v_n = ROW_COUNT;
    -- Hours whose samples are all gone (retention) keep their rollup; older
    -- than 31 days they go.
    DELETE FROM pggit.performance_hourly WHERE hour < clock_timestamp() - interval '31 days';
    RETURN v_n;
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

-- +goose Down
CREATE OR REPLACE VIEW pggit.v_operation_performance_trend AS
WITH hours AS (
    SELECT m.operation_type, m.scope, date_trunc('hour', m.recorded_at) AS hour,
           count(*)                                                              AS samples,
           avg(m.duration_microseconds)::double precision / 1000.0               AS avg_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY m.duration_microseconds) / 1000.0 AS p99_ms
    FROM pggit.performance_metrics m
    WHERE m.recorded_at > now() - interval '24 hours'
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
DROP FUNCTION pggit.rollup_performance_hours(timestamptz, timestamptz);
DROP TABLE pggit.performance_hourly;
