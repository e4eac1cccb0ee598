-- Alert messages per channel: json, slack, mattermost, text, pagerduty, email.
-- One alert (format_alert_message) or a batch in one message
-- (format_alert_batch). Messages carry the operation, severity, multiplier,
-- actual vs p99 and a link to the runbook of the alert type.

-- +goose Up

-- The facts every format shows, for one alert.
-- +goose StatementBegin
CREATE FUNCTION pggit.alert_message_facts(p_alert pggit.performance_alerts)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_base    text;
    v_state   text := CASE WHEN p_alert.resolved_at IS NULL THEN p_alert.severity ELSE 'RESOLVED' END;
    v_subject text := p_alert.operation_type || CASE WHEN p_alert.scope = '' THEN '' ELSE ' [' || p_alert.scope || ']' END;
    v_summary text;
BEGIN
    SELECT s.setting_value INTO v_base FROM pggit.monitor_settings s WHERE s.setting_name = 'runbook_base_url';
    IF p_alert.actual_duration_microseconds IS NOT NULL AND p_alert.baseline_p99_microseconds IS NOT NULL THEN
        v_summary := format('%s %s: %s took %s ms, %sx its p99 of %s ms (%s %s)',
            v_state, p_alert.alert_type, v_subject,
            round(p_alert.actual_duration_microseconds / 1000.0, 2),
            round(p_alert.violation_multiplier::numeric, 2),
            round((p_alert.baseline_p99_microseconds / 1000.0)::numeric, 2),
            p_alert.occurrence_count, CASE WHEN p_alert.occurrence_count = 1 THEN 'occurrence' ELSE 'occurrences' END);
    ELSE
        v_summary := format('%s %s: %s: %s (%s %s)',
            v_state, p_alert.alert_type, v_subject,
            coalesce(p_alert.details ->> 'message', 'see details'), p_alert.occurrence_count,
            CASE WHEN p_alert.occurrence_count = 1 THEN 'occurrence' ELSE 'occurrences' END);
    END IF;
    RETURN jsonb_build_object(
        'alert_id', p_alert.alert_id,
        'state', v_state,
        'summary', v_summary,
        'subject', v_subject,
        'operation_type', p_alert.operation_type,
        'scope', p_alert.scope,
        'alert_type', p_alert.alert_type,
        'severity', p_alert.severity,
        'resolved', p_alert.resolved_at IS NOT NULL,
        'actual_ms', round(p_alert.actual_duration_microseconds / 1000.0, 3),
        'baseline_p99_ms', round((p_alert.baseline_p99_microseconds / 1000.0)::numeric, 3),
        'violation_multiplier', round(p_alert.violation_multiplier::numeric, 3),
        'occurrences', p_alert.occurrence_count,
        'first_seen_at', p_alert.first_seen_at,
        'last_seen_at', p_alert.last_seen_at,
        'resolved_at', p_alert.resolved_at,
        'acknowledged_by', p_alert.acknowledged_by,
        'details', p_alert.details,
        'runbook_url', coalesce(v_base, '') || '/' || lower(p_alert.alert_type) || '.md',
        'dedup_key', 'pggit-alert-' || p_alert.alert_id);
END;
$$;
-- +goose StatementEnd

-- Formats alerts p_alert_ids (in that order) as one message in p_format. The
-- json form is {"source", "count", "alerts": [...]} whatever the count.
-- +goose StatementBegin
CREATE FUNCTION pggit.format_alert_batch(p_alert_ids bigint[], p_format text DEFAULT 'json')
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
CREATE FUNCTION pggit.format_alert_message(p_alert_id bigint, p_format text DEFAULT 'json')
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

-- +goose Down
DROP FUNCTION pggit.format_alert_message(bigint, text);
DROP FUNCTION pggit.format_alert_batch(bigint[], text);
DROP FUNCTION pggit.alert_message_facts(pggit.performance_alerts);
