-- Every function that takes a caller's name or id checks it with the shared
-- check of 00016 (pggit.check_name, pggit.check_id): SQLSTATE 22023 naming
-- the argument, before anything is written. Names are operation names,
-- scopes (which may be empty), and the names of people and processes
-- (acknowledged_by, resolved_by, created_by, cancelled_by, accepted_by,
-- user_name, worker and job names): at most 200 characters, not blank, and
-- without control characters (a CR/LF in an operation name forged email
-- headers). Ids are positive; an id that does not exist is still
-- no_data_found (P0002). Enum-like text arguments (severities, alert types,
-- events) give 22023 listing the allowed values.
--
-- CHECK constraints with pggit.is_valid_name hold the same rule on every
-- table column of those kinds, so no write path (COPY, a plain INSERT, an
-- internal function) can store what the functions refuse. They are added NOT
-- VALID and validated right after: a migration over rows that break the rule
-- fails, naming the constraint (docs/operating.md, "Input rules", finds them).
--
-- The existing checks written inline stay as they were (their messages are
-- part of the API); the shared checks follow them and refuse the rest.
--
-- pggit.is_valid_name loses its SET search_path (every name in it is
-- qualified instead, as in pggit.utc_minute): a function with a SET clause is
-- never inlined, and each call then costs ~9 µs. Through the three checks on
-- pggit.performance_metrics that was ~9 s a million samples, on every COPY of
-- the Recorder and in this migration's validation; inlined, 0.9 s.

-- +goose Up
-- Inlined by the planner into the CHECK constraints below: no SET clause.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.is_valid_name(p_value text, p_max_length integer DEFAULT 200, p_allow_empty boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT p_value IS NOT NULL
       AND pg_catalog.length(p_value) OPERATOR(pg_catalog.<=) p_max_length
       AND ((p_allow_empty AND p_value OPERATOR(pg_catalog.=) '')
            OR pg_catalog.btrim(p_value) OPERATOR(pg_catalog.<>) '')
       AND p_value OPERATOR(pg_catalog.!~) '[[:cntrl:]]'
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.record_performance_metric(
    p_operation_type        text,
    p_duration_microseconds bigint,
    p_scope                 text        DEFAULT '',
    p_user_name             text        DEFAULT NULL,
    p_metadata              jsonb       DEFAULT NULL,
    p_recorded_at           timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_metric_id bigint;
BEGIN
    IF p_operation_type IS NULL OR btrim(p_operation_type) = '' OR length(p_operation_type) > 200 THEN
        RAISE EXCEPTION 'p_operation_type must be a non-empty name of at most 200 characters, got %',
                coalesce(quote_literal(left(p_operation_type, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    PERFORM pggit.check_name(p_operation_type, 'p_operation_type');
    IF p_duration_microseconds IS NULL OR p_duration_microseconds <= 0 THEN
        RAISE EXCEPTION 'p_duration_microseconds must be greater than 0, got %',
                coalesce(p_duration_microseconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_duration_microseconds';
    END IF;
    IF p_scope IS NULL OR length(p_scope) > 200 THEN
        RAISE EXCEPTION 'p_scope must be a text of at most 200 characters (empty for global), got %',
                coalesce(quote_literal(left(p_scope, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_scope';
    END IF;
    PERFORM pggit.check_name(p_scope, 'p_scope', 200, true);
    IF p_user_name IS NOT NULL THEN
        PERFORM pggit.check_name(p_user_name, 'p_user_name');
    END IF;

    INSERT INTO pggit.performance_metrics
        (operation_type, duration_microseconds, recorded_at, scope, user_name, metadata)
    VALUES
        (p_operation_type, p_duration_microseconds, coalesce(p_recorded_at, now()), p_scope,
         p_user_name, p_metadata)
    RETURNING metric_id INTO v_metric_id;
    RETURN v_metric_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.recalculate_single_baseline_safe(
    p_operation_type text,
    p_scope          text    DEFAULT '',
    p_lookback_days  integer DEFAULT 7,
    p_min_samples    integer DEFAULT 10,
    p_force          boolean DEFAULT false,
    p_reason         text    DEFAULT 'manual')
RETURNS pggit.baseline_recalc_results
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_exec   pggit.baseline_recalc_execution;
    v_stats  pggit.performance_baselines;
    v_result pggit.baseline_recalc_results;
BEGIN
    IF p_operation_type IS NULL OR btrim(p_operation_type) = '' OR length(p_operation_type) > 200 THEN
        RAISE EXCEPTION 'p_operation_type must be a non-empty name of at most 200 characters, got %',
                coalesce(quote_literal(left(p_operation_type, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    PERFORM pggit.check_name(p_operation_type, 'p_operation_type');
    IF p_scope IS NULL THEN
        RAISE EXCEPTION 'p_scope must be a text (empty for global), got NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_scope';
    END IF;
    PERFORM pggit.check_name(p_scope, 'p_scope', 200, true);
    IF p_force IS NULL THEN
        RAISE EXCEPTION 'p_force must be true or false, got NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_force';
    END IF;
    PERFORM pggit.check_recalc_arguments(p_lookback_days, p_min_samples, NULL, p_reason);

    v_exec := pggit.start_recalc_execution(p_lookback_days, p_min_samples, p_force, NULL, p_reason,
                                           p_operation_type);
    -- Without the samples of regressions and before an accepted change point.
    v_stats := pggit.compute_baseline_stats(p_operation_type, p_scope, v_exec.window_start, v_exec.window_end,
                                            p_lookback_days);
    v_result := pggit.apply_baseline_stats(v_exec.execution_id, v_stats, p_min_samples, p_force, p_reason);
    PERFORM pggit.finish_recalc_execution(v_exec.execution_id, NULL);
    RETURN v_result;
END;
$$;
-- +goose StatementEnd

-- An unknown severity is refused, not ranked 0 (PL/pgSQL, was SQL).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.severity_rank(p_severity text)
RETURNS integer
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    CASE p_severity
        WHEN 'CRITICAL' THEN RETURN 3;
        WHEN 'WARNING' THEN RETURN 2;
        WHEN 'INFO' THEN RETURN 1;
        ELSE
            RAISE EXCEPTION 'p_severity must be one of CRITICAL, WARNING, INFO, got %',
                    coalesce(quote_literal(regexp_replace(left(p_severity, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_severity';
    END CASE;
END;
$$;
-- +goose StatementEnd

-- PL/pgSQL (was SQL), to check its arguments.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.is_alert_snoozed(p_operation_type text, p_alert_type text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    PERFORM pggit.check_name(p_operation_type, 'p_operation_type');
    IF p_alert_type IS NULL OR p_alert_type NOT IN
            ('ALL', 'THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION', 'BASELINE_RECALC_ERROR') THEN
        RAISE EXCEPTION 'p_alert_type must be one of ALL, THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION, CORRELATION, BASELINE_RECALC_ERROR, got %',
                coalesce(quote_literal(regexp_replace(left(p_alert_type, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_type';
    END IF;
    RETURN pggit.active_snooze_id(p_operation_type, p_alert_type) IS NOT NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.snooze_alerts(
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
    PERFORM pggit.check_name(p_operation_type, 'p_operation_type');
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
    PERFORM pggit.check_name(p_created_by, 'p_created_by');

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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.unsnooze_alerts(p_snooze_id bigint, p_cancelled_by text DEFAULT current_user)
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
    PERFORM pggit.check_id(p_snooze_id, 'p_snooze_id');
    IF p_cancelled_by IS NULL OR btrim(p_cancelled_by) = '' THEN
        RAISE EXCEPTION 'p_cancelled_by must be a non-empty name, got %', coalesce(quote_literal(p_cancelled_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_cancelled_by';
    END IF;
    PERFORM pggit.check_name(p_cancelled_by, 'p_cancelled_by');
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.raise_alert(
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
    PERFORM pggit.check_name(p_operation_type, 'p_operation_type');
    PERFORM pggit.check_name(p_scope, 'p_scope', 200, true);
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
    IF p_execution_id IS NOT NULL THEN
        PERFORM pggit.check_id(p_execution_id, 'p_execution_id');
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.acknowledge_alert(p_alert_id bigint, p_acknowledged_by text DEFAULT current_user)
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
    PERFORM pggit.check_id(p_alert_id, 'p_alert_id');
    IF p_acknowledged_by IS NULL OR btrim(p_acknowledged_by) = '' THEN
        RAISE EXCEPTION 'p_acknowledged_by must be a non-empty name, got %',
                coalesce(quote_literal(p_acknowledged_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_acknowledged_by';
    END IF;
    PERFORM pggit.check_name(p_acknowledged_by, 'p_acknowledged_by');
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
CREATE OR REPLACE FUNCTION pggit.resolve_alert(
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
    PERFORM pggit.check_id(p_alert_id, 'p_alert_id');
    IF p_resolved_by IS NULL OR btrim(p_resolved_by) = '' THEN
        RAISE EXCEPTION 'p_resolved_by must be a non-empty name, got %', coalesce(quote_literal(p_resolved_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_resolved_by';
    END IF;
    PERFORM pggit.check_name(p_resolved_by, 'p_resolved_by');
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.accept_regression(p_alert_id bigint, p_accepted_by text DEFAULT current_user)
RETURNS pggit.performance_alerts
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_alert    pggit.performance_alerts;
    v_exec     pggit.baseline_recalc_execution;
    v_stats    pggit.performance_baselines;
    v_res      pggit.baseline_recalc_results;
    v_lookback integer;
BEGIN
    IF p_alert_id IS NULL THEN
        RAISE EXCEPTION 'p_alert_id must not be NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_id';
    END IF;
    PERFORM pggit.check_id(p_alert_id, 'p_alert_id');
    IF p_accepted_by IS NULL OR btrim(p_accepted_by) = '' THEN
        RAISE EXCEPTION 'p_accepted_by must be a non-empty name, got %', coalesce(quote_literal(p_accepted_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_accepted_by';
    END IF;
    PERFORM pggit.check_name(p_accepted_by, 'p_accepted_by');
    SELECT a.* INTO v_alert FROM pggit.performance_alerts a WHERE a.alert_id = p_alert_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'alert % does not exist', p_alert_id
            USING ERRCODE = 'no_data_found', COLUMN = 'p_alert_id';
    END IF;
    IF v_alert.alert_type NOT IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION') THEN
        RAISE EXCEPTION 'p_alert_id must name a THRESHOLD_EXCEEDED, ANOMALY or DEGRADATION alert, alert % is %',
                p_alert_id, v_alert.alert_type
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_id';
    END IF;
    IF v_alert.resolved_at IS NOT NULL THEN
        RAISE EXCEPTION 'alert % was already resolved at % by %', p_alert_id, v_alert.resolved_at, v_alert.resolved_by
            USING ERRCODE = 'object_not_in_prerequisite_state', COLUMN = 'p_alert_id';
    END IF;

    -- The operation's other open regression alerts are about the same new
    -- level: they are accepted with it.
    UPDATE pggit.performance_alerts a
    SET resolved_at = clock_timestamp(), resolved_by = p_accepted_by,
        resolution_notes = format('regression accepted (alert %s): the baseline starts again at %s',
                                  p_alert_id, v_alert.first_seen_at),
        details = a.details || jsonb_build_object('accepted', true, 'accepted_by', p_accepted_by,
                                                  'accepted_at', clock_timestamp(), 'accepted_with', p_alert_id)
    WHERE a.operation_type = v_alert.operation_type AND a.scope = v_alert.scope AND a.resolved_at IS NULL
      AND a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION');

    INSERT INTO pggit.performance_baseline_floors AS f (operation_type, scope, since, alert_id, accepted_by)
    VALUES (v_alert.operation_type, v_alert.scope, v_alert.first_seen_at, p_alert_id, p_accepted_by)
    ON CONFLICT (operation_type, scope) DO UPDATE SET
        since = greatest(f.since, EXCLUDED.since), alert_id = EXCLUDED.alert_id,
        accepted_by = EXCLUDED.accepted_by, accepted_at = clock_timestamp();

    -- Detection: the reference is rebuilt from the change point at the next
    -- hour, and the CUSUM starts over.
    UPDATE pggit.detection_references r SET stale = true
    WHERE r.operation_type = v_alert.operation_type AND r.scope = v_alert.scope;
    UPDATE pggit.detection_state s
    SET cusum = 0, mwu_tested_at = NULL, degradation_alert_id = NULL, recovery_cusum = 0, recovery_since = NULL,
        shift = NULL, threshold_alert_id = NULL, anomaly_alert_id = NULL, anomaly_scores = '{}', anomaly_ends = '{}'
    WHERE s.operation_type = v_alert.operation_type AND s.scope = v_alert.scope;

    -- Re-baseline from the change point.
    SELECT b.lookback_days INTO v_lookback FROM pggit.performance_baselines b
    WHERE b.operation_type = v_alert.operation_type AND b.scope = v_alert.scope AND b.is_active;
    v_lookback := coalesce(v_lookback, 7);
    v_exec := pggit.start_recalc_execution(v_lookback, 10, false, NULL, 'accepted', v_alert.operation_type);
    v_stats := pggit.compute_baseline_stats(v_alert.operation_type, v_alert.scope, v_exec.window_start,
                                            v_exec.window_end, v_lookback);
    v_res := pggit.apply_baseline_stats(v_exec.execution_id, v_stats, 10, false, 'accepted');
    PERFORM pggit.finish_recalc_execution(v_exec.execution_id, NULL);

    UPDATE pggit.performance_alerts a
    SET details = a.details || jsonb_build_object('rebaseline', jsonb_build_object(
            'execution_id', v_exec.execution_id, 'status', v_res.status, 'baseline_id', v_res.baseline_id,
            'samples', v_res.sample_count, 'new_p99_ms', round((v_res.new_p99_microseconds / 1000.0)::numeric, 3),
            'message', v_res.message))
    WHERE a.alert_id = p_alert_id
    RETURNING a.* INTO v_alert;
    RETURN v_alert;
END;
$$;
-- +goose StatementEnd

-- Keeps the enable_seqscan setting of 00015.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.enqueue_notification_batch(p_notification_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
SET enable_seqscan = off
AS $$
DECLARE
    v_item   pggit.alert_notification_queue;
    v_config pggit.notification_batch_config;
    v_batch  pggit.notification_batch_queue;
    v_open   bigint;
    v_now    timestamptz := clock_timestamp();
BEGIN
    PERFORM pggit.check_id(p_notification_id, 'p_notification_id');
    SELECT q.* INTO v_item FROM pggit.alert_notification_queue q
    WHERE q.notification_id = p_notification_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'notification % does not exist', p_notification_id
            USING ERRCODE = 'no_data_found', COLUMN = 'p_notification_id';
    END IF;
    IF v_item.batch_id IS NOT NULL THEN
        RETURN v_item.batch_id; -- already batched
    END IF;
    SELECT c.* INTO v_config
    FROM pggit.notification_batch_config c
    JOIN pggit.alert_notification_webhooks w ON w.webhook_type = c.webhook_type
    WHERE w.webhook_id = v_item.webhook_id;

    INSERT INTO pggit.notification_batch_open (webhook_id) VALUES (v_item.webhook_id)
    ON CONFLICT (webhook_id) DO NOTHING;
    SELECT o.batch_id INTO v_open FROM pggit.notification_batch_open o
    WHERE o.webhook_id = v_item.webhook_id
    FOR UPDATE;

    -- Still accumulating? A dispatcher may have claimed it since (timeout).
    SELECT b.* INTO v_batch FROM pggit.notification_batch_queue b
    WHERE b.batch_id = v_open AND b.status = 'accumulating'
    FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO pggit.notification_batch_queue
            (webhook_id, status, batch_size, opened_at, due_at, max_attempts, next_attempt_at)
        VALUES
            (v_item.webhook_id, 'accumulating', v_config.batch_size, v_now,
             v_now + make_interval(secs => v_config.batch_timeout_seconds), v_config.max_attempts, v_now)
        RETURNING * INTO v_batch;
        UPDATE pggit.notification_batch_open SET batch_id = v_batch.batch_id WHERE webhook_id = v_item.webhook_id;
    END IF;

    UPDATE pggit.notification_batch_queue b
    SET item_count = b.item_count + 1,
        status = CASE WHEN b.item_count + 1 >= b.batch_size THEN 'ready' ELSE 'accumulating' END
    WHERE b.batch_id = v_batch.batch_id
    RETURNING b.* INTO v_batch;

    UPDATE pggit.alert_notification_queue q
    SET batch_id = v_batch.batch_id, max_attempts = v_batch.max_attempts
    WHERE q.notification_id = p_notification_id;

    IF v_batch.status = 'ready' OR v_batch.due_at <= v_now THEN
        PERFORM pg_notify('pggit_notifications', v_batch.batch_id::text);
    END IF;
    RETURN v_batch.batch_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.enqueue_alert_notifications(p_alert pggit.performance_alerts, p_event text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_id bigint;
    v_n  integer := 0;
BEGIN
    IF p_alert.alert_id IS NULL OR p_alert.alert_id < 1 THEN
        RAISE EXCEPTION 'p_alert must be a stored alert (a pggit.performance_alerts row with its alert_id), got %',
                CASE WHEN p_alert IS NULL THEN 'NULL' ELSE 'alert_id ' || coalesce(p_alert.alert_id::text, 'NULL') END
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert';
    END IF;
    IF p_event IS NULL OR p_event NOT IN ('opened', 'escalated', 'resolved') THEN
        RAISE EXCEPTION 'p_event must be one of opened, escalated, resolved, got %',
                coalesce(quote_literal(regexp_replace(left(p_event, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_event';
    END IF;
    FOR v_id IN
        INSERT INTO pggit.alert_notification_queue
            (alert_id, webhook_id, event, severity, max_attempts, dedup_key)
        SELECT p_alert.alert_id, w.webhook_id, p_event, p_alert.severity, c.max_attempts,
               format('pggit-%s-%s-%s-%s', p_alert.alert_id, p_event, p_alert.severity, w.webhook_id)
        FROM (SELECT DISTINCT s.webhook_id
              FROM pggit.alert_notification_settings s
              WHERE s.enabled
                AND s.alert_type IN (p_alert.alert_type, 'ALL')
                AND pggit.severity_rank(p_alert.severity) >= pggit.severity_rank(s.min_severity)) r
        JOIN pggit.alert_notification_webhooks w ON w.webhook_id = r.webhook_id AND w.enabled
        JOIN pggit.notification_batch_config c ON c.webhook_type = w.webhook_type
        ORDER BY w.webhook_id
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING notification_id
    LOOP
        PERFORM pggit.enqueue_notification_batch(v_id);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.claim_notification_batches(p_worker text, p_limit integer, p_lease_seconds integer)
RETURNS SETOF pggit.notification_batch_queue
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    IF p_worker IS NULL OR btrim(p_worker) = '' THEN
        RAISE EXCEPTION 'p_worker must be a non-empty name' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_worker';
    END IF;
    PERFORM pggit.check_name(p_worker, 'p_worker');
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 1000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_limit';
    END IF;
    IF p_lease_seconds IS NULL OR p_lease_seconds NOT BETWEEN 1 AND 3600 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 3600, got %', coalesce(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_lease_seconds';
    END IF;

    -- Expired leases with no attempt left: dead.
    WITH dead AS (
        UPDATE pggit.notification_batch_queue b
        SET status = 'dead', lease_until = NULL,
            last_error = coalesce(b.last_error || '; ', '') || 'lease of ' || b.leased_by || ' expired on the last attempt'
        WHERE b.status = 'sending' AND b.lease_until < v_now AND b.attempts >= b.max_attempts
        RETURNING b.batch_id, b.last_error
    )
    UPDATE pggit.alert_notification_queue q
    SET status = 'dead', lease_until = NULL, last_error = d.last_error
    FROM dead d WHERE q.batch_id = d.batch_id;

    RETURN QUERY
    WITH due AS (
        SELECT b.batch_id
        FROM pggit.notification_batch_queue b
        WHERE b.status IN ('accumulating', 'ready', 'sending', 'failed')
          AND b.next_attempt_at <= v_now
          AND CASE b.status
                  WHEN 'accumulating' THEN b.due_at <= v_now
                  WHEN 'sending' THEN b.lease_until < v_now
                  ELSE true
              END
        ORDER BY b.next_attempt_at, b.batch_id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
        UPDATE pggit.notification_batch_queue b
        SET status = 'sending',
            attempts = b.attempts + 1,
            lease_until = v_now + make_interval(secs => p_lease_seconds),
            leased_by = p_worker
        FROM due
        WHERE b.batch_id = due.batch_id
        RETURNING b.*
    ),
    items AS (
        UPDATE pggit.alert_notification_queue q
        SET status = 'sending', attempts = c.attempts, lease_until = c.lease_until
        FROM claimed c
        WHERE q.batch_id = c.batch_id
    )
    SELECT c.* FROM claimed c ORDER BY c.batch_id;
END;
$$;
-- +goose StatementEnd

-- p_http_status, when given, is an HTTP status; p_latency_ms is not negative.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.complete_notification_batch(
    p_batch_id    bigint,
    p_worker      text,
    p_outcome     text,
    p_http_status integer,
    p_smtp_reply  text,
    p_latency_ms  double precision,
    p_error       text,
    p_retry_at    timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_batch  pggit.notification_batch_queue;
    v_status text;
BEGIN
    PERFORM pggit.check_id(p_batch_id, 'p_batch_id');
    PERFORM pggit.check_name(p_worker, 'p_worker');
    IF p_outcome IS NULL OR p_outcome NOT IN ('sent', 'retry', 'dead') THEN
        RAISE EXCEPTION 'p_outcome must be one of sent, retry, dead, got %', coalesce(quote_literal(p_outcome), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_outcome';
    END IF;
    IF p_http_status NOT BETWEEN 100 AND 599 THEN
        RAISE EXCEPTION 'p_http_status must be an HTTP status code from 100 to 599 (NULL when there was no response), got %',
                p_http_status
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_http_status';
    END IF;
    IF p_latency_ms < 0 THEN
        RAISE EXCEPTION 'p_latency_ms must be at least 0, got %', p_latency_ms
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_latency_ms';
    END IF;
    SELECT b.* INTO v_batch FROM pggit.notification_batch_queue b WHERE b.batch_id = p_batch_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batch % does not exist', p_batch_id USING ERRCODE = 'no_data_found', COLUMN = 'p_batch_id';
    END IF;
    IF v_batch.status <> 'sending' OR v_batch.leased_by IS DISTINCT FROM p_worker THEN
        INSERT INTO pggit.alert_notification_log
            (batch_id, webhook_id, attempt, outcome, http_status, smtp_reply, latency_ms, error, worker, item_count)
        VALUES (p_batch_id, v_batch.webhook_id, v_batch.attempts, CASE WHEN p_outcome = 'sent' THEN 'sent' ELSE 'retry' END,
                p_http_status, p_smtp_reply, coalesce(p_latency_ms, 0),
                coalesce(p_error || '; ', '') || 'lease lost to ' || coalesce(v_batch.leased_by, '(none)'),
                p_worker, v_batch.item_count);
        RETURN false;
    END IF;

    v_status := CASE
        WHEN p_outcome = 'sent' THEN 'sent'
        WHEN p_outcome = 'dead' OR v_batch.attempts >= v_batch.max_attempts THEN 'dead'
        ELSE 'failed'
    END;
    UPDATE pggit.notification_batch_queue b
    SET status = v_status,
        lease_until = NULL,
        sent_at = CASE WHEN v_status = 'sent' THEN clock_timestamp() END,
        last_error = CASE WHEN v_status = 'sent' THEN b.last_error ELSE p_error END,
        next_attempt_at = CASE WHEN v_status = 'failed' THEN coalesce(p_retry_at, clock_timestamp()) ELSE b.next_attempt_at END
    WHERE b.batch_id = p_batch_id;
    UPDATE pggit.alert_notification_queue q
    SET status = v_status,
        lease_until = NULL,
        sent_at = CASE WHEN v_status = 'sent' THEN clock_timestamp() END,
        last_error = CASE WHEN v_status = 'sent' THEN q.last_error ELSE p_error END,
        next_attempt_at = CASE WHEN v_status = 'failed' THEN coalesce(p_retry_at, clock_timestamp()) ELSE q.next_attempt_at END
    WHERE q.batch_id = p_batch_id;
    INSERT INTO pggit.alert_notification_log
        (batch_id, webhook_id, attempt, outcome, http_status, smtp_reply, latency_ms, error, worker, item_count)
    VALUES (p_batch_id, v_batch.webhook_id, v_batch.attempts, CASE v_status WHEN 'failed' THEN 'retry' ELSE v_status END,
            p_http_status, p_smtp_reply, coalesce(p_latency_ms, 0), p_error, p_worker, v_batch.item_count);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- Each id in p_alert_ids is positive.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.format_alert_batch(p_alert_ids bigint[], p_format text DEFAULT 'json')
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_facts jsonb[];
    v_f     jsonb;
    v_n     integer;
    v_missing bigint;
    v_body  text;
    v_crit  integer;
    v_id    bigint;
BEGIN
    IF p_format IS NULL OR p_format NOT IN ('json', 'slack', 'mattermost', 'text', 'pagerduty', 'email') THEN
        RAISE EXCEPTION 'p_format must be one of json, slack, mattermost, text, pagerduty, email, got %',
                coalesce(quote_literal(p_format), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_format';
    END IF;
    v_n := coalesce(cardinality(p_alert_ids), 0);
    IF v_n = 0 OR v_n > 100 THEN
        RAISE EXCEPTION 'p_alert_ids must hold 1 to 100 alert ids, got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_ids';
    END IF;
    FOREACH v_id IN ARRAY p_alert_ids LOOP
        PERFORM pggit.check_id(v_id, 'p_alert_ids');
    END LOOP;
    IF p_format = 'pagerduty' AND v_n > 1 THEN
        RAISE EXCEPTION 'p_alert_ids must hold one alert id for the pagerduty format (one event per request), got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_ids';
    END IF;

    SELECT i.id INTO v_missing
    FROM unnest(p_alert_ids) WITH ORDINALITY AS i(id, ord)
    WHERE NOT EXISTS (SELECT 1 FROM pggit.performance_alerts a WHERE a.alert_id = i.id)
    ORDER BY i.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'alert % does not exist', coalesce(v_missing::text, 'NULL')
            USING ERRCODE = 'no_data_found', COLUMN = 'p_alert_ids';
    END IF;

    SELECT array_agg(pggit.alert_message_facts(a) ORDER BY i.ord)
    INTO v_facts
    FROM unnest(p_alert_ids) WITH ORDINALITY AS i(id, ord)
    JOIN pggit.performance_alerts a ON a.alert_id = i.id;

    CASE p_format
    WHEN 'json' THEN
        RETURN jsonb_build_object('source', 'pggit-monitor', 'count', v_n, 'alerts', to_jsonb(v_facts))::text;

    WHEN 'slack', 'mattermost' THEN
        RETURN jsonb_build_object(
            'text', CASE WHEN v_n = 1 THEN 'pgGit Performance Alert' ELSE format('pgGit Performance Alerts (%s)', v_n) END,
            'attachments', (
                SELECT jsonb_agg(
                    jsonb_build_object(
                        'color', CASE
                            WHEN p_format = 'slack' THEN CASE f ->> 'state'
                                WHEN 'CRITICAL' THEN 'danger' WHEN 'WARNING' THEN 'warning' ELSE 'good' END
                            ELSE CASE f ->> 'state'
                                WHEN 'CRITICAL' THEN '#FF0000' WHEN 'WARNING' THEN '#FFA500' ELSE '#36A64F' END
                        END,
                        'title', f ->> 'summary',
                        'title_link', f ->> 'runbook_url',
                        'fields', jsonb_build_array(
                            jsonb_build_object('title', 'Operation', 'value', f ->> 'subject', 'short', true),
                            jsonb_build_object('title', 'Severity', 'value', f ->> 'state', 'short', true),
                            jsonb_build_object('title', 'Actual', 'value', coalesce((f ->> 'actual_ms') || ' ms', '-'), 'short', true),
                            jsonb_build_object('title', 'Baseline p99', 'value', coalesce((f ->> 'baseline_p99_ms') || ' ms', '-'), 'short', true),
                            jsonb_build_object('title', 'Multiplier', 'value', coalesce((f ->> 'violation_multiplier') || 'x', '-'), 'short', true),
                            jsonb_build_object('title', 'Occurrences', 'value', f ->> 'occurrences', 'short', true),
                            jsonb_build_object('title', 'Runbook', 'value', f ->> 'runbook_url', 'short', false)),
                        'footer', 'pggit-monitor alert ' || (f ->> 'alert_id')
                    ) || CASE WHEN p_format = 'mattermost' THEN jsonb_build_object('fallback', f ->> 'summary') ELSE '{}'::jsonb END
                    ORDER BY o)
                FROM unnest(v_facts) WITH ORDINALITY AS x(f, o))
        )::text;

    WHEN 'text' THEN
        SELECT string_agg(format(E'%s\nRunbook: %s', f ->> 'summary', f ->> 'runbook_url'), E'\n\n' ORDER BY o)
        INTO v_body
        FROM unnest(v_facts) WITH ORDINALITY AS x(f, o);
        RETURN v_body;

    WHEN 'pagerduty' THEN
        v_f := v_facts[1];
        IF (v_f ->> 'resolved')::boolean THEN
            RETURN jsonb_build_object('event_action', 'resolve', 'dedup_key', v_f ->> 'dedup_key')::text;
        END IF;
        RETURN jsonb_build_object(
            'event_action', 'trigger',
            'dedup_key', v_f ->> 'dedup_key',
            'payload', jsonb_build_object(
                'summary', left(v_f ->> 'summary', 1024),
                'source', 'pggit-monitor',
                'severity', lower(v_f ->> 'severity'),
                'component', v_f ->> 'operation_type',
                'group', nullif(v_f ->> 'scope', ''),
                'class', v_f ->> 'alert_type',
                'timestamp', v_f -> 'last_seen_at',
                'custom_details', jsonb_build_object(
                    'alert_id', v_f -> 'alert_id',
                    'actual_ms', v_f -> 'actual_ms',
                    'baseline_p99_ms', v_f -> 'baseline_p99_ms',
                    'violation_multiplier', v_f -> 'violation_multiplier',
                    'occurrences', v_f -> 'occurrences',
                    'details', v_f -> 'details')),
            'links', jsonb_build_array(jsonb_build_object('href', v_f ->> 'runbook_url', 'text', 'Runbook'))
        )::text;

    WHEN 'email' THEN
        SELECT string_agg(format(E'%s\nRunbook: %s', f ->> 'summary', f ->> 'runbook_url'), E'\n\n' ORDER BY o),
               count(*) FILTER (WHERE f ->> 'state' = 'CRITICAL')
        INTO v_body, v_crit
        FROM unnest(v_facts) WITH ORDINALITY AS x(f, o);
        RETURN format(E'Subject: %s\n\n%s\n\n-- \npggit-monitor\n',
            CASE WHEN v_n = 1 THEN '[pggit] ' || (v_facts[1] ->> 'state') || ' ' || (v_facts[1] ->> 'alert_type')
                                   || ' ' || (v_facts[1] ->> 'subject')
                 ELSE format('[pggit] %s alerts (%s CRITICAL)', v_n, v_crit) END,
            v_body);
    END CASE;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.format_alert_message(p_alert_id bigint, p_format text DEFAULT 'json')
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_msg text;
BEGIN
    IF p_alert_id IS NULL THEN
        RAISE EXCEPTION 'p_alert_id must not be NULL' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_id';
    END IF;
    PERFORM pggit.check_id(p_alert_id, 'p_alert_id');
    IF p_format = 'json' THEN
        -- One alert: the object itself, not the batch envelope.
        SELECT pggit.alert_message_facts(a)::text INTO v_msg
        FROM pggit.performance_alerts a WHERE a.alert_id = p_alert_id;
        IF FOUND THEN
            RETURN v_msg;
        END IF;
    END IF;
    -- Also raises the errors: unknown format, unknown alert.
    RETURN pggit.format_alert_batch(ARRAY[p_alert_id], p_format);
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.claim_scheduled_job(p_job_name text, p_worker text, p_period_seconds integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    IF p_job_name IS NULL OR btrim(p_job_name) = '' THEN
        RAISE EXCEPTION 'p_job_name must be a non-empty name' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_job_name';
    END IF;
    PERFORM pggit.check_name(p_job_name, 'p_job_name');
    PERFORM pggit.check_name(p_worker, 'p_worker');
    IF p_period_seconds IS NULL OR p_period_seconds NOT BETWEEN 1 AND 31536000 THEN
        RAISE EXCEPTION 'p_period_seconds must be between 1 and 31536000, got %', coalesce(p_period_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_period_seconds';
    END IF;
    INSERT INTO pggit.scheduled_jobs (job_name, period_seconds) VALUES (p_job_name, p_period_seconds)
    ON CONFLICT (job_name) DO NOTHING;
    UPDATE pggit.scheduled_jobs j
    SET last_started_at = v_now, last_worker = p_worker, last_status = 'running', last_error = NULL,
        period_seconds = p_period_seconds, runs = j.runs + 1
    WHERE j.job_name = p_job_name
      AND (j.last_started_at IS NULL OR j.last_started_at <= v_now - make_interval(secs => p_period_seconds));
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- PL/pgSQL (was SQL), to check its arguments.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.finish_scheduled_job(p_job_name text, p_worker text, p_error text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    PERFORM pggit.check_name(p_job_name, 'p_job_name');
    PERFORM pggit.check_name(p_worker, 'p_worker');
    UPDATE pggit.scheduled_jobs
    SET last_finished_at = clock_timestamp(),
        last_status = CASE WHEN p_error IS NULL THEN 'ok' ELSE 'failed' END,
        last_error = p_error,
        -- A failed run is due again in 5 minutes (or its period, if shorter),
        -- not a whole period later.
        last_started_at = CASE WHEN p_error IS NULL THEN last_started_at
            ELSE clock_timestamp() - make_interval(secs => period_seconds)
                 + least(interval '5 minutes', make_interval(secs => period_seconds)) END
    WHERE job_name = p_job_name AND last_worker = p_worker;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.merge_histograms(
    p_operation_type text,
    p_scope          text,
    p_from           timestamptz,
    p_to             timestamptz)
RETURNS SETOF pggit.performance_histograms
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_operation_type IS NULL THEN
        RAISE EXCEPTION 'p_operation_type must not be NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    PERFORM pggit.check_name(p_operation_type, 'p_operation_type');
    IF p_scope IS NULL THEN
        RAISE EXCEPTION 'p_scope must be a text (empty for global), got NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_scope';
    END IF;
    PERFORM pggit.check_name(p_scope, 'p_scope', 200, true);
    IF p_from IS NULL OR p_to IS NULL OR p_from >= p_to THEN
        RAISE EXCEPTION 'p_from must be before p_to, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_from';
    END IF;
    RETURN QUERY
    WITH rows AS (
        SELECT h.* FROM pggit.performance_histograms h
        WHERE h.operation_type = p_operation_type AND h.scope = p_scope
          AND h.bucket_start >= p_from AND h.bucket_start < p_to
    ),
    b AS (
        -- Set-returning functions in the select list run in lockstep over
        -- arrays of one length, several times faster than unnest in FROM.
        SELECT u.bin, sum(u.cnt)::bigint AS cnt
        FROM (SELECT unnest(r.bins) AS bin, unnest(r.counts) AS cnt FROM rows r) u
        GROUP BY u.bin
    )
    SELECT p_operation_type, p_scope, p_from, min(r.bucket_seconds), sum(r.sample_count)::bigint,
           sum(r.sum_us), sum(r.sum_sq_us), sum(r.sum_ln), sum(r.sum_ln_sq), min(r.min_us), max(r.max_us),
           (SELECT array_agg(b.bin ORDER BY b.bin) FROM b),
           (SELECT array_agg(b.cnt ORDER BY b.bin) FROM b)
    FROM rows r
    HAVING count(*) > 0;
END;
$$;
-- +goose StatementEnd

-- PL/pgSQL (was SQL), to check p_qs even when the window is empty.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.histogram_window_quantiles(
    p_operation_type text,
    p_scope          text,
    p_from           timestamptz,
    p_to             timestamptz,
    p_qs             double precision[] DEFAULT ARRAY[0.5, 0.75, 0.9, 0.95, 0.99])
RETURNS double precision[]
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_qs IS NULL OR EXISTS (SELECT 1 FROM unnest(p_qs) AS q(v) WHERE q.v IS NULL OR q.v < 0 OR q.v > 1) THEN
        RAISE EXCEPTION 'p_qs must hold quantiles between 0 and 1, got %', coalesce(p_qs::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_qs';
    END IF;
    -- merge_histograms checks the other arguments.
    RETURN coalesce(
        (SELECT pggit.histogram_quantiles(m.bins, m.counts, m.min_us, m.max_us, p_qs)
         FROM pggit.merge_histograms(p_operation_type, p_scope, p_from, p_to) m),
        array_fill(NULL::double precision, ARRAY[cardinality(p_qs)]));
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.backtest_detection(
    p_from         timestamptz,
    p_to           timestamptz,
    p_operation    text    DEFAULT NULL,
    p_step_seconds integer DEFAULT 60)
RETURNS SETOF pggit.performance_alerts
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
SET jit = off
AS $$
DECLARE
    v_lookback interval := make_interval(days => pggit.detection_setting('detection_lookback_days', 7)::integer);
    v_rows     pggit.performance_alerts[];
    v_ids      bigint[] := '{}'::bigint[];
    v_t        timestamptz;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR NOT isfinite(p_from) OR NOT isfinite(p_to) OR p_from >= p_to THEN
        RAISE EXCEPTION 'p_from must be before p_to, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_from';
    END IF;
    IF p_to - p_from > interval '31 days' THEN
        RAISE EXCEPTION 'p_to must be at most 31 days after p_from, got %', p_to - p_from
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_to';
    END IF;
    IF p_step_seconds IS NULL OR p_step_seconds NOT BETWEEN 60 AND 86400 THEN
        RAISE EXCEPTION 'p_step_seconds must be between 60 and 86400, got %', coalesce(p_step_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_step_seconds';
    END IF;
    IF p_operation IS NOT NULL THEN
        PERFORM pggit.check_name(p_operation, 'p_operation');
    END IF;
    IF p_operation IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pggit.performance_operation_types t WHERE t.operation_type = p_operation) THEN
        RAISE EXCEPTION 'p_operation must name a recorded operation, got %', quote_literal(left(p_operation, 40))
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation';
    END IF;
    PERFORM pg_advisory_xact_lock(1885824867, 2);
    BEGIN
        DELETE FROM pggit.detection_state;
        DELETE FROM pggit.detection_references;
        DELETE FROM pggit.detection_blocks WHERE block_end > pggit.utc_minute(p_from);
        DELETE FROM pggit.performance_alerts a
        WHERE a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION')
          AND coalesce(a.detected_at, a.first_seen_at) >= p_from;
        UPDATE pggit.performance_alerts a
        SET resolved_at = p_from, resolved_by = 'pggit', resolution_notes = 'closed for a backtest'
        WHERE a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION')
          AND (a.resolved_at IS NULL OR a.resolved_at > p_from);
        UPDATE pggit.detection_progress SET evaluated_through = pggit.utc_minute(p_from);
        PERFORM pggit.detection_summarize_hours(p_from - v_lookback, pggit.utc_hour(p_from), p_operation, false);
        PERFORM pggit.detection_build_references(pggit.utc_hour(p_from), p_operation, true);
        v_t := p_from;
        LOOP
            v_t := least(v_t + make_interval(secs => p_step_seconds), p_to);
            v_ids := v_ids || pggit.detect(v_t, p_operation);
            EXIT WHEN v_t >= p_to;
        END LOOP;
        SELECT array_agg(a ORDER BY a.alert_id) INTO v_rows
        FROM pggit.performance_alerts a WHERE a.alert_id = ANY (v_ids);
        RAISE EXCEPTION 'pggit backtest: roll back' USING ERRCODE = 'PGBKT';
    EXCEPTION WHEN SQLSTATE 'PGBKT' THEN
        NULL; -- everything above is undone; v_rows survives
    END;
    RETURN QUERY SELECT x.* FROM unnest(v_rows) AS x ORDER BY x.alert_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.latency_series(
    p_operation_type text,
    p_scope          text,
    p_from           timestamptz,
    p_to             timestamptz,
    p_step_seconds   integer)
RETURNS SETOF pggit.latency_point
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_step interval;
BEGIN
    IF p_operation_type IS NULL OR btrim(p_operation_type) = '' OR length(p_operation_type) > 200 THEN
        RAISE EXCEPTION 'p_operation_type must be a non-empty name of at most 200 characters, got %',
                coalesce(quote_literal(left(p_operation_type, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    PERFORM pggit.check_name(p_operation_type, 'p_operation_type');
    IF p_scope IS NULL OR length(p_scope) > 200 THEN
        RAISE EXCEPTION 'p_scope must be a text of at most 200 characters (empty for global), got %',
                coalesce(quote_literal(left(p_scope, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_scope';
    END IF;
    PERFORM pggit.check_name(p_scope, 'p_scope', 200, true);
    PERFORM pggit.check_bucket_range(p_from, p_to, p_step_seconds, 2000);
    v_step := make_interval(secs => p_step_seconds);
    RETURN QUERY
    WITH r AS MATERIALIZED (
        SELECT date_bin(v_step, h.bucket_start, timestamptz '2000-01-01 00:00:00+00') AS b,
               h.sample_count, h.sum_us, h.min_us, h.max_us, h.bins, h.counts
        FROM pggit.performance_histograms h
        WHERE h.operation_type = p_operation_type AND h.scope = p_scope
          AND h.bucket_start >= p_from AND h.bucket_start < p_to
    ),
    sums AS (
        SELECT r.b, sum(r.sample_count)::bigint AS n, sum(r.sum_us) / sum(r.sample_count) AS mean
        FROM r GROUP BY r.b
    ),
    q AS (
        SELECT k.b,
               pggit.histogram_quantiles(array_agg(k.bin ORDER BY k.bin), array_agg(k.cnt ORDER BY k.bin),
                                         min(k.mn), max(k.mx), ARRAY[0.5, 0.9, 0.99]) AS q
        FROM (
            SELECT u.b, u.bin, sum(u.cnt)::bigint AS cnt, min(u.mn) AS mn, max(u.mx) AS mx
            FROM (SELECT r.b, unnest(r.bins) AS bin, unnest(r.counts) AS cnt, r.min_us AS mn, r.max_us AS mx
                  FROM r) u
            GROUP BY u.b, u.bin
        ) k
        GROUP BY k.b
    )
    SELECT s.b, s.n, s.mean, q.q[1], q.q[2], q.q[3]
    FROM sums s JOIN q ON q.b = s.b
    ORDER BY s.b;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.latency_sparklines(
    p_operation_types text[],
    p_scopes          text[],
    p_from            timestamptz,
    p_to              timestamptz,
    p_step_seconds    integer)
RETURNS SETOF pggit.latency_spark_point
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_operation_types IS NULL OR p_scopes IS NULL
       OR cardinality(p_operation_types) <> cardinality(p_scopes) OR cardinality(p_operation_types) > 200 THEN
        RAISE EXCEPTION 'p_operation_types and p_scopes must be arrays of the same length, at most 200, got % and %',
                coalesce(cardinality(p_operation_types)::text, 'NULL'), coalesce(cardinality(p_scopes)::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_types';
    END IF;
    IF array_position(p_operation_types, NULL) IS NOT NULL OR array_position(p_scopes, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'p_operation_types and p_scopes must not hold NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_types';
    END IF;
    PERFORM pggit.check_name(k.op, 'p_operation_types'), pggit.check_name(k.scope, 'p_scopes', 200, true)
    FROM unnest(p_operation_types, p_scopes) AS k(op, scope);
    PERFORM pggit.check_bucket_range(p_from, p_to, p_step_seconds, 200);
    RETURN QUERY
    SELECT h.operation_type, h.scope,
           date_bin(make_interval(secs => p_step_seconds), h.bucket_start, timestamptz '2000-01-01 00:00:00+00'),
           sum(h.sample_count)::bigint, sum(h.sum_us) / sum(h.sample_count)
    FROM unnest(p_operation_types, p_scopes) AS k(op, scope)
    JOIN pggit.performance_histograms h ON h.operation_type = k.op AND h.scope = k.scope
    WHERE h.bucket_start >= p_from AND h.bucket_start < p_to
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3;
END;
$$;
-- +goose StatementEnd

-- The same rules on the tables. NOT VALID, then validated: the rows already
-- there are checked too.
ALTER TABLE pggit.performance_operation_types
    ADD CONSTRAINT performance_operation_types_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID;
ALTER TABLE pggit.performance_metrics
    ADD CONSTRAINT performance_metrics_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT performance_metrics_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID,
    ADD CONSTRAINT performance_metrics_user_name_valid CHECK (user_name IS NULL OR pggit.is_valid_name(user_name)) NOT VALID;
ALTER TABLE pggit.performance_baselines
    ADD CONSTRAINT performance_baselines_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT performance_baselines_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.performance_baseline_history
    ADD CONSTRAINT performance_baseline_history_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT performance_baseline_history_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.baseline_recalc_execution
    ADD CONSTRAINT baseline_recalc_execution_operation_filter_valid CHECK (operation_filter IS NULL OR pggit.is_valid_name(operation_filter)) NOT VALID;
ALTER TABLE pggit.baseline_recalc_results
    ADD CONSTRAINT baseline_recalc_results_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT baseline_recalc_results_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.performance_alerts
    ADD CONSTRAINT performance_alerts_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT performance_alerts_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID,
    ADD CONSTRAINT performance_alerts_acknowledged_by_valid CHECK (acknowledged_by IS NULL OR pggit.is_valid_name(acknowledged_by)) NOT VALID,
    ADD CONSTRAINT performance_alerts_resolved_by_valid CHECK (resolved_by IS NULL OR pggit.is_valid_name(resolved_by)) NOT VALID;
ALTER TABLE pggit.alert_snooze
    ADD CONSTRAINT alert_snooze_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT alert_snooze_created_by_valid CHECK (pggit.is_valid_name(created_by)) NOT VALID,
    ADD CONSTRAINT alert_snooze_cancelled_by_valid CHECK (cancelled_by IS NULL OR pggit.is_valid_name(cancelled_by)) NOT VALID;
ALTER TABLE pggit.performance_hourly
    ADD CONSTRAINT performance_hourly_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT performance_hourly_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.performance_histograms
    ADD CONSTRAINT performance_histograms_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT performance_histograms_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.performance_baseline_floors
    ADD CONSTRAINT performance_baseline_floors_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT performance_baseline_floors_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID,
    ADD CONSTRAINT performance_baseline_floors_accepted_by_valid CHECK (pggit.is_valid_name(accepted_by)) NOT VALID;
ALTER TABLE pggit.detection_hours
    ADD CONSTRAINT detection_hours_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT detection_hours_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.detection_references
    ADD CONSTRAINT detection_references_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT detection_references_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.detection_blocks
    ADD CONSTRAINT detection_blocks_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT detection_blocks_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.detection_state
    ADD CONSTRAINT detection_state_operation_type_valid CHECK (pggit.is_valid_name(operation_type)) NOT VALID,
    ADD CONSTRAINT detection_state_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)) NOT VALID;
ALTER TABLE pggit.scheduled_jobs
    ADD CONSTRAINT scheduled_jobs_job_name_valid CHECK (pggit.is_valid_name(job_name)) NOT VALID,
    ADD CONSTRAINT scheduled_jobs_last_worker_valid CHECK (last_worker IS NULL OR pggit.is_valid_name(last_worker)) NOT VALID;
ALTER TABLE pggit.notification_batch_queue
    ADD CONSTRAINT notification_batch_queue_leased_by_valid CHECK (leased_by IS NULL OR pggit.is_valid_name(leased_by)) NOT VALID;
ALTER TABLE pggit.alert_notification_log
    ADD CONSTRAINT alert_notification_log_worker_valid CHECK (pggit.is_valid_name(worker)) NOT VALID;

ALTER TABLE pggit.performance_operation_types
    VALIDATE CONSTRAINT performance_operation_types_operation_type_valid;
ALTER TABLE pggit.performance_metrics
    VALIDATE CONSTRAINT performance_metrics_operation_type_valid,
    VALIDATE CONSTRAINT performance_metrics_scope_valid,
    VALIDATE CONSTRAINT performance_metrics_user_name_valid;
ALTER TABLE pggit.performance_baselines
    VALIDATE CONSTRAINT performance_baselines_operation_type_valid,
    VALIDATE CONSTRAINT performance_baselines_scope_valid;
ALTER TABLE pggit.performance_baseline_history
    VALIDATE CONSTRAINT performance_baseline_history_operation_type_valid,
    VALIDATE CONSTRAINT performance_baseline_history_scope_valid;
ALTER TABLE pggit.baseline_recalc_execution
    VALIDATE CONSTRAINT baseline_recalc_execution_operation_filter_valid;
ALTER TABLE pggit.baseline_recalc_results
    VALIDATE CONSTRAINT baseline_recalc_results_operation_type_valid,
    VALIDATE CONSTRAINT baseline_recalc_results_scope_valid;
ALTER TABLE pggit.performance_alerts
    VALIDATE CONSTRAINT performance_alerts_operation_type_valid,
    VALIDATE CONSTRAINT performance_alerts_scope_valid,
    VALIDATE CONSTRAINT performance_alerts_acknowledged_by_valid,
    VALIDATE CONSTRAINT performance_alerts_resolved_by_valid;
ALTER TABLE pggit.alert_snooze
    VALIDATE CONSTRAINT alert_snooze_operation_type_valid,
    VALIDATE CONSTRAINT alert_snooze_created_by_valid,
    VALIDATE CONSTRAINT alert_snooze_cancelled_by_valid;
ALTER TABLE pggit.performance_hourly
    VALIDATE CONSTRAINT performance_hourly_operation_type_valid,
    VALIDATE CONSTRAINT performance_hourly_scope_valid;
ALTER TABLE pggit.performance_histograms
    VALIDATE CONSTRAINT performance_histograms_operation_type_valid,
    VALIDATE CONSTRAINT performance_histograms_scope_valid;
ALTER TABLE pggit.performance_baseline_floors
    VALIDATE CONSTRAINT performance_baseline_floors_operation_type_valid,
    VALIDATE CONSTRAINT performance_baseline_floors_scope_valid,
    VALIDATE CONSTRAINT performance_baseline_floors_accepted_by_valid;
ALTER TABLE pggit.detection_hours
    VALIDATE CONSTRAINT detection_hours_operation_type_valid,
    VALIDATE CONSTRAINT detection_hours_scope_valid;
ALTER TABLE pggit.detection_references
    VALIDATE CONSTRAINT detection_references_operation_type_valid,
    VALIDATE CONSTRAINT detection_references_scope_valid;
ALTER TABLE pggit.detection_blocks
    VALIDATE CONSTRAINT detection_blocks_operation_type_valid,
    VALIDATE CONSTRAINT detection_blocks_scope_valid;
ALTER TABLE pggit.detection_state
    VALIDATE CONSTRAINT detection_state_operation_type_valid,
    VALIDATE CONSTRAINT detection_state_scope_valid;
ALTER TABLE pggit.scheduled_jobs
    VALIDATE CONSTRAINT scheduled_jobs_job_name_valid,
    VALIDATE CONSTRAINT scheduled_jobs_last_worker_valid;
ALTER TABLE pggit.notification_batch_queue
    VALIDATE CONSTRAINT notification_batch_queue_leased_by_valid;
ALTER TABLE pggit.alert_notification_log
    VALIDATE CONSTRAINT alert_notification_log_worker_valid;

-- +goose Down
ALTER TABLE pggit.performance_operation_types
    DROP CONSTRAINT performance_operation_types_operation_type_valid;
ALTER TABLE pggit.performance_metrics
    DROP CONSTRAINT performance_metrics_operation_type_valid,
    DROP CONSTRAINT performance_metrics_scope_valid,
    DROP CONSTRAINT performance_metrics_user_name_valid;
ALTER TABLE pggit.performance_baselines
    DROP CONSTRAINT performance_baselines_operation_type_valid,
    DROP CONSTRAINT performance_baselines_scope_valid;
ALTER TABLE pggit.performance_baseline_history
    DROP CONSTRAINT performance_baseline_history_operation_type_valid,
    DROP CONSTRAINT performance_baseline_history_scope_valid;
ALTER TABLE pggit.baseline_recalc_execution
    DROP CONSTRAINT baseline_recalc_execution_operation_filter_valid;
ALTER TABLE pggit.baseline_recalc_results
    DROP CONSTRAINT baseline_recalc_results_operation_type_valid,
    DROP CONSTRAINT baseline_recalc_results_scope_valid;
ALTER TABLE pggit.performance_alerts
    DROP CONSTRAINT performance_alerts_operation_type_valid,
    DROP CONSTRAINT performance_alerts_scope_valid,
    DROP CONSTRAINT performance_alerts_acknowledged_by_valid,
    DROP CONSTRAINT performance_alerts_resolved_by_valid;
ALTER TABLE pggit.alert_snooze
    DROP CONSTRAINT alert_snooze_operation_type_valid,
    DROP CONSTRAINT alert_snooze_created_by_valid,
    DROP CONSTRAINT alert_snooze_cancelled_by_valid;
ALTER TABLE pggit.performance_hourly
    DROP CONSTRAINT performance_hourly_operation_type_valid,
    DROP CONSTRAINT performance_hourly_scope_valid;
ALTER TABLE pggit.performance_histograms
    DROP CONSTRAINT performance_histograms_operation_type_valid,
    DROP CONSTRAINT performance_histograms_scope_valid;
ALTER TABLE pggit.performance_baseline_floors
    DROP CONSTRAINT performance_baseline_floors_operation_type_valid,
    DROP CONSTRAINT performance_baseline_floors_scope_valid,
    DROP CONSTRAINT performance_baseline_floors_accepted_by_valid;
ALTER TABLE pggit.detection_hours
    DROP CONSTRAINT detection_hours_operation_type_valid,
    DROP CONSTRAINT detection_hours_scope_valid;
ALTER TABLE pggit.detection_references
    DROP CONSTRAINT detection_references_operation_type_valid,
    DROP CONSTRAINT detection_references_scope_valid;
ALTER TABLE pggit.detection_blocks
    DROP CONSTRAINT detection_blocks_operation_type_valid,
    DROP CONSTRAINT detection_blocks_scope_valid;
ALTER TABLE pggit.detection_state
    DROP CONSTRAINT detection_state_operation_type_valid,
    DROP CONSTRAINT detection_state_scope_valid;
ALTER TABLE pggit.scheduled_jobs
    DROP CONSTRAINT scheduled_jobs_job_name_valid,
    DROP CONSTRAINT scheduled_jobs_last_worker_valid;
ALTER TABLE pggit.notification_batch_queue
    DROP CONSTRAINT notification_batch_queue_leased_by_valid;
ALTER TABLE pggit.alert_notification_log
    DROP CONSTRAINT alert_notification_log_worker_valid;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.is_valid_name(p_value text, p_max_length integer DEFAULT 200, p_allow_empty boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
    SELECT p_value IS NOT NULL
       AND length(p_value) <= p_max_length
       AND (p_allow_empty AND p_value = '' OR btrim(p_value) <> '')
       AND p_value !~ '[[:cntrl:]]'
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.record_performance_metric(
    p_operation_type        text,
    p_duration_microseconds bigint,
    p_scope                 text        DEFAULT '',
    p_user_name             text        DEFAULT NULL,
    p_metadata              jsonb       DEFAULT NULL,
    p_recorded_at           timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_metric_id bigint;
BEGIN
    IF p_operation_type IS NULL OR btrim(p_operation_type) = '' OR length(p_operation_type) > 200 THEN
        RAISE EXCEPTION 'p_operation_type must be a non-empty name of at most 200 characters, got %',
                coalesce(quote_literal(left(p_operation_type, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    IF p_duration_microseconds IS NULL OR p_duration_microseconds <= 0 THEN
        RAISE EXCEPTION 'p_duration_microseconds must be greater than 0, got %',
                coalesce(p_duration_microseconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_duration_microseconds';
    END IF;
    IF p_scope IS NULL OR length(p_scope) > 200 THEN
        RAISE EXCEPTION 'p_scope must be a text of at most 200 characters (empty for global), got %',
                coalesce(quote_literal(left(p_scope, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_scope';
    END IF;

    INSERT INTO pggit.performance_metrics
        (operation_type, duration_microseconds, recorded_at, scope, user_name, metadata)
    VALUES
        (p_operation_type, p_duration_microseconds, coalesce(p_recorded_at, now()), p_scope,
         p_user_name, p_metadata)
    RETURNING metric_id INTO v_metric_id;
    RETURN v_metric_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.recalculate_single_baseline_safe(
    p_operation_type text,
    p_scope          text    DEFAULT '',
    p_lookback_days  integer DEFAULT 7,
    p_min_samples    integer DEFAULT 10,
    p_force          boolean DEFAULT false,
    p_reason         text    DEFAULT 'manual')
RETURNS pggit.baseline_recalc_results
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_exec   pggit.baseline_recalc_execution;
    v_stats  pggit.performance_baselines;
    v_result pggit.baseline_recalc_results;
BEGIN
    IF p_operation_type IS NULL OR btrim(p_operation_type) = '' OR length(p_operation_type) > 200 THEN
        RAISE EXCEPTION 'p_operation_type must be a non-empty name of at most 200 characters, got %',
                coalesce(quote_literal(left(p_operation_type, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    IF p_scope IS NULL THEN
        RAISE EXCEPTION 'p_scope must be a text (empty for global), got NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_scope';
    END IF;
    IF p_force IS NULL THEN
        RAISE EXCEPTION 'p_force must be true or false, got NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_force';
    END IF;
    PERFORM pggit.check_recalc_arguments(p_lookback_days, p_min_samples, NULL, p_reason);

    v_exec := pggit.start_recalc_execution(p_lookback_days, p_min_samples, p_force, NULL, p_reason,
                                           p_operation_type);
    -- Without the samples of regressions and before an accepted change point.
    v_stats := pggit.compute_baseline_stats(p_operation_type, p_scope, v_exec.window_start, v_exec.window_end,
                                            p_lookback_days);
    v_result := pggit.apply_baseline_stats(v_exec.execution_id, v_stats, p_min_samples, p_force, p_reason);
    PERFORM pggit.finish_recalc_execution(v_exec.execution_id, NULL);
    RETURN v_result;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.severity_rank(p_severity text)
RETURNS integer
LANGUAGE sql
IMMUTABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT CASE p_severity WHEN 'CRITICAL' THEN 3 WHEN 'WARNING' THEN 2 WHEN 'INFO' THEN 1 ELSE 0 END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.is_alert_snoozed(p_operation_type text, p_alert_type text)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT pggit.active_snooze_id(p_operation_type, p_alert_type) IS NOT NULL
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.snooze_alerts(
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.unsnooze_alerts(p_snooze_id bigint, p_cancelled_by text DEFAULT current_user)
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.raise_alert(
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.acknowledge_alert(p_alert_id bigint, p_acknowledged_by text DEFAULT current_user)
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
CREATE OR REPLACE FUNCTION pggit.resolve_alert(
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.accept_regression(p_alert_id bigint, p_accepted_by text DEFAULT current_user)
RETURNS pggit.performance_alerts
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_alert    pggit.performance_alerts;
    v_exec     pggit.baseline_recalc_execution;
    v_stats    pggit.performance_baselines;
    v_res      pggit.baseline_recalc_results;
    v_lookback integer;
BEGIN
    IF p_alert_id IS NULL THEN
        RAISE EXCEPTION 'p_alert_id must not be NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_id';
    END IF;
    IF p_accepted_by IS NULL OR btrim(p_accepted_by) = '' THEN
        RAISE EXCEPTION 'p_accepted_by must be a non-empty name, got %', coalesce(quote_literal(p_accepted_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_accepted_by';
    END IF;
    SELECT a.* INTO v_alert FROM pggit.performance_alerts a WHERE a.alert_id = p_alert_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'alert % does not exist', p_alert_id
            USING ERRCODE = 'no_data_found', COLUMN = 'p_alert_id';
    END IF;
    IF v_alert.alert_type NOT IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION') THEN
        RAISE EXCEPTION 'p_alert_id must name a THRESHOLD_EXCEEDED, ANOMALY or DEGRADATION alert, alert % is %',
                p_alert_id, v_alert.alert_type
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_id';
    END IF;
    IF v_alert.resolved_at IS NOT NULL THEN
        RAISE EXCEPTION 'alert % was already resolved at % by %', p_alert_id, v_alert.resolved_at, v_alert.resolved_by
            USING ERRCODE = 'object_not_in_prerequisite_state', COLUMN = 'p_alert_id';
    END IF;

    -- The operation's other open regression alerts are about the same new
    -- level: they are accepted with it.
    UPDATE pggit.performance_alerts a
    SET resolved_at = clock_timestamp(), resolved_by = p_accepted_by,
        resolution_notes = format('regression accepted (alert %s): the baseline starts again at %s',
                                  p_alert_id, v_alert.first_seen_at),
        details = a.details || jsonb_build_object('accepted', true, 'accepted_by', p_accepted_by,
                                                  'accepted_at', clock_timestamp(), 'accepted_with', p_alert_id)
    WHERE a.operation_type = v_alert.operation_type AND a.scope = v_alert.scope AND a.resolved_at IS NULL
      AND a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION');

    INSERT INTO pggit.performance_baseline_floors AS f (operation_type, scope, since, alert_id, accepted_by)
    VALUES (v_alert.operation_type, v_alert.scope, v_alert.first_seen_at, p_alert_id, p_accepted_by)
    ON CONFLICT (operation_type, scope) DO UPDATE SET
        since = greatest(f.since, EXCLUDED.since), alert_id = EXCLUDED.alert_id,
        accepted_by = EXCLUDED.accepted_by, accepted_at = clock_timestamp();

    -- Detection: the reference is rebuilt from the change point at the next
    -- hour, and the CUSUM starts over.
    UPDATE pggit.detection_references r SET stale = true
    WHERE r.operation_type = v_alert.operation_type AND r.scope = v_alert.scope;
    UPDATE pggit.detection_state s
    SET cusum = 0, mwu_tested_at = NULL, degradation_alert_id = NULL, recovery_cusum = 0, recovery_since = NULL,
        shift = NULL, threshold_alert_id = NULL, anomaly_alert_id = NULL, anomaly_scores = '{}', anomaly_ends = '{}'
    WHERE s.operation_type = v_alert.operation_type AND s.scope = v_alert.scope;

    -- Re-baseline from the change point.
    SELECT b.lookback_days INTO v_lookback FROM pggit.performance_baselines b
    WHERE b.operation_type = v_alert.operation_type AND b.scope = v_alert.scope AND b.is_active;
    v_lookback := coalesce(v_lookback, 7);
    v_exec := pggit.start_recalc_execution(v_lookback, 10, false, NULL, 'accepted', v_alert.operation_type);
    v_stats := pggit.compute_baseline_stats(v_alert.operation_type, v_alert.scope, v_exec.window_start,
                                            v_exec.window_end, v_lookback);
    v_res := pggit.apply_baseline_stats(v_exec.execution_id, v_stats, 10, false, 'accepted');
    PERFORM pggit.finish_recalc_execution(v_exec.execution_id, NULL);

    UPDATE pggit.performance_alerts a
    SET details = a.details || jsonb_build_object('rebaseline', jsonb_build_object(
            'execution_id', v_exec.execution_id, 'status', v_res.status, 'baseline_id', v_res.baseline_id,
            'samples', v_res.sample_count, 'new_p99_ms', round((v_res.new_p99_microseconds / 1000.0)::numeric, 3),
            'message', v_res.message))
    WHERE a.alert_id = p_alert_id
    RETURNING a.* INTO v_alert;
    RETURN v_alert;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.enqueue_notification_batch(p_notification_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
SET enable_seqscan = off
AS $$
DECLARE
    v_item   pggit.alert_notification_queue;
    v_config pggit.notification_batch_config;
    v_batch  pggit.notification_batch_queue;
    v_open   bigint;
    v_now    timestamptz := clock_timestamp();
BEGIN
    SELECT q.* INTO v_item FROM pggit.alert_notification_queue q
    WHERE q.notification_id = p_notification_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'notification % does not exist', p_notification_id
            USING ERRCODE = 'no_data_found', COLUMN = 'p_notification_id';
    END IF;
    IF v_item.batch_id IS NOT NULL THEN
        RETURN v_item.batch_id; -- already batched
    END IF;
    SELECT c.* INTO v_config
    FROM pggit.notification_batch_config c
    JOIN pggit.alert_notification_webhooks w ON w.webhook_type = c.webhook_type
    WHERE w.webhook_id = v_item.webhook_id;

    INSERT INTO pggit.notification_batch_open (webhook_id) VALUES (v_item.webhook_id)
    ON CONFLICT (webhook_id) DO NOTHING;
    SELECT o.batch_id INTO v_open FROM pggit.notification_batch_open o
    WHERE o.webhook_id = v_item.webhook_id
    FOR UPDATE;

    -- Still accumulating? A dispatcher may have claimed it since (timeout).
    SELECT b.* INTO v_batch FROM pggit.notification_batch_queue b
    WHERE b.batch_id = v_open AND b.status = 'accumulating'
    FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO pggit.notification_batch_queue
            (webhook_id, status, batch_size, opened_at, due_at, max_attempts, next_attempt_at)
        VALUES
            (v_item.webhook_id, 'accumulating', v_config.batch_size, v_now,
             v_now + make_interval(secs => v_config.batch_timeout_seconds), v_config.max_attempts, v_now)
        RETURNING * INTO v_batch;
        UPDATE pggit.notification_batch_open SET batch_id = v_batch.batch_id WHERE webhook_id = v_item.webhook_id;
    END IF;

    UPDATE pggit.notification_batch_queue b
    SET item_count = b.item_count + 1,
        status = CASE WHEN b.item_count + 1 >= b.batch_size THEN 'ready' ELSE 'accumulating' END
    WHERE b.batch_id = v_batch.batch_id
    RETURNING b.* INTO v_batch;

    UPDATE pggit.alert_notification_queue q
    SET batch_id = v_batch.batch_id, max_attempts = v_batch.max_attempts
    WHERE q.notification_id = p_notification_id;

    IF v_batch.status = 'ready' OR v_batch.due_at <= v_now THEN
        PERFORM pg_notify('pggit_notifications', v_batch.batch_id::text);
    END IF;
    RETURN v_batch.batch_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.enqueue_alert_notifications(p_alert pggit.performance_alerts, p_event text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_id bigint;
    v_n  integer := 0;
BEGIN
    FOR v_id IN
        INSERT INTO pggit.alert_notification_queue
            (alert_id, webhook_id, event, severity, max_attempts, dedup_key)
        SELECT p_alert.alert_id, w.webhook_id, p_event, p_alert.severity, c.max_attempts,
               format('pggit-%s-%s-%s-%s', p_alert.alert_id, p_event, p_alert.severity, w.webhook_id)
        FROM (SELECT DISTINCT s.webhook_id
              FROM pggit.alert_notification_settings s
              WHERE s.enabled
                AND s.alert_type IN (p_alert.alert_type, 'ALL')
                AND pggit.severity_rank(p_alert.severity) >= pggit.severity_rank(s.min_severity)) r
        JOIN pggit.alert_notification_webhooks w ON w.webhook_id = r.webhook_id AND w.enabled
        JOIN pggit.notification_batch_config c ON c.webhook_type = w.webhook_type
        ORDER BY w.webhook_id
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING notification_id
    LOOP
        PERFORM pggit.enqueue_notification_batch(v_id);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.claim_notification_batches(p_worker text, p_limit integer, p_lease_seconds integer)
RETURNS SETOF pggit.notification_batch_queue
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    IF p_worker IS NULL OR btrim(p_worker) = '' THEN
        RAISE EXCEPTION 'p_worker must be a non-empty name' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_worker';
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 1000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_limit';
    END IF;
    IF p_lease_seconds IS NULL OR p_lease_seconds NOT BETWEEN 1 AND 3600 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 3600, got %', coalesce(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_lease_seconds';
    END IF;

    -- Expired leases with no attempt left: dead.
    WITH dead AS (
        UPDATE pggit.notification_batch_queue b
        SET status = 'dead', lease_until = NULL,
            last_error = coalesce(b.last_error || '; ', '') || 'lease of ' || b.leased_by || ' expired on the last attempt'
        WHERE b.status = 'sending' AND b.lease_until < v_now AND b.attempts >= b.max_attempts
        RETURNING b.batch_id, b.last_error
    )
    UPDATE pggit.alert_notification_queue q
    SET status = 'dead', lease_until = NULL, last_error = d.last_error
    FROM dead d WHERE q.batch_id = d.batch_id;

    RETURN QUERY
    WITH due AS (
        SELECT b.batch_id
        FROM pggit.notification_batch_queue b
        WHERE b.status IN ('accumulating', 'ready', 'sending', 'failed')
          AND b.next_attempt_at <= v_now
          AND CASE b.status
                  WHEN 'accumulating' THEN b.due_at <= v_now
                  WHEN 'sending' THEN b.lease_until < v_now
                  ELSE true
              END
        ORDER BY b.next_attempt_at, b.batch_id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
        UPDATE pggit.notification_batch_queue b
        SET status = 'sending',
            attempts = b.attempts + 1,
            lease_until = v_now + make_interval(secs => p_lease_seconds),
            leased_by = p_worker
        FROM due
        WHERE b.batch_id = due.batch_id
        RETURNING b.*
    ),
    items AS (
        UPDATE pggit.alert_notification_queue q
        SET status = 'sending', attempts = c.attempts, lease_until = c.lease_until
        FROM claimed c
        WHERE q.batch_id = c.batch_id
    )
    SELECT c.* FROM claimed c ORDER BY c.batch_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.complete_notification_batch(
    p_batch_id    bigint,
    p_worker      text,
    p_outcome     text,
    p_http_status integer,
    p_smtp_reply  text,
    p_latency_ms  double precision,
    p_error       text,
    p_retry_at    timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_batch  pggit.notification_batch_queue;
    v_status text;
BEGIN
    IF p_outcome IS NULL OR p_outcome NOT IN ('sent', 'retry', 'dead') THEN
        RAISE EXCEPTION 'p_outcome must be one of sent, retry, dead, got %', coalesce(quote_literal(p_outcome), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_outcome';
    END IF;
    SELECT b.* INTO v_batch FROM pggit.notification_batch_queue b WHERE b.batch_id = p_batch_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batch % does not exist', p_batch_id USING ERRCODE = 'no_data_found', COLUMN = 'p_batch_id';
    END IF;
    IF v_batch.status <> 'sending' OR v_batch.leased_by IS DISTINCT FROM p_worker THEN
        INSERT INTO pggit.alert_notification_log
            (batch_id, webhook_id, attempt, outcome, http_status, smtp_reply, latency_ms, error, worker, item_count)
        VALUES (p_batch_id, v_batch.webhook_id, v_batch.attempts, CASE WHEN p_outcome = 'sent' THEN 'sent' ELSE 'retry' END,
                p_http_status, p_smtp_reply, coalesce(p_latency_ms, 0),
                coalesce(p_error || '; ', '') || 'lease lost to ' || coalesce(v_batch.leased_by, '(none)'),
                p_worker, v_batch.item_count);
        RETURN false;
    END IF;

    v_status := CASE
        WHEN p_outcome = 'sent' THEN 'sent'
        WHEN p_outcome = 'dead' OR v_batch.attempts >= v_batch.max_attempts THEN 'dead'
        ELSE 'failed'
    END;
    UPDATE pggit.notification_batch_queue b
    SET status = v_status,
        lease_until = NULL,
        sent_at = CASE WHEN v_status = 'sent' THEN clock_timestamp() END,
        last_error = CASE WHEN v_status = 'sent' THEN b.last_error ELSE p_error END,
        next_attempt_at = CASE WHEN v_status = 'failed' THEN coalesce(p_retry_at, clock_timestamp()) ELSE b.next_attempt_at END
    WHERE b.batch_id = p_batch_id;
    UPDATE pggit.alert_notification_queue q
    SET status = v_status,
        lease_until = NULL,
        sent_at = CASE WHEN v_status = 'sent' THEN clock_timestamp() END,
        last_error = CASE WHEN v_status = 'sent' THEN q.last_error ELSE p_error END,
        next_attempt_at = CASE WHEN v_status = 'failed' THEN coalesce(p_retry_at, clock_timestamp()) ELSE q.next_attempt_at END
    WHERE q.batch_id = p_batch_id;
    INSERT INTO pggit.alert_notification_log
        (batch_id, webhook_id, attempt, outcome, http_status, smtp_reply, latency_ms, error, worker, item_count)
    VALUES (p_batch_id, v_batch.webhook_id, v_batch.attempts, CASE v_status WHEN 'failed' THEN 'retry' ELSE v_status END,
            p_http_status, p_smtp_reply, coalesce(p_latency_ms, 0), p_error, p_worker, v_batch.item_count);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.format_alert_batch(p_alert_ids bigint[], p_format text DEFAULT 'json')
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_facts jsonb[];
    v_f     jsonb;
    v_n     integer;
    v_missing bigint;
    v_body  text;
    v_crit  integer;
BEGIN
    IF p_format IS NULL OR p_format NOT IN ('json', 'slack', 'mattermost', 'text', 'pagerduty', 'email') THEN
        RAISE EXCEPTION 'p_format must be one of json, slack, mattermost, text, pagerduty, email, got %',
                coalesce(quote_literal(p_format), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_format';
    END IF;
    v_n := coalesce(cardinality(p_alert_ids), 0);
    IF v_n = 0 OR v_n > 100 THEN
        RAISE EXCEPTION 'p_alert_ids must hold 1 to 100 alert ids, got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_ids';
    END IF;
    IF p_format = 'pagerduty' AND v_n > 1 THEN
        RAISE EXCEPTION 'p_alert_ids must hold one alert id for the pagerduty format (one event per request), got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_ids';
    END IF;

    SELECT i.id INTO v_missing
    FROM unnest(p_alert_ids) WITH ORDINALITY AS i(id, ord)
    WHERE NOT EXISTS (SELECT 1 FROM pggit.performance_alerts a WHERE a.alert_id = i.id)
    ORDER BY i.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'alert % does not exist', coalesce(v_missing::text, 'NULL')
            USING ERRCODE = 'no_data_found', COLUMN = 'p_alert_ids';
    END IF;

    SELECT array_agg(pggit.alert_message_facts(a) ORDER BY i.ord)
    INTO v_facts
    FROM unnest(p_alert_ids) WITH ORDINALITY AS i(id, ord)
    JOIN pggit.performance_alerts a ON a.alert_id = i.id;

    CASE p_format
    WHEN 'json' THEN
        RETURN jsonb_build_object('source', 'pggit-monitor', 'count', v_n, 'alerts', to_jsonb(v_facts))::text;

    WHEN 'slack', 'mattermost' THEN
        RETURN jsonb_build_object(
            'text', CASE WHEN v_n = 1 THEN 'pgGit Performance Alert' ELSE format('pgGit Performance Alerts (%s)', v_n) END,
            'attachments', (
                SELECT jsonb_agg(
                    jsonb_build_object(
                        'color', CASE
                            WHEN p_format = 'slack' THEN CASE f ->> 'state'
                                WHEN 'CRITICAL' THEN 'danger' WHEN 'WARNING' THEN 'warning' ELSE 'good' END
                            ELSE CASE f ->> 'state'
                                WHEN 'CRITICAL' THEN '#FF0000' WHEN 'WARNING' THEN '#FFA500' ELSE '#36A64F' END
                        END,
                        'title', f ->> 'summary',
                        'title_link', f ->> 'runbook_url',
                        'fields', jsonb_build_array(
                            jsonb_build_object('title', 'Operation', 'value', f ->> 'subject', 'short', true),
                            jsonb_build_object('title', 'Severity', 'value', f ->> 'state', 'short', true),
                            jsonb_build_object('title', 'Actual', 'value', coalesce((f ->> 'actual_ms') || ' ms', '-'), 'short', true),
                            jsonb_build_object('title', 'Baseline p99', 'value', coalesce((f ->> 'baseline_p99_ms') || ' ms', '-'), 'short', true),
                            jsonb_build_object('title', 'Multiplier', 'value', coalesce((f ->> 'violation_multiplier') || 'x', '-'), 'short', true),
                            jsonb_build_object('title', 'Occurrences', 'value', f ->> 'occurrences', 'short', true),
                            jsonb_build_object('title', 'Runbook', 'value', f ->> 'runbook_url', 'short', false)),
                        'footer', 'pggit-monitor alert ' || (f ->> 'alert_id')
                    ) || CASE WHEN p_format = 'mattermost' THEN jsonb_build_object('fallback', f ->> 'summary') ELSE '{}'::jsonb END
                    ORDER BY o)
                FROM unnest(v_facts) WITH ORDINALITY AS x(f, o))
        )::text;

    WHEN 'text' THEN
        SELECT string_agg(format(E'%s\nRunbook: %s', f ->> 'summary', f ->> 'runbook_url'), E'\n\n' ORDER BY o)
        INTO v_body
        FROM unnest(v_facts) WITH ORDINALITY AS x(f, o);
        RETURN v_body;

    WHEN 'pagerduty' THEN
        v_f := v_facts[1];
        IF (v_f ->> 'resolved')::boolean THEN
            RETURN jsonb_build_object('event_action', 'resolve', 'dedup_key', v_f ->> 'dedup_key')::text;
        END IF;
        RETURN jsonb_build_object(
            'event_action', 'trigger',
            'dedup_key', v_f ->> 'dedup_key',
            'payload', jsonb_build_object(
                'summary', left(v_f ->> 'summary', 1024),
                'source', 'pggit-monitor',
                'severity', lower(v_f ->> 'severity'),
                'component', v_f ->> 'operation_type',
                'group', nullif(v_f ->> 'scope', ''),
                'class', v_f ->> 'alert_type',
                'timestamp', v_f -> 'last_seen_at',
                'custom_details', jsonb_build_object(
                    'alert_id', v_f -> 'alert_id',
                    'actual_ms', v_f -> 'actual_ms',
                    'baseline_p99_ms', v_f -> 'baseline_p99_ms',
                    'violation_multiplier', v_f -> 'violation_multiplier',
                    'occurrences', v_f -> 'occurrences',
                    'details', v_f -> 'details')),
            'links', jsonb_build_array(jsonb_build_object('href', v_f ->> 'runbook_url', 'text', 'Runbook'))
        )::text;

    WHEN 'email' THEN
        SELECT string_agg(format(E'%s\nRunbook: %s', f ->> 'summary', f ->> 'runbook_url'), E'\n\n' ORDER BY o),
               count(*) FILTER (WHERE f ->> 'state' = 'CRITICAL')
        INTO v_body, v_crit
        FROM unnest(v_facts) WITH ORDINALITY AS x(f, o);
        RETURN format(E'Subject: %s\n\n%s\n\n-- \npggit-monitor\n',
            CASE WHEN v_n = 1 THEN '[pggit] ' || (v_facts[1] ->> 'state') || ' ' || (v_facts[1] ->> 'alert_type')
                                   || ' ' || (v_facts[1] ->> 'subject')
                 ELSE format('[pggit] %s alerts (%s CRITICAL)', v_n, v_crit) END,
            v_body);
    END CASE;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.format_alert_message(p_alert_id bigint, p_format text DEFAULT 'json')
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_msg text;
BEGIN
    IF p_alert_id IS NULL THEN
        RAISE EXCEPTION 'p_alert_id must not be NULL' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_id';
    END IF;
    IF p_format = 'json' THEN
        -- One alert: the object itself, not the batch envelope.
        SELECT pggit.alert_message_facts(a)::text INTO v_msg
        FROM pggit.performance_alerts a WHERE a.alert_id = p_alert_id;
        IF FOUND THEN
            RETURN v_msg;
        END IF;
    END IF;
    -- Also raises the errors: unknown format, unknown alert.
    RETURN pggit.format_alert_batch(ARRAY[p_alert_id], p_format);
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.claim_scheduled_job(p_job_name text, p_worker text, p_period_seconds integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    IF p_job_name IS NULL OR btrim(p_job_name) = '' THEN
        RAISE EXCEPTION 'p_job_name must be a non-empty name' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_job_name';
    END IF;
    IF p_period_seconds IS NULL OR p_period_seconds NOT BETWEEN 1 AND 31536000 THEN
        RAISE EXCEPTION 'p_period_seconds must be between 1 and 31536000, got %', coalesce(p_period_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_period_seconds';
    END IF;
    INSERT INTO pggit.scheduled_jobs (job_name, period_seconds) VALUES (p_job_name, p_period_seconds)
    ON CONFLICT (job_name) DO NOTHING;
    UPDATE pggit.scheduled_jobs j
    SET last_started_at = v_now, last_worker = p_worker, last_status = 'running', last_error = NULL,
        period_seconds = p_period_seconds, runs = j.runs + 1
    WHERE j.job_name = p_job_name
      AND (j.last_started_at IS NULL OR j.last_started_at <= v_now - make_interval(secs => p_period_seconds));
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.finish_scheduled_job(p_job_name text, p_worker text, p_error text)
RETURNS void
LANGUAGE sql
SET search_path = pggit, pg_catalog
AS $$
    UPDATE pggit.scheduled_jobs
    SET last_finished_at = clock_timestamp(),
        last_status = CASE WHEN p_error IS NULL THEN 'ok' ELSE 'failed' END,
        last_error = p_error,
        -- A failed run is due again in 5 minutes (or its period, if shorter),
        -- not a whole period later.
        last_started_at = CASE WHEN p_error IS NULL THEN last_started_at
            ELSE clock_timestamp() - make_interval(secs => period_seconds)
                 + least(interval '5 minutes', make_interval(secs => period_seconds)) END
    WHERE job_name = p_job_name AND last_worker = p_worker;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.merge_histograms(
    p_operation_type text,
    p_scope          text,
    p_from           timestamptz,
    p_to             timestamptz)
RETURNS SETOF pggit.performance_histograms
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_operation_type IS NULL THEN
        RAISE EXCEPTION 'p_operation_type must not be NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    IF p_scope IS NULL THEN
        RAISE EXCEPTION 'p_scope must be a text (empty for global), got NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_scope';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_from >= p_to THEN
        RAISE EXCEPTION 'p_from must be before p_to, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_from';
    END IF;
    RETURN QUERY
    WITH rows AS (
        SELECT h.* FROM pggit.performance_histograms h
        WHERE h.operation_type = p_operation_type AND h.scope = p_scope
          AND h.bucket_start >= p_from AND h.bucket_start < p_to
    ),
    b AS (
        -- Set-returning functions in the select list run in lockstep over
        -- arrays of one length, several times faster than unnest in FROM.
        SELECT u.bin, sum(u.cnt)::bigint AS cnt
        FROM (SELECT unnest(r.bins) AS bin, unnest(r.counts) AS cnt FROM rows r) u
        GROUP BY u.bin
    )
    SELECT p_operation_type, p_scope, p_from, min(r.bucket_seconds), sum(r.sample_count)::bigint,
           sum(r.sum_us), sum(r.sum_sq_us), sum(r.sum_ln), sum(r.sum_ln_sq), min(r.min_us), max(r.max_us),
           (SELECT array_agg(b.bin ORDER BY b.bin) FROM b),
           (SELECT array_agg(b.cnt ORDER BY b.bin) FROM b)
    FROM rows r
    HAVING count(*) > 0;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.histogram_window_quantiles(
    p_operation_type text,
    p_scope          text,
    p_from           timestamptz,
    p_to             timestamptz,
    p_qs             double precision[] DEFAULT ARRAY[0.5, 0.75, 0.9, 0.95, 0.99])
RETURNS double precision[]
LANGUAGE sql
STABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT coalesce(
        (SELECT pggit.histogram_quantiles(m.bins, m.counts, m.min_us, m.max_us, p_qs)
         FROM pggit.merge_histograms(p_operation_type, p_scope, p_from, p_to) m),
        array_fill(NULL::double precision, ARRAY[cardinality(p_qs)]))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.backtest_detection(
    p_from         timestamptz,
    p_to           timestamptz,
    p_operation    text    DEFAULT NULL,
    p_step_seconds integer DEFAULT 60)
RETURNS SETOF pggit.performance_alerts
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
SET jit = off
AS $$
DECLARE
    v_lookback interval := make_interval(days => pggit.detection_setting('detection_lookback_days', 7)::integer);
    v_rows     pggit.performance_alerts[];
    v_ids      bigint[] := '{}'::bigint[];
    v_t        timestamptz;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR NOT isfinite(p_from) OR NOT isfinite(p_to) OR p_from >= p_to THEN
        RAISE EXCEPTION 'p_from must be before p_to, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_from';
    END IF;
    IF p_to - p_from > interval '31 days' THEN
        RAISE EXCEPTION 'p_to must be at most 31 days after p_from, got %', p_to - p_from
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_to';
    END IF;
    IF p_step_seconds IS NULL OR p_step_seconds NOT BETWEEN 60 AND 86400 THEN
        RAISE EXCEPTION 'p_step_seconds must be between 60 and 86400, got %', coalesce(p_step_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_step_seconds';
    END IF;
    IF p_operation IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pggit.performance_operation_types t WHERE t.operation_type = p_operation) THEN
        RAISE EXCEPTION 'p_operation must name a recorded operation, got %', quote_literal(left(p_operation, 40))
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation';
    END IF;
    PERFORM pg_advisory_xact_lock(1885824867, 2);
    BEGIN
        DELETE FROM pggit.detection_state;
        DELETE FROM pggit.detection_references;
        DELETE FROM pggit.detection_blocks WHERE block_end > pggit.utc_minute(p_from);
        DELETE FROM pggit.performance_alerts a
        WHERE a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION')
          AND coalesce(a.detected_at, a.first_seen_at) >= p_from;
        UPDATE pggit.performance_alerts a
        SET resolved_at = p_from, resolved_by = 'pggit', resolution_notes = 'closed for a backtest'
        WHERE a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION')
          AND (a.resolved_at IS NULL OR a.resolved_at > p_from);
        UPDATE pggit.detection_progress SET evaluated_through = pggit.utc_minute(p_from);
        PERFORM pggit.detection_summarize_hours(p_from - v_lookback, pggit.utc_hour(p_from), p_operation, false);
        PERFORM pggit.detection_build_references(pggit.utc_hour(p_from), p_operation, true);
        v_t := p_from;
        LOOP
            v_t := least(v_t + make_interval(secs => p_step_seconds), p_to);
            v_ids := v_ids || pggit.detect(v_t, p_operation);
            EXIT WHEN v_t >= p_to;
        END LOOP;
        SELECT array_agg(a ORDER BY a.alert_id) INTO v_rows
        FROM pggit.performance_alerts a WHERE a.alert_id = ANY (v_ids);
        RAISE EXCEPTION 'pggit backtest: roll back' USING ERRCODE = 'PGBKT';
    EXCEPTION WHEN SQLSTATE 'PGBKT' THEN
        NULL; -- everything above is undone; v_rows survives
    END;
    RETURN QUERY SELECT x.* FROM unnest(v_rows) AS x ORDER BY x.alert_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.latency_series(
    p_operation_type text,
    p_scope          text,
    p_from           timestamptz,
    p_to             timestamptz,
    p_step_seconds   integer)
RETURNS SETOF pggit.latency_point
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_step interval;
BEGIN
    IF p_operation_type IS NULL OR btrim(p_operation_type) = '' OR length(p_operation_type) > 200 THEN
        RAISE EXCEPTION 'p_operation_type must be a non-empty name of at most 200 characters, got %',
                coalesce(quote_literal(left(p_operation_type, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_type';
    END IF;
    IF p_scope IS NULL OR length(p_scope) > 200 THEN
        RAISE EXCEPTION 'p_scope must be a text of at most 200 characters (empty for global), got %',
                coalesce(quote_literal(left(p_scope, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_scope';
    END IF;
    PERFORM pggit.check_bucket_range(p_from, p_to, p_step_seconds, 2000);
    v_step := make_interval(secs => p_step_seconds);
    RETURN QUERY
    WITH r AS MATERIALIZED (
        SELECT date_bin(v_step, h.bucket_start, timestamptz '2000-01-01 00:00:00+00') AS b,
               h.sample_count, h.sum_us, h.min_us, h.max_us, h.bins, h.counts
        FROM pggit.performance_histograms h
        WHERE h.operation_type = p_operation_type AND h.scope = p_scope
          AND h.bucket_start >= p_from AND h.bucket_start < p_to
    ),
    sums AS (
        SELECT r.b, sum(r.sample_count)::bigint AS n, sum(r.sum_us) / sum(r.sample_count) AS mean
        FROM r GROUP BY r.b
    ),
    q AS (
        SELECT k.b,
               pggit.histogram_quantiles(array_agg(k.bin ORDER BY k.bin), array_agg(k.cnt ORDER BY k.bin),
                                         min(k.mn), max(k.mx), ARRAY[0.5, 0.9, 0.99]) AS q
        FROM (
            SELECT u.b, u.bin, sum(u.cnt)::bigint AS cnt, min(u.mn) AS mn, max(u.mx) AS mx
            FROM (SELECT r.b, unnest(r.bins) AS bin, unnest(r.counts) AS cnt, r.min_us AS mn, r.max_us AS mx
                  FROM r) u
            GROUP BY u.b, u.bin
        ) k
        GROUP BY k.b
    )
    SELECT s.b, s.n, s.mean, q.q[1], q.q[2], q.q[3]
    FROM sums s JOIN q ON q.b = s.b
    ORDER BY s.b;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.latency_sparklines(
    p_operation_types text[],
    p_scopes          text[],
    p_from            timestamptz,
    p_to              timestamptz,
    p_step_seconds    integer)
RETURNS SETOF pggit.latency_spark_point
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_operation_types IS NULL OR p_scopes IS NULL
       OR cardinality(p_operation_types) <> cardinality(p_scopes) OR cardinality(p_operation_types) > 200 THEN
        RAISE EXCEPTION 'p_operation_types and p_scopes must be arrays of the same length, at most 200, got % and %',
                coalesce(cardinality(p_operation_types)::text, 'NULL'), coalesce(cardinality(p_scopes)::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_types';
    END IF;
    IF array_position(p_operation_types, NULL) IS NOT NULL OR array_position(p_scopes, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'p_operation_types and p_scopes must not hold NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_operation_types';
    END IF;
    PERFORM pggit.check_bucket_range(p_from, p_to, p_step_seconds, 200);
    RETURN QUERY
    SELECT h.operation_type, h.scope,
           date_bin(make_interval(secs => p_step_seconds), h.bucket_start, timestamptz '2000-01-01 00:00:00+00'),
           sum(h.sample_count)::bigint, sum(h.sum_us) / sum(h.sample_count)
    FROM unnest(p_operation_types, p_scopes) AS k(op, scope)
    JOIN pggit.performance_histograms h ON h.operation_type = k.op AND h.scope = k.scope
    WHERE h.bucket_start >= p_from AND h.bucket_start < p_to
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3;
END;
$$;
-- +goose StatementEnd
