-- Baseline recalculation from the histograms (migration 00010) as well as
-- from the samples. pggit.recalculate_all_baselines_rolling gains a last
-- argument, p_method: 'exact' (percentile_cont over every sample of the
-- window, as before), 'histogram' (the window's histograms merged: time
-- depends on operations x buckets, not on samples) or 'auto' (the default:
-- exact while the window holds at most recalc_exact_max_samples samples, a
-- setting of pggit.monitor_settings, and while the window starts after
-- now() - retention_samples_days; histograms otherwise). The run record and
-- each result say which method ran.
--
-- From histograms: count, min and max exact; mean exact up to double
-- rounding; quantiles within 1% of the exact type-7 value (the bins' relative
-- accuracy); stddev from the rows' sums and sums of squares, merged the way
-- Chan et al. combine partial variances. The window is aligned to buckets:
-- it starts at the first whole hour (where rows are compacted into hours) or
-- minute, and ends at the last whole minute; the run records it.
--
-- Merging every minute row of a 7-day window is slow (50 operations x 2,880
-- minutes of the last 48 hours, about 3.5 million bins: 0.75 s, a sixth of
-- the exact pass). pggit.histogram_rollups caches merged hours and days;
-- each run checks them against the base rows (count, min, max per
-- operation-hour: sums, no bins) and rebuilds those that differ, so the
-- cache needs no trigger and is never trusted stale. A window is then a few
-- days, the hours at its ends and the minutes of the current hour. Details
-- and measurements: docs/baselines.md.

-- +goose Up
ALTER TABLE pggit.baseline_recalc_execution
    ADD COLUMN method text NOT NULL DEFAULT 'exact',
    ADD CONSTRAINT baseline_recalc_execution_method_check CHECK (method IN ('exact', 'histogram'));
ALTER TABLE pggit.baseline_recalc_results
    ADD COLUMN method text NOT NULL DEFAULT 'exact',
    ADD CONSTRAINT baseline_recalc_results_method_check CHECK (method IN ('exact', 'histogram'));

-- Merged histograms of whole UTC hours (bucket_seconds 3600) and days
-- (86400): a cache of pggit.recalculate_all_baselines_rolling, checked
-- against pggit.performance_histograms before each use. Not read elsewhere.
CREATE TABLE pggit.histogram_rollups (
    operation_type text             NOT NULL,
    scope          text             NOT NULL,
    bucket_start   timestamptz      NOT NULL,
    bucket_seconds integer          NOT NULL,
    sample_count   bigint           NOT NULL,
    sum_us         double precision NOT NULL,
    sum_sq_us      double precision NOT NULL,
    min_us         bigint           NOT NULL,
    max_us         bigint           NOT NULL,
    bins           integer[]        NOT NULL,
    counts         bigint[]         NOT NULL,
    PRIMARY KEY (bucket_seconds, bucket_start, operation_type, scope),
    CONSTRAINT histogram_rollups_width_check CHECK (bucket_seconds IN (3600, 86400))
);

-- The per-hour check of the rollups reads this index only (no bins).
CREATE INDEX performance_histograms_counts_idx
    ON pggit.performance_histograms (bucket_start) INCLUDE (operation_type, scope, sample_count, min_us, max_us);

-- Raises 22023 unless p_name is a recalculation setting and p_value valid;
-- returns the value. recalc_exact_max_samples: a whole number from 0 (always
-- histograms) to 10^12.
-- +goose StatementBegin
CREATE FUNCTION pggit.check_recalc_setting(p_name text, p_value text)
RETURNS bigint
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_name IS NULL OR p_name NOT IN ('recalc_exact_max_samples') THEN
        RAISE EXCEPTION 'setting_name must be one of recalc_exact_max_samples, got %',
                coalesce(quote_literal(regexp_replace(left(p_name, 60), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'setting_name';
    END IF;
    IF NOT coalesce(p_value ~ '^[0-9]{1,13}$' AND p_value::bigint <= 1000000000000, false) THEN
        RAISE EXCEPTION '% must be a whole number of samples between 0 and 1000000000000, got %', p_name,
                coalesce(quote_literal(regexp_replace(left(p_value, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = p_name;
    END IF;
    RETURN p_value::bigint;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.monitor_settings_check_recalc()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    PERFORM pggit.check_recalc_setting(NEW.setting_name, NEW.setting_value);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

-- No bad recalculation setting is ever stored (nor a misspelt recalc_* name).
CREATE TRIGGER monitor_settings_check_recalc
    BEFORE INSERT OR UPDATE ON pggit.monitor_settings
    FOR EACH ROW
    WHEN (NEW.setting_name LIKE 'recalc\_%')
    EXECUTE FUNCTION pggit.monitor_settings_check_recalc();

INSERT INTO pggit.monitor_settings (setting_name, setting_value, description) VALUES
    ('recalc_exact_max_samples', '1000000',
     'Recalculation with p_method auto: exact while the window holds at most this many samples, from histograms above (0..1000000000000)');

-- Baseline statistics of one (operation, scope) from its histograms of
-- buckets starting in [p_from, p_to), for an operation whose samples are
-- restricted (pggit.baseline_restricted): rows starting before its floor are
-- left out, and so is every row whose bucket overlaps the span of one of its
-- regression alerts (a minute or an hour may hold a few normal samples too:
-- the exclusion is conservative). The histogram twin of
-- pggit.compute_baseline_stats; the row carries the window it used.
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_baseline_stats(
    p_operation_type text,
    p_scope          text,
    p_from           timestamptz,
    p_to             timestamptz,
    p_lookback_days  integer)
RETURNS pggit.performance_baselines
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_stats pggit.performance_baselines;
    v_floor timestamptz;
    v_pct   double precision[];
BEGIN
    SELECT f.since INTO v_floor FROM pggit.performance_baseline_floors f
    WHERE f.operation_type = p_operation_type AND f.scope = p_scope;
    v_stats.window_start := greatest(p_from, v_floor);
    v_stats.window_end   := greatest(p_to, v_stats.window_start);

    WITH parts AS (
        SELECT h.sample_count AS n, h.sum_us AS s, h.sum_sq_us AS ss, h.min_us AS mn, h.max_us AS mx,
               h.bins, h.counts
        FROM pggit.performance_histograms h
        WHERE h.operation_type = p_operation_type AND h.scope = p_scope
          AND h.bucket_start >= v_stats.window_start AND h.bucket_start < v_stats.window_end
          AND NOT EXISTS (
              SELECT 1 FROM pggit.performance_alerts a
              WHERE a.operation_type = p_operation_type AND a.scope = p_scope
                AND a.alert_type IN ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION')
                AND NOT coalesce((a.details ->> 'accepted')::boolean, false)
                AND h.bucket_start < coalesce(a.resolved_at, 'infinity')
                AND h.bucket_start + make_interval(secs => h.bucket_seconds) > a.first_seen_at)
    ),
    tot AS (
        SELECT sum(p.n)::bigint AS n, sum(p.s) AS s, min(p.mn) AS mn, max(p.mx) AS mx FROM parts p
    ),
    b AS (
        SELECT u.bin, sum(u.cnt)::bigint AS cnt
        FROM (SELECT unnest(p.bins) AS bin, unnest(p.counts) AS cnt FROM parts p) u
        GROUP BY u.bin
    )
    SELECT t.n, t.mn, t.mx, t.s / t.n,
           CASE WHEN t.n > 1 THEN sqrt((SELECT sum(greatest(p.ss - p.s * p.s / p.n, 0)
                                                   + p.n * (p.s / p.n - t.s / t.n) ^ 2) FROM parts p) / (t.n - 1))
                ELSE 0 END,
           pggit.histogram_quantiles((SELECT array_agg(b.bin ORDER BY b.bin) FROM b),
                                     (SELECT array_agg(b.cnt ORDER BY b.bin) FROM b),
                                     t.mn, t.mx, ARRAY[0.5, 0.75, 0.9, 0.95, 0.99])
    INTO v_stats.sample_count, v_stats.min_microseconds, v_stats.max_microseconds,
         v_stats.mean_microseconds, v_stats.stddev_microseconds, v_pct
    FROM tot t
    WHERE t.n > 0;

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

-- UTC day boundaries, like pggit.utc_minute and pggit.utc_hour (migration
-- 00010); its search_path is pinned (it is called a few times a run, never
-- per sample, so it need not be inlined).
-- +goose StatementBegin
CREATE FUNCTION pggit.utc_day(p_at timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
    SELECT pg_catalog.date_bin('1 day', p_at, '2000-01-01 00:00:00+00'::pg_catalog.timestamptz)
$$;
-- +goose StatementEnd

-- Brings pggit.histogram_rollups in line with pggit.performance_histograms
-- for the whole hours [p_h0, p_h1) and the whole days [p_d0, p_d1) (inside
-- them): an hour rollup is kept when its count, min and max equal those of
-- the rows of its hour, a day when they equal those of its hours; the others
-- are rebuilt (hours from the rows, days from the hours) or deleted.
-- Returns the rollups rebuilt.
-- +goose StatementBegin
CREATE FUNCTION pggit.refresh_histogram_rollups(
    p_h0 timestamptz,
    p_h1 timestamptz,
    p_d0 timestamptz,
    p_d1 timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_n     bigint;
    v_total bigint := 0;
BEGIN
    -- Hours, against the rows (sums only: no bins are read for a good hour).
    WITH base AS (
        SELECT h.operation_type, h.scope, pggit.utc_hour(h.bucket_start) AS hr,
               sum(h.sample_count)::bigint AS n, min(h.min_us) AS mn, max(h.max_us) AS mx
        FROM pggit.performance_histograms h
        WHERE h.bucket_start >= p_h0 AND h.bucket_start < p_h1
        GROUP BY 1, 2, 3
    ),
    roll AS (
        SELECT r.operation_type, r.scope, r.bucket_start AS hr, r.sample_count AS n, r.min_us AS mn, r.max_us AS mx
        FROM pggit.histogram_rollups r
        WHERE r.bucket_seconds = 3600 AND r.bucket_start >= p_h0 AND r.bucket_start < p_h1
    ),
    bad AS (
        SELECT coalesce(b.operation_type, o.operation_type) AS operation_type,
               coalesce(b.scope, o.scope) AS scope, coalesce(b.hr, o.hr) AS hr, b.n IS NOT NULL AS has_base
        FROM base b
        FULL JOIN roll o ON o.operation_type = b.operation_type AND o.scope = b.scope AND o.hr = b.hr
        WHERE b.n IS DISTINCT FROM o.n OR b.mn IS DISTINCT FROM o.mn OR b.mx IS DISTINCT FROM o.mx
    ),
    gone AS (
        DELETE FROM pggit.histogram_rollups r
        USING bad
        WHERE NOT bad.has_base AND r.bucket_seconds = 3600 AND r.bucket_start = bad.hr
          AND r.operation_type = bad.operation_type AND r.scope = bad.scope
    ),
    src AS (
        -- One range scan whatever the number of bad hours (the first run
        -- builds them all).
        SELECT h.operation_type, h.scope, pggit.utc_hour(h.bucket_start) AS hr, h.sample_count, h.sum_us,
               h.sum_sq_us, h.min_us, h.max_us, h.bins, h.counts
        FROM pggit.performance_histograms h
        WHERE h.bucket_start >= p_h0 AND h.bucket_start < p_h1
          AND (h.operation_type, h.scope, pggit.utc_hour(h.bucket_start)) IN (
              SELECT bad.operation_type, bad.scope, bad.hr FROM bad WHERE bad.has_base)
    ),
    b AS (
        SELECT u.operation_type, u.scope, u.hr, u.bin, sum(u.cnt)::bigint AS cnt
        FROM (SELECT s.operation_type, s.scope, s.hr, unnest(s.bins) AS bin, unnest(s.counts) AS cnt FROM src s) u
        GROUP BY 1, 2, 3, 4
    ),
    arr AS (
        SELECT b.operation_type, b.scope, b.hr, array_agg(b.bin ORDER BY b.bin) AS bins,
               array_agg(b.cnt ORDER BY b.bin) AS counts
        FROM b GROUP BY 1, 2, 3
    ),
    sums AS (
        SELECT s.operation_type, s.scope, s.hr, sum(s.sample_count)::bigint AS n, sum(s.sum_us) AS su,
               sum(s.sum_sq_us) AS ss, min(s.min_us) AS mn, max(s.max_us) AS mx
        FROM src s GROUP BY 1, 2, 3
    )
    INSERT INTO pggit.histogram_rollups AS r
        (operation_type, scope, bucket_start, bucket_seconds, sample_count, sum_us, sum_sq_us, min_us, max_us,
         bins, counts)
    SELECT s.operation_type, s.scope, s.hr, 3600, s.n, s.su, s.ss, s.mn, s.mx, a.bins, a.counts
    FROM sums s JOIN arr a USING (operation_type, scope, hr)
    ORDER BY 1, 2, 3
    ON CONFLICT (bucket_seconds, bucket_start, operation_type, scope) DO UPDATE SET
        sample_count = EXCLUDED.sample_count, sum_us = EXCLUDED.sum_us, sum_sq_us = EXCLUDED.sum_sq_us,
        min_us = EXCLUDED.min_us, max_us = EXCLUDED.max_us, bins = EXCLUDED.bins, counts = EXCLUDED.counts;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;

    IF p_d0 >= p_d1 THEN
        RETURN v_total;
    END IF;
    -- Days, against their (now current) hours.
    WITH base AS (
        SELECT r.operation_type, r.scope, pggit.utc_day(r.bucket_start) AS dy,
               sum(r.sample_count)::bigint AS n, min(r.min_us) AS mn, max(r.max_us) AS mx
        FROM pggit.histogram_rollups r
        WHERE r.bucket_seconds = 3600 AND r.bucket_start >= p_d0 AND r.bucket_start < p_d1
        GROUP BY 1, 2, 3
    ),
    roll AS (
        SELECT r.operation_type, r.scope, r.bucket_start AS dy, r.sample_count AS n, r.min_us AS mn, r.max_us AS mx
        FROM pggit.histogram_rollups r
        WHERE r.bucket_seconds = 86400 AND r.bucket_start >= p_d0 AND r.bucket_start < p_d1
    ),
    bad AS (
        SELECT coalesce(b.operation_type, o.operation_type) AS operation_type,
               coalesce(b.scope, o.scope) AS scope, coalesce(b.dy, o.dy) AS dy, b.n IS NOT NULL AS has_base
        FROM base b
        FULL JOIN roll o ON o.operation_type = b.operation_type AND o.scope = b.scope AND o.dy = b.dy
        WHERE b.n IS DISTINCT FROM o.n OR b.mn IS DISTINCT FROM o.mn OR b.mx IS DISTINCT FROM o.mx
    ),
    gone AS (
        DELETE FROM pggit.histogram_rollups r
        USING bad
        WHERE NOT bad.has_base AND r.bucket_seconds = 86400 AND r.bucket_start = bad.dy
          AND r.operation_type = bad.operation_type AND r.scope = bad.scope
    ),
    src AS (
        SELECT h.operation_type, h.scope, bad.dy, h.sample_count, h.sum_us, h.sum_sq_us, h.min_us, h.max_us,
               h.bins, h.counts
        FROM bad
        JOIN pggit.histogram_rollups h
          ON h.bucket_seconds = 3600 AND h.operation_type = bad.operation_type AND h.scope = bad.scope
         AND h.bucket_start >= bad.dy AND h.bucket_start < bad.dy + interval '1 day'
        WHERE bad.has_base
    ),
    b AS (
        SELECT u.operation_type, u.scope, u.dy, u.bin, sum(u.cnt)::bigint AS cnt
        FROM (SELECT s.operation_type, s.scope, s.dy, unnest(s.bins) AS bin, unnest(s.counts) AS cnt FROM src s) u
        GROUP BY 1, 2, 3, 4
    ),
    arr AS (
        SELECT b.operation_type, b.scope, b.dy, array_agg(b.bin ORDER BY b.bin) AS bins,
               array_agg(b.cnt ORDER BY b.bin) AS counts
        FROM b GROUP BY 1, 2, 3
    ),
    sums AS (
        SELECT s.operation_type, s.scope, s.dy, sum(s.sample_count)::bigint AS n, sum(s.sum_us) AS su,
               sum(s.sum_sq_us) AS ss, min(s.min_us) AS mn, max(s.max_us) AS mx
        FROM src s GROUP BY 1, 2, 3
    )
    INSERT INTO pggit.histogram_rollups AS r
        (operation_type, scope, bucket_start, bucket_seconds, sample_count, sum_us, sum_sq_us, min_us, max_us,
         bins, counts)
    SELECT s.operation_type, s.scope, s.dy, 86400, s.n, s.su, s.ss, s.mn, s.mx, a.bins, a.counts
    FROM sums s JOIN arr a USING (operation_type, scope, dy)
    ORDER BY 1, 2, 3
    ON CONFLICT (bucket_seconds, bucket_start, operation_type, scope) DO UPDATE SET
        sample_count = EXCLUDED.sample_count, sum_us = EXCLUDED.sum_us, sum_sq_us = EXCLUDED.sum_sq_us,
        min_us = EXCLUDED.min_us, max_us = EXCLUDED.max_us, bins = EXCLUDED.bins, counts = EXCLUDED.counts;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_total + v_n;
END;
$$;
-- +goose StatementEnd


-- Each result records the method of its run.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.apply_baseline_stats(
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
    -- The method its run used (accept_regression and single recalculations: exact).
    v_result.method := coalesce((SELECT e.method FROM pggit.baseline_recalc_execution e
                                 WHERE e.execution_id = p_execution_id), 'exact');

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


-- The 5-argument form gives way to the 6-argument one (its defaults keep
-- every shorter call working).
DROP FUNCTION pggit.recalculate_all_baselines_rolling(integer, integer, boolean, integer, text);

-- Recalculates the baselines of every tracked (operation, scope) with samples
-- in the window or an active baseline: from one grouped pass over the samples
-- (exact) or from the window's merged histograms (see the head of this file).
-- +goose StatementBegin
CREATE FUNCTION pggit.recalculate_all_baselines_rolling(
    p_lookback_days         integer DEFAULT 7,
    p_min_samples           integer DEFAULT 10,
    p_force                 boolean DEFAULT false,
    p_max_execution_seconds integer DEFAULT 60,
    p_reason                text    DEFAULT 'manual',
    p_method                text    DEFAULT 'auto')
RETURNS SETOF pggit.baseline_recalc_results
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_exec     pggit.baseline_recalc_execution;
    v_deadline timestamptz;
    v_stats    pggit.performance_baselines;
    v_method   text;
    v_from     timestamptz;
    v_to       timestamptz;
    v_h0       timestamptz;
    v_h1       timestamptz;
    v_d0       timestamptz;
    v_d1       timestamptz;
    v_days     integer;
    v_n        numeric;
    v_cur      refcursor;
    v_error    text;
    v_state    text;
    v_msg      text;
    r          record;
BEGIN
    IF p_method IS NULL OR p_method NOT IN ('auto', 'exact', 'histogram') THEN
        RAISE EXCEPTION 'p_method must be one of auto, exact, histogram, got %',
                coalesce(quote_literal(regexp_replace(left(p_method, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_method';
    END IF;
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
    v_method := p_method;
    v_from := v_exec.window_start;
    v_to := v_exec.window_end;

    IF v_method = 'auto' THEN
        -- Samples older than retention_samples_days (migration 00021;
        -- 30 without it) are gone: such a window needs the histograms.
        SELECT CASE WHEN s.setting_value ~ '^[0-9]{1,5}$' THEN s.setting_value::integer END INTO v_days
        FROM pggit.monitor_settings s WHERE s.setting_name = 'retention_samples_days';
        IF v_exec.window_start < v_exec.window_end - make_interval(days => coalesce(v_days, 30)) THEN
            v_method := 'histogram';
        ELSE
            SELECT coalesce(sum(h.sample_count), 0) INTO v_n
            FROM pggit.performance_histograms h
            WHERE h.bucket_start >= pggit.utc_minute(v_exec.window_start) AND h.bucket_start < v_exec.window_end;
            v_method := CASE WHEN v_n <= pggit.check_recalc_setting('recalc_exact_max_samples',
                                 coalesce((SELECT s.setting_value FROM pggit.monitor_settings s
                                           WHERE s.setting_name = 'recalc_exact_max_samples'), '1000000'))
                             THEN 'exact' ELSE 'histogram' END;
        END IF;
    END IF;

    IF v_method = 'histogram' THEN
        -- The window, aligned to buckets: [v_from, v_to). It starts at
        -- the next whole minute, or whole hour where an hour row spans
        -- that minute; it ends at the last whole minute (later if an
        -- hour row spans it).
        v_from := pggit.utc_minute(v_exec.window_start);
        IF v_from < v_exec.window_start THEN
            v_from := v_from + interval '1 minute';
        END IF;
        IF v_from > pggit.utc_hour(v_from) AND EXISTS (
                SELECT 1 FROM pggit.performance_histograms h
                WHERE h.bucket_start = pggit.utc_hour(v_from) AND h.bucket_seconds = 3600) THEN
            v_from := pggit.utc_hour(v_from) + interval '1 hour';
        END IF;
        v_to := pggit.utc_minute(v_exec.window_end);
        v_to := greatest(v_to, (SELECT max(h.bucket_start) + interval '1 hour'
                                FROM pggit.performance_histograms h
                                WHERE h.bucket_start = pggit.utc_hour(v_to) AND h.bucket_seconds = 3600));
        -- Whole hours [v_h0, v_h1) and, inside them, whole days
        -- [v_d0, v_d1) come from the rollups; the minutes at the ends
        -- from the rows.
        v_h0 := pggit.utc_hour(v_from);
        IF v_h0 < v_from THEN
            v_h0 := v_h0 + interval '1 hour';
        END IF;
        v_h1 := pggit.utc_hour(v_to);
        IF v_h0 >= v_h1 THEN
            v_h0 := v_to;
            v_h1 := v_to;
        END IF;
        v_d0 := pggit.utc_day(v_h0);
        IF v_d0 < v_h0 THEN
            v_d0 := v_d0 + interval '1 day';
        END IF;
        v_d1 := pggit.utc_day(v_h1);
        IF v_d0 >= v_d1 THEN
            v_d0 := v_h1;
            v_d1 := v_h1;
        END IF;
        UPDATE pggit.baseline_recalc_execution e
        SET method = 'histogram', window_start = v_from, window_end = v_to
        WHERE e.execution_id = v_exec.execution_id;
    END IF;

    BEGIN
        IF v_method = 'exact' THEN
            OPEN v_cur FOR
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
                ORDER BY k.operation_type, k.scope;
        ELSE
            PERFORM pggit.refresh_histogram_rollups(v_h0, v_h1, v_d0, v_d1);
            -- Rollups no window can reach.
            DELETE FROM pggit.histogram_rollups x WHERE x.bucket_start < v_exec.window_end - interval '367 days';

            OPEN v_cur FOR
                WITH parts AS (
                    SELECT x.operation_type, x.scope, x.sample_count AS n, x.sum_us AS s, x.sum_sq_us AS ss,
                           x.min_us AS mn, x.max_us AS mx, x.bins, x.counts
                    FROM pggit.histogram_rollups x
                    WHERE (x.bucket_seconds = 86400 AND x.bucket_start >= v_d0 AND x.bucket_start < v_d1)
                       OR (x.bucket_seconds = 3600 AND x.bucket_start >= v_h0 AND x.bucket_start < least(v_d0, v_h1))
                       OR (x.bucket_seconds = 3600 AND x.bucket_start >= greatest(v_d1, v_h0) AND x.bucket_start < v_h1)
                    UNION ALL
                    SELECT h.operation_type, h.scope, h.sample_count, h.sum_us, h.sum_sq_us, h.min_us, h.max_us,
                           h.bins, h.counts
                    FROM pggit.performance_histograms h
                    WHERE (h.bucket_start >= v_from AND h.bucket_start < v_h0)
                       OR (h.bucket_start >= v_h1 AND h.bucket_start < v_to)
                ),
                tot AS (
                    SELECT p.operation_type, p.scope, sum(p.n)::bigint AS n, sum(p.s) AS s,
                           min(p.mn) AS mn, max(p.mx) AS mx
                    FROM parts p GROUP BY 1, 2
                ),
                -- Chan et al.: the parts' own squared deviations plus their
                -- means' deviations from the overall mean.
                m2 AS (
                    SELECT p.operation_type, p.scope,
                           sum(greatest(p.ss - p.s * p.s / p.n, 0) + p.n * (p.s / p.n - t.s / t.n) ^ 2) AS m2
                    FROM parts p JOIN tot t ON t.operation_type = p.operation_type AND t.scope = p.scope
                    GROUP BY 1, 2
                ),
                b AS (
                    SELECT u.operation_type, u.scope, u.bin, sum(u.cnt)::bigint AS cnt
                    FROM (SELECT p.operation_type, p.scope, unnest(p.bins) AS bin, unnest(p.counts) AS cnt
                          FROM parts p) u
                    GROUP BY 1, 2, 3
                ),
                arr AS (
                    SELECT b.operation_type, b.scope, array_agg(b.bin ORDER BY b.bin) AS bins,
                           array_agg(b.cnt ORDER BY b.bin) AS counts
                    FROM b GROUP BY 1, 2
                ),
                stats AS (
                    SELECT t.operation_type, t.scope, t.n, t.mn AS min_us, t.mx AS max_us, t.s / t.n AS mean_us,
                           CASE WHEN t.n > 1 THEN sqrt(m.m2 / (t.n - 1)) ELSE 0 END AS stddev_us,
                           pggit.histogram_quantiles(a.bins, a.counts, t.mn, t.mx,
                                                     ARRAY[0.5, 0.75, 0.9, 0.95, 0.99]) AS pct
                    FROM tot t
                    JOIN m2 m ON m.operation_type = t.operation_type AND m.scope = t.scope
                    JOIN arr a ON a.operation_type = t.operation_type AND a.scope = t.scope
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
                LEFT JOIN pggit.baseline_restricted(NULL, v_from) bd
                       ON bd.operation_type = k.operation_type AND bd.scope = k.scope
                LEFT JOIN stats s
                       ON s.operation_type = k.operation_type AND s.scope = k.scope
                LEFT JOIN pggit.performance_operation_types t
                       ON t.operation_type = k.operation_type
                LEFT JOIN pggit.performance_baselines b
                       ON b.operation_type = k.operation_type AND b.scope = k.scope AND b.is_active
                WHERE coalesce(t.is_tracked, true)
                ORDER BY k.operation_type, k.scope;
        END IF;

        LOOP
            FETCH v_cur INTO r;
            EXIT WHEN NOT FOUND;
            IF clock_timestamp() >= v_deadline THEN
                INSERT INTO pggit.baseline_recalc_results
                    (execution_id, operation_type, scope, status, sample_count, old_p99_microseconds,
                     message, method)
                VALUES
                    (v_exec.execution_id, r.operation_type, r.scope, 'TIMEOUT', r.n, r.old_p99,
                     format('not reached within the %s s limit; baseline kept', p_max_execution_seconds), v_method);
                CONTINUE;
            END IF;

            IF r.bounded THEN
                IF v_method = 'exact' THEN
                    v_stats := pggit.compute_baseline_stats(r.operation_type, r.scope, v_exec.window_start,
                                                            v_exec.window_end, p_lookback_days);
                ELSE
                    v_stats := pggit.histogram_baseline_stats(r.operation_type, r.scope, v_from, v_to,
                                                              p_lookback_days);
                END IF;
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
            v_stats.window_start               := v_from;
            v_stats.window_end                 := v_to;
            v_stats.alert_threshold_multiplier := r.alert_threshold_multiplier;
            PERFORM pggit.apply_baseline_stats(v_exec.execution_id, v_stats, p_min_samples, p_force, p_reason);
        END LOOP;
        CLOSE v_cur;
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

-- +goose Down
DROP FUNCTION pggit.recalculate_all_baselines_rolling(integer, integer, boolean, integer, text, text);
-- recalculate_all_baselines_rolling as of 00012_detection_functions.sql.
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

-- apply_baseline_stats as of 00002_baselines_functions.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.apply_baseline_stats(
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

DROP FUNCTION pggit.refresh_histogram_rollups(timestamptz, timestamptz, timestamptz, timestamptz);
DROP FUNCTION pggit.utc_day(timestamptz);
DROP FUNCTION pggit.histogram_baseline_stats(text, text, timestamptz, timestamptz, integer);
DELETE FROM pggit.monitor_settings WHERE setting_name = 'recalc_exact_max_samples';
DROP TRIGGER monitor_settings_check_recalc ON pggit.monitor_settings;
DROP FUNCTION pggit.monitor_settings_check_recalc();
DROP FUNCTION pggit.check_recalc_setting(text, text);
DROP TABLE pggit.histogram_rollups;
DROP INDEX pggit.performance_histograms_counts_idx;
ALTER TABLE pggit.baseline_recalc_results DROP COLUMN method;
ALTER TABLE pggit.baseline_recalc_execution DROP COLUMN method;
