-- Foundation functions: sample recording, operation registration, and rolling
-- baseline recalculation (all operations in one pass, or one operation).
--
-- Conventions: every function pins its search_path and qualifies every name;
-- bad arguments raise SQLSTATE 22023 (invalid_parameter_value) with the
-- argument in the error's COLUMN field and in the message; wall-clock time is
-- clock_timestamp(), never now(), which is frozen for the transaction.

-- +goose Up

-- Registers the operations named by a batch of new samples. Statement-level with
-- a transition table: one statement per INSERT or COPY, whatever its size.
-- +goose StatementBegin
CREATE FUNCTION pggit.performance_metrics_after_insert()
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

CREATE TRIGGER performance_metrics_after_insert
    AFTER INSERT ON pggit.performance_metrics
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION pggit.performance_metrics_after_insert();

-- +goose StatementBegin
CREATE FUNCTION pggit.record_performance_metric(
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

-- Validates the arguments shared by the recalculation functions.
-- +goose StatementBegin
CREATE FUNCTION pggit.check_recalc_arguments(
    p_lookback_days         integer,
    p_min_samples           integer,
    p_max_execution_seconds integer,
    p_reason                text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_lookback_days IS NULL OR p_lookback_days NOT BETWEEN 1 AND 365 THEN
        RAISE EXCEPTION 'p_lookback_days must be between 1 and 365, got %',
                coalesce(p_lookback_days::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_lookback_days';
    END IF;
    IF p_min_samples IS NULL OR p_min_samples < 1 THEN
        RAISE EXCEPTION 'p_min_samples must be at least 1, got %', coalesce(p_min_samples::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_min_samples';
    END IF;
    IF p_max_execution_seconds IS NOT NULL AND p_max_execution_seconds NOT BETWEEN 1 AND 86400 THEN
        RAISE EXCEPTION 'p_max_execution_seconds must be between 1 and 86400, got %', p_max_execution_seconds
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_max_execution_seconds';
    END IF;
    IF p_reason IS NULL OR p_reason NOT IN ('scheduled', 'manual') THEN
        RAISE EXCEPTION 'p_reason must be one of scheduled, manual, got %',
                coalesce(quote_literal(p_reason), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_reason';
    END IF;
END;
$$;
-- +goose StatementEnd

-- Opens the record of one recalculation run. Recalculations are serialized by a
-- transaction-level advisory lock, so two concurrent runs never both believe
-- they are replacing the same active baseline.
-- +goose StatementBegin
CREATE FUNCTION pggit.start_recalc_execution(
    p_lookback_days         integer,
    p_min_samples           integer,
    p_force                 boolean,
    p_max_execution_seconds integer,
    p_reason                text,
    p_operation_filter      text)
RETURNS pggit.baseline_recalc_execution
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_exec pggit.baseline_recalc_execution;
    v_now  timestamptz;
BEGIN
    -- Key pair (1885824867 = 'pgm' + 'c', 1): pggit-monitor baseline recalculation.
    PERFORM pg_advisory_xact_lock(1885824867, 1);
    v_now := clock_timestamp();
    INSERT INTO pggit.baseline_recalc_execution
        (started_at, status, reason, lookback_days, min_samples, force, max_execution_seconds,
         operation_filter, window_start, window_end)
    VALUES
        (v_now, 'RUNNING', CASE WHEN p_force THEN 'force' ELSE p_reason END, p_lookback_days,
         p_min_samples, coalesce(p_force, false), p_max_execution_seconds, p_operation_filter,
         v_now - make_interval(days => p_lookback_days), v_now)
    RETURNING * INTO v_exec;
    RETURN v_exec;
END;
$$;
-- +goose StatementEnd

-- Closes the record of a run: counts per status, overall status, duration.
-- p_error is set when the run failed as a whole.
-- +goose StatementBegin
CREATE FUNCTION pggit.finish_recalc_execution(p_execution_id bigint, p_error text)
RETURNS pggit.baseline_recalc_execution
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_exec pggit.baseline_recalc_execution;
BEGIN
    UPDATE pggit.baseline_recalc_execution e
    SET finished_at             = clock_timestamp(),
        duration_ms             = extract(epoch FROM clock_timestamp() - e.started_at) * 1000,
        operations_total        = c.total,
        operations_updated      = c.updated,
        operations_unchanged    = c.unchanged,
        operations_insufficient = c.insufficient,
        operations_failed       = c.failed,
        operations_timed_out    = c.timed_out,
        status = CASE
            WHEN p_error IS NOT NULL THEN 'FAILED'
            WHEN c.timed_out > 0 THEN 'TIMEOUT'
            WHEN c.failed > 0 THEN 'PARTIAL'
            ELSE 'SUCCESS'
        END,
        error_message = coalesce(p_error, c.failures)
    FROM (
        SELECT count(*)::integer                                              AS total,
               count(*) FILTER (WHERE r.status = 'UPDATED')::integer           AS updated,
               count(*) FILTER (WHERE r.status = 'UNCHANGED')::integer         AS unchanged,
               count(*) FILTER (WHERE r.status = 'INSUFFICIENT_DATA')::integer AS insufficient,
               count(*) FILTER (WHERE r.status = 'FAILED')::integer            AS failed,
               count(*) FILTER (WHERE r.status = 'TIMEOUT')::integer           AS timed_out,
               left(string_agg(r.operation_type || CASE WHEN r.scope = '' THEN '' ELSE '@' || r.scope END
                               || ': ' || r.message, '; ' ORDER BY r.operation_type, r.scope)
                        FILTER (WHERE r.status = 'FAILED'), 2000)              AS failures
        FROM pggit.baseline_recalc_results r
        WHERE r.execution_id = p_execution_id
    ) c
    WHERE e.execution_id = p_execution_id
    RETURNING e.* INTO v_exec;
    RETURN v_exec;
END;
$$;
-- +goose StatementEnd

-- Applies freshly computed statistics to one (operation, scope): compares p99
-- with the active baseline, replaces it when it moved by 5% or more (or when
-- forced), records history and the per-operation result. Any failure is caught
-- here, so one broken operation never blocks the others.
-- p_stats carries operation_type, scope, sample_count (0 when none), the
-- statistics and the operation's threshold multiplier.
-- +goose StatementBegin
CREATE FUNCTION pggit.apply_baseline_stats(
    p_execution_id bigint,
    p_stats        pggit.performance_baselines,
    p_min_samples  integer,
    p_force        boolean,
    p_reason       text)
RETURNS pggit.baseline_recalc_results
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_result pggit.baseline_recalc_results;
    v_old    pggit.performance_baselines;
    v_new_id bigint;
    v_state  text;
    v_msg    text;
BEGIN
    v_result.execution_id   := p_execution_id;
    v_result.operation_type := p_stats.operation_type;
    v_result.scope          := p_stats.scope;
    v_result.sample_count   := coalesce(p_stats.sample_count, 0);

    BEGIN
        SELECT b.* INTO v_old
        FROM pggit.performance_baselines b
        WHERE b.operation_type = p_stats.operation_type
          AND b.scope = p_stats.scope
          AND b.is_active
        FOR UPDATE;

        v_result.old_p99_microseconds := v_old.p99_microseconds;
        v_result.baseline_id          := v_old.baseline_id;

        IF v_result.sample_count < p_min_samples THEN
            v_result.status  := 'INSUFFICIENT_DATA';
            v_result.message := format('%s samples in the last %s days, %s required; baseline kept',
                                       v_result.sample_count, p_stats.lookback_days, p_min_samples);
        ELSE
            v_result.new_p99_microseconds := p_stats.p99_microseconds;
            IF v_old.baseline_id IS NOT NULL THEN
                v_result.percent_change :=
                    (p_stats.p99_microseconds - v_old.p99_microseconds) / v_old.p99_microseconds * 100;
            END IF;

            IF v_old.baseline_id IS NOT NULL AND NOT p_force AND abs(v_result.percent_change) < 5 THEN
                v_result.status  := 'UNCHANGED';
                v_result.message := format('p99 moved %s%% (under 5%%); baseline kept',
                                           round(v_result.percent_change::numeric, 2));
            ELSE
                UPDATE pggit.performance_baselines
                SET is_active = false, deactivated_at = clock_timestamp()
                WHERE baseline_id = v_old.baseline_id;

                INSERT INTO pggit.performance_baselines
                    (operation_type, scope, sample_count, min_microseconds, max_microseconds,
                     mean_microseconds, stddev_microseconds, p50_microseconds, p75_microseconds,
                     p90_microseconds, p95_microseconds, p99_microseconds, lookback_days,
                     window_start, window_end, alert_threshold_multiplier, execution_id)
                VALUES
                    (p_stats.operation_type, p_stats.scope, p_stats.sample_count,
                     p_stats.min_microseconds, p_stats.max_microseconds, p_stats.mean_microseconds,
                     p_stats.stddev_microseconds, p_stats.p50_microseconds, p_stats.p75_microseconds,
                     p_stats.p90_microseconds, p_stats.p95_microseconds, p_stats.p99_microseconds,
                     p_stats.lookback_days, p_stats.window_start, p_stats.window_end,
                     coalesce(p_stats.alert_threshold_multiplier, 2.0), p_execution_id)
                RETURNING baseline_id INTO v_new_id;

                INSERT INTO pggit.performance_baseline_history
                    (operation_type, scope, baseline_id, previous_baseline_id, execution_id,
                     old_p99_microseconds, new_p99_microseconds, percent_change, sample_count,
                     lookback_days, reason)
                VALUES
                    (p_stats.operation_type, p_stats.scope, v_new_id, v_old.baseline_id, p_execution_id,
                     v_old.p99_microseconds, p_stats.p99_microseconds, v_result.percent_change,
                     p_stats.sample_count, p_stats.lookback_days,
                     CASE WHEN p_force THEN 'force' ELSE p_reason END);

                v_result.baseline_id := v_new_id;
                v_result.status      := 'UPDATED';
                v_result.message     := CASE
                    WHEN v_old.baseline_id IS NULL THEN
                        format('first baseline: p99 %s ms from %s samples',
                               round((p_stats.p99_microseconds / 1000.0)::numeric, 3), p_stats.sample_count)
                    ELSE
                        format('p99 %s ms -> %s ms (%s%%)%s',
                               round((v_old.p99_microseconds / 1000.0)::numeric, 3),
                               round((p_stats.p99_microseconds / 1000.0)::numeric, 3),
                               round(v_result.percent_change::numeric, 2),
                               CASE WHEN p_force THEN ', forced' ELSE '' END)
                END;
            END IF;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        v_result.status      := 'FAILED';
        v_result.baseline_id := v_old.baseline_id;
        v_result.message     := format('%s (SQLSTATE %s)', v_msg, v_state);
    END;

    v_result.finished_at := clock_timestamp();
    INSERT INTO pggit.baseline_recalc_results VALUES (v_result.*);
    RETURN v_result;
END;
$$;
-- +goose StatementEnd

-- Recalculates the baselines of every tracked (operation, scope) with samples in
-- the window or an active baseline, from one grouped pass over the samples.
-- +goose StatementBegin
CREATE FUNCTION pggit.recalculate_all_baselines_rolling(
    p_lookback_days         integer DEFAULT 7,
    p_min_samples           integer DEFAULT 10,
    p_force                 boolean DEFAULT false,
    p_max_execution_seconds integer DEFAULT 60,
    p_reason                text    DEFAULT 'manual')
RETURNS SETOF pggit.baseline_recalc_results
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_exec     pggit.baseline_recalc_execution;
    v_deadline timestamptz;
    v_stats    pggit.performance_baselines;
    v_error    text;
    v_state    text;
    v_msg      text;
    r          record;
BEGIN
    IF p_max_execution_seconds IS NULL THEN
        RAISE EXCEPTION 'p_max_execution_seconds must be between 1 and 86400, got NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_max_execution_seconds';
    END IF;
    IF p_force IS NULL THEN
        RAISE EXCEPTION 'p_force must be true or false, got NULL'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_force';
    END IF;
    PERFORM pggit.check_recalc_arguments(p_lookback_days, p_min_samples, p_max_execution_seconds, p_reason);

    v_exec := pggit.start_recalc_execution(p_lookback_days, p_min_samples, p_force,
                                           p_max_execution_seconds, p_reason, NULL);
    v_deadline := v_exec.started_at + make_interval(secs => p_max_execution_seconds);

    BEGIN
        FOR r IN
            WITH stats AS (
                SELECT m.operation_type,
                       m.scope,
                       count(*)                          AS n,
                       min(m.duration_microseconds)      AS min_us,
                       max(m.duration_microseconds)      AS max_us,
                       avg(m.duration_microseconds)::double precision AS mean_us,
                       coalesce(stddev_samp(m.duration_microseconds), 0)::double precision AS stddev_us,
                       percentile_cont(ARRAY[0.5, 0.75, 0.9, 0.95, 0.99]::double precision[])
                           WITHIN GROUP (ORDER BY m.duration_microseconds) AS pct
                FROM pggit.performance_metrics m
                WHERE m.recorded_at > v_exec.window_start
                  AND m.recorded_at <= v_exec.window_end
                GROUP BY m.operation_type, m.scope
            ),
            keys AS (
                SELECT s.operation_type, s.scope FROM stats s
                UNION
                SELECT b.operation_type, b.scope FROM pggit.performance_baselines b WHERE b.is_active
            )
            SELECT k.operation_type, k.scope, coalesce(s.n, 0) AS n, s.min_us, s.max_us, s.mean_us,
                   s.stddev_us, s.pct, t.alert_threshold_multiplier, b.p99_microseconds AS old_p99
            FROM keys k
            LEFT JOIN stats s
                   ON s.operation_type = k.operation_type AND s.scope = k.scope
            LEFT JOIN pggit.performance_operation_types t
                   ON t.operation_type = k.operation_type
            LEFT JOIN pggit.performance_baselines b
                   ON b.operation_type = k.operation_type AND b.scope = k.scope AND b.is_active
            WHERE coalesce(t.is_tracked, true)
            ORDER BY k.operation_type, k.scope
        LOOP
            IF clock_timestamp() >= v_deadline THEN
                INSERT INTO pggit.baseline_recalc_results
                    (execution_id, operation_type, scope, status, sample_count, old_p99_microseconds,
                     message)
                VALUES
                    (v_exec.execution_id, r.operation_type, r.scope, 'TIMEOUT', r.n, r.old_p99,
                     format('not reached within the %s s limit; baseline kept', p_max_execution_seconds));
                CONTINUE;
            END IF;

            v_stats := NULL;
            v_stats.operation_type             := r.operation_type;
            v_stats.scope                      := r.scope;
            v_stats.sample_count               := r.n;
            v_stats.min_microseconds           := r.min_us;
            v_stats.max_microseconds           := r.max_us;
            v_stats.mean_microseconds          := r.mean_us;
            v_stats.stddev_microseconds        := r.stddev_us;
            v_stats.p50_microseconds           := r.pct[1];
            v_stats.p75_microseconds           := r.pct[2];
            v_stats.p90_microseconds           := r.pct[3];
            v_stats.p95_microseconds           := r.pct[4];
            v_stats.p99_microseconds           := r.pct[5];
            v_stats.lookback_days              := p_lookback_days;
            v_stats.window_start               := v_exec.window_start;
            v_stats.window_end                 := v_exec.window_end;
            v_stats.alert_threshold_multiplier := r.alert_threshold_multiplier;
            PERFORM pggit.apply_baseline_stats(v_exec.execution_id, v_stats, p_min_samples, p_force, p_reason);
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        v_error := format('%s (SQLSTATE %s)', v_msg, v_state);
    END;

    PERFORM pggit.finish_recalc_execution(v_exec.execution_id, v_error);

    RETURN QUERY
        SELECT r2.*
        FROM pggit.baseline_recalc_results r2
        WHERE r2.execution_id = v_exec.execution_id
        ORDER BY r2.operation_type, r2.scope;
END;
$$;
-- +goose StatementEnd

-- Recalculates the baseline of one (operation, scope). Same rules as the rolling
-- recalculation; the run is recorded as an execution of one operation.
-- +goose StatementBegin
CREATE FUNCTION pggit.recalculate_single_baseline_safe(
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
    v_pct    double precision[];
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

    SELECT count(*),
           min(m.duration_microseconds),
           max(m.duration_microseconds),
           avg(m.duration_microseconds),
           coalesce(stddev_samp(m.duration_microseconds), 0),
           percentile_cont(ARRAY[0.5, 0.75, 0.9, 0.95, 0.99]::double precision[])
               WITHIN GROUP (ORDER BY m.duration_microseconds)
    INTO v_stats.sample_count, v_stats.min_microseconds, v_stats.max_microseconds,
         v_stats.mean_microseconds, v_stats.stddev_microseconds, v_pct
    FROM pggit.performance_metrics m
    WHERE m.operation_type = p_operation_type
      AND m.scope = p_scope
      AND m.recorded_at > v_exec.window_start
      AND m.recorded_at <= v_exec.window_end;

    v_stats.p50_microseconds := v_pct[1];
    v_stats.p75_microseconds := v_pct[2];
    v_stats.p90_microseconds := v_pct[3];
    v_stats.p95_microseconds := v_pct[4];
    v_stats.p99_microseconds := v_pct[5];

    v_stats.operation_type := p_operation_type;
    v_stats.scope          := p_scope;
    v_stats.sample_count   := coalesce(v_stats.sample_count, 0);
    v_stats.lookback_days  := p_lookback_days;
    v_stats.window_start   := v_exec.window_start;
    v_stats.window_end     := v_exec.window_end;
    SELECT t.alert_threshold_multiplier INTO v_stats.alert_threshold_multiplier
    FROM pggit.performance_operation_types t
    WHERE t.operation_type = p_operation_type;

    v_result := pggit.apply_baseline_stats(v_exec.execution_id, v_stats, p_min_samples, p_force, p_reason);
    PERFORM pggit.finish_recalc_execution(v_exec.execution_id, NULL);
    RETURN v_result;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION pggit.recalculate_single_baseline_safe(text, text, integer, integer, boolean, text);
DROP FUNCTION pggit.recalculate_all_baselines_rolling(integer, integer, boolean, integer, text);
DROP FUNCTION pggit.apply_baseline_stats(bigint, pggit.performance_baselines, integer, boolean, text);
DROP FUNCTION pggit.finish_recalc_execution(bigint, text);
DROP FUNCTION pggit.start_recalc_execution(integer, integer, boolean, integer, text, text);
DROP FUNCTION pggit.check_recalc_arguments(integer, integer, integer, text);
DROP FUNCTION pggit.record_performance_metric(text, bigint, text, text, jsonb, timestamptz);
DROP TRIGGER performance_metrics_after_insert ON pggit.performance_metrics;
DROP FUNCTION pggit.performance_metrics_after_insert();
