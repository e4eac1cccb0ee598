-- Mergeable latency histograms: per (operation, scope, time bucket), a
-- log-bucketed histogram in the style of DDSketch (relative accuracy 1%) plus
-- count, sum, sum of squares, sums of ln and ln^2, min and max. Histograms
-- merge by adding counts, so any window (5 minutes, 1 hour, 7 days) is a sum of
-- rows. They are written by the samples' statement trigger, in the samples'
-- transaction, so the counts always equal the samples written (see
-- docs/detection.md for why this and not a watermark).
--
-- Rows are append-only partial histograms: each INSERT or COPY statement adds
-- one row per (operation, scope, minute) it touches, and
-- pggit.compact_histograms merges the rows of a bucket (and, later, the
-- minutes of an hour into one hour row). Rows always hold disjoint sets of
-- samples, so a window is the sum of the rows whose bucket starts in it,
-- whatever has been compacted.
--
-- The per-sample threshold rule leaves the trigger: alerts come from windows,
-- in pggit.run_detection (migration 00011).

-- +goose Up
-- Bucket boundaries are UTC minutes and hours, whatever the session's
-- TimeZone (date_trunc on a timestamptz follows it: in Asia/Kolkata its hours
-- start at :30 UTC, and two sessions would disagree on a bucket). date_bin is
-- also much cheaper. Plain SQL without a SET clause, so the planner inlines
-- them; their bodies qualify every name instead of pinning search_path.
-- +goose StatementBegin
CREATE FUNCTION pggit.utc_minute(p_at timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.date_bin('1 minute', p_at, '2000-01-01 00:00:00+00'::pg_catalog.timestamptz)
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.utc_hour(p_at timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.date_bin('1 hour', p_at, '2000-01-01 00:00:00+00'::pg_catalog.timestamptz)
$$;
-- +goose StatementEnd

CREATE TABLE pggit.performance_histograms (
    operation_type text             NOT NULL,
    scope          text             NOT NULL,
    bucket_start   timestamptz      NOT NULL,
    -- 60 (a minute) or 3600 (an hour, after compaction).
    bucket_seconds integer          NOT NULL,
    sample_count   bigint           NOT NULL,
    sum_us         double precision NOT NULL,
    sum_sq_us      double precision NOT NULL,
    -- Sums of ln(duration in microseconds) and of its square: the mean and
    -- variance of log latency of any window, exactly.
    sum_ln         double precision NOT NULL,
    sum_ln_sq      double precision NOT NULL,
    min_us         bigint           NOT NULL,
    max_us         bigint           NOT NULL,
    -- Sparse histogram: bin indexes (ascending) and their counts. Bin i holds
    -- durations d with gamma^(i-1) < d <= gamma^i, gamma = 1.01/0.99; it stands
    -- for 0.99 * gamma^i, within 1% of every duration in it.
    bins           integer[]        NOT NULL,
    counts         bigint[]         NOT NULL,
    CONSTRAINT performance_histograms_width_check CHECK (bucket_seconds IN (60, 3600)),
    CONSTRAINT performance_histograms_count_check CHECK (sample_count > 0),
    CONSTRAINT performance_histograms_bins_check CHECK (cardinality(bins) = cardinality(counts)),
    CONSTRAINT performance_histograms_aligned_check
        CHECK (bucket_start = CASE bucket_seconds WHEN 60 THEN pggit.utc_minute(bucket_start)
                                                  ELSE pggit.utc_hour(bucket_start) END)
);

-- One operation over time (windows, the console, accept_regression).
CREATE INDEX performance_histograms_operation_idx
    ON pggit.performance_histograms (operation_type, scope, bucket_start);
-- Every operation over a time range (detection, compaction).
CREATE INDEX performance_histograms_bucket_idx
    ON pggit.performance_histograms (bucket_start);

-- ln(gamma), gamma = (1 + 0.01) / (1 - 0.01).
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_bin(p_duration_us double precision)
RETURNS integer
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
    SELECT ceil(ln(p_duration_us) / 0.0200006667066695)::integer
$$;
-- +goose StatementEnd

-- The duration a bin stands for: 0.99 * gamma^i (within 1% of its content).
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_bin_value(p_bin integer)
RETURNS double precision
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
    SELECT 0.99 * exp(p_bin * 0.0200006667066695)
$$;
-- +goose StatementEnd

-- Quantiles of a histogram, p_qs in [0, 1], in microseconds. Type 7 (the
-- definition of percentile_cont): rank h = q (n - 1), interpolated between the
-- order statistics at floor(h) and floor(h) + 1, each estimated by its bin and
-- clamped to [min, max] (the smallest and largest are exact). Each estimate is
-- within 1% of the sample it stands for, so the result is within 1% of the
-- exact percentile_cont. One pass over the bins for all quantiles.
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_quantiles(
    p_bins   integer[],
    p_counts bigint[],
    p_min_us bigint,
    p_max_us bigint,
    p_qs     double precision[])
RETURNS double precision[]
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_n      bigint := 0;
    v_k      integer := coalesce(cardinality(p_bins), 0);
    v_m      integer := coalesce(cardinality(p_qs), 0);
    v_ranks  bigint[];   -- the two ranks each quantile needs, in q order
    v_vals   double precision[];
    v_order  integer[];  -- indexes into v_ranks by ascending rank
    v_out    double precision[];
    v_cum    bigint := 0;
    v_i      integer := 1;
    v_r      bigint;
    v_h      double precision;
    v_q      double precision;
BEGIN
    IF v_m = 0 THEN
        RETURN '{}'::double precision[];
    END IF;
    FOR v_j IN 1 .. v_k LOOP
        v_n := v_n + p_counts[v_j];
    END LOOP;
    IF v_n = 0 THEN
        RETURN array_fill(NULL::double precision, ARRAY[v_m]);
    END IF;
    v_ranks := array_fill(0::bigint, ARRAY[2 * v_m]);
    v_vals  := array_fill(NULL::double precision, ARRAY[2 * v_m]);
    FOR v_j IN 1 .. v_m LOOP
        v_q := p_qs[v_j];
        IF v_q IS NULL OR v_q < 0 OR v_q > 1 THEN
            RAISE EXCEPTION 'p_qs must hold quantiles between 0 and 1, got %', coalesce(v_q::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_qs';
        END IF;
        v_h := v_q * (v_n - 1);
        v_ranks[2 * v_j - 1] := floor(v_h)::bigint;
        v_ranks[2 * v_j]     := least(floor(v_h)::bigint + 1, v_n - 1);
    END LOOP;
    -- Indexes of v_ranks by ascending rank: an insertion sort of a few
    -- elements, cheaper than a query.
    v_order := array_fill(0, ARRAY[2 * v_m]);
    FOR v_j IN 1 .. 2 * v_m LOOP
        v_i := v_j;
        WHILE v_i > 1 AND v_ranks[v_order[v_i - 1]] > v_ranks[v_j] LOOP
            v_order[v_i] := v_order[v_i - 1];
            v_i := v_i - 1;
        END LOOP;
        v_order[v_i] := v_j;
    END LOOP;
    v_i := 1;

    -- Walk the bins once, assigning each rank (ascending) the value of its bin.
    FOR v_j IN 1 .. v_k LOOP
        v_cum := v_cum + p_counts[v_j];
        WHILE v_i <= 2 * v_m AND v_ranks[v_order[v_i]] < v_cum LOOP
            v_r := v_ranks[v_order[v_i]];
            v_vals[v_order[v_i]] := CASE
                WHEN v_r = 0 THEN p_min_us
                WHEN v_r = v_n - 1 THEN p_max_us
                ELSE least(greatest(0.99 * exp(p_bins[v_j] * 0.0200006667066695), p_min_us), p_max_us)
            END;
            v_i := v_i + 1;
        END LOOP;
    END LOOP;

    v_out := array_fill(NULL::double precision, ARRAY[v_m]);
    FOR v_j IN 1 .. v_m LOOP
        v_h := p_qs[v_j] * (v_n - 1);
        v_out[v_j] := v_vals[2 * v_j - 1]
                      + (v_h - floor(v_h)) * (v_vals[2 * v_j] - v_vals[2 * v_j - 1]);
    END LOOP;
    RETURN v_out;
END;
$$;
-- +goose StatementEnd

-- The merged histogram of (operation, scope) over buckets starting in
-- [p_from, p_to): one row (bucket_start = p_from, bucket_seconds = 60 or 3600
-- as the narrowest merged), or none when there are no samples.
-- +goose StatementBegin
CREATE FUNCTION pggit.merge_histograms(
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

-- Quantiles (p_qs in [0, 1]) of (operation, scope) over [p_from, p_to), in
-- microseconds, from the histograms: within 1% of percentile_cont over the
-- samples. NULLs when there are no samples.
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_window_quantiles(
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

-- Compacts the histograms of buckets starting in [p_from, p_to): the partial
-- rows of one bucket become one row, and minute rows of buckets starting before
-- p_hours_before are rolled up into hour rows. Safe while samples are written:
-- it deletes exactly the rows it merges, and rows written meanwhile stay rows
-- of their own (rows hold disjoint samples, so sums stay exact). Callers pass
-- closed buckets only. Returns how many rows fewer there are.
-- +goose StatementBegin
CREATE FUNCTION pggit.compact_histograms(
    p_from         timestamptz,
    p_to           timestamptz,
    p_hours_before timestamptz DEFAULT '-infinity')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_hours timestamptz := CASE WHEN isfinite(p_hours_before) THEN pggit.utc_hour(p_hours_before)
                                ELSE coalesce(p_hours_before, '-infinity') END;
    v_n     bigint;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_from >= p_to THEN
        RAISE EXCEPTION 'p_from must be before p_to, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_from';
    END IF;
    WITH split AS (
        -- Buckets held in more than one row (hashed: usually there are few).
        SELECT h.operation_type, h.scope, h.bucket_start, h.bucket_seconds
        FROM pggit.performance_histograms h
        WHERE h.bucket_start >= p_from AND h.bucket_start < p_to
          AND NOT (h.bucket_seconds = 60 AND h.bucket_start < v_hours)
        GROUP BY 1, 2, 3, 4
        HAVING count(*) > 1
    ),
    gone AS (
        DELETE FROM pggit.performance_histograms h
        WHERE h.bucket_start >= p_from AND h.bucket_start < p_to
          AND ((h.bucket_seconds = 60 AND h.bucket_start < v_hours)
               OR (h.operation_type, h.scope, h.bucket_start, h.bucket_seconds) IN (SELECT * FROM split))
        RETURNING h.*
    ),
    keyed AS (
        SELECT g.*,
               CASE WHEN g.bucket_seconds = 60 AND g.bucket_start < v_hours
                    THEN pggit.utc_hour(g.bucket_start) ELSE g.bucket_start END AS nb,
               CASE WHEN g.bucket_seconds = 60 AND g.bucket_start < v_hours
                    THEN 3600 ELSE g.bucket_seconds END AS nw
        FROM gone g
    ),
    b AS (
        SELECT u.operation_type, u.scope, u.nb, u.nw, u.bin, sum(u.cnt)::bigint AS cnt
        FROM (SELECT k.operation_type, k.scope, k.nb, k.nw, unnest(k.bins) AS bin, unnest(k.counts) AS cnt
              FROM keyed k) u
        GROUP BY 1, 2, 3, 4, 5
    ),
    arr AS (
        SELECT b.operation_type, b.scope, b.nb, b.nw,
               array_agg(b.bin ORDER BY b.bin) AS bins, array_agg(b.cnt ORDER BY b.bin) AS counts
        FROM b GROUP BY 1, 2, 3, 4
    ),
    sums AS (
        SELECT k.operation_type, k.scope, k.nb, k.nw, sum(k.sample_count)::bigint AS n, sum(k.sum_us) AS s,
               sum(k.sum_sq_us) AS ss, sum(k.sum_ln) AS sl, sum(k.sum_ln_sq) AS sll,
               min(k.min_us) AS mn, max(k.max_us) AS mx
        FROM keyed k GROUP BY 1, 2, 3, 4
    ),
    ins AS (
        INSERT INTO pggit.performance_histograms
            (operation_type, scope, bucket_start, bucket_seconds, sample_count, sum_us, sum_sq_us,
             sum_ln, sum_ln_sq, min_us, max_us, bins, counts)
        SELECT s.operation_type, s.scope, s.nb, s.nw, s.n, s.s, s.ss, s.sl, s.sll, s.mn, s.mx, a.bins, a.counts
        FROM sums s JOIN arr a USING (operation_type, scope, nb, nw)
        ORDER BY 1, 2, 3
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM ins) INTO v_n;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- Recomputes the minute histograms of buckets starting in [p_from, p_to) from
-- the samples there (after samples were deleted or corrected by hand). Rows of
-- that range are replaced; hours already compacted are rebuilt as minutes.
-- Returns the minute rows written.
-- +goose StatementBegin
CREATE FUNCTION pggit.rebuild_histograms(p_from timestamptz, p_to timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_from timestamptz;
    v_to   timestamptz;
    v_n    bigint;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_from >= p_to THEN
        RAISE EXCEPTION 'p_from must be before p_to, got % and %', coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_from';
    END IF;
    -- Whole hours, so a compacted hour row is never split.
    v_from := pggit.utc_hour(p_from);
    v_to   := pggit.utc_hour(p_to) + CASE WHEN p_to = pggit.utc_hour(p_to) THEN interval '0' ELSE interval '1 hour' END;
    DELETE FROM pggit.performance_histograms h WHERE h.bucket_start >= v_from AND h.bucket_start < v_to;
    INSERT INTO pggit.performance_histograms
        (operation_type, scope, bucket_start, bucket_seconds, sample_count, sum_us, sum_sq_us,
         sum_ln, sum_ln_sq, min_us, max_us, bins, counts)
    SELECT g.operation_type, g.scope, g.minute, 60, sum(g.n)::bigint, sum(g.s), sum(g.ss), sum(g.sl), sum(g.sll),
           min(g.mn), max(g.mx), array_agg(g.bin ORDER BY g.bin), array_agg(g.n ORDER BY g.bin)
    FROM (
        SELECT m.operation_type, m.scope, m.minute, ceil(m.l / 0.0200006667066695)::integer AS bin,
               count(*) AS n, sum(m.d) AS s, sum(m.d * m.d) AS ss, sum(m.l) AS sl, sum(m.l * m.l) AS sll,
               min(m.d)::bigint AS mn, max(m.d)::bigint AS mx
        FROM (SELECT x.operation_type, x.scope, pggit.utc_minute(x.recorded_at) AS minute,
                     x.duration_microseconds::double precision AS d,
                     ln(x.duration_microseconds::double precision) AS l
              FROM pggit.performance_metrics x
              WHERE x.recorded_at >= v_from AND x.recorded_at < v_to) m
        GROUP BY 1, 2, 3, 4
    ) g
    GROUP BY g.operation_type, g.scope, g.minute
    ORDER BY 1, 2, 3;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- Registration and histograms for each written batch of samples, however it
-- was written (record function, COPY, plain INSERT): one statement over the
-- batch's transition table for each. Alerts are raised by pggit.run_detection
-- over windows, never by a single sample.
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

    INSERT INTO pggit.performance_histograms
        (operation_type, scope, bucket_start, bucket_seconds, sample_count, sum_us, sum_sq_us,
         sum_ln, sum_ln_sq, min_us, max_us, bins, counts)
    SELECT g.operation_type, g.scope, g.minute, 60, sum(g.n)::bigint, sum(g.s), sum(g.ss), sum(g.sl), sum(g.sll),
           min(g.mn), max(g.mx), array_agg(g.bin ORDER BY g.bin), array_agg(g.n ORDER BY g.bin)
    FROM (
        SELECT m.operation_type, m.scope, m.minute, ceil(m.l / 0.0200006667066695)::integer AS bin,
               count(*) AS n, sum(m.d) AS s, sum(m.d * m.d) AS ss, sum(m.l) AS sl, sum(m.l * m.l) AS sll,
               min(m.d)::bigint AS mn, max(m.d)::bigint AS mx
        FROM (SELECT x.operation_type, x.scope, pggit.utc_minute(x.recorded_at) AS minute,
                     x.duration_microseconds::double precision AS d,
                     ln(x.duration_microseconds::double precision) AS l
              FROM new_rows x) m
        GROUP BY 1, 2, 3, 4
    ) g
    GROUP BY g.operation_type, g.scope, g.minute;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- Samples already stored get their histograms (minutes; older hours compacted).
SELECT pggit.rebuild_histograms(min(recorded_at), max(recorded_at) + interval '1 minute')
FROM pggit.performance_metrics
HAVING count(*) > 0;
SELECT pggit.compact_histograms('-infinity', now(), now() - interval '48 hours');

-- +goose Down
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
DROP FUNCTION pggit.rebuild_histograms(timestamptz, timestamptz);
DROP FUNCTION pggit.compact_histograms(timestamptz, timestamptz, timestamptz);
DROP FUNCTION pggit.histogram_window_quantiles(text, text, timestamptz, timestamptz, double precision[]);
DROP FUNCTION pggit.merge_histograms(text, text, timestamptz, timestamptz);
DROP FUNCTION pggit.histogram_quantiles(integer[], bigint[], bigint, bigint, double precision[]);
DROP FUNCTION pggit.histogram_bin_value(integer);
DROP FUNCTION pggit.histogram_bin(double precision);
DROP TABLE pggit.performance_histograms;
DROP FUNCTION pggit.utc_hour(timestamptz);
DROP FUNCTION pggit.utc_minute(timestamptz);
