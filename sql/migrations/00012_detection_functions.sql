-- Windowed detection over the histograms: pggit.run_detection and its
-- detectors (THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION, CORRELATION),
-- auto-resolution, pggit.accept_regression, pggit.backtest_detection, and
-- baselines that leave out the samples of open regressions.
--
-- Design and calibration: docs/detection.md. Conventions as everywhere: every
-- name qualified, search_path pinned, bad input raises 22023 naming the
-- argument. Times of alerts are sample times (minute buckets), never the wall
-- clock of the call, so a replay gives the alerts a live run gave.

-- +goose Up

-- A numeric setting of pggit.monitor_settings, or p_default.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_setting(p_name text, p_default double precision)
RETURNS double precision
LANGUAGE sql
STABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT coalesce((SELECT s.setting_value::double precision FROM pggit.monitor_settings s
                     WHERE s.setting_name = p_name), p_default)
$$;
-- +goose StatementEnd

-- THRESHOLD: the fewest samples at or over a level, out of p_n, that put the
-- window's p99 over that level with confidence 1 - p_alpha: the smallest e
-- with P(Binomial(p_n, 0.01) >= e) <= p_alpha (a distribution-free lower
-- confidence bound of the p99). Computed in log space, so any p_n works.
-- +goose StatementBegin
CREATE FUNCTION pggit.threshold_min_exceedances(p_n bigint, p_alpha double precision)
RETURNS bigint
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_lp  double precision;   -- ln P(X = k)
    v_cdf double precision;   -- P(X <= k)
    v_k   bigint := 0;
BEGIN
    IF p_n IS NULL OR p_n < 1 THEN
        RAISE EXCEPTION 'p_n must be at least 1, got %', coalesce(p_n::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_n';
    END IF;
    IF p_alpha IS NULL OR p_alpha <= 0 OR p_alpha >= 1 THEN
        RAISE EXCEPTION 'p_alpha must be between 0 and 1 (exclusive), got %', coalesce(p_alpha::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alpha';
    END IF;
    v_lp := p_n * ln(0.99);
    v_cdf := exp(v_lp);
    WHILE 1 - v_cdf > p_alpha AND v_k < p_n LOOP
        v_lp := v_lp + ln((p_n - v_k)::double precision / (v_k + 1)) + ln(0.01 / 0.99);
        v_k := v_k + 1;
        v_cdf := v_cdf + exp(v_lp);
    END LOOP;
    RETURN v_k + 1;
END;
$$;
-- +goose StatementEnd

-- Mann-Whitney U of two histograms as a z-score: positive when the samples of
-- histogram a tend to be larger than those of b (ties within a bin count
-- half). NULL when either is empty.
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_mann_whitney_z(
    p_a_bins integer[], p_a_counts bigint[], p_b_bins integer[], p_b_counts bigint[])
RETURNS double precision
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_na    double precision := 0;
    v_nb    double precision := 0;
    v_u     double precision := 0;
    v_below double precision := 0; -- b samples in bins below the current a bin
    v_j     integer := 1;
    v_kb    integer := coalesce(cardinality(p_b_bins), 0);
BEGIN
    FOR v_i IN 1 .. coalesce(cardinality(p_b_bins), 0) LOOP
        v_nb := v_nb + p_b_counts[v_i];
    END LOOP;
    FOR v_i IN 1 .. coalesce(cardinality(p_a_bins), 0) LOOP
        WHILE v_j <= v_kb AND p_b_bins[v_j] < p_a_bins[v_i] LOOP
            v_below := v_below + p_b_counts[v_j];
            v_j := v_j + 1;
        END LOOP;
        v_u := v_u + p_a_counts[v_i] * (v_below + CASE WHEN v_j <= v_kb AND p_b_bins[v_j] = p_a_bins[v_i]
                                                       THEN 0.5 * p_b_counts[v_j] ELSE 0 END);
        v_na := v_na + p_a_counts[v_i];
    END LOOP;
    IF v_na = 0 OR v_nb = 0 THEN
        RETURN NULL;
    END IF;
    RETURN (v_u - v_na * v_nb / 2) / sqrt(v_na * v_nb * (v_na + v_nb + 1) / 12);
END;
$$;
-- +goose StatementEnd

-- The operations whose baseline samples are restricted, for a window
-- starting at p_window_start: those with a floor (an accepted regression:
-- samples before it no longer describe the operation), and those with a
-- regression alert (THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION; not accepted)
-- open, or resolved within the window: the samples of its span,
-- [first_seen_at, resolved_at), are not the operation's normal. Without this
-- a detected regression would become its own baseline at the next
-- recalculation (and a resolved one would inflate the p99 for a week).
-- +goose StatementBegin
CREATE FUNCTION pggit.baseline_restricted(p_operation_type text, p_window_start timestamptz)
RETURNS TABLE (operation_type text, scope text)
LANGUAGE sql
STABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT a.operation_type, a.scope
    FROM pggit.performance_alerts a
    WHERE a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION')
      AND (a.resolved_at IS NULL OR (a.resolved_at > p_window_start
                                     AND NOT coalesce((a.details ->> 'accepted')::boolean, false)))
      AND (p_operation_type IS NULL OR a.operation_type = p_operation_type)
    UNION
    SELECT f.operation_type, f.scope
    FROM pggit.performance_baseline_floors f
    WHERE p_operation_type IS NULL OR f.operation_type = p_operation_type
$$;
-- +goose StatementEnd

-- Baseline statistics of one (operation, scope) over (p_window_start,
-- p_window_end], without the samples before its floor and those in the span
-- of its regression alerts (see pggit.baseline_restricted). The returned row
-- carries the window, starting at the floor when there is one.
-- +goose StatementBegin
CREATE FUNCTION pggit.compute_baseline_stats(
    p_operation_type text,
    p_scope          text,
    p_window_start   timestamptz,
    p_window_end     timestamptz,
    p_lookback_days  integer)
RETURNS pggit.performance_baselines
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_stats pggit.performance_baselines;
    v_pct   double precision[];
    v_floor timestamptz;
BEGIN
    SELECT f.since INTO v_floor FROM pggit.performance_baseline_floors f
    WHERE f.operation_type = p_operation_type AND f.scope = p_scope;
    -- The floor is the first sample in; the window start is exclusive.
    v_stats.window_start := greatest(p_window_start, v_floor - interval '1 microsecond');
    v_stats.window_end   := greatest(p_window_end, v_stats.window_start);

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
      AND m.recorded_at > v_stats.window_start
      AND m.recorded_at <= v_stats.window_end
      AND NOT EXISTS (
          SELECT 1 FROM pggit.performance_alerts a
          WHERE a.operation_type = p_operation_type AND a.scope = p_scope
            AND a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION')
            AND NOT coalesce((a.details ->> 'accepted')::boolean, false)
            AND m.recorded_at >= a.first_seen_at
            AND m.recorded_at < coalesce(a.resolved_at, 'infinity'));

    v_stats.p50_microseconds := v_pct[1];
    v_stats.p75_microseconds := v_pct[2];
    v_stats.p90_microseconds := v_pct[3];
    v_stats.p95_microseconds := v_pct[4];
    v_stats.p99_microseconds := v_pct[5];
    v_stats.operation_type := p_operation_type;
    v_stats.scope          := p_scope;
    v_stats.sample_count   := coalesce(v_stats.sample_count, 0);
    v_stats.lookback_days  := p_lookback_days;
    SELECT t.alert_threshold_multiplier INTO v_stats.alert_threshold_multiplier
    FROM pggit.performance_operation_types t
    WHERE t.operation_type = p_operation_type;
    RETURN v_stats;
END;
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.recalculate_all_baselines_rolling(
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
                   s.stddev_us, s.pct, t.alert_threshold_multiplier, b.p99_microseconds AS old_p99,
                   bd.operation_type IS NOT NULL AS bounded
            FROM keys k
            -- Regressions and accepted change points restrict some
            -- operations' samples: those are recomputed without them.
            LEFT JOIN pggit.baseline_restricted(NULL, v_exec.window_start) bd
                   ON bd.operation_type = k.operation_type AND bd.scope = k.scope
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

            IF r.bounded THEN
                v_stats := pggit.compute_baseline_stats(r.operation_type, r.scope, v_exec.window_start,
                                                        v_exec.window_end, p_lookback_days);
                PERFORM pggit.apply_baseline_stats(v_exec.execution_id, v_stats, p_min_samples, p_force, p_reason);
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

-- Summarizes the hours starting in [p_from, p_to) that have minute histograms
-- (and that are not summarized yet, unless p_replace): sample count and
-- log-latency quantiles per (operation, scope, hour), for references.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_summarize_hours(
    p_from      timestamptz,
    p_to        timestamptz,
    p_operation text,
    p_replace   boolean)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_n integer;
BEGIN
    INSERT INTO pggit.detection_hours AS d
        (operation_type, scope, hour, sample_count, l25, l50, l75, l90, l99)
    SELECT x.operation_type, x.scope, x.hour, x.n,
           ln(x.q[1]), ln(x.q[2]), ln(x.q[3]), ln(x.q[4]), ln(x.q[5])
    FROM (
        SELECT k.operation_type, k.scope, k.hour, sum(k.cnt)::bigint AS n,
               pggit.histogram_quantiles(array_agg(k.bin ORDER BY k.bin), array_agg(k.cnt ORDER BY k.bin),
                                         min(k.mn), max(k.mx), ARRAY[0.25, 0.5, 0.75, 0.9, 0.99]) AS q
        FROM (
            SELECT u.operation_type, u.scope, u.hour, u.bin,
                   sum(u.cnt)::bigint AS cnt, min(u.mn) AS mn, max(u.mx) AS mx
            FROM (
                -- Set-returning functions in the select list run in lockstep
                -- over arrays of one length, several times faster than unnest
                -- in FROM.
                SELECT h.operation_type, h.scope, pggit.utc_hour(h.bucket_start) AS hour,
                       unnest(h.bins) AS bin, unnest(h.counts) AS cnt, h.min_us AS mn, h.max_us AS mx
                FROM pggit.performance_histograms h
                JOIN pggit.performance_operation_types t ON t.operation_type = h.operation_type AND t.is_tracked
                WHERE h.bucket_start >= p_from AND h.bucket_start < p_to
                  AND (p_operation IS NULL OR h.operation_type = p_operation)
                  AND (p_replace OR NOT EXISTS (
                          SELECT 1 FROM pggit.detection_hours e
                          WHERE e.operation_type = h.operation_type AND e.scope = h.scope
                            AND e.hour = pggit.utc_hour(h.bucket_start)))
            ) u
            GROUP BY 1, 2, 3, 4
        ) k
        GROUP BY 1, 2, 3
    ) x
    ORDER BY 1, 2, 3
    ON CONFLICT (operation_type, scope, hour) DO UPDATE SET
        sample_count = EXCLUDED.sample_count, l25 = EXCLUDED.l25, l50 = EXCLUDED.l50,
        l75 = EXCLUDED.l75, l90 = EXCLUDED.l90, l99 = EXCLUDED.l99;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- (Re)builds the references of operations at hour boundary p_at, from their
-- hours in [p_at - lookback, p_at - 1 hour): the most recent hour is left out,
-- so a regression younger than an hour is never part of its own reference.
-- Hours from the start of an open THRESHOLD_EXCEEDED, ANOMALY or DEGRADATION
-- alert of the operation, and hours before an accepted change point, are left
-- out too. With p_only_missing, only operations without a reference;
-- otherwise those due: missing, stale, young (less than the lookback of
-- history: rebuilt every hour) or a day old (rebuilt once a day, at an hour of
-- the day that depends on the operation, so the work is spread).
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_build_references(
    p_at           timestamptz,
    p_operation    text,
    p_only_missing boolean)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
-- The CTEs below are estimated at a few rows each; nested loops over them
-- would be quadratic in the operations.
SET enable_nestloop = off
AS $$
DECLARE
    v_lookback  interval := make_interval(days => pggit.detection_setting('detection_lookback_days', 7)::integer);
    v_min_hours integer := pggit.detection_setting('detection_min_history_hours', 2)::integer;
    v_n         integer;
BEGIN
    WITH cand AS (
        SELECT DISTINCT dh.operation_type, dh.scope
        FROM pggit.detection_hours dh
        WHERE dh.hour >= p_at - v_lookback AND dh.hour < p_at - interval '1 hour'
          AND (p_operation IS NULL OR dh.operation_type = p_operation)
    ),
    due AS (
        SELECT c.operation_type, c.scope
        FROM cand c
        JOIN pggit.performance_operation_types t ON t.operation_type = c.operation_type AND t.is_tracked
        LEFT JOIN pggit.detection_references r ON r.operation_type = c.operation_type AND r.scope = c.scope
        WHERE r.operation_type IS NULL
           OR (NOT p_only_missing AND (
                  r.stale
               OR r.hours_used < extract(epoch FROM v_lookback) / 3600 * 0.9
               OR p_at - r.built_at >= interval '48 hours'
               OR (p_at - r.built_at >= interval '24 hours'
                   AND extract(hour FROM p_at AT TIME ZONE 'UTC')::integer
                       = abs(hashtext(c.operation_type || '/' || c.scope)) % 24)))
    ),
    hrs AS (
        SELECT dh.*, extract(hour FROM dh.hour AT TIME ZONE 'UTC')::integer AS hod
        FROM pggit.detection_hours dh
        JOIN due d ON d.operation_type = dh.operation_type AND d.scope = dh.scope
        LEFT JOIN pggit.performance_baseline_floors f
               ON f.operation_type = dh.operation_type AND f.scope = dh.scope
        WHERE dh.hour >= p_at - v_lookback AND dh.hour < p_at - interval '1 hour'
          AND (f.since IS NULL OR dh.hour >= f.since)
          -- An open regression is not normal: its hours stay out until it
          -- resolves (or is accepted). Resolved ones come back in: the
          -- medians below shrug off a few bad hours, while leaving out every
          -- hour that ever alerted would teach the reference that a daily
          -- peak is abnormal, and keep it so.
          AND NOT EXISTS (
              SELECT 1 FROM pggit.performance_alerts a
              WHERE a.operation_type = dh.operation_type AND a.scope = dh.scope
                AND a.resolved_at IS NULL
                AND a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION')
                AND a.first_seen_at < dh.hour + interval '1 hour')
    ),
    base AS (
        SELECT h.operation_type, h.scope, count(*)::integer AS hours, min(h.hour) AS history_from,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY h.l50) AS level,
               greatest(0.05, coalesce(
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY (h.l75 - h.l25) / 1.349) FILTER (WHERE h.sample_count >= 8),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY (h.l75 - h.l25) / 1.349), 0.05)) AS scale,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY h.l90 - h.l50) AS d90,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY h.sample_count) AS n_med
        FROM hrs h
        GROUP BY h.operation_type, h.scope
        HAVING count(*) >= v_min_hours AND sum(h.sample_count) >= 30
    ),
    prof AS (
        -- An hour of the day gets its own level with history on >= 2 days.
        SELECT h.operation_type, h.scope, h.hod,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY h.l50) - b.level AS off
        FROM hrs h JOIN base b ON b.operation_type = h.operation_type AND b.scope = h.scope
        GROUP BY h.operation_type, h.scope, h.hod, b.level
        HAVING count(*) >= 2
    ),
    smooth AS (
        -- Circular 1-2-1 smoothing of the offsets; hours without their own
        -- level take the overall one.
        SELECT b.operation_type, b.scope, g.hod,
               CASE WHEN p.off IS NULL THEN 0
                    ELSE (coalesce(pm.off, p.off) + 2 * p.off + coalesce(pp.off, p.off)) / 4 END AS off
        FROM base b
        CROSS JOIN generate_series(0, 23) AS g(hod)
        LEFT JOIN prof p  ON p.operation_type = b.operation_type AND p.scope = b.scope AND p.hod = g.hod
        LEFT JOIN prof pm ON pm.operation_type = b.operation_type AND pm.scope = b.scope AND pm.hod = (g.hod + 23) % 24
        LEFT JOIN prof pp ON pp.operation_type = b.operation_type AND pp.scope = b.scope AND pp.hod = (g.hod + 1) % 24
    ),
    profile AS (
        SELECT s.operation_type, s.scope, array_agg(b.level + s.off ORDER BY s.hod) AS hod_level,
               count(*) FILTER (WHERE s.off <> 0)::integer AS seasonal
        FROM smooth s JOIN base b ON b.operation_type = s.operation_type AND b.scope = s.scope
        GROUP BY s.operation_type, s.scope
    ),
    resid AS (
        SELECT h.operation_type, h.scope,
               h.l50 - p.hod_level[h.hod + 1] AS e50,
               h.l90 - p.hod_level[h.hod + 1] - b.d90 AS e90,
               (1.2533 * b.scale) ^ 2 / h.sample_count AS v50,
               (1.7094 * b.scale) ^ 2 / h.sample_count AS v90
        FROM hrs h
        JOIN base b ON b.operation_type = h.operation_type AND b.scope = h.scope
        JOIN profile p ON p.operation_type = h.operation_type AND p.scope = h.scope
    ),
    med AS (
        SELECT r.operation_type, r.scope,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY r.e50) AS m50,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY r.e90) AS m90,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY r.v50) AS v50,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY r.v90) AS v90
        FROM resid r GROUP BY 1, 2
    ),
    tau AS (
        -- 1.4826 x MAD of the hourly residuals, less what sampling explains.
        SELECT r.operation_type, r.scope,
               sqrt(greatest(0, (1.4826 * percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(r.e50 - m.m50))) ^ 2 - m.v50)) AS tau50,
               sqrt(greatest(0, (1.4826 * percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(r.e90 - m.m90))) ^ 2 - m.v90)) AS tau90
        FROM resid r JOIN med m ON m.operation_type = r.operation_type AND m.scope = r.scope
        GROUP BY r.operation_type, r.scope, m.v50, m.v90
    )
    INSERT INTO pggit.detection_references AS r
        (operation_type, scope, built_at, history_from, hours_used, seasonal_hours, level, hod_level, scale,
         d90, tau50, tau90, rate_per_minute, block_minutes, stale)
    -- Less than a day of history cannot show the daily swing: until it does,
    -- the level is assumed to wander by up to 20% (ln 1.2) over the day.
    SELECT b.operation_type, b.scope, p_at, b.history_from, b.hours, p.seasonal, b.level, p.hod_level, b.scale,
           b.d90, CASE WHEN b.hours < 24 THEN greatest(t.tau50, 0.1823) ELSE t.tau50 END,
           CASE WHEN b.hours < 24 THEN greatest(t.tau90, 0.1823) ELSE t.tau90 END, b.n_med / 60.0,
           CASE WHEN b.n_med / 60.0 * 5 >= o.min_window_count THEN 5
                WHEN b.n_med / 60.0 * 10 >= o.min_window_count THEN 10
                WHEN b.n_med / 60.0 * 15 >= o.min_window_count THEN 15
                WHEN b.n_med / 60.0 * 30 >= o.min_window_count THEN 30
                ELSE 60 END,
           false
    FROM base b
    JOIN profile p ON p.operation_type = b.operation_type AND p.scope = b.scope
    JOIN tau t ON t.operation_type = b.operation_type AND t.scope = b.scope
    JOIN pggit.performance_operation_types o ON o.operation_type = b.operation_type
    ORDER BY 1, 2
    ON CONFLICT (operation_type, scope) DO UPDATE SET
        built_at = EXCLUDED.built_at, history_from = EXCLUDED.history_from, hours_used = EXCLUDED.hours_used,
        seasonal_hours = EXCLUDED.seasonal_hours, level = EXCLUDED.level, hod_level = EXCLUDED.hod_level,
        scale = EXCLUDED.scale, d90 = EXCLUDED.d90, tau50 = EXCLUDED.tau50, tau90 = EXCLUDED.tau90,
        rate_per_minute = EXCLUDED.rate_per_minute, block_minutes = EXCLUDED.block_minutes, stale = false;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- The work done once when an hour closes (at p_hour_end): summarize the hour,
-- compact its histogram rows, prune the detection series, and rebuild the
-- references that are due.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_close_hour(p_hour_end timestamptz, p_operation text)
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

-- The sum of clipped standardized residuals, clamp((ln d - p_e) / p_s, -3, 3),
-- over the samples d of one histogram row: exact from sum_ln when no sample
-- needs clipping (the usual case, with no look at the bins), from the bins
-- (the value each stands for) otherwise. PL/pgSQL: the fast path is a few
-- microseconds a row.
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_residual_sum(
    p_bins   integer[],
    p_counts bigint[],
    p_n      bigint,
    p_sum_ln double precision,
    p_min_us bigint,
    p_max_us bigint,
    p_e      double precision,
    p_s      double precision)
RETURNS double precision
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_sum double precision := 0;
BEGIN
    IF p_e IS NULL OR p_s IS NULL THEN
        RETURN NULL;
    END IF;
    IF ln(p_min_us) >= p_e - 3 * p_s AND ln(p_max_us) <= p_e + 3 * p_s THEN
        RETURN (p_sum_ln - p_n * p_e) / p_s;
    END IF;
    FOR v_i IN 1 .. cardinality(p_bins) LOOP
        v_sum := v_sum + p_counts[v_i] * greatest(-3.0, least(3.0,
                     (-0.01005033585350145 + p_bins[v_i] * 0.0200006667066695 - p_e) / p_s));
    END LOOP;
    RETURN v_sum;
END;
$$;
-- +goose StatementEnd

-- The samples of one histogram row whose bin stands for a duration at or over
-- p_level (0 without looking at the bins when the largest cannot be).
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_count_over(p_bins integer[], p_counts bigint[], p_max_us bigint, p_level double precision)
RETURNS bigint
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_n bigint := 0;
BEGIN
    IF p_level IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_max_us * 1.0102 < p_level THEN
        RETURN 0;
    END IF;
    FOR v_i IN REVERSE cardinality(p_bins) .. 1 LOOP
        EXIT WHEN 0.99 * exp(p_bins[v_i] * 0.0200006667066695) < p_level;
        v_n := v_n + p_counts[v_i];
    END LOOP;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- The minute series detection judges, computed from the histograms (nothing
-- per minute is stored): for each (operation, scope) and minute in
-- [p_from, p_to) with samples, the count, the sum of clipped standardized
-- residuals of log latency against the reference (NULL without one) and the
-- DEGRADATION CUSUM increment (integer millionths, so any order of summing
-- gives the same CUSUM); and the THRESHOLD_EXCEEDED window ending at the
-- minute: the shortest trailing window of 5, 10, 15, 30 or 60 minutes with
-- min_window_count samples (the minute alone when min_window_count is 1), and
-- whether its p99 is over the warning and critical levels (p99 x the
-- multipliers of the active baseline) with the configured confidence
-- (warn_hit, crit_hit) or as a point estimate (point_hit: not healthy yet).
-- p_operation and p_scope restrict it to one operation.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_series(
    p_from      timestamptz,
    p_to        timestamptz,
    p_operation text,
    p_scope     text,
    p_alpha     double precision)
RETURNS TABLE (operation_type text, scope text, minute timestamptz, sample_count bigint,
               resid_sum double precision, cusum_inc bigint, window_start timestamptz, window_count bigint,
               warn_hit boolean, crit_hit boolean, point_hit boolean)
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
-- Planned for the actual arguments, so one operation is an index range; the
-- CTEs are estimated at a few rows each, and a nested loop or a merge join
-- over them would be quadratic in the operations.
SET plan_cache_mode = force_custom_plan
SET enable_nestloop = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH par AS MATERIALIZED (
        SELECT k.operation_type, k.scope, r.hod_level, r.scale AS s, r.tau50 AS tau,
               t.degradation_warning_ratio AS wr, t.min_window_count AS mc,
               b.p99_microseconds * t.alert_threshold_multiplier AS tw,
               b.p99_microseconds * t.critical_multiplier AS tc,
               st.threshold_alert_id IS NOT NULL AS thr_open
        FROM (SELECT x.operation_type, x.scope FROM pggit.detection_references x
              UNION
              SELECT x.operation_type, x.scope FROM pggit.performance_baselines x WHERE x.is_active) k
        JOIN pggit.performance_operation_types t ON t.operation_type = k.operation_type AND t.is_tracked
        LEFT JOIN pggit.detection_references r ON r.operation_type = k.operation_type AND r.scope = k.scope
        LEFT JOIN pggit.performance_baselines b
               ON b.operation_type = k.operation_type AND b.scope = k.scope AND b.is_active
        LEFT JOIN pggit.detection_state st ON st.operation_type = k.operation_type AND st.scope = k.scope
        WHERE p_operation IS NULL OR (k.operation_type = p_operation AND k.scope = p_scope)
    ),
    chunk AS (
        -- The minutes judged.
        SELECT h.operation_type, h.scope, h.bucket_start AS minute, sum(h.sample_count)::bigint AS n,
               sum(h.rs) AS rs, sum(h.ew)::bigint AS ew, sum(h.ec)::bigint AS ec
        FROM (
            -- Per row, narrow before grouping; the functions' fast paths
            -- inline, so most rows never call them.
            SELECT y.operation_type, y.scope, y.bucket_start, y.sample_count,
                   CASE WHEN y.e IS NULL OR y.s IS NULL THEN NULL
                        WHEN ln(y.min_us) >= y.e - 3 * y.s AND ln(y.max_us) <= y.e + 3 * y.s
                        THEN (y.sum_ln - y.sample_count * y.e) / y.s
                        ELSE pggit.histogram_residual_sum(y.bins, y.counts, y.sample_count, y.sum_ln,
                                                          y.min_us, y.max_us, y.e, y.s) END AS rs,
                   CASE WHEN y.tw IS NULL THEN NULL WHEN y.max_us * 1.0102 < y.tw THEN 0
                        ELSE pggit.histogram_count_over(y.bins, y.counts, y.max_us, y.tw) END AS ew,
                   CASE WHEN y.tc IS NULL THEN NULL WHEN y.max_us * 1.0102 < y.tc THEN 0
                        ELSE pggit.histogram_count_over(y.bins, y.counts, y.max_us, y.tc) END AS ec
            FROM (SELECT x.operation_type, x.scope, x.bucket_start, x.sample_count, x.sum_ln, x.min_us, x.max_us,
                         x.bins, x.counts, p.s, p.tw, p.tc,
                         p.hod_level[extract(hour FROM x.bucket_start AT TIME ZONE 'UTC')::integer + 1] AS e
                  FROM pggit.performance_histograms x
                  JOIN par p ON p.operation_type = x.operation_type AND p.scope = x.scope
                  WHERE x.bucket_start >= p_from AND x.bucket_start < p_to AND x.bucket_seconds = 60
                    AND (p_operation IS NULL OR (x.operation_type = p_operation AND x.scope = p_scope))
                  OFFSET 0) y
            OFFSET 0  -- computed here, so the grouping sorts narrow rows
        ) h
        GROUP BY h.operation_type, h.scope, h.bucket_start
    ),
    before AS (
        -- The 59 minutes before, for the THRESHOLD windows: only the samples
        -- that may be over a level are looked at here.
        SELECT h.operation_type, h.scope, h.bucket_start AS minute,
               sum(pggit.histogram_count_over(h.bins, h.counts, h.max_us, p.tw))::bigint AS ew,
               sum(CASE WHEN h.max_us * 1.0102 < p.tc THEN 0
                        ELSE pggit.histogram_count_over(h.bins, h.counts, h.max_us, p.tc) END)::bigint AS ec
        FROM pggit.performance_histograms h
        JOIN par p ON p.operation_type = h.operation_type AND p.scope = h.scope
        WHERE h.bucket_start >= p_from - interval '59 minutes' AND h.bucket_start < p_from
          AND h.bucket_seconds = 60 AND h.max_us * 1.0102 >= p.tw
          AND (p_operation IS NULL OR (h.operation_type = p_operation AND h.scope = p_scope))
        GROUP BY h.operation_type, h.scope, h.bucket_start
    ),
    cand AS (
        -- THRESHOLD can only hit with >= 2 samples over the level in the last
        -- hour (>= 1 with min_window_count 1); an open alert needs its windows
        -- to resolve.
        SELECT x.operation_type, x.scope
        FROM (SELECT c.operation_type, c.scope, c.ew FROM chunk c
              UNION ALL
              SELECT b.operation_type, b.scope, b.ew FROM before b) x
        JOIN par p ON p.operation_type = x.operation_type AND p.scope = x.scope
        GROUP BY x.operation_type, x.scope, p.mc, p.thr_open
        HAVING p.thr_open OR sum(x.ew) >= CASE WHEN p.mc = 1 THEN 1 ELSE 2 END
    ),
    ser AS (
        SELECT c.operation_type, c.scope, c.minute, c.n, c.ew, c.ec
        FROM chunk c JOIN cand k ON k.operation_type = c.operation_type AND k.scope = c.scope
        UNION ALL
        SELECT h.operation_type, h.scope, h.bucket_start, sum(h.sample_count)::bigint,
               coalesce(max(b.ew), 0), coalesce(max(b.ec), 0)
        FROM pggit.performance_histograms h
        JOIN cand k ON k.operation_type = h.operation_type AND k.scope = h.scope
        LEFT JOIN before b ON b.operation_type = h.operation_type AND b.scope = h.scope AND b.minute = h.bucket_start
        WHERE h.bucket_start >= p_from - interval '59 minutes' AND h.bucket_start < p_from AND h.bucket_seconds = 60
        GROUP BY h.operation_type, h.scope, h.bucket_start
    ),
    w AS (
        SELECT d.*,
               sum(d.n) OVER w5 AS n5, sum(d.ew) OVER w5 AS w5, sum(d.ec) OVER w5 AS c5,
               sum(d.n) OVER w10 AS n10, sum(d.ew) OVER w10 AS w10, sum(d.ec) OVER w10 AS c10,
               sum(d.n) OVER w15 AS n15, sum(d.ew) OVER w15 AS w15, sum(d.ec) OVER w15 AS c15,
               sum(d.n) OVER w30 AS n30, sum(d.ew) OVER w30 AS w30, sum(d.ec) OVER w30 AS c30,
               sum(d.n) OVER w60 AS n60, sum(d.ew) OVER w60 AS w60, sum(d.ec) OVER w60 AS c60
        FROM ser d
        JOIN cand c ON c.operation_type = d.operation_type AND c.scope = d.scope
        WINDOW w5  AS (PARTITION BY d.operation_type, d.scope ORDER BY d.minute RANGE BETWEEN interval '4 minutes' PRECEDING AND CURRENT ROW),
               w10 AS (PARTITION BY d.operation_type, d.scope ORDER BY d.minute RANGE BETWEEN interval '9 minutes' PRECEDING AND CURRENT ROW),
               w15 AS (PARTITION BY d.operation_type, d.scope ORDER BY d.minute RANGE BETWEEN interval '14 minutes' PRECEDING AND CURRENT ROW),
               w30 AS (PARTITION BY d.operation_type, d.scope ORDER BY d.minute RANGE BETWEEN interval '29 minutes' PRECEDING AND CURRENT ROW),
               w60 AS (PARTITION BY d.operation_type, d.scope ORDER BY d.minute RANGE BETWEEN interval '59 minutes' PRECEDING AND CURRENT ROW)
    ),
    sel AS (
        SELECT y.*,
               CASE y.span WHEN 1 THEN y.n WHEN 5 THEN y.n5 WHEN 10 THEN y.n10 WHEN 15 THEN y.n15
                           WHEN 30 THEN y.n30 WHEN 60 THEN y.n60 END AS wn,
               CASE y.span WHEN 1 THEN y.ew WHEN 5 THEN y.w5 WHEN 10 THEN y.w10 WHEN 15 THEN y.w15
                           WHEN 30 THEN y.w30 WHEN 60 THEN y.w60 END AS we,
               CASE y.span WHEN 1 THEN y.ec WHEN 5 THEN y.c5 WHEN 10 THEN y.c10 WHEN 15 THEN y.c15
                           WHEN 30 THEN y.c30 WHEN 60 THEN y.c60 END AS wc
        FROM (
            SELECT w.*, p.mc,
                   CASE WHEN w.minute < p_from THEN NULL
                        WHEN p.mc = 1 THEN 1
                        WHEN w.n5 >= p.mc THEN 5 WHEN w.n10 >= p.mc THEN 10 WHEN w.n15 >= p.mc THEN 15
                        WHEN w.n30 >= p.mc THEN 30 WHEN w.n60 >= p.mc THEN 60 END AS span
            FROM w JOIN par p ON p.operation_type = w.operation_type AND p.scope = w.scope
        ) y
    )
    SELECT x.operation_type, x.scope, x.minute, x.n, x.rs,
           CASE WHEN x.rs IS NOT NULL THEN
               round(1e6 * (ln(p.wr) / p.s) * (x.rs - x.n * (ln(p.wr) / (2 * p.s) + p.tau / p.s)))::bigint END,
           y.minute + interval '1 minute' - make_interval(mins => y.span), y.wn::bigint,
           CASE WHEN y.span IS NULL OR y.we < 1 THEN false
                WHEN y.mc = 1 THEN true
                WHEN y.we <= 0.01 * y.wn THEN false
                ELSE y.we >= pggit.threshold_min_exceedances(y.wn::bigint, p_alpha) END,
           CASE WHEN y.span IS NULL OR y.wc < 1 THEN false
                WHEN y.mc = 1 THEN true
                WHEN y.wc <= 0.01 * y.wn THEN false
                ELSE y.wc >= pggit.threshold_min_exceedances(y.wn::bigint, p_alpha) END,
           -- Not healthy yet: the window's p99 is still over the level, and
           -- not by one stray sample (unless every sample counts).
           coalesce(y.span IS NOT NULL
                    AND y.we >= greatest(CASE WHEN y.mc = 1 THEN 1 ELSE 2 END, y.wn - floor(0.99 * (y.wn - 1)) - 1), false)
    FROM chunk x
    JOIN par p ON p.operation_type = x.operation_type AND p.scope = x.scope
    LEFT JOIN sel y ON y.operation_type = x.operation_type AND y.scope = x.scope AND y.minute = x.minute;
END;
$$;
-- +goose StatementEnd

-- Opens a detector's alert (sample times: p_first_seen, p_detected) with the
-- snooze state of now; adds to an open one of the same key if an operator
-- raised it by hand. Returns its id.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_raise(
    p_operation_type text,
    p_scope          text,
    p_alert_type     text,
    p_severity       text,
    p_first_seen     timestamptz,
    p_detected       timestamptz,
    p_actual_us      double precision,
    p_details        jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_snooze bigint := pggit.active_snooze_id(p_operation_type, p_alert_type);
    v_base   pggit.performance_baselines;
    v_id     bigint;
BEGIN
    SELECT b.* INTO v_base FROM pggit.performance_baselines b
    WHERE b.operation_type = p_operation_type AND b.scope = p_scope AND b.is_active;
    INSERT INTO pggit.performance_alerts AS a
        (operation_type, scope, alert_type, severity, actual_duration_microseconds, baseline_p99_microseconds,
         violation_multiplier, threshold_multiplier, created_at, first_seen_at, last_seen_at, detected_at,
         occurrence_count, baseline_id, details, snoozed, snooze_id)
    SELECT p_operation_type, p_scope, p_alert_type, p_severity, round(p_actual_us)::bigint, v_base.p99_microseconds,
           p_actual_us / nullif(v_base.p99_microseconds, 0), t.alert_threshold_multiplier, clock_timestamp(),
           p_first_seen, p_detected, p_detected, 1, v_base.baseline_id, p_details, v_snooze IS NOT NULL, v_snooze
    FROM pggit.performance_operation_types t
    WHERE t.operation_type = p_operation_type
    ON CONFLICT (operation_type, scope, alert_type) WHERE resolved_at IS NULL DO UPDATE SET
        occurrence_count = a.occurrence_count + 1,
        last_seen_at     = greatest(a.last_seen_at, EXCLUDED.last_seen_at),
        detected_at      = coalesce(a.detected_at, EXCLUDED.detected_at),
        severity         = CASE WHEN pggit.severity_rank(EXCLUDED.severity) > pggit.severity_rank(a.severity)
                                THEN EXCLUDED.severity ELSE a.severity END,
        details          = a.details || EXCLUDED.details
    RETURNING a.alert_id INTO v_id;
    RETURN v_id;
END;
$$;
-- +goose StatementEnd

-- Raises an open alert's severity (never lowers it), with new facts.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_escalate(
    p_alert_id  bigint,
    p_severity  text,
    p_actual_us double precision,
    p_details   jsonb)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    UPDATE pggit.performance_alerts a
    SET severity = p_severity,
        actual_duration_microseconds = coalesce(round(p_actual_us)::bigint, a.actual_duration_microseconds),
        violation_multiplier = coalesce(p_actual_us / nullif(a.baseline_p99_microseconds, 0), a.violation_multiplier),
        details = a.details || p_details
    WHERE a.alert_id = p_alert_id AND a.resolved_at IS NULL
      AND pggit.severity_rank(p_severity) > pggit.severity_rank(a.severity);
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- Resolves a detector's alert at sample time p_at (resolved_by 'pggit').
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_resolve(p_alert_id bigint, p_at timestamptz, p_note text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    UPDATE pggit.performance_alerts a
    SET resolved_at = p_at, resolved_by = 'pggit', resolution_notes = p_note
    WHERE a.alert_id = p_alert_id AND a.resolved_at IS NULL;
    RETURN FOUND;
END;
$$;
-- +goose StatementEnd

-- Records what an open alert saw in a chunk: its last offending minute and
-- how many offending minutes.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_touch(p_alert_id bigint, p_last_seen timestamptz, p_occurrences integer)
RETURNS void
LANGUAGE sql
SET search_path = pggit, pg_catalog
AS $$
    UPDATE pggit.performance_alerts a
    SET last_seen_at = greatest(a.last_seen_at, p_last_seen),
        occurrence_count = a.occurrence_count + p_occurrences
    WHERE a.alert_id = p_alert_id AND p_occurrences > 0;
$$;
-- +goose StatementEnd

-- DEGRADATION facts of (operation, scope) for a change at p_change_point,
-- judged at p_at: the histograms before (2 hours, or 6 when they hold fewer
-- than 20 samples) and after, their p50 and p99, the Mann-Whitney z of after
-- vs before, and the ratio that sets the severity: the median after the
-- change against the smaller of the reference's expected median for the same
-- hours of the day (so a daily swing does not count) and the median of the 2
-- hours before, less half its standard error (the CUSUM fires on the samples
-- that happened to be high). Under a shift of log latency it is the p99 ratio
-- too, and far less noisy than a p99 of a short window; the measured p50 and
-- p99 ratios are in the facts as well.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_degradation_facts(
    p_operation_type text,
    p_scope          text,
    p_change_point   timestamptz,
    p_at             timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_before pggit.performance_histograms;
    v_after  pggit.performance_histograms;
    v_ref    pggit.detection_references;
    v_qb     double precision[];
    v_qa     double precision[];
    v_z      double precision;
    v_e      double precision;
    v_ratio  double precision;
BEGIN
    SELECT m.* INTO v_after FROM pggit.merge_histograms(p_operation_type, p_scope, p_change_point, p_at) m;
    SELECT m.* INTO v_before
    FROM pggit.merge_histograms(p_operation_type, p_scope, p_change_point - interval '2 hours', p_change_point) m;
    IF coalesce(v_before.sample_count, 0) < 20 THEN
        SELECT m.* INTO v_before
        FROM pggit.merge_histograms(p_operation_type, p_scope, p_change_point - interval '6 hours', p_change_point) m;
    END IF;
    SELECT r.* INTO v_ref FROM pggit.detection_references r
    WHERE r.operation_type = p_operation_type AND r.scope = p_scope;
    IF v_after.sample_count IS NULL OR v_before.sample_count IS NULL OR v_ref.operation_type IS NULL THEN
        RETURN NULL;
    END IF;
    v_qb := pggit.histogram_quantiles(v_before.bins, v_before.counts, v_before.min_us, v_before.max_us, ARRAY[0.5, 0.99]);
    v_qa := pggit.histogram_quantiles(v_after.bins, v_after.counts, v_after.min_us, v_after.max_us, ARRAY[0.5, 0.99]);
    v_z := pggit.histogram_mann_whitney_z(v_after.bins, v_after.counts, v_before.bins, v_before.counts);
    SELECT avg(v_ref.hod_level[extract(hour FROM g AT TIME ZONE 'UTC')::integer + 1]) INTO v_e
    FROM generate_series(pggit.utc_hour(p_change_point), p_at - interval '1 minute', interval '1 hour') g;
    -- Both the reference for those hours and the 2 hours just before must
    -- agree: the smaller of the two.
    v_ratio := exp(least(ln(v_qa[1]) - v_e, ln(v_qa[1] / v_qb[1]))
                   - 0.5 * 1.2533 * v_ref.scale / sqrt(v_after.sample_count));
    RETURN jsonb_build_object(
        'change_point', p_change_point,
        'samples_before', v_before.sample_count,
        'samples_after', v_after.sample_count,
        'p50_before_ms', round((v_qb[1] / 1000.0)::numeric, 3),
        'p50_after_ms', round((v_qa[1] / 1000.0)::numeric, 3),
        'p99_before_ms', round((v_qb[2] / 1000.0)::numeric, 3),
        'p99_after_ms', round((v_qa[2] / 1000.0)::numeric, 3),
        'p50_ratio', round((v_qa[1] / v_qb[1])::numeric, 3),
        'p99_ratio', round((v_qa[2] / v_qb[2])::numeric, 3),
        'expected_p50_ms', round((exp(v_e) / 1000.0)::numeric, 3),
        'ratio', round(v_ratio::numeric, 3),
        'mann_whitney_z', round(v_z::numeric, 2),
        'p99_after_us', v_qa[2]);
END;
$$;
-- +goose StatementEnd

-- The detectors, minute by minute, for one (operation, scope) over
-- [p_from, p_to), from its state: the sequential part of detection, run for the
-- operations that may open, change or resolve an alert in the chunk (see
-- pggit.detection_process). Returns the alerts it opened, changed or resolved.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_process_operation(
    p_operation_type text,
    p_scope          text,
    p_from           timestamptz,
    p_to             timestamptz,
    p_alpha          double precision)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    t         pggit.performance_operation_types;
    r         pggit.detection_references;
    s         pggit.detection_state;
    v_rec     record;
    v_end     timestamptz;
    v_h       bigint;
    v_resolve interval;
    v_changed bigint[] := '{}'::bigint[];
    v_id      bigint;
    v_facts   jsonb;
    v_ratio   double precision;
    v_sev     text;
    v_p99     double precision;
    v_base    double precision;
    v_first   timestamptz;
    v_hits_w  integer;
    v_hits_c  integer;
    -- last offending minute and offending minutes in this chunk, per open alert
    v_deg_last timestamptz; v_deg_occ integer := 0; v_deg_sev text;
    v_thr_last timestamptz; v_thr_occ integer := 0; v_thr_sev text;
    v_ano_last timestamptz; v_ano_occ integer := 0; v_ano_sev text;
BEGIN
    SELECT o.* INTO t FROM pggit.performance_operation_types o WHERE o.operation_type = p_operation_type;
    SELECT x.* INTO r FROM pggit.detection_references x
    WHERE x.operation_type = p_operation_type AND x.scope = p_scope;
    INSERT INTO pggit.detection_state (operation_type, scope) VALUES (p_operation_type, p_scope)
    ON CONFLICT (operation_type, scope) DO NOTHING;
    SELECT x.* INTO s FROM pggit.detection_state x
    WHERE x.operation_type = p_operation_type AND x.scope = p_scope FOR UPDATE;
    v_h := round(t.degradation_threshold * 1e6)::bigint;
    v_resolve := make_interval(mins => t.resolve_after_minutes);

    -- An operator may have resolved (or accepted) an alert we track.
    SELECT a.severity INTO v_deg_sev FROM pggit.performance_alerts a
    WHERE a.alert_id = s.degradation_alert_id AND a.resolved_at IS NULL;
    IF s.degradation_alert_id IS NOT NULL AND v_deg_sev IS NULL THEN
        s.degradation_alert_id := NULL; s.cusum := 0; s.cusum_since := p_from;
        s.recovery_cusum := 0; s.recovery_since := NULL; s.shift := NULL; s.mwu_tested_at := NULL;
    END IF;
    SELECT a.severity INTO v_thr_sev FROM pggit.performance_alerts a
    WHERE a.alert_id = s.threshold_alert_id AND a.resolved_at IS NULL;
    IF v_thr_sev IS NULL THEN
        s.threshold_alert_id := NULL;
    END IF;
    SELECT a.severity INTO v_ano_sev FROM pggit.performance_alerts a
    WHERE a.alert_id = s.anomaly_alert_id AND a.resolved_at IS NULL;
    IF v_ano_sev IS NULL THEN
        s.anomaly_alert_id := NULL;
    END IF;

    FOR v_rec IN
        SELECT g.minute, x.sample_count AS n, x.resid_sum, x.cusum_inc,
               x.window_start, x.window_count, x.warn_hit, x.crit_hit, x.point_hit,
               k.block_end, k.block_minutes, k.sample_count AS block_n, k.score, k.z50, k.z90,
               k.p50_us, k.p90_us, k.expected_us
        FROM generate_series(p_from, p_to - interval '1 minute', interval '1 minute') AS g(minute)
        LEFT JOIN pggit.detection_series(p_from, p_to, p_operation_type, p_scope, p_alpha) x
               ON x.minute = g.minute
        LEFT JOIN pggit.detection_blocks k
               ON k.operation_type = p_operation_type AND k.scope = p_scope
              AND k.block_end = g.minute + interval '1 minute'
        ORDER BY g.minute
    LOOP
        v_end := v_rec.minute + interval '1 minute';

        ---------------------------------------------------------------- DEGRADATION
        IF s.degradation_alert_id IS NOT NULL THEN
            -- Recovery: a CUSUM for "back to the reference" against "still
            -- shifted by s.shift", in the same units.
            IF v_rec.resid_sum IS NOT NULL AND r.operation_type IS NOT NULL THEN
                s.recovery_cusum := greatest(0, s.recovery_cusum
                    + round(1e6 * s.shift * (v_rec.n * s.shift / 2 - v_rec.resid_sum))::bigint);
                IF s.recovery_cusum = 0 THEN
                    s.recovery_since := v_end;
                END IF;
                IF v_rec.resid_sum >= v_rec.n * s.shift / 2 THEN
                    v_deg_last := v_end; v_deg_occ := v_deg_occ + 1;
                END IF;
            END IF;
            -- Half the opening threshold: recovering from a confirmed shift
            -- needs less evidence than claiming one.
            IF s.recovery_cusum >= v_h / 2 AND v_end - s.recovery_since >= v_resolve THEN
                PERFORM pggit.detection_touch(s.degradation_alert_id, v_deg_last, v_deg_occ);
                PERFORM pggit.detection_resolve(s.degradation_alert_id, v_end,
                    format('healthy since %s (recovery CUSUM)', s.recovery_since));
                v_changed := v_changed || s.degradation_alert_id;
                s.degradation_alert_id := NULL; s.cusum := 0; s.cusum_since := v_end;
                s.recovery_cusum := 0; s.recovery_since := NULL; s.shift := NULL; s.mwu_tested_at := NULL;
                v_deg_occ := 0; v_deg_last := NULL;
            ELSIF v_deg_sev <> 'CRITICAL' AND extract(epoch FROM v_end)::bigint % 900 = 0 THEN
                -- Every 15 minutes the severity is judged again on more data.
                SELECT a.first_seen_at INTO v_first FROM pggit.performance_alerts a
                WHERE a.alert_id = s.degradation_alert_id;
                v_facts := pggit.detection_degradation_facts(p_operation_type, p_scope, v_first, v_end);
                IF v_facts IS NOT NULL AND (v_facts ->> 'ratio')::double precision >= t.degradation_critical_ratio THEN
                    IF pggit.detection_escalate(s.degradation_alert_id, 'CRITICAL', (v_facts ->> 'p99_after_us')::double precision,
                           v_facts - 'p99_after_us' || jsonb_build_object('message', format(
                               'latency up %s%% since %s: p50 %s -> %s ms, p99 %s -> %s ms',
                               round(((v_facts ->> 'ratio')::numeric - 1) * 100), to_char(v_first AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                               v_facts ->> 'p50_before_ms', v_facts ->> 'p50_after_ms',
                               v_facts ->> 'p99_before_ms', v_facts ->> 'p99_after_ms'))) THEN
                        v_changed := v_changed || s.degradation_alert_id;
                        v_deg_sev := 'CRITICAL';
                    END IF;
                END IF;
            END IF;
        ELSIF r.operation_type IS NOT NULL THEN
            IF v_rec.cusum_inc IS NOT NULL THEN
                s.cusum_since := coalesce(s.cusum_since, v_rec.minute);
                s.cusum := greatest(0, s.cusum + v_rec.cusum_inc);
                IF s.cusum = 0 THEN
                    s.cusum_since := v_end;
                END IF;
            END IF;
            IF s.cusum >= v_h AND (s.mwu_tested_at IS NULL OR v_end >= s.mwu_tested_at + interval '5 minutes') THEN
                -- Locate the change point in the CUSUM's excursion (it starts
                -- at the minute after its last zero, early when noise ran up
                -- before the change): the minute from which the residuals
                -- after it are the most significant shift. Confirm by a rank
                -- test of after against before.
                s.mwu_tested_at := v_end;
                SELECT x.minute INTO v_first
                FROM (
                    SELECT d.minute, sum(d.resid_sum) OVER w AS rs, sum(d.sample_count) OVER w AS n
                    FROM pggit.detection_series(s.cusum_since, v_end, p_operation_type, p_scope, p_alpha) d
                    WHERE d.resid_sum IS NOT NULL
                    WINDOW w AS (ORDER BY d.minute DESC ROWS UNBOUNDED PRECEDING)
                ) x
                ORDER BY x.rs / sqrt(x.n) DESC, x.minute
                LIMIT 1;
                s.cusum_since := coalesce(v_first, s.cusum_since);
                v_facts := pggit.detection_degradation_facts(p_operation_type, p_scope, s.cusum_since, v_end);
                -- A shift the rank test confirms (p < 0.001) and at least
                -- half the one looked for (in log terms): smaller ones are
                -- not worth an alert.
                IF v_facts IS NOT NULL AND (v_facts ->> 'mann_whitney_z')::double precision >= 3.09
                   AND (v_facts ->> 'ratio')::double precision >= sqrt(t.degradation_warning_ratio) THEN
                    v_ratio := (v_facts ->> 'ratio')::double precision;
                    v_sev := CASE WHEN v_ratio >= t.degradation_critical_ratio THEN 'CRITICAL' ELSE 'WARNING' END;
                    v_id := pggit.detection_raise(p_operation_type, p_scope, 'DEGRADATION', v_sev, s.cusum_since, v_end,
                        (v_facts ->> 'p99_after_us')::double precision,
                        v_facts - 'p99_after_us' || jsonb_build_object(
                            'cusum', round(s.cusum / 1e6, 2),
                            'message', format('latency up %s%% since %s: p50 %s -> %s ms, p99 %s -> %s ms',
                                round((v_ratio::numeric - 1) * 100), to_char(s.cusum_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                                v_facts ->> 'p50_before_ms', v_facts ->> 'p50_after_ms',
                                v_facts ->> 'p99_before_ms', v_facts ->> 'p99_after_ms')));
                    v_changed := v_changed || v_id;
                    s.degradation_alert_id := v_id;
                    -- The recovery test is against the shift seen, at least the
                    -- one the CUSUM looks for.
                    s.shift := greatest(ln(t.degradation_warning_ratio),
                                        ln((v_facts ->> 'p50_after_ms')::double precision
                                           / (v_facts ->> 'p50_before_ms')::double precision)) / r.scale;
                    s.recovery_cusum := 0; s.recovery_since := v_end;
                    v_deg_sev := v_sev; v_deg_last := v_end; v_deg_occ := 0;
                END IF;
            END IF;
        END IF;

        ---------------------------------------------------------------- THRESHOLD_EXCEEDED
        IF s.threshold_alert_id IS NOT NULL THEN
            IF v_rec.point_hit THEN
                s.threshold_last_hit := v_end; v_thr_last := v_end; v_thr_occ := v_thr_occ + 1;
                IF v_rec.crit_hit AND v_thr_sev <> 'CRITICAL' THEN
                    v_p99 := (pggit.histogram_window_quantiles(p_operation_type, p_scope, v_rec.window_start, v_end, ARRAY[0.99]))[1];
                    IF pggit.detection_escalate(s.threshold_alert_id, 'CRITICAL', v_p99,
                           jsonb_build_object('window_start', v_rec.window_start, 'window_samples', v_rec.window_count,
                                              'window_p99_ms', round((v_p99 / 1000.0)::numeric, 3))) THEN
                        v_changed := v_changed || s.threshold_alert_id;
                    END IF;
                    v_thr_sev := 'CRITICAL';
                END IF;
            ELSIF v_end - s.threshold_last_hit >= v_resolve THEN
                PERFORM pggit.detection_touch(s.threshold_alert_id, v_thr_last, v_thr_occ);
                PERFORM pggit.detection_resolve(s.threshold_alert_id, v_end,
                    format('window p99 under the threshold since %s', s.threshold_last_hit));
                v_changed := v_changed || s.threshold_alert_id;
                s.threshold_alert_id := NULL; v_thr_occ := 0; v_thr_last := NULL;
            END IF;
        ELSIF v_rec.warn_hit OR v_rec.crit_hit THEN
            v_p99 := (pggit.histogram_window_quantiles(p_operation_type, p_scope, v_rec.window_start, v_end, ARRAY[0.99]))[1];
            SELECT b.p99_microseconds INTO v_base FROM pggit.performance_baselines b
            WHERE b.operation_type = p_operation_type AND b.scope = p_scope AND b.is_active;
            v_sev := CASE WHEN v_rec.crit_hit THEN 'CRITICAL' ELSE 'WARNING' END;
            v_id := pggit.detection_raise(p_operation_type, p_scope, 'THRESHOLD_EXCEEDED', v_sev, v_rec.window_start, v_end,
                v_p99, jsonb_build_object(
                    'window_start', v_rec.window_start,
                    'window_minutes', round(extract(epoch FROM v_end - v_rec.window_start) / 60),
                    'window_samples', v_rec.window_count,
                    'window_p99_ms', round((v_p99 / 1000.0)::numeric, 3),
                    'baseline_p99_ms', round((v_base / 1000.0)::numeric, 3),
                    'threshold_multiplier', t.alert_threshold_multiplier,
                    'critical_multiplier', t.critical_multiplier,
                    'message', format('p99 %s ms over %s min (%s samples), %sx the baseline p99 of %s ms, since %s',
                        round((v_p99 / 1000.0)::numeric, 2), round(extract(epoch FROM v_end - v_rec.window_start) / 60),
                        v_rec.window_count, round((v_p99 / v_base)::numeric, 2), round((v_base / 1000.0)::numeric, 2),
                        to_char(v_rec.window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'))));
            v_changed := v_changed || v_id;
            s.threshold_alert_id := v_id; s.threshold_last_hit := v_end;
            v_thr_sev := v_sev; v_thr_last := v_end; v_thr_occ := 0;
        END IF;

        ---------------------------------------------------------------- ANOMALY
        -- Every end of an ANOMALY window counts, judged or not: a window that
        -- did not pass the pre-screen is not anomalous.
        IF r.operation_type IS NOT NULL AND extract(epoch FROM v_end)::bigint % (60 * r.block_minutes) = 0 THEN
            -- z says how sure, not how much: a window counts towards CRITICAL
            -- only when it is also degradation_critical_ratio over its usual
            -- p50 or p90; otherwise its score stays under the critical z.
            s.anomaly_scores := s.anomaly_scores || CASE
                WHEN v_rec.score IS NULL THEN NULL
                WHEN greatest(v_rec.p50_us / v_rec.expected_us, v_rec.p90_us / (v_rec.expected_us * exp(r.d90)))
                     >= t.degradation_critical_ratio THEN v_rec.score
                ELSE least(v_rec.score, t.anomaly_critical_z - 1e-6) END;
            s.anomaly_ends   := s.anomaly_ends || v_end;
            IF cardinality(s.anomaly_scores) > t.anomaly_confirm_n THEN
                s.anomaly_scores := s.anomaly_scores[cardinality(s.anomaly_scores) - t.anomaly_confirm_n + 1 :];
                s.anomaly_ends   := s.anomaly_ends[cardinality(s.anomaly_ends) - t.anomaly_confirm_n + 1 :];
            END IF;
            SELECT count(*) FILTER (WHERE z >= t.anomaly_warning_z), count(*) FILTER (WHERE z >= t.anomaly_critical_z)
            INTO v_hits_w, v_hits_c
            FROM unnest(s.anomaly_scores) AS u(z);
            IF s.anomaly_alert_id IS NOT NULL THEN
                -- Still anomalous: another window at the warning level.
                IF v_rec.score >= t.anomaly_warning_z THEN
                    s.anomaly_last_hit := v_end; v_ano_last := v_end; v_ano_occ := v_ano_occ + 1;
                    IF v_hits_c >= t.anomaly_confirm_k AND v_ano_sev <> 'CRITICAL' THEN
                        IF pggit.detection_escalate(s.anomaly_alert_id, 'CRITICAL', v_rec.p90_us,
                               jsonb_build_object('z', round(v_rec.score::numeric, 2))) THEN
                            v_changed := v_changed || s.anomaly_alert_id;
                        END IF;
                        v_ano_sev := 'CRITICAL';
                    END IF;
                END IF;
            ELSIF v_hits_w >= t.anomaly_confirm_k THEN
                SELECT min(e) - make_interval(mins => r.block_minutes) INTO v_first
                FROM unnest(s.anomaly_scores, s.anomaly_ends) AS u(z, e)
                WHERE z >= t.anomaly_warning_z;
                v_sev := CASE WHEN v_hits_c >= t.anomaly_confirm_k THEN 'CRITICAL' ELSE 'WARNING' END;
                v_id := pggit.detection_raise(p_operation_type, p_scope, 'ANOMALY', v_sev, v_first, v_end, v_rec.p90_us,
                    jsonb_build_object(
                        'z', round(v_rec.score::numeric, 2), 'z50', round(v_rec.z50::numeric, 2),
                        'z90', round(v_rec.z90::numeric, 2),
                        'confirmed', format('%s of the last %s windows', v_hits_w, cardinality(s.anomaly_scores)),
                        'window_minutes', v_rec.block_minutes, 'window_samples', v_rec.block_n,
                        'p50_ms', round((v_rec.p50_us / 1000.0)::numeric, 3),
                        'p90_ms', round((v_rec.p90_us / 1000.0)::numeric, 3),
                        'expected_p50_ms', round((v_rec.expected_us / 1000.0)::numeric, 3),
                        'message', format('p50 %s ms, p90 %s ms over %s min: %sx its usual p50 of %s ms for this hour (robust z %s, %s of the last %s windows), since %s',
                            round((v_rec.p50_us / 1000.0)::numeric, 2), round((v_rec.p90_us / 1000.0)::numeric, 2),
                            v_rec.block_minutes, round((v_rec.p50_us / v_rec.expected_us)::numeric, 2),
                            round((v_rec.expected_us / 1000.0)::numeric, 2), round(v_rec.score::numeric, 1),
                            v_hits_w, cardinality(s.anomaly_scores),
                            to_char(v_first AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'))));
                v_changed := v_changed || v_id;
                s.anomaly_alert_id := v_id; s.anomaly_last_hit := v_end;
                v_ano_sev := v_sev; v_ano_last := v_end; v_ano_occ := 0;
            END IF;
        END IF;
        IF s.anomaly_alert_id IS NOT NULL AND v_end - s.anomaly_last_hit >= v_resolve THEN
            PERFORM pggit.detection_touch(s.anomaly_alert_id, v_ano_last, v_ano_occ);
            PERFORM pggit.detection_resolve(s.anomaly_alert_id, v_end,
                format('no anomalous window since %s', s.anomaly_last_hit));
            v_changed := v_changed || s.anomaly_alert_id;
            s.anomaly_alert_id := NULL; v_ano_occ := 0; v_ano_last := NULL;
        END IF;
    END LOOP;

    PERFORM pggit.detection_touch(s.degradation_alert_id, v_deg_last, v_deg_occ);
    PERFORM pggit.detection_touch(s.threshold_alert_id, v_thr_last, v_thr_occ);
    PERFORM pggit.detection_touch(s.anomaly_alert_id, v_ano_last, v_ano_occ);
    s.updated_through := p_to;
    UPDATE pggit.detection_state x SET
        cusum = s.cusum, cusum_since = s.cusum_since, mwu_tested_at = s.mwu_tested_at,
        degradation_alert_id = s.degradation_alert_id, recovery_cusum = s.recovery_cusum,
        recovery_since = s.recovery_since, shift = s.shift,
        threshold_alert_id = s.threshold_alert_id, threshold_last_hit = s.threshold_last_hit,
        anomaly_alert_id = s.anomaly_alert_id, anomaly_last_hit = s.anomaly_last_hit,
        anomaly_scores = s.anomaly_scores, anomaly_ends = s.anomaly_ends, updated_through = s.updated_through
    WHERE x.operation_type = p_operation_type AND x.scope = p_scope;
    RETURN v_changed;
END;
$$;
-- +goose StatementEnd

-- CORRELATION at sample time p_at (a 5-minute mark): operations with open
-- findings (THRESHOLD_EXCEEDED, ANOMALY, DEGRADATION alerts detected by then)
-- whose change points lie within two 5-minute windows of each other and whose
-- de-seasonalised 5-minute series (mean standardized residual against the
-- reference, from 150 minutes before the earlier change point) correlate with
-- Pearson r >= detection_correlation_r over >= 30 shared windows are grouped;
-- each group of two or more is one CORRELATION alert, named after its first
-- member (earliest change point) and listing all of them. A pair is tested
-- while one of its findings is younger than 3 hours; members stay members
-- while their findings are open; a group whose members recovered is resolved.
-- Returns the alerts opened, changed or resolved.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_correlate(p_at timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_rmin    double precision := pggit.detection_setting('detection_correlation_r', 0.75);
    v_ops     text[];
    v_scopes  text[];
    v_cps     timestamptz[];
    v_sevs    text[];
    v_ids     bigint[];
    v_parent  integer[];
    v_rootof  integer[];
    v_pi      integer[] := '{}'::integer[];
    v_pr      double precision[] := '{}'::double precision[];
    v_n       integer;
    v_a       integer;
    v_b       integer;
    v_pair    record;
    v_old     record;
    v_members jsonb;
    v_sev     text;
    v_rlow    double precision;
    v_alert   bigint;
    v_msg     text;
    v_kept    bigint[] := '{}'::bigint[];
    v_changed bigint[] := '{}'::bigint[];
BEGIN
    SELECT array_agg(x.operation_type ORDER BY x.cp, x.operation_type, x.scope),
           array_agg(x.scope ORDER BY x.cp, x.operation_type, x.scope),
           array_agg(x.cp ORDER BY x.cp, x.operation_type, x.scope),
           array_agg(x.severity ORDER BY x.cp, x.operation_type, x.scope),
           array_agg(x.alert_id ORDER BY x.cp, x.operation_type, x.scope)
    INTO v_ops, v_scopes, v_cps, v_sevs, v_ids
    FROM (
        SELECT DISTINCT ON (a.operation_type, a.scope)
               a.operation_type, a.scope, a.first_seen_at AS cp, a.severity, a.alert_id
        FROM pggit.performance_alerts a
        WHERE a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION')
          AND (a.resolved_at IS NULL OR a.resolved_at > p_at)
          AND a.detected_at <= p_at
        ORDER BY a.operation_type, a.scope, a.first_seen_at, a.alert_id
    ) x;
    v_n := coalesce(cardinality(v_ops), 0);
    IF v_n < 2 AND NOT EXISTS (SELECT 1 FROM pggit.performance_alerts c
                               WHERE c.alert_type = 'CORRELATION' AND c.resolved_at IS NULL) THEN
        RETURN v_changed;
    END IF;
    v_parent := ARRAY(SELECT g FROM generate_series(1, v_n) g);

    -- Members of open groups stay together while their findings are open.
    FOR v_old IN
        SELECT c.alert_id, array_agg(f.i ORDER BY f.i) AS idx, min((c.details ->> 'min_r')::double precision) AS r
        FROM pggit.performance_alerts c
        CROSS JOIN LATERAL jsonb_array_elements(c.details -> 'members') m
        JOIN unnest(v_ops, v_scopes) WITH ORDINALITY AS f(op, scope, i)
          ON f.op = m ->> 'operation_type' AND f.scope = m ->> 'scope'
        WHERE c.alert_type = 'CORRELATION' AND c.resolved_at IS NULL
        GROUP BY c.alert_id
    LOOP
        FOR v_i IN 2 .. cardinality(v_old.idx) LOOP
            v_a := v_old.idx[1];
            WHILE v_parent[v_a] <> v_a LOOP v_a := v_parent[v_a]; END LOOP;
            v_b := v_old.idx[v_i];
            WHILE v_parent[v_b] <> v_b LOOP v_b := v_parent[v_b]; END LOOP;
            v_parent[greatest(v_a, v_b)] := least(v_a, v_b);
            v_pi := v_pi || v_old.idx[1];
            v_pr := v_pr || v_old.r;
        END LOOP;
    END LOOP;

    -- New pairs: change points within two windows, one finding younger than
    -- 3 hours; each operation's series is computed once.
    FOR v_pair IN
        WITH f AS (
            SELECT f.*, a.detected_at
            FROM unnest(v_ops, v_scopes, v_cps, v_ids) WITH ORDINALITY AS f(op, scope, cp, id, i)
            JOIN pggit.performance_alerts a ON a.alert_id = f.id
        ),
        pr AS (
            SELECT x.i AS a, y.i AS b, least(x.cp, y.cp) AS cp
            FROM f x JOIN f y ON y.i > x.i AND y.cp - x.cp <= interval '10 minutes'
            WHERE greatest(x.detected_at, y.detected_at) > p_at - interval '3 hours'
        ),
        need AS (
            SELECT f.i, f.op, f.scope, min(pr.cp) AS cp
            FROM f JOIN pr ON f.i IN (pr.a, pr.b)
            GROUP BY f.i, f.op, f.scope
        ),
        ser AS (
            SELECT n.i, floor(extract(epoch FROM d.minute) / 300) AS w,
                   sum(d.resid_sum) / sum(d.sample_count) AS x
            FROM need n
            CROSS JOIN LATERAL pggit.detection_series(n.cp - interval '150 minutes', p_at, n.op, n.scope, 0.01) d
            WHERE d.resid_sum IS NOT NULL
            GROUP BY 1, 2
        )
        SELECT pr.a, pr.b, corr(sa.x, sb.x) AS r, count(*) AS windows
        FROM pr
        JOIN ser sa ON sa.i = pr.a AND sa.w >= floor(extract(epoch FROM pr.cp - interval '150 minutes') / 300)
        JOIN ser sb ON sb.i = pr.b AND sb.w = sa.w
        GROUP BY pr.a, pr.b
        ORDER BY pr.a, pr.b
    LOOP
        CONTINUE WHEN v_pair.windows < 30 OR v_pair.r IS NULL OR v_pair.r < v_rmin;
        v_a := v_pair.a;
        WHILE v_parent[v_a] <> v_a LOOP v_a := v_parent[v_a]; END LOOP;
        v_b := v_pair.b;
        WHILE v_parent[v_b] <> v_b LOOP v_b := v_parent[v_b]; END LOOP;
        v_parent[greatest(v_a, v_b)] := least(v_a, v_b);
        v_pi := v_pi || v_pair.a;
        v_pr := v_pr || v_pair.r;
    END LOOP;

    v_rootof := v_parent;
    FOR v_i IN 1 .. v_n LOOP
        v_a := v_i;
        WHILE v_parent[v_a] <> v_a LOOP v_a := v_parent[v_a]; END LOOP;
        v_rootof[v_i] := v_a;
    END LOOP;
    FOR v_root IN 1 .. v_n LOOP
        CONTINUE WHEN v_rootof[v_root] <> v_root;
        v_members := '[]'; v_sev := 'INFO';
        FOR v_i IN 1 .. v_n LOOP
            CONTINUE WHEN v_rootof[v_i] <> v_root;
            v_members := v_members || jsonb_build_object('operation_type', v_ops[v_i], 'scope', v_scopes[v_i],
                                                         'alert_id', v_ids[v_i], 'change_point', v_cps[v_i],
                                                         'severity', v_sevs[v_i]);
            IF pggit.severity_rank(v_sevs[v_i]) > pggit.severity_rank(v_sev) THEN
                v_sev := v_sevs[v_i];
            END IF;
        END LOOP;
        CONTINUE WHEN jsonb_array_length(v_members) < 2;
        SELECT min(p.r) INTO v_rlow FROM unnest(v_pi, v_pr) AS p(i, r) WHERE v_rootof[p.i] = v_root;
        v_msg := format('%s operations regressed together since %s: %s (Pearson r >= %s)',
            jsonb_array_length(v_members), to_char(v_cps[v_root] AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
            (SELECT string_agg(m ->> 'operation_type' || CASE WHEN m ->> 'scope' = '' THEN '' ELSE ' [' || (m ->> 'scope') || ']' END, ', ')
             FROM jsonb_array_elements(v_members) m),
            round(v_rlow::numeric, 2));
        -- The open CORRELATION alert that shares a member, if any.
        SELECT c.alert_id INTO v_alert
        FROM pggit.performance_alerts c
        WHERE c.alert_type = 'CORRELATION' AND c.resolved_at IS NULL AND NOT (c.alert_id = ANY (v_kept))
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(c.details -> 'members') m, jsonb_array_elements(v_members) n
                      WHERE m ->> 'operation_type' = n ->> 'operation_type' AND m ->> 'scope' = n ->> 'scope')
        ORDER BY c.alert_id
        LIMIT 1;
        IF v_alert IS NULL THEN
            v_alert := pggit.detection_raise(v_ops[v_root], v_scopes[v_root], 'CORRELATION', v_sev, v_cps[v_root], p_at,
                NULL, jsonb_build_object('members', v_members, 'min_r', round(v_rlow::numeric, 3), 'message', v_msg));
            v_changed := v_changed || v_alert;
        ELSE
            UPDATE pggit.performance_alerts c
            SET details = c.details || jsonb_build_object('members', v_members, 'min_r', round(v_rlow::numeric, 3),
                                                          'message', v_msg),
                last_seen_at = greatest(c.last_seen_at, p_at),
                occurrence_count = c.occurrence_count + 1,
                severity = CASE WHEN pggit.severity_rank(v_sev) > pggit.severity_rank(c.severity) THEN v_sev ELSE c.severity END
            WHERE c.alert_id = v_alert
              AND (c.details -> 'members' IS DISTINCT FROM v_members
                   OR pggit.severity_rank(v_sev) > pggit.severity_rank(c.severity));
            IF FOUND THEN
                v_changed := v_changed || v_alert;
            END IF;
        END IF;
        v_kept := v_kept || v_alert;
    END LOOP;

    -- Groups that fell apart (members recovered) are resolved.
    FOR v_old IN
        SELECT c.alert_id FROM pggit.performance_alerts c
        WHERE c.alert_type = 'CORRELATION' AND c.resolved_at IS NULL AND NOT (c.alert_id = ANY (v_kept))
        ORDER BY c.alert_id
    LOOP
        PERFORM pggit.detection_resolve(v_old.alert_id, p_at, 'fewer than two correlated members are still open');
        v_changed := v_changed || v_old.alert_id;
    END LOOP;
    RETURN v_changed;
END;
$$;
-- +goose StatementEnd

-- Evaluates the minute buckets in [p_from, p_to), within one hour, in one
-- statement over the minute series (pggit.detection_series): the ANOMALY
-- windows that end in it (their robust mean is a pre-screen; only windows
-- whose mean is at least 1.5 standard errors high get their quantiles judged
-- and a row in pggit.detection_blocks), and which operations may open, change
-- or resolve an alert. The others are advanced here (the DEGRADATION CUSUM in
-- closed form: S_i = P_i - least(-S_0, min_{j<=i} P_j) over the partial sums
-- P of the increments); those that may are run minute by minute
-- (pggit.detection_process_operation). CORRELATION runs at the 5-minute
-- marks. Returns the alerts opened, changed or resolved.
-- +goose StatementBegin
CREATE FUNCTION pggit.detection_process(p_from timestamptz, p_to timestamptz, p_operation text)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_alpha   double precision := 1 - pggit.detection_setting('detection_threshold_confidence', 0.999);
    v_changed bigint[] := '{}'::bigint[];
    v_ops     text[];
    v_scopes  text[];
    v_mark    timestamptz;
BEGIN
    WITH ser AS MATERIALIZED (
        SELECT * FROM pggit.detection_series(p_from, p_to, p_operation, NULL, v_alpha)
    ),
    c1 AS (
        SELECT x.operation_type, x.scope, x.minute, coalesce(s.cusum, 0) AS s0,
               sum(x.cusum_inc) OVER w AS p
        FROM ser x
        LEFT JOIN pggit.detection_state s ON s.operation_type = x.operation_type AND s.scope = x.scope
        WHERE x.minute >= p_from AND x.cusum_inc IS NOT NULL AND s.degradation_alert_id IS NULL
        WINDOW w AS (PARTITION BY x.operation_type, x.scope ORDER BY x.minute ROWS UNBOUNDED PRECEDING)
    ),
    c2 AS (
        SELECT c1.*, min(c1.p) OVER w AS runmin
        FROM c1
        WINDOW w AS (PARTITION BY c1.operation_type, c1.scope ORDER BY c1.minute ROWS UNBOUNDED PRECEDING)
    ),
    per_op AS (
        SELECT c2.operation_type, c2.scope, min(c2.minute) AS first_minute,
               max(c2.p - least(-c2.s0, c2.runmin)) AS max_s,
               (array_agg(c2.p - least(-c2.s0, c2.runmin) ORDER BY c2.minute DESC))[1] AS last_s,
               max(c2.minute) FILTER (WHERE c2.p <= -c2.s0 AND c2.p = c2.runmin) AS last_reset
        FROM c2
        GROUP BY c2.operation_type, c2.scope
    ),
    ends AS MATERIALIZED (
        SELECT r.operation_type, r.scope, be.block_end, r.block_minutes AS b,
               r.hod_level[extract(hour FROM (be.block_end - make_interval(secs => r.block_minutes * 30))
                                   AT TIME ZONE 'UTC')::integer + 1] AS e,
               r.scale AS s, r.d90, r.tau50, r.tau90, t.min_window_count AS mc, t.anomaly_warning_z AS zw
        FROM pggit.detection_references r
        JOIN pggit.performance_operation_types t ON t.operation_type = r.operation_type AND t.is_tracked
        CROSS JOIN LATERAL generate_series(
            to_timestamp(ceil(extract(epoch FROM p_from + interval '1 minute') / (60 * r.block_minutes))
                         * 60 * r.block_minutes),
            p_to, make_interval(mins => r.block_minutes)) AS be(block_end)
        WHERE p_operation IS NULL OR r.operation_type = p_operation
    ),
    pre AS (
        SELECT en.*
        FROM ends en
        CROSS JOIN LATERAL (
            SELECT sum(h.sample_count) AS n,
                   sum(CASE WHEN ln(h.min_us) >= en.e - 3 * en.s AND ln(h.max_us) <= en.e + 3 * en.s
                            THEN (h.sum_ln - h.sample_count * en.e) / en.s  -- the function's fast path
                            ELSE pggit.histogram_residual_sum(h.bins, h.counts, h.sample_count, h.sum_ln,
                                                              h.min_us, h.max_us, en.e, en.s) END) AS rs
            FROM pggit.performance_histograms h
            WHERE h.operation_type = en.operation_type AND h.scope = en.scope AND h.bucket_seconds = 60
              AND h.bucket_start >= en.block_end - make_interval(mins => en.b) AND h.bucket_start < en.block_end
        ) a
        WHERE a.n >= en.mc AND a.rs / a.n / sqrt((en.tau50 / en.s) ^ 2 + 1.0 / a.n) >= 1.5
    ),
    blk AS (
        INSERT INTO pggit.detection_blocks AS k
            (operation_type, scope, block_end, block_minutes, sample_count, p50_us, p90_us, expected_us, z50, z90, score)
        SELECT z.operation_type, z.scope, z.block_end, z.b, z.n, z.q[1], z.q[2], exp(z.e), z.z50, z.z90,
               greatest(z.z50, z.z90)
        FROM (
            SELECT pr.*, w.n, w.q,
                   (ln(w.q[1]) - pr.e) / sqrt(pr.tau50 ^ 2 + (1.2533 * pr.s) ^ 2 / w.n) AS z50,
                   (ln(w.q[2]) - pr.e - pr.d90) / sqrt(pr.tau90 ^ 2 + (1.7094 * pr.s) ^ 2 / w.n) AS z90
            FROM pre pr
            CROSS JOIN LATERAL (
                SELECT sum(g.cnt)::bigint AS n,
                       pggit.histogram_quantiles(array_agg(g.bin ORDER BY g.bin), array_agg(g.cnt ORDER BY g.bin),
                                                 min(g.mn), max(g.mx), ARRAY[0.5, 0.9]) AS q
                FROM (
                    SELECT u.bin, sum(u.cnt)::bigint AS cnt, min(u.mn) AS mn, max(u.mx) AS mx
                    FROM (SELECT unnest(h.bins) AS bin, unnest(h.counts) AS cnt, h.min_us AS mn, h.max_us AS mx
                          FROM pggit.performance_histograms h
                          WHERE h.operation_type = pr.operation_type AND h.scope = pr.scope AND h.bucket_seconds = 60
                            AND h.bucket_start >= pr.block_end - make_interval(mins => pr.b)
                            AND h.bucket_start < pr.block_end) u
                    GROUP BY u.bin
                ) g
            ) w
        ) z
        ORDER BY 1, 2, 3
        ON CONFLICT (operation_type, scope, block_end) DO UPDATE SET
            block_minutes = EXCLUDED.block_minutes, sample_count = EXCLUDED.sample_count,
            p50_us = EXCLUDED.p50_us, p90_us = EXCLUDED.p90_us, expected_us = EXCLUDED.expected_us,
            z50 = EXCLUDED.z50, z90 = EXCLUDED.z90, score = EXCLUDED.score
        RETURNING k.operation_type, k.scope, k.score
    ),
    active AS (
        SELECT p.operation_type, p.scope
        FROM per_op p
        JOIN pggit.performance_operation_types t ON t.operation_type = p.operation_type
        WHERE p.max_s >= round(t.degradation_threshold * 1e6)
        UNION
        SELECT x.operation_type, x.scope FROM ser x WHERE x.warn_hit OR x.crit_hit
        UNION
        SELECT k.operation_type, k.scope
        FROM blk k
        JOIN pggit.performance_operation_types t ON t.operation_type = k.operation_type
        WHERE k.score >= t.anomaly_warning_z
        UNION
        SELECT s.operation_type, s.scope
        FROM pggit.detection_state s
        JOIN pggit.performance_operation_types t ON t.operation_type = s.operation_type
        WHERE (s.degradation_alert_id IS NOT NULL OR s.threshold_alert_id IS NOT NULL OR s.anomaly_alert_id IS NOT NULL
               OR EXISTS (SELECT 1 FROM unnest(s.anomaly_scores) AS u(z) WHERE u.z >= t.anomaly_warning_z))
          AND (p_operation IS NULL OR s.operation_type = p_operation)
    ),
    advanced AS (
        UPDATE pggit.detection_state s
        SET cusum = p.last_s,
            cusum_since = coalesce(p.last_reset + interval '1 minute', s.cusum_since, p.first_minute),
            updated_through = p_to
        FROM per_op p
        WHERE s.operation_type = p.operation_type AND s.scope = p.scope
          AND NOT EXISTS (SELECT 1 FROM active a WHERE a.operation_type = p.operation_type AND a.scope = p.scope)
        RETURNING 1
    ),
    started AS (
        INSERT INTO pggit.detection_state (operation_type, scope, cusum, cusum_since, updated_through)
        SELECT p.operation_type, p.scope, p.last_s, coalesce(p.last_reset + interval '1 minute', p.first_minute), p_to
        FROM per_op p
        WHERE NOT EXISTS (SELECT 1 FROM active a WHERE a.operation_type = p.operation_type AND a.scope = p.scope)
          AND NOT EXISTS (SELECT 1 FROM pggit.detection_state s
                          WHERE s.operation_type = p.operation_type AND s.scope = p.scope)
        ORDER BY 1, 2
        RETURNING 1
    )
    SELECT array_agg(a.operation_type ORDER BY a.operation_type, a.scope),
           array_agg(a.scope ORDER BY a.operation_type, a.scope)
    INTO v_ops, v_scopes
    FROM active a;

    FOR v_i IN 1 .. coalesce(cardinality(v_ops), 0) LOOP
        v_changed := v_changed || pggit.detection_process_operation(v_ops[v_i], v_scopes[v_i], p_from, p_to, v_alpha);
    END LOOP;

    IF p_operation IS NULL THEN
        FOR v_mark IN
            SELECT g FROM generate_series(
                to_timestamp(ceil(extract(epoch FROM p_from + interval '1 minute') / 300) * 300),
                p_to, interval '5 minutes') g
        LOOP
            v_changed := v_changed || pggit.detection_correlate(v_mark);
        END LOOP;
    END IF;
    RETURN v_changed;
END;
$$;
-- +goose StatementEnd

-- Evaluates every minute bucket that ends at or before p_as_of and was not
-- evaluated yet, from the watermark in pggit.detection_progress, hour by hour
-- (closing each hour first). The first run starts at the oldest bucket within
-- the detection lookback. Serialized by an advisory lock: a concurrent call
-- waits, then finds nothing left to do. p_operation restricts it to one
-- operation (backtests). Returns the alerts opened, changed or resolved.
-- +goose StatementBegin
CREATE FUNCTION pggit.detect(p_as_of timestamptz, p_operation text)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
-- Many short queries: compiling them would cost more than running them.
SET jit = off
AS $$
DECLARE
    v_started  timestamptz := clock_timestamp();
    v_lookback interval := make_interval(days => pggit.detection_setting('detection_lookback_days', 7)::integer);
    v_target   timestamptz;
    v_wm       timestamptz;
    v_from     timestamptz;
    v_end      timestamptz;
    v_changed  bigint[] := '{}'::bigint[];
BEGIN
    IF p_as_of IS NULL OR NOT isfinite(p_as_of) OR p_as_of > clock_timestamp() + interval '7 days' THEN
        RAISE EXCEPTION 'p_as_of must be a time no more than 7 days from now, got %', coalesce(p_as_of::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_as_of';
    END IF;
    v_target := pggit.utc_minute(p_as_of);
    -- Key pair (1885824867 = 'pgm' + 'c', 2): pggit-monitor detection.
    PERFORM pg_advisory_xact_lock(1885824867, 2);
    SELECT p.evaluated_through INTO v_wm FROM pggit.detection_progress p FOR UPDATE;
    IF v_wm IS NULL THEN
        SELECT min(h.bucket_start) INTO v_wm
        FROM pggit.performance_histograms h
        WHERE h.bucket_start >= v_target - v_lookback AND h.bucket_start < v_target;
        IF v_wm IS NULL THEN
            RETURN v_changed; -- nothing recorded yet: start when something is
        END IF;
        v_wm := pggit.utc_minute(v_wm);
        PERFORM pggit.detection_summarize_hours(v_wm - v_lookback, pggit.utc_hour(v_wm), p_operation, false);
        PERFORM pggit.detection_build_references(pggit.utc_hour(v_wm), p_operation, true);
    END IF;
    IF v_wm >= v_target THEN
        RETURN v_changed;
    END IF;

    v_from := v_wm;
    LOOP
        v_end := least(v_target, pggit.utc_hour(v_wm) + interval '1 hour');
        IF v_wm = pggit.utc_hour(v_wm) THEN
            PERFORM pggit.detection_close_hour(v_wm, p_operation);
        END IF;
        v_changed := v_changed || pggit.detection_process(v_wm, v_end, p_operation);
        v_wm := v_end;
        EXIT WHEN v_wm >= v_target;
    END LOOP;
    UPDATE pggit.detection_progress SET evaluated_through = v_target;

    v_changed := ARRAY(SELECT DISTINCT u FROM unnest(v_changed) u ORDER BY u);
    INSERT INTO pggit.detection_runs
        (started_at, finished_at, duration_ms, as_of, evaluated_from, evaluated_to, operations,
         alerts_opened, alerts_changed, alerts_resolved)
    SELECT v_started, clock_timestamp(), extract(epoch FROM clock_timestamp() - v_started) * 1000, p_as_of,
           v_from, v_target,
           (SELECT count(*) FROM pggit.detection_state d WHERE d.updated_through = v_target),
           count(*) FILTER (WHERE a.detected_at > v_from AND a.detected_at <= v_target),
           count(*) FILTER (WHERE NOT (a.detected_at > v_from AND a.detected_at <= v_target)
                              AND NOT coalesce(a.resolved_at > v_from AND a.resolved_at <= v_target, false)),
           count(*) FILTER (WHERE a.resolved_at > v_from AND a.resolved_at <= v_target)
    FROM pggit.performance_alerts a
    WHERE a.alert_id = ANY (v_changed);
    RETURN v_changed;
END;
$$;
-- +goose StatementEnd

-- Runs every detector over the minute buckets that end at or before p_as_of
-- (default: now less detection_settle_seconds) and were not evaluated yet, and
-- returns the alerts it opened, changed or resolved. Idempotent (a second call
-- with the same p_as_of changes nothing), and one late call gives the alerts
-- that calls every minute would have given. Safe from several workers.
-- +goose StatementBegin
CREATE FUNCTION pggit.run_detection(p_as_of timestamptz DEFAULT NULL)
RETURNS SETOF pggit.performance_alerts
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
-- Many short queries: compiling them would cost more than running them.
SET jit = off
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    v_ids := pggit.detect(coalesce(p_as_of,
        clock_timestamp() - make_interval(secs => pggit.detection_setting('detection_settle_seconds', 10))), NULL);
    RETURN QUERY SELECT a.* FROM pggit.performance_alerts a WHERE a.alert_id = ANY (v_ids) ORDER BY a.alert_id;
END;
$$;
-- +goose StatementEnd

-- Replays detection over [p_from, p_to] (at most 31 days) as if it had never
-- run from p_from on (no detector state, references rebuilt from the history
-- before p_from, detector alerts from p_from on forgotten, those open then
-- closed at p_from), calling run_detection every p_step_seconds, and returns
-- the alerts that would have fired, as they stand at p_to. Everything it
-- writes is rolled back before it returns: nothing is left behind, whatever
-- transaction it runs in. Holds the detection lock meanwhile.
-- +goose StatementBegin
CREATE FUNCTION pggit.backtest_detection(
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

-- Accepts the regression of a THRESHOLD_EXCEEDED, ANOMALY or DEGRADATION
-- alert as the operation's new normal: resolves it and the operation's other
-- open alerts of those types (by p_accepted_by, with details.accepted), makes
-- its change point (first_seen_at) the start of the operation's samples for
-- baselines and detection references, and re-baselines from it at once
-- (reason 'accepted', in the baseline history; a level within 5% of the old
-- baseline keeps it). Returns the alert.
-- +goose StatementBegin
CREATE FUNCTION pggit.accept_regression(p_alert_id bigint, p_accepted_by text DEFAULT current_user)
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

-- Alert messages of detectors carry what they measured: how much, since when.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.alert_message_facts(p_alert pggit.performance_alerts)
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
    IF p_alert.details ? 'message' AND p_alert.detected_at IS NOT NULL THEN
        -- Detectors say how much and since when.
        v_summary := format('%s %s: %s: %s', v_state, p_alert.alert_type, v_subject, p_alert.details ->> 'message');
    ELSIF p_alert.actual_duration_microseconds IS NOT NULL AND p_alert.baseline_p99_microseconds IS NOT NULL THEN
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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.alert_message_facts(p_alert pggit.performance_alerts)
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.recalculate_all_baselines_rolling(
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

DROP FUNCTION pggit.accept_regression(bigint, text);
DROP FUNCTION pggit.backtest_detection(timestamptz, timestamptz, text, integer);
DROP FUNCTION pggit.run_detection(timestamptz);
DROP FUNCTION pggit.detect(timestamptz, text);
DROP FUNCTION pggit.detection_process(timestamptz, timestamptz, text);
DROP FUNCTION pggit.detection_correlate(timestamptz);
DROP FUNCTION pggit.detection_process_operation(text, text, timestamptz, timestamptz, double precision);
DROP FUNCTION pggit.detection_degradation_facts(text, text, timestamptz, timestamptz);
DROP FUNCTION pggit.detection_touch(bigint, timestamptz, integer);
DROP FUNCTION pggit.detection_resolve(bigint, timestamptz, text);
DROP FUNCTION pggit.detection_escalate(bigint, text, double precision, jsonb);
DROP FUNCTION pggit.detection_raise(text, text, text, text, timestamptz, timestamptz, double precision, jsonb);
DROP FUNCTION pggit.detection_series(timestamptz, timestamptz, text, text, double precision);
DROP FUNCTION pggit.histogram_count_over(integer[], bigint[], bigint, double precision);
DROP FUNCTION pggit.histogram_residual_sum(integer[], bigint[], bigint, double precision, bigint, bigint, double precision, double precision);
DROP FUNCTION pggit.detection_close_hour(timestamptz, text);
DROP FUNCTION pggit.detection_build_references(timestamptz, text, boolean);
DROP FUNCTION pggit.detection_summarize_hours(timestamptz, timestamptz, text, boolean);
DROP FUNCTION pggit.compute_baseline_stats(text, text, timestamptz, timestamptz, integer);
DROP FUNCTION pggit.baseline_restricted(text, timestamptz);
DROP FUNCTION pggit.histogram_mann_whitney_z(integer[], bigint[], integer[], bigint[]);
DROP FUNCTION pggit.threshold_min_exceedances(bigint, double precision);
DROP FUNCTION pggit.detection_setting(text, double precision);
