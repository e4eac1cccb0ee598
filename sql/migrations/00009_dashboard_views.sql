-- The twelve dashboard views (names from the original system), fixed:
-- response SLA is measured to acknowledged_at; execution health comes from
-- real runs; no view multiplies rows through scopes or inactive baselines
-- (every baseline join is on operation, scope and is_active); the hourly trend
-- compares each hour's p99 with the active baseline of the same scope.
-- Columns are documented in docs/dashboards.md.

-- +goose Up
-- Hourly rollup of samples, so the hourly trend view does not compute
-- percentiles over a day of samples on every read. The worker refreshes it
-- every few minutes (pggit.rollup_performance_hours).
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

CREATE VIEW pggit.v_monitoring_system_health AS
SELECT
    (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL)                               AS open_alerts,
    (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND severity = 'CRITICAL')     AS open_critical,
    (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND severity = 'WARNING')      AS open_warning,
    (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND acknowledged_at IS NULL)   AS open_unacknowledged,
    (SELECT count(*) FROM pggit.performance_alerts WHERE created_at > now() - interval '1 hour')             AS alerts_last_hour,
    (SELECT count(*) FROM pggit.performance_alerts WHERE created_at > now() - interval '1 day')              AS alerts_last_day,
    (SELECT count(*) FROM pggit.performance_operation_types WHERE is_tracked)                               AS tracked_operations,
    (SELECT count(*) FROM pggit.performance_baselines WHERE is_active)                                      AS active_baselines,
    (SELECT count(*) FROM pggit.performance_baselines
      WHERE is_active AND calculated_at < now() - interval '2 days')                                        AS stale_baselines,
    (SELECT count(*) FROM pggit.performance_metrics WHERE recorded_at > now() - interval '1 hour')           AS samples_last_hour,
    (SELECT max(started_at) FROM pggit.baseline_recalc_execution)                                           AS last_recalc_at,
    (SELECT status FROM pggit.baseline_recalc_execution ORDER BY execution_id DESC LIMIT 1)                 AS last_recalc_status,
    (SELECT count(*) FROM pggit.notification_batch_queue WHERE status IN ('accumulating', 'ready', 'sending')) AS notification_batches_pending,
    (SELECT count(*) FROM pggit.notification_batch_queue WHERE status = 'failed')                           AS notification_batches_retrying,
    (SELECT count(*) FROM pggit.alert_notification_log
      WHERE outcome = 'dead' AND created_at > now() - interval '1 day')                                     AS notification_batches_dead_last_day,
    (SELECT count(*) FROM pggit.alert_notification_webhooks WHERE enabled)                                  AS webhooks_enabled,
    (SELECT count(*) FROM pggit.alert_notification_webhooks WHERE enabled AND test_status = 'failed')        AS webhooks_failing_test,
    (SELECT count(*) FROM pggit.alert_snooze WHERE is_active AND snooze_until > now())                      AS active_snoozes,
    now()                                                                                                   AS generated_at;

CREATE VIEW pggit.v_baseline_recalc_health AS
WITH runs AS (
    SELECT date_trunc('day', started_at) AS day,
           count(*)                                   AS runs,
           count(*) FILTER (WHERE status = 'SUCCESS') AS succeeded,
           count(*) FILTER (WHERE status = 'PARTIAL') AS partial,
           count(*) FILTER (WHERE status = 'TIMEOUT') AS timed_out,
           count(*) FILTER (WHERE status = 'FAILED')  AS failed,
           avg(duration_ms)                           AS avg_duration_ms,
           max(duration_ms)                           AS max_duration_ms
    FROM pggit.baseline_recalc_execution
    WHERE started_at > now() - interval '30 days'
    GROUP BY 1
),
changes AS (
    SELECT date_trunc('day', changed_at) AS day,
           count(*)                                      AS baselines_changed,
           avg(abs(percent_change))                      AS avg_abs_percent_change,
           count(*) FILTER (WHERE percent_change < 0)    AS improvements,
           count(*) FILTER (WHERE percent_change > 0)    AS degradations
    FROM pggit.performance_baseline_history
    WHERE changed_at > now() - interval '30 days'
    GROUP BY 1
)
SELECT coalesce(r.day, c.day)                  AS day,
       coalesce(r.runs, 0)                     AS runs,
       coalesce(r.succeeded, 0)                AS succeeded,
       coalesce(r.partial, 0)                  AS partial,
       coalesce(r.timed_out, 0)                AS timed_out,
       coalesce(r.failed, 0)                   AS failed,
       r.avg_duration_ms,
       r.max_duration_ms,
       coalesce(c.baselines_changed, 0)        AS baselines_changed,
       c.avg_abs_percent_change,
       coalesce(c.improvements, 0)             AS improvements,
       coalesce(c.degradations, 0)             AS degradations
FROM runs r
FULL JOIN changes c ON c.day = r.day;

CREATE VIEW pggit.v_alert_delivery_success_rate AS
SELECT w.webhook_id,
       w.webhook_type,
       w.name,
       count(l.log_id)                                                  AS attempts,
       count(l.log_id) FILTER (WHERE l.outcome = 'sent')                AS sent,
       count(l.log_id) FILTER (WHERE l.outcome = 'retry')               AS retried,
       count(l.log_id) FILTER (WHERE l.outcome = 'dead')                AS dead,
       round(100.0 * count(l.log_id) FILTER (WHERE l.outcome = 'sent') / nullif(count(l.log_id), 0), 2) AS success_rate_pct,
       avg(l.latency_ms)                                                AS avg_latency_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY l.latency_ms)       AS p95_latency_ms,
       max(l.created_at)                                                AS last_attempt_at,
       (SELECT l2.error FROM pggit.alert_notification_log l2
        WHERE l2.webhook_id = w.webhook_id AND l2.error IS NOT NULL
        ORDER BY l2.log_id DESC LIMIT 1)                                AS last_error
FROM pggit.alert_notification_webhooks w
LEFT JOIN pggit.alert_notification_log l
       ON l.webhook_id = w.webhook_id AND l.created_at > now() - interval '7 days'
GROUP BY w.webhook_id, w.webhook_type, w.name;

-- Response time is measured from the alert's creation to its first
-- acknowledgement. An alert counts against the SLA once it is acknowledged or
-- older than the SLA; a younger unacknowledged alert is not judged yet.
CREATE VIEW pggit.v_alert_response_sla AS
WITH sla AS (
    SELECT 'CRITICAL'::text AS severity, 5 AS sla_minutes
    UNION ALL
    SELECT 'WARNING'::text, 15
),
a AS (
    -- One pass over the alerts; each row's verdicts are computed once.
    SELECT s.severity, s.sla_minutes, al.alert_id, al.acknowledged_at,
           extract(epoch FROM al.acknowledged_at - al.created_at)                   AS ack_seconds,
           al.acknowledged_at <= al.created_at + make_interval(mins => s.sla_minutes) AS within_sla,
           al.acknowledged_at IS NOT NULL
               OR al.created_at <= now() - make_interval(mins => s.sla_minutes)     AS judged,
           al.acknowledged_at IS NULL AND al.resolved_at IS NULL
               AND al.created_at <= now() - make_interval(mins => s.sla_minutes)    AS breaching
    FROM sla s
    LEFT JOIN pggit.performance_alerts al
           ON al.severity = s.severity AND al.created_at > now() - interval '30 days' AND NOT al.snoozed
)
SELECT severity,
       sla_minutes,
       count(alert_id)                                                    AS alerts,
       count(acknowledged_at)                                             AS acknowledged,
       count(*) FILTER (WHERE within_sla)                                 AS acknowledged_within_sla,
       count(*) FILTER (WHERE judged)                                     AS judged,
       round(100.0 * count(*) FILTER (WHERE within_sla)
             / nullif(count(*) FILTER (WHERE judged), 0), 2)              AS sla_compliance_pct,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ack_seconds)           AS median_ack_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ack_seconds)          AS p95_ack_seconds,
       count(*) FILTER (WHERE breaching)                                  AS breaching_now
FROM a
GROUP BY severity, sla_minutes;

-- Last 24 hours (whole hours), per operation, scope and hour: the hour's p99
-- against the active baseline of the same operation and scope. Rolled-up hours
-- come from pggit.performance_hourly; the hours after the last rolled one are
-- computed from the samples.
CREATE VIEW pggit.v_operation_performance_trend AS
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

CREATE VIEW pggit.v_alert_frequency_by_operation AS
SELECT a.operation_type,
       a.scope,
       count(*)                                                                   AS alerts_30d,
       count(*) FILTER (WHERE a.created_at > now() - interval '7 days')           AS alerts_7d,
       count(*) FILTER (WHERE a.created_at > now() - interval '1 day')            AS alerts_1d,
       count(*) FILTER (WHERE a.severity = 'CRITICAL')                            AS critical_30d,
       count(*) FILTER (WHERE a.severity = 'WARNING')                             AS warning_30d,
       count(*) FILTER (WHERE a.resolved_at IS NULL)                              AS open_now,
       sum(a.occurrence_count)                                                    AS occurrences_30d,
       max(a.last_seen_at)                                                        AS last_seen_at,
       (SELECT b.p99_microseconds / 1000.0 FROM pggit.performance_baselines b
        WHERE b.operation_type = a.operation_type AND b.scope = a.scope AND b.is_active) AS baseline_p99_ms
FROM pggit.performance_alerts a
WHERE a.created_at > now() - interval '30 days'
GROUP BY a.operation_type, a.scope;

CREATE VIEW pggit.v_snoozed_alerts_audit AS
SELECT s.snooze_id,
       s.operation_type,
       s.alert_type,
       s.created_by,
       s.snooze_reason,
       s.created_at,
       s.snooze_until,
       s.snooze_until - now()                                        AS remaining,
       (SELECT count(*) FROM pggit.performance_alerts a WHERE a.snooze_id = s.snooze_id) AS alerts_silenced
FROM pggit.alert_snooze s
WHERE s.is_active AND s.snooze_until > now();

CREATE VIEW pggit.v_baseline_change_impact AS
SELECT h.operation_type,
       h.scope,
       count(*)                                                   AS changes_30d,
       count(*) FILTER (WHERE abs(h.percent_change) >= 25)        AS major_changes_30d,
       count(*) FILTER (WHERE h.percent_change < 0)               AS improvements,
       count(*) FILTER (WHERE h.percent_change > 0)               AS degradations,
       avg(h.percent_change)                                      AS avg_percent_change,
       max(abs(h.percent_change))                                 AS max_abs_percent_change,
       max(h.changed_at)                                          AS last_change_at,
       (SELECT b.p99_microseconds / 1000.0 FROM pggit.performance_baselines b
        WHERE b.operation_type = h.operation_type AND b.scope = h.scope AND b.is_active) AS current_p99_ms
FROM pggit.performance_baseline_history h
WHERE h.changed_at > now() - interval '30 days'
GROUP BY h.operation_type, h.scope;

CREATE VIEW pggit.v_notification_queue_health AS
SELECT w.webhook_id,
       w.webhook_type,
       w.name,
       w.enabled,
       w.test_status,
       count(b.batch_id) FILTER (WHERE b.status IN ('accumulating', 'ready')) AS batches_waiting,
       count(b.batch_id) FILTER (WHERE b.status = 'sending')                   AS batches_sending,
       count(b.batch_id) FILTER (WHERE b.status = 'failed')                    AS batches_retrying,
       count(b.batch_id) FILTER (WHERE b.status = 'dead')                      AS batches_dead,
       coalesce(sum(b.item_count) FILTER (WHERE b.status IN ('accumulating', 'ready', 'sending', 'failed')), 0) AS notifications_pending,
       now() - min(b.opened_at) FILTER (WHERE b.status IN ('accumulating', 'ready', 'sending', 'failed'))     AS oldest_pending_age,
       avg(b.attempts) FILTER (WHERE b.status IN ('sent', 'dead'))             AS avg_attempts
FROM pggit.alert_notification_webhooks w
LEFT JOIN pggit.notification_batch_queue b ON b.webhook_id = w.webhook_id
GROUP BY w.webhook_id, w.webhook_type, w.name, w.enabled, w.test_status;

-- One row: CRITICAL when the last run failed or no run succeeded in 2 days;
-- WARNING when the last run was partial or timed out, or the last success is
-- older than 26 hours; OK otherwise.
CREATE VIEW pggit.v_baseline_recalc_execution_health AS
WITH last AS (
    SELECT status, started_at FROM pggit.baseline_recalc_execution ORDER BY execution_id DESC LIMIT 1
),
week AS (
    SELECT count(*) AS runs,
           count(*) FILTER (WHERE status = 'SUCCESS') AS succeeded,
           avg(duration_ms) AS avg_duration_ms,
           max(duration_ms) AS max_duration_ms
    FROM pggit.baseline_recalc_execution
    WHERE started_at > now() - interval '7 days'
),
ok AS (
    SELECT max(started_at) AS last_success_at FROM pggit.baseline_recalc_execution WHERE status = 'SUCCESS'
)
SELECT week.runs                                                        AS runs_7d,
       week.succeeded                                                   AS succeeded_7d,
       round(100.0 * week.succeeded / nullif(week.runs, 0), 2)          AS success_rate_pct,
       week.avg_duration_ms,
       week.max_duration_ms,
       last.started_at                                                  AS last_run_at,
       last.status                                                      AS last_status,
       ok.last_success_at,
       CASE
           WHEN last.status = 'FAILED' OR ok.last_success_at IS NULL
                OR ok.last_success_at < now() - interval '2 days' THEN 'CRITICAL'
           WHEN last.status IN ('PARTIAL', 'TIMEOUT')
                OR ok.last_success_at < now() - interval '26 hours' THEN 'WARNING'
           ELSE 'OK'
       END                                                              AS health
FROM week
CROSS JOIN ok
LEFT JOIN last ON true;

CREATE VIEW pggit.v_monitoring_dashboard_freshness AS
SELECT f.source, f.last_update_at, now() - f.last_update_at AS age
FROM (
    SELECT 'samples'::text AS source,
           (SELECT max(recorded_at) FROM pggit.performance_metrics WHERE recorded_at <= now()) AS last_update_at
    UNION ALL
    SELECT 'baselines', (SELECT max(calculated_at) FROM pggit.performance_baselines)
    UNION ALL
    SELECT 'recalculation', (SELECT max(started_at) FROM pggit.baseline_recalc_execution)
    UNION ALL
    SELECT 'alerts', (SELECT max(last_seen_at) FROM pggit.performance_alerts)
    UNION ALL
    SELECT 'notifications', (SELECT max(created_at) FROM pggit.alert_notification_log)
    UNION ALL
    SELECT 'snoozes', (SELECT max(created_at) FROM pggit.alert_snooze)
) f;

-- One row per operation and scope that has an active baseline or an open
-- alert.
CREATE VIEW pggit.v_complete_system_overview AS
WITH keys AS (
    SELECT operation_type, scope FROM pggit.performance_baselines WHERE is_active
    UNION
    SELECT operation_type, scope FROM pggit.performance_alerts WHERE resolved_at IS NULL
)
SELECT k.operation_type,
       k.scope,
       t.category,
       coalesce(t.is_tracked, true)                                  AS is_tracked,
       b.sample_count                                                AS baseline_samples,
       b.p50_microseconds / 1000.0                                   AS baseline_p50_ms,
       b.p99_microseconds / 1000.0                                   AS baseline_p99_ms,
       b.calculated_at                                               AS baseline_calculated_at,
       (SELECT count(*) FROM pggit.performance_metrics m
        WHERE m.operation_type = k.operation_type AND m.scope = k.scope
          AND m.recorded_at > now() - interval '1 hour')             AS samples_last_hour,
       (SELECT count(*) FROM pggit.performance_alerts a
        WHERE a.operation_type = k.operation_type AND a.scope = k.scope AND a.resolved_at IS NULL) AS open_alerts,
       (SELECT a.severity FROM pggit.performance_alerts a
        WHERE a.operation_type = k.operation_type AND a.scope = k.scope AND a.resolved_at IS NULL
        ORDER BY pggit.severity_rank(a.severity) DESC LIMIT 1)       AS worst_open_severity,
       pggit.is_alert_snoozed(k.operation_type, 'THRESHOLD_EXCEEDED') AS threshold_snoozed
FROM keys k
LEFT JOIN pggit.performance_baselines b
       ON b.operation_type = k.operation_type AND b.scope = k.scope AND b.is_active
LEFT JOIN pggit.performance_operation_types t
       ON t.operation_type = k.operation_type;

-- +goose Down
DROP VIEW pggit.v_complete_system_overview;
DROP VIEW pggit.v_monitoring_dashboard_freshness;
DROP VIEW pggit.v_baseline_recalc_execution_health;
DROP VIEW pggit.v_notification_queue_health;
DROP VIEW pggit.v_baseline_change_impact;
DROP VIEW pggit.v_snoozed_alerts_audit;
DROP VIEW pggit.v_alert_frequency_by_operation;
DROP VIEW pggit.v_operation_performance_trend;
DROP VIEW pggit.v_alert_response_sla;
DROP VIEW pggit.v_alert_delivery_success_rate;
DROP VIEW pggit.v_baseline_recalc_health;
DROP VIEW pggit.v_monitoring_system_health;
DROP FUNCTION pggit.rollup_performance_hours(timestamptz, timestamptz);
DROP TABLE pggit.performance_hourly;
