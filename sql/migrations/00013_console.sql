-- Latency over time from the histograms, for the web console (monitor/ui)
-- and anyone charting an operation: never from the raw samples, so a chart
-- costs the same at 10 M samples as at 10 k.

-- +goose Up
CREATE TYPE pggit.latency_point AS (
    bucket_start timestamptz,
    sample_count bigint,
    mean_us      double precision,
    p50_us       double precision,
    p90_us       double precision,
    p99_us       double precision
);

CREATE TYPE pggit.latency_spark_point AS (
    operation_type text,
    scope          text,
    bucket_start   timestamptz,
    sample_count   bigint,
    mean_us        double precision
);

-- Checks the time range and bucket width of a latency query: p_from before
-- p_to, both finite; p_step_seconds a whole number of minutes from 1 minute
-- to a day; at most p_max_buckets buckets. Raises 22023 naming the argument.
-- +goose StatementBegin
CREATE FUNCTION pggit.check_bucket_range(
    p_from         timestamptz,
    p_to           timestamptz,
    p_step_seconds integer,
    p_max_buckets  integer)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_step_seconds IS NULL OR p_step_seconds < 60 OR p_step_seconds > 86400 OR p_step_seconds % 60 <> 0 THEN
        RAISE EXCEPTION 'p_step_seconds must be a whole number of minutes between 60 and 86400, got %',
                coalesce(p_step_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_step_seconds';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR NOT isfinite(p_from) OR NOT isfinite(p_to) OR p_from >= p_to THEN
        RAISE EXCEPTION 'p_from must be a finite time before p_to, got % and %',
                coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_from';
    END IF;
    IF extract(epoch FROM p_to - p_from) / p_step_seconds > p_max_buckets THEN
        RAISE EXCEPTION 'p_step_seconds must give at most % buckets between p_from and p_to, got % buckets',
                p_max_buckets, ceil(extract(epoch FROM p_to - p_from) / p_step_seconds)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_step_seconds';
    END IF;
END;
$$;
-- +goose StatementEnd

-- The latency of (operation, scope) in buckets of p_step_seconds over
-- [p_from, p_to): per bucket with samples, the count, the mean (exact) and
-- p50, p90, p99 (within 1% of percentile_cont). Buckets are aligned to UTC
-- (date_bin from 2000-01-01 00:00 UTC). A minute row counts in the bucket
-- that holds its minute; an hour row (compacted, older than 48 hours by
-- default) in the bucket that holds its start, so below an hour the
-- resolution of compacted history is an hour. At most 2,000 buckets.
-- +goose StatementBegin
CREATE FUNCTION pggit.latency_series(
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

-- The mean latency of several (operation, scope) pairs in buckets of
-- p_step_seconds over [p_from, p_to), from the histograms' sums alone (no
-- bins are read): sparklines. At most 200 pairs and 200 buckets.
-- +goose StatementBegin
CREATE FUNCTION pggit.latency_sparklines(
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

-- +goose Down
DROP FUNCTION pggit.latency_sparklines(text[], text[], timestamptz, timestamptz, integer);
DROP FUNCTION pggit.latency_series(text, text, timestamptz, timestamptz, integer);
DROP FUNCTION pggit.check_bucket_range(timestamptz, timestamptz, integer, integer);
DROP TYPE pggit.latency_spark_point;
DROP TYPE pggit.latency_point;
