-- Alerts and snoozes: threshold detection on every written batch of samples,
-- severity, deduplicated open alerts, acknowledgement and resolution, snoozes,
-- and BASELINE_RECALC_ERROR alerts from recalculation runs.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION pggit.severity_rank(p_severity text)
RETURNS integer
LANGUAGE sql
IMMUTABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT CASE p_severity WHEN 'CRITICAL' THEN 3 WHEN 'WARNING' THEN 2 WHEN 'INFO' THEN 1 ELSE 0 END
$$;
-- +goose StatementEnd

-- The newest-ending active snooze matching (operation, alert type) exactly or
-- through 'ALL', or NULL. A snooze matches until snooze_until, exclusive.
-- +goose StatementBegin
CREATE FUNCTION pggit.active_snooze_id(p_operation_type text, p_alert_type text)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now timestamptz := clock_timestamp(); -- a parameter, so the index can use it
BEGIN
    RETURN (
        SELECT s.snooze_id
        FROM pggit.alert_snooze s
        WHERE s.is_active
          AND s.operation_type IN (p_operation_type, 'ALL')
          AND s.alert_type IN (p_alert_type, 'ALL')
          AND s.snooze_until > v_now
        ORDER BY s.snooze_until DESC
        LIMIT 1);
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.is_alert_snoozed(p_operation_type text, p_alert_type text)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT pggit.active_snooze_id(p_operation_type, p_alert_type) IS NOT NULL
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.snooze_alerts(
    p_operation_type text    DEFAULT 'ALL',
    p_alert_type     text    DEFAULT 'ALL',
    p_snooze_minutes integer DEFAULT 60,
    p_snooze_reason  text    DEFAULT NULL,
    p_created_by     text    DEFAULT current_user)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_id  bigint;
    v_now timestamptz := clock_timestamp();
BEGIN
    IF p_operation_type IS NULL OR btrim(p_operation_type) = '' OR length(p_operation_type) > 200 THEN
        RAISE EXCEPTION 'p_operation_type must be an operation name (at most 200 characters) or ''ALL'', got %',
                coalesce(quote_literal(left(p_operation_type, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    IF p_alert_type IS NULL OR p_alert_type NOT IN
            ('ALL', 'THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION', 'BASELINE_RECALC_ERROR') THEN
        RAISE EXCEPTION 'p_alert_type must be one of ALL, THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION, CORRELATION, BASELINE_RECALC_ERROR, got %',
                coalesce(quote_literal(p_alert_type), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_type';
    END IF;
    IF p_snooze_minutes IS NULL OR p_snooze_minutes NOT BETWEEN 1 AND 43200 THEN
        RAISE EXCEPTION 'p_snooze_minutes must be between 1 and 43200 (30 days), got %',
                coalesce(p_snooze_minutes::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_snooze_minutes';
    END IF;
    IF p_created_by IS NULL OR btrim(p_created_by) = '' THEN
        RAISE EXCEPTION 'p_created_by must be a non-empty name, got %', coalesce(quote_literal(p_created_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_created_by';
    END IF;

    INSERT INTO pggit.alert_snooze
        (operation_type, alert_type, snooze_until, snooze_reason, created_by, created_at)
    VALUES
        (p_operation_type, p_alert_type, v_now + make_interval(mins => p_snooze_minutes),
         p_snooze_reason, p_created_by, v_now)
    RETURNING snooze_id INTO v_id;
    RETURN v_id;
END;
$$;
-- +goose StatementEnd

-- Ends a snooze early; the row stays for audit. Ending an ended snooze is a no-op.
-- +goose StatementBegin
CREATE FUNCTION pggit.unsnooze_alerts(p_snooze_id bigint, p_cancelled_by text DEFAULT current_user)
RETURNS pggit.alert_snooze
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_row pggit.alert_snooze;
BEGIN
    IF p_snooze_id IS NULL THEN
        RAISE EXCEPTION 'p_snooze_id must not be NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_snooze_id';
    END IF;
    IF p_cancelled_by IS NULL OR btrim(p_cancelled_by) = '' THEN
        RAISE EXCEPTION 'p_cancelled_by must be a non-empty name, got %', coalesce(quote_literal(p_cancelled_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_cancelled_by';
    END IF;
    UPDATE pggit.alert_snooze s
    SET is_active = false, cancelled_at = clock_timestamp(), cancelled_by = p_cancelled_by
    WHERE s.snooze_id = p_snooze_id AND s.is_active
    RETURNING s.* INTO v_row;
    IF NOT FOUND THEN
        SELECT s.* INTO v_row FROM pggit.alert_snooze s WHERE s.snooze_id = p_snooze_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'snooze % does not exist', p_snooze_id
                USING ERRCODE = 'no_data_found', COLUMN = 'p_snooze_id';
        END IF;
    END IF;
    RETURN v_row;
END;
$$;
-- +goose StatementEnd

-- Raises an alert or adds to the open one of (operation, scope, type): the
-- occurrence count grows, last seen moves, severity only goes up. For alerts
-- that do not come from one sample (recalculation errors, later anomaly,
-- degradation and correlation).
-- +goose StatementBegin
CREATE FUNCTION pggit.raise_alert(
    p_operation_type text,
    p_scope          text,
    p_alert_type     text,
    p_severity       text,
    p_details        jsonb  DEFAULT '{}'::jsonb,
    p_execution_id   bigint DEFAULT NULL)
RETURNS pggit.performance_alerts
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_alert  pggit.performance_alerts;
    v_snooze bigint;
    v_now    timestamptz := clock_timestamp();
BEGIN
    IF p_alert_type IS NULL OR p_alert_type NOT IN
            ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION', 'BASELINE_RECALC_ERROR') THEN
        RAISE EXCEPTION 'p_alert_type must be one of THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION, CORRELATION, BASELINE_RECALC_ERROR, got %',
                coalesce(quote_literal(p_alert_type), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_type';
    END IF;
    IF p_severity IS NULL OR p_severity NOT IN ('CRITICAL', 'WARNING', 'INFO') THEN
        RAISE EXCEPTION 'p_severity must be one of CRITICAL, WARNING, INFO, got %',
                coalesce(quote_literal(p_severity), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_severity';
    END IF;
    v_snooze := pggit.active_snooze_id(p_operation_type, p_alert_type);

    INSERT INTO pggit.performance_alerts AS a
        (operation_type, scope, alert_type, severity, created_at, first_seen_at, last_seen_at,
         occurrence_count, execution_id, details, snoozed, snooze_id)
    VALUES
        (p_operation_type, coalesce(p_scope, ''), p_alert_type, p_severity, v_now, v_now, v_now,
         1, p_execution_id, coalesce(p_details, '{}'::jsonb), v_snooze IS NOT NULL, v_snooze)
    ON CONFLICT (operation_type, scope, alert_type) WHERE resolved_at IS NULL DO UPDATE SET
        occurrence_count = a.occurrence_count + 1,
        last_seen_at     = greatest(a.last_seen_at, EXCLUDED.last_seen_at),
        severity         = CASE WHEN pggit.severity_rank(EXCLUDED.severity) > pggit.severity_rank(a.severity)
                                THEN EXCLUDED.severity ELSE a.severity END,
        execution_id     = coalesce(EXCLUDED.execution_id, a.execution_id),
        details          = a.details || EXCLUDED.details
    RETURNING a.* INTO v_alert;
    RETURN v_alert;
END;
$$;
-- +goose StatementEnd

-- Registration and threshold detection for each written batch of samples,
-- however it was written (record function, COPY, plain INSERT): one statement
-- over the batch's transition table, one upsert per violated (operation, scope).
-- A sample at or above p99 x the operation's alert_threshold_multiplier is a
-- violation; at or above p99 x critical_multiplier it is CRITICAL, else WARNING.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.performance_metrics_after_insert()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    INSERT INTO pggit.performance_operation_types (operation_type)
    SELECT DISTINCT n.operation_type
    FROM new_rows n
    WHERE NOT EXISTS (
        SELECT 1 FROM pggit.performance_operation_types t
        WHERE t.operation_type = n.operation_type)
    ON CONFLICT (operation_type) DO NOTHING;

    INSERT INTO pggit.performance_alerts AS a
        (operation_type, scope, alert_type, severity, actual_duration_microseconds,
         baseline_p99_microseconds, violation_multiplier, threshold_multiplier, created_at,
         first_seen_at, last_seen_at, occurrence_count, metric_id, worst_metric_id, baseline_id,
         details, snoozed, snooze_id)
    SELECT v.operation_type, v.scope, 'THRESHOLD_EXCEEDED',
           CASE WHEN v.worst_multiplier >= v.critical_multiplier THEN 'CRITICAL' ELSE 'WARNING' END,
           v.worst_duration, v.p99, v.worst_multiplier, v.threshold, v_now,
           v.first_seen, v.last_seen, v.n, v.first_metric_id, v.worst_metric_id, v.baseline_id,
           jsonb_build_object('critical_multiplier', v.critical_multiplier),
           s.snooze_id IS NOT NULL, s.snooze_id
    FROM (
        SELECT n.operation_type,
               n.scope,
               b.baseline_id,
               b.p99_microseconds                                   AS p99,
               t.alert_threshold_multiplier                         AS threshold,
               t.critical_multiplier,
               count(*)                                             AS n,
               min(n.recorded_at)                                   AS first_seen,
               max(n.recorded_at)                                   AS last_seen,
               max(n.duration_microseconds)                         AS worst_duration,
               max(n.duration_microseconds) / b.p99_microseconds    AS worst_multiplier,
               min(n.metric_id)                                     AS first_metric_id,
               (array_agg(n.metric_id ORDER BY n.duration_microseconds DESC, n.metric_id))[1] AS worst_metric_id
        FROM new_rows n
        JOIN pggit.performance_baselines b
          ON b.operation_type = n.operation_type AND b.scope = n.scope AND b.is_active
        JOIN pggit.performance_operation_types t
          ON t.operation_type = n.operation_type
        WHERE t.is_tracked
          AND n.duration_microseconds >= b.p99_microseconds * t.alert_threshold_multiplier
        GROUP BY n.operation_type, n.scope, b.baseline_id, b.p99_microseconds,
                 t.alert_threshold_multiplier, t.critical_multiplier
    ) v
    CROSS JOIN LATERAL (SELECT pggit.active_snooze_id(v.operation_type, 'THRESHOLD_EXCEEDED') AS snooze_id) s
    ORDER BY v.operation_type, v.scope -- one lock order for concurrent batches
    ON CONFLICT (operation_type, scope, alert_type) WHERE resolved_at IS NULL DO UPDATE SET
        occurrence_count = a.occurrence_count + EXCLUDED.occurrence_count,
        first_seen_at    = least(a.first_seen_at, EXCLUDED.first_seen_at),
        last_seen_at     = greatest(a.last_seen_at, EXCLUDED.last_seen_at),
        severity         = CASE WHEN pggit.severity_rank(EXCLUDED.severity) > pggit.severity_rank(a.severity)
                                THEN EXCLUDED.severity ELSE a.severity END,
        actual_duration_microseconds = CASE WHEN EXCLUDED.violation_multiplier > a.violation_multiplier
                                THEN EXCLUDED.actual_duration_microseconds ELSE a.actual_duration_microseconds END,
        baseline_p99_microseconds = CASE WHEN EXCLUDED.violation_multiplier > a.violation_multiplier
                                THEN EXCLUDED.baseline_p99_microseconds ELSE a.baseline_p99_microseconds END,
        worst_metric_id  = CASE WHEN EXCLUDED.violation_multiplier > a.violation_multiplier
                                THEN EXCLUDED.worst_metric_id ELSE a.worst_metric_id END,
        baseline_id      = CASE WHEN EXCLUDED.violation_multiplier > a.violation_multiplier
                                THEN EXCLUDED.baseline_id ELSE a.baseline_id END,
        violation_multiplier = greatest(a.violation_multiplier, EXCLUDED.violation_multiplier);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.acknowledge_alert(p_alert_id bigint, p_acknowledged_by text DEFAULT current_user)
RETURNS pggit.performance_alerts
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_alert pggit.performance_alerts;
BEGIN
    IF p_alert_id IS NULL THEN
        RAISE EXCEPTION 'p_alert_id must not be NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_id';
    END IF;
    IF p_acknowledged_by IS NULL OR btrim(p_acknowledged_by) = '' THEN
        RAISE EXCEPTION 'p_acknowledged_by must be a non-empty name, got %',
                coalesce(quote_literal(p_acknowledged_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_acknowledged_by';
    END IF;
    -- The first acknowledgement is kept: response time is measured to it.
    UPDATE pggit.performance_alerts a
    SET acknowledged_at = clock_timestamp(), acknowledged_by = p_acknowledged_by
    WHERE a.alert_id = p_alert_id AND a.acknowledged_at IS NULL
    RETURNING a.* INTO v_alert;
    IF NOT FOUND THEN
        SELECT a.* INTO v_alert FROM pggit.performance_alerts a WHERE a.alert_id = p_alert_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'alert % does not exist', p_alert_id
                USING ERRCODE = 'no_data_found', COLUMN = 'p_alert_id';
        END IF;
    END IF;
    RETURN v_alert;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.resolve_alert(
    p_alert_id         bigint,
    p_resolved_by      text DEFAULT current_user,
    p_resolution_notes text DEFAULT NULL)
RETURNS pggit.performance_alerts
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_alert pggit.performance_alerts;
BEGIN
    IF p_alert_id IS NULL THEN
        RAISE EXCEPTION 'p_alert_id must not be NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_id';
    END IF;
    IF p_resolved_by IS NULL OR btrim(p_resolved_by) = '' THEN
        RAISE EXCEPTION 'p_resolved_by must be a non-empty name, got %', coalesce(quote_literal(p_resolved_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_resolved_by';
    END IF;
    SELECT a.* INTO v_alert FROM pggit.performance_alerts a WHERE a.alert_id = p_alert_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'alert % does not exist', p_alert_id
            USING ERRCODE = 'no_data_found', COLUMN = 'p_alert_id';
    END IF;
    IF v_alert.resolved_at IS NOT NULL THEN
        RAISE EXCEPTION 'alert % was already resolved at % by %', p_alert_id, v_alert.resolved_at, v_alert.resolved_by
            USING ERRCODE = 'object_not_in_prerequisite_state', COLUMN = 'p_alert_id';
    END IF;
    UPDATE pggit.performance_alerts a
    SET resolved_at = clock_timestamp(), resolved_by = p_resolved_by, resolution_notes = p_resolution_notes
    WHERE a.alert_id = p_alert_id
    RETURNING a.* INTO v_alert;
    RETURN v_alert;
END;
$$;
-- +goose StatementEnd

-- Recalculation runs raise BASELINE_RECALC_ERROR when they finish: WARNING for
-- each failed operation, CRITICAL (operation 'pggit.recalculation') when the
-- run failed as a whole.
-- +goose StatementBegin
CREATE FUNCTION pggit.baseline_recalc_execution_after_finish()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_failed record;
BEGIN
    FOR v_failed IN
        SELECT res.operation_type, res.scope, res.message
        FROM pggit.baseline_recalc_results res
        WHERE res.execution_id = NEW.execution_id AND res.status = 'FAILED'
        ORDER BY res.operation_type, res.scope
    LOOP
        PERFORM pggit.raise_alert(v_failed.operation_type, v_failed.scope, 'BASELINE_RECALC_ERROR', 'WARNING',
                                  jsonb_build_object('message', v_failed.message, 'execution_id', NEW.execution_id),
                                  NEW.execution_id);
    END LOOP;
    IF NEW.status = 'FAILED' THEN
        PERFORM pggit.raise_alert('pggit.recalculation', '', 'BASELINE_RECALC_ERROR', 'CRITICAL',
                                  jsonb_build_object('message', NEW.error_message, 'execution_id', NEW.execution_id),
                                  NEW.execution_id);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER baseline_recalc_execution_after_finish
    AFTER UPDATE OF status ON pggit.baseline_recalc_execution
    FOR EACH ROW
    WHEN (OLD.status = 'RUNNING' AND NEW.status <> 'RUNNING')
    EXECUTE FUNCTION pggit.baseline_recalc_execution_after_finish();

-- +goose Down
DROP TRIGGER baseline_recalc_execution_after_finish ON pggit.baseline_recalc_execution;
DROP FUNCTION pggit.baseline_recalc_execution_after_finish();

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.performance_metrics_after_insert()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    INSERT INTO pggit.performance_operation_types (operation_type)
    SELECT DISTINCT n.operation_type
    FROM new_rows n
    WHERE NOT EXISTS (
        SELECT 1 FROM pggit.performance_operation_types t
        WHERE t.operation_type = n.operation_type)
    ON CONFLICT (operation_type) DO NOTHING;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

DROP FUNCTION pggit.resolve_alert(bigint, text, text);
DROP FUNCTION pggit.acknowledge_alert(bigint, text);
DROP FUNCTION pggit.raise_alert(text, text, text, text, jsonb, bigint);
DROP FUNCTION pggit.unsnooze_alerts(bigint, text);
DROP FUNCTION pggit.snooze_alerts(text, text, integer, text, text);
DROP FUNCTION pggit.is_alert_snoozed(text, text);
DROP FUNCTION pggit.active_snooze_id(text, text);
DROP FUNCTION pggit.severity_rank(text);
