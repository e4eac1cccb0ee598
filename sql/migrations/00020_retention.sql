-- Retention of finished records: resolved alerts and their notifications,
-- ended snoozes, sent or dead notification batches, the delivery log, the
-- records of recalculation and detection runs, and baseline history. Nothing
-- deleted them before; every one of these tables grew for ever.
--
-- How long each kind is kept is a setting of pggit.monitor_settings, in days
-- after the record ended (default 90):
--
--   retention_alerts_days            resolved alerts (from resolved_at), with
--                                    their queue items; snoozes (from their
--                                    end or cancellation)
--   retention_notifications_days     notification batches and their queue
--                                    items (from sent_at; dead batches from
--                                    their last scheduled attempt)
--   retention_delivery_log_days      alert_notification_log (from created_at)
--   retention_runs_days              baseline_recalc_execution with its
--                                    baseline_recalc_results, detection_runs
--                                    (from finished_at)
--   retention_baseline_history_days  performance_baseline_history (from
--                                    changed_at) and inactive baselines (from
--                                    deactivated_at)
--
-- Never deleted: open alerts and every queue item, batch and snooze they
-- reference; unfinished batches (accumulating, ready, sending, failed), their
-- items and log rows; alerts with a notification not yet sent or dead;
-- alerts an accepted regression (performance_baseline_floors) names; the
-- active baselines and the history row that made each; unfinished runs;
-- anything a kept row still references (an alert's baseline, run or snooze, a
-- baseline's run). A row kept for a reference goes at a later run, once the
-- referencing row has gone.
--
-- pggit.apply_retention deletes at most p_batch rows of each table per call,
-- in the caller's (short) transaction; the worker's sample_retention job
-- calls it until a call deletes nothing. Settings are validated when written
-- (a trigger on pggit.monitor_settings) and again when read: a bad value
-- raises 22023 and deletes nothing.
--
-- detection_close_hour deleted detection_runs after a fixed 30 days; that
-- moves here, under retention_runs_days.

-- +goose Up
-- The delivery log is deleted oldest first.
CREATE INDEX alert_notification_log_created_idx ON pggit.alert_notification_log (created_at);

-- Raises 22023 unless p_name is a retention setting and p_value a whole
-- number of days from 1 to 36500; returns the days.
-- +goose StatementBegin
CREATE FUNCTION pggit.check_retention_setting(p_name text, p_value text)
RETURNS integer
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_name IS NULL OR p_name NOT IN ('retention_alerts_days', 'retention_notifications_days',
            'retention_delivery_log_days', 'retention_runs_days', 'retention_baseline_history_days') THEN
        RAISE EXCEPTION 'setting_name must be one of retention_alerts_days, retention_notifications_days, retention_delivery_log_days, retention_runs_days, retention_baseline_history_days, got %',
                coalesce(quote_literal(regexp_replace(left(p_name, 60), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'setting_name';
    END IF;
    IF NOT coalesce(CASE WHEN p_value ~ '^[0-9]{1,5}$' THEN p_value::integer BETWEEN 1 AND 36500 END, false) THEN
        RAISE EXCEPTION '% must be a whole number of days between 1 and 36500, got %', p_name,
                coalesce(quote_literal(regexp_replace(left(p_value, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = p_name;
    END IF;
    RETURN p_value::integer;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.monitor_settings_check_retention()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    PERFORM pggit.check_retention_setting(NEW.setting_name, NEW.setting_value);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

-- No bad retention setting is ever stored (nor a misspelt one: every
-- retention_* name must be known).
CREATE TRIGGER monitor_settings_check_retention
    BEFORE INSERT OR UPDATE ON pggit.monitor_settings
    FOR EACH ROW
    WHEN (NEW.setting_name LIKE 'retention\_%')
    EXECUTE FUNCTION pggit.monitor_settings_check_retention();

-- The days of retention setting p_name: its stored value (checked again, in
-- case the trigger was bypassed), or 90 when the row was deleted.
-- +goose StatementBegin
CREATE FUNCTION pggit.retention_days(p_name text)
RETURNS integer
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_value text;
BEGIN
    SELECT s.setting_value INTO v_value FROM pggit.monitor_settings s WHERE s.setting_name = p_name;
    RETURN pggit.check_retention_setting(p_name, CASE WHEN FOUND THEN v_value ELSE '90' END);
END;
$$;
-- +goose StatementEnd

INSERT INTO pggit.monitor_settings (setting_name, setting_value, description) VALUES
    ('retention_alerts_days', '90',
     'Days a resolved alert (with its queue items) or an ended snooze is kept (1..36500)'),
    ('retention_notifications_days', '90',
     'Days a sent or dead notification batch and its queue items are kept (1..36500)'),
    ('retention_delivery_log_days', '90',
     'Days a delivery log row (alert_notification_log) is kept (1..36500)'),
    ('retention_runs_days', '90',
     'Days a finished recalculation run (with its results) or detection run is kept (1..36500)'),
    ('retention_baseline_history_days', '90',
     'Days a baseline history row or an inactive baseline is kept (1..36500)');

-- One bounded step of retention: deletes at most p_batch rows of each table
-- (oldest first, skipping rows another transaction has locked) and returns
-- how many it deleted from each. Callers repeat until a call deletes nothing,
-- each call in its own transaction, so no lock is held for long. Every
-- setting is read, and checked, before anything is deleted. Tables are taken
-- in an order where a deletion only ever frees rows of later tables (alerts
-- before their snoozes and baselines, results before baselines, baselines
-- before runs).
-- +goose StatementBegin
CREATE FUNCTION pggit.apply_retention(p_batch integer DEFAULT 10000)
RETURNS TABLE (table_name text, deleted bigint)
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_alerts  timestamptz;
    v_notify  timestamptz;
    v_log     timestamptz;
    v_runs    timestamptz;
    v_history timestamptz;
    v_items   bigint;
    v_n       bigint;
BEGIN
    IF p_batch IS NULL OR p_batch NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'p_batch must be between 1 and 1000000, got %', coalesce(p_batch::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_batch';
    END IF;
    v_alerts  := v_now - make_interval(days => pggit.retention_days('retention_alerts_days'));
    v_notify  := v_now - make_interval(days => pggit.retention_days('retention_notifications_days'));
    v_log     := v_now - make_interval(days => pggit.retention_days('retention_delivery_log_days'));
    v_runs    := v_now - make_interval(days => pggit.retention_days('retention_runs_days'));
    v_history := v_now - make_interval(days => pggit.retention_days('retention_baseline_history_days'));

    -- Alerts resolved before the window whose every notification is sent,
    -- dead or suppressed (held under a snooze, then moot), and that no accepted regression names: their queue items, then
    -- the alerts left without items.
    WITH gone AS (
        DELETE FROM pggit.alert_notification_queue q
        WHERE q.notification_id IN (
            SELECT i.notification_id
            FROM pggit.performance_alerts a
            JOIN pggit.alert_notification_queue i ON i.alert_id = a.alert_id
            WHERE a.resolved_at < v_alerts
              AND NOT EXISTS (SELECT 1 FROM pggit.alert_notification_queue u
                              WHERE u.alert_id = a.alert_id AND u.status NOT IN ('sent', 'dead', 'suppressed'))
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_baseline_floors f WHERE f.alert_id = a.alert_id)
            ORDER BY i.notification_id
            LIMIT p_batch
            FOR UPDATE OF i SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_items FROM gone;

    WITH gone AS (
        DELETE FROM pggit.performance_alerts a
        WHERE a.alert_id IN (
            SELECT o.alert_id
            FROM pggit.performance_alerts o
            WHERE o.resolved_at < v_alerts
              AND NOT EXISTS (SELECT 1 FROM pggit.alert_notification_queue u WHERE u.alert_id = o.alert_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_baseline_floors f WHERE f.alert_id = o.alert_id)
            ORDER BY o.resolved_at, o.alert_id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'performance_alerts'; deleted := v_n; RETURN NEXT;

    -- Snoozes that ended (or were cancelled) before the window and that no
    -- kept alert references.
    WITH gone AS (
        DELETE FROM pggit.alert_snooze s
        WHERE s.snooze_id IN (
            SELECT o.snooze_id
            FROM pggit.alert_snooze o
            WHERE least(o.cancelled_at, o.snooze_until) < v_alerts
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_alerts a WHERE a.snooze_id = o.snooze_id)
            ORDER BY o.snooze_id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'alert_snooze'; deleted := v_n; RETURN NEXT;

    -- Delivery log rows older than the window, except those of unfinished
    -- batches.
    WITH gone AS (
        DELETE FROM pggit.alert_notification_log l
        WHERE l.log_id IN (
            SELECT o.log_id
            FROM pggit.alert_notification_log o
            WHERE o.created_at < v_log
              AND NOT EXISTS (SELECT 1 FROM pggit.notification_batch_queue b
                              WHERE b.batch_id = o.batch_id AND b.status NOT IN ('sent', 'dead'))
            ORDER BY o.created_at, o.log_id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'alert_notification_log'; deleted := v_n; RETURN NEXT;

    -- Batches sent or dead before the window whose items all belong to
    -- resolved alerts: their items, then the batches left without items or
    -- log rows (a batch stays while its log rows do), except the one each
    -- webhook's pggit.notification_batch_open names.
    WITH gone AS (
        DELETE FROM pggit.alert_notification_queue q
        WHERE q.notification_id IN (
            SELECT i.notification_id
            FROM pggit.notification_batch_queue b
            JOIN pggit.alert_notification_queue i ON i.batch_id = b.batch_id
            WHERE b.status IN ('sent', 'dead')
              AND greatest(b.opened_at, b.next_attempt_at, b.sent_at) < v_notify
              AND NOT EXISTS (SELECT 1
                              FROM pggit.alert_notification_queue u
                              JOIN pggit.performance_alerts a ON a.alert_id = u.alert_id
                              WHERE u.batch_id = b.batch_id
                                AND (a.resolved_at IS NULL OR u.status NOT IN ('sent', 'dead', 'suppressed')))
            ORDER BY i.notification_id
            LIMIT p_batch - v_items
            FOR UPDATE OF i SKIP LOCKED)
        RETURNING 1
    )
    SELECT v_items + count(*) INTO v_items FROM gone;
    table_name := 'alert_notification_queue'; deleted := v_items; RETURN NEXT;

    WITH gone AS (
        DELETE FROM pggit.notification_batch_queue b
        WHERE b.batch_id IN (
            SELECT o.batch_id
            FROM pggit.notification_batch_queue o
            WHERE o.status IN ('sent', 'dead')
              AND greatest(o.opened_at, o.next_attempt_at, o.sent_at) < v_notify
              AND NOT EXISTS (SELECT 1 FROM pggit.alert_notification_queue u WHERE u.batch_id = o.batch_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.alert_notification_log l WHERE l.batch_id = o.batch_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.notification_batch_open p WHERE p.batch_id = o.batch_id)
            ORDER BY o.batch_id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'notification_batch_queue'; deleted := v_n; RETURN NEXT;

    -- Baseline history older than the window, except the row that made each
    -- active baseline.
    WITH gone AS (
        DELETE FROM pggit.performance_baseline_history h
        WHERE h.history_id IN (
            SELECT o.history_id
            FROM pggit.performance_baseline_history o
            WHERE o.changed_at < v_history
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_baselines b
                              WHERE b.baseline_id = o.baseline_id AND b.is_active)
            ORDER BY o.history_id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'performance_baseline_history'; deleted := v_n; RETURN NEXT;

    -- Per-operation results of runs that finished before the window.
    WITH gone AS (
        DELETE FROM pggit.baseline_recalc_results r
        WHERE (r.execution_id, r.operation_type, r.scope) IN (
            SELECT o.execution_id, o.operation_type, o.scope
            FROM pggit.baseline_recalc_execution e
            JOIN pggit.baseline_recalc_results o ON o.execution_id = e.execution_id
            WHERE e.started_at < v_runs AND e.finished_at < v_runs
            ORDER BY o.execution_id, o.operation_type, o.scope
            LIMIT p_batch
            FOR UPDATE OF o SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'baseline_recalc_results'; deleted := v_n; RETURN NEXT;

    -- Baselines deactivated before the window that no alert, history row or
    -- run result references.
    WITH gone AS (
        DELETE FROM pggit.performance_baselines b
        WHERE b.baseline_id IN (
            SELECT o.baseline_id
            FROM pggit.performance_baselines o
            WHERE NOT o.is_active
              AND o.deactivated_at < v_history
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_alerts a WHERE a.baseline_id = o.baseline_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_baseline_history h WHERE h.baseline_id = o.baseline_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_baseline_history h WHERE h.previous_baseline_id = o.baseline_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.baseline_recalc_results r WHERE r.baseline_id = o.baseline_id)
            ORDER BY o.baseline_id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'performance_baselines'; deleted := v_n; RETURN NEXT;

    -- Recalculation runs that finished before the window, once no result,
    -- alert, baseline or history row references them.
    WITH gone AS (
        DELETE FROM pggit.baseline_recalc_execution e
        WHERE e.execution_id IN (
            SELECT o.execution_id
            FROM pggit.baseline_recalc_execution o
            WHERE o.started_at < v_runs AND o.finished_at < v_runs
              AND NOT EXISTS (SELECT 1 FROM pggit.baseline_recalc_results r WHERE r.execution_id = o.execution_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_alerts a WHERE a.execution_id = o.execution_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_baselines b WHERE b.execution_id = o.execution_id)
              AND NOT EXISTS (SELECT 1 FROM pggit.performance_baseline_history h WHERE h.execution_id = o.execution_id)
            ORDER BY o.execution_id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'baseline_recalc_execution'; deleted := v_n; RETURN NEXT;

    -- Detection runs that finished before the window.
    WITH gone AS (
        DELETE FROM pggit.detection_runs d
        WHERE d.run_id IN (
            SELECT o.run_id
            FROM pggit.detection_runs o
            WHERE o.started_at < v_runs AND o.finished_at < v_runs
            ORDER BY o.started_at, o.run_id
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'detection_runs'; deleted := v_n; RETURN NEXT;
END;
$$;
-- +goose StatementEnd

-- Detection runs are now deleted by pggit.apply_retention, after
-- retention_runs_days (it was a fixed 30 days here).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.detection_close_hour(p_hour_end timestamptz, p_operation text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_lookback interval := make_interval(days => pggit.detection_setting('detection_lookback_days', 7)::integer);
BEGIN
    PERFORM pggit.detection_summarize_hours(p_hour_end - interval '1 hour', p_hour_end, p_operation, true);
    PERFORM pggit.compact_histograms(p_hour_end - interval '1 hour', p_hour_end);
    DELETE FROM pggit.detection_blocks WHERE block_end < p_hour_end - interval '2 days';
    DELETE FROM pggit.detection_hours WHERE hour < p_hour_end - v_lookback - interval '1 day';
    PERFORM pggit.detection_build_references(p_hour_end, p_operation, false);
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.detection_close_hour(p_hour_end timestamptz, p_operation text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_lookback interval := make_interval(days => pggit.detection_setting('detection_lookback_days', 7)::integer);
BEGIN
    PERFORM pggit.detection_summarize_hours(p_hour_end - interval '1 hour', p_hour_end, p_operation, true);
    PERFORM pggit.compact_histograms(p_hour_end - interval '1 hour', p_hour_end);
    DELETE FROM pggit.detection_blocks WHERE block_end < p_hour_end - interval '2 days';
    DELETE FROM pggit.detection_hours WHERE hour < p_hour_end - v_lookback - interval '1 day';
    DELETE FROM pggit.detection_runs WHERE started_at < clock_timestamp() - interval '30 days';
    PERFORM pggit.detection_build_references(p_hour_end, p_operation, false);
END;
$$;
-- +goose StatementEnd
DROP FUNCTION pggit.apply_retention(integer);
DROP TRIGGER monitor_settings_check_retention ON pggit.monitor_settings;
DELETE FROM pggit.monitor_settings WHERE setting_name LIKE 'retention\_%';
DROP FUNCTION pggit.retention_days(text);
DROP FUNCTION pggit.monitor_settings_check_retention();
DROP FUNCTION pggit.check_retention_setting(text, text);
DROP INDEX pggit.alert_notification_log_created_idx;
