-- The histogram rollups (migration 00022) kept up to date by invalidation
-- instead of being checked hour by hour at every run.
--
-- pggit.histogram_rollup_state.rolled_through says up to which hour the hour
-- rollups are built: every whole UTC hour before it has its rollup (one per
-- (operation, scope) with rows), every whole day before it its day rollup.
-- pggit.refresh_histogram_rollups() advances it to the last hour that ended
-- at least 10 minutes ago and rebuilds the hours (and their days) named in
-- pggit.histogram_rollup_dirty. Statement triggers on
-- pggit.performance_histograms name there every hour of a changed row that
-- had already ended when the row was written or deleted (late samples,
-- rebuild_histograms, retention); rows of the open hour are never named (the
-- rollup of that hour is built after it closed). Compaction changes no
-- hour's totals and names nothing. The worker's hourly compaction job calls
-- the refresh, so a recalculation usually finds nothing due; it calls it too
-- (a couple of index probes then), so it is correct without a worker.
--
-- The 10-minute bound: a transaction that writes samples into an hour while
-- it is open, then commits more than 10 minutes after the hour ended, may
-- commit after the refresh built that hour; its samples then stay out of the
-- rollup until the hour is rebuilt (rebuild_histograms, or any later change
-- to that operation-hour). Details: docs/baselines.md.

-- +goose Up
-- One row.
CREATE TABLE pggit.histogram_rollup_state (
    singleton      boolean     PRIMARY KEY DEFAULT true,
    -- Hour rollups exist for every whole hour before this; NULL: none built.
    rolled_through timestamptz,
    CONSTRAINT histogram_rollup_state_singleton_check CHECK (singleton)
);
INSERT INTO pggit.histogram_rollup_state DEFAULT VALUES;

-- Closed operation-hours whose rows changed since their rollup was built.
-- No unique key on purpose: each writer appends its own mark and never waits
-- for another's (a key with ON CONFLICT DO NOTHING would make a writer skip a
-- mark that a concurrent refresh is consuming without seeing the writer's
-- rows, and would make concurrent writers of late samples wait on each
-- other). The refresh deletes exactly the marks its snapshot sees, so a mark
-- committed after it stays for the next refresh. Duplicates are merged when
-- read.
CREATE TABLE pggit.histogram_rollup_dirty (
    operation_type text        NOT NULL,
    scope          text        NOT NULL,
    hour           timestamptz NOT NULL
);

-- The rollups are rebuilt from the marks and rolled_through from now on; the
-- per-hour check's index goes (one index fewer to maintain on ingestion).
TRUNCATE pggit.histogram_rollups;
DROP INDEX pggit.performance_histograms_counts_idx;

-- Statement triggers of pggit.performance_histograms: the closed hours of the
-- rows written (new_rows) or deleted (old_rows), unless pggit.compact_histograms
-- is running (it sets pggit.compacting: it merges rows without changing any
-- hour's totals). One scan of the transition table per statement; an
-- ingestion batch into the open hour writes nothing.
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_rollups_mark_inserted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF current_setting('pggit.compacting', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO pggit.histogram_rollup_dirty (operation_type, scope, hour)
    SELECT DISTINCT n.operation_type, n.scope, pggit.utc_hour(n.bucket_start)
    FROM new_rows n
    WHERE n.bucket_start < pggit.utc_hour(clock_timestamp());
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_rollups_mark_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF current_setting('pggit.compacting', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO pggit.histogram_rollup_dirty (operation_type, scope, hour)
    SELECT DISTINCT o.operation_type, o.scope, pggit.utc_hour(o.bucket_start)
    FROM old_rows o
    WHERE o.bucket_start < pggit.utc_hour(clock_timestamp());
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- TRUNCATE of the histograms: every rollup goes, and the next refresh builds
-- from the oldest row again.
-- +goose StatementBegin
CREATE FUNCTION pggit.histogram_rollups_reset()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1885824867, 3);
    DELETE FROM pggit.histogram_rollups;
    DELETE FROM pggit.histogram_rollup_dirty;
    UPDATE pggit.histogram_rollup_state SET rolled_through = NULL;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER histogram_rollups_mark_inserted
    AFTER INSERT ON pggit.performance_histograms
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION pggit.histogram_rollups_mark_inserted();

CREATE TRIGGER histogram_rollups_mark_deleted
    AFTER DELETE ON pggit.performance_histograms
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION pggit.histogram_rollups_mark_deleted();

CREATE TRIGGER histogram_rollups_reset
    AFTER TRUNCATE ON pggit.performance_histograms
    FOR EACH STATEMENT
    EXECUTE FUNCTION pggit.histogram_rollups_reset();

-- A hand-made UPDATE (none of the library's functions updates histograms):
-- the hours of the rows before and after.
CREATE TRIGGER histogram_rollups_mark_updated_old
    AFTER UPDATE ON pggit.performance_histograms
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION pggit.histogram_rollups_mark_deleted();

CREATE TRIGGER histogram_rollups_mark_updated_new
    AFTER UPDATE ON pggit.performance_histograms
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION pggit.histogram_rollups_mark_inserted();

-- Compaction merges rows without changing any hour's totals: while it runs,
-- the triggers above name no hour (pggit.compacting, set for the function's
-- duration only).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.compact_histograms(
    p_from         timestamptz,
    p_to           timestamptz,
    p_hours_before timestamptz DEFAULT '-infinity')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
SET pggit.compacting = 'on'
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


-- Rebuilds the rollups of width p_seconds (3600: hours, from
-- pggit.performance_histograms; 86400: days, from the hour rollups) of every
-- (operation, scope) with parts in buckets starting in [p_from, p_to), and
-- of the listed (operation, scope, bucket start) triples (their buckets lie
-- outside [p_from, p_to)): the old rollups are deleted, new ones written
-- where parts remain. Returns the rollups written. An internal step of
-- pggit.refresh_histogram_rollups, under its lock.
-- +goose StatementBegin
CREATE FUNCTION pggit.build_histogram_rollups(
    p_seconds integer,
    p_from    timestamptz,
    p_to      timestamptz,
    p_ops     text[],
    p_scopes  text[],
    p_starts  timestamptz[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_width interval := make_interval(secs => p_seconds);
    v_n     bigint;
BEGIN
    IF p_seconds IS NULL OR p_seconds NOT IN (3600, 86400) THEN
        RAISE EXCEPTION 'p_seconds must be 3600 or 86400, got %', coalesce(p_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_seconds';
    END IF;
    DELETE FROM pggit.histogram_rollups r
    WHERE r.bucket_seconds = p_seconds
      AND ((r.bucket_start >= p_from AND r.bucket_start < p_to)
           OR (r.operation_type, r.scope, r.bucket_start) IN (
               SELECT k.operation_type, k.scope, k.bucket_start
               FROM unnest(p_ops, p_scopes, p_starts) k(operation_type, scope, bucket_start)));

    WITH keys AS (
        SELECT DISTINCT k.operation_type, k.scope, k.bucket_start
        FROM unnest(p_ops, p_scopes, p_starts) k(operation_type, scope, bucket_start)
    ),
    src AS (
        SELECT h.operation_type, h.scope, pggit.utc_hour(h.bucket_start) AS b, h.sample_count, h.sum_us,
               h.sum_sq_us, h.min_us, h.max_us, h.bins, h.counts
        FROM pggit.performance_histograms h
        WHERE p_seconds = 3600 AND h.bucket_start >= p_from AND h.bucket_start < p_to
        UNION ALL
        SELECT h.operation_type, h.scope, k.bucket_start, h.sample_count, h.sum_us, h.sum_sq_us, h.min_us,
               h.max_us, h.bins, h.counts
        FROM keys k
        JOIN pggit.performance_histograms h
          ON h.operation_type = k.operation_type AND h.scope = k.scope
         AND h.bucket_start >= k.bucket_start AND h.bucket_start < k.bucket_start + v_width
        WHERE p_seconds = 3600
        UNION ALL
        SELECT x.operation_type, x.scope, pggit.utc_day(x.bucket_start), x.sample_count, x.sum_us, x.sum_sq_us,
               x.min_us, x.max_us, x.bins, x.counts
        FROM pggit.histogram_rollups x
        WHERE p_seconds = 86400 AND x.bucket_seconds = 3600 AND x.bucket_start >= p_from AND x.bucket_start < p_to
        UNION ALL
        SELECT x.operation_type, x.scope, k.bucket_start, x.sample_count, x.sum_us, x.sum_sq_us, x.min_us,
               x.max_us, x.bins, x.counts
        FROM keys k
        JOIN pggit.histogram_rollups x
          ON x.bucket_seconds = 3600 AND x.operation_type = k.operation_type AND x.scope = k.scope
         AND x.bucket_start >= k.bucket_start AND x.bucket_start < k.bucket_start + v_width
        WHERE p_seconds = 86400
    ),
    b AS (
        SELECT u.operation_type, u.scope, u.b, u.bin, sum(u.cnt)::bigint AS cnt
        FROM (SELECT s.operation_type, s.scope, s.b, unnest(s.bins) AS bin, unnest(s.counts) AS cnt FROM src s) u
        GROUP BY 1, 2, 3, 4
    ),
    arr AS (
        SELECT b.operation_type, b.scope, b.b, array_agg(b.bin ORDER BY b.bin) AS bins,
               array_agg(b.cnt ORDER BY b.bin) AS counts
        FROM b GROUP BY 1, 2, 3
    ),
    sums AS (
        SELECT s.operation_type, s.scope, s.b, sum(s.sample_count)::bigint AS n, sum(s.sum_us) AS su,
               sum(s.sum_sq_us) AS ss, min(s.min_us) AS mn, max(s.max_us) AS mx
        FROM src s GROUP BY 1, 2, 3
    )
    INSERT INTO pggit.histogram_rollups
        (operation_type, scope, bucket_start, bucket_seconds, sample_count, sum_us, sum_sq_us, min_us, max_us,
         bins, counts)
    SELECT s.operation_type, s.scope, s.b, p_seconds, s.n, s.su, s.ss, s.mn, s.mx, a.bins, a.counts
    FROM sums s JOIN arr a USING (operation_type, scope, b)
    ORDER BY 1, 2, 3;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- The 4-argument check of migration 00022 gives way to the upkeep below.
DROP FUNCTION pggit.refresh_histogram_rollups(timestamptz, timestamptz, timestamptz, timestamptz);

-- Brings pggit.histogram_rollups up to date, serialized by an advisory lock:
-- consumes the marks of pggit.histogram_rollup_dirty (those its snapshot
-- sees) and rebuilds their hours (those before rolled_through: later ones
-- are built with the new hours), builds the hours from rolled_through (or,
-- the first time, from the oldest row of the last 367 days: no window
-- reaches further) up to the last hour that ended at least 10 minutes ago,
-- rebuilds the day rollup of every complete day one of whose hours changed,
-- builds those of the days that became complete, advances rolled_through,
-- and deletes rollups older than 367 days. When nothing is due it reads the
-- state row and probes the marks, and returns 0. Returns the rollups
-- written. Called by the worker's hourly histogram_compaction job and by
-- every recalculation from histograms.
--
-- Why a mark committed after the refresh read the marks may stay: its rows
-- are not in the snapshot the rebuild used, and the mark was not deleted
-- (the DELETE only removes rows its snapshot sees), so the next refresh
-- rebuilds that hour with them. A mark the DELETE saw was committed with its
-- rows, so the rebuild (a later snapshot) sees them.
-- +goose StatementBegin
CREATE FUNCTION pggit.refresh_histogram_rollups()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_old    timestamptz;
    v_start  timestamptz;
    v_new    timestamptz;
    v_cut    timestamptz;
    v_floor  timestamptz;
    v_ops    text[];
    v_scopes text[];
    v_hours  timestamptz[];
    v_c      timestamptz;
    v_total  bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(1885824867, 3);
    -- A new statement: it sees what a refresh that held the lock committed.
    SELECT s.rolled_through INTO v_old FROM pggit.histogram_rollup_state s;
    -- Hours that ended at least 10 minutes ago: a transaction still writing
    -- samples of the hour that just closed has had 10 minutes to commit.
    v_cut := pggit.utc_hour(clock_timestamp() - interval '10 minutes');
    IF v_old >= v_cut AND NOT EXISTS (SELECT 1 FROM pggit.histogram_rollup_dirty) THEN
        RETURN 0;
    END IF;
    v_floor := pggit.utc_hour(clock_timestamp() - interval '367 days');

    WITH gone AS (
        DELETE FROM pggit.histogram_rollup_dirty d RETURNING d.operation_type, d.scope, d.hour
    )
    SELECT array_agg(k.operation_type), array_agg(k.scope), array_agg(k.hour) INTO v_ops, v_scopes, v_hours
    FROM (SELECT DISTINCT g.operation_type, g.scope, g.hour FROM gone g
          WHERE g.hour >= v_floor AND g.hour < v_old) k;

    IF v_old IS NULL THEN
        SELECT pggit.utc_hour(min(h.bucket_start)) INTO v_start
        FROM pggit.performance_histograms h WHERE h.bucket_start >= v_floor;
        v_start := least(coalesce(v_start, v_cut), v_cut);
    ELSE
        v_start := greatest(v_old, v_floor);
    END IF;
    v_new := greatest(v_start, v_cut);

    -- Hours: the marked ones, then the new ones a day at a time.
    IF v_ops IS NOT NULL THEN
        v_total := v_total + pggit.build_histogram_rollups(3600, NULL, NULL, v_ops, v_scopes, v_hours);
    END IF;
    v_c := v_start;
    WHILE v_c < v_new LOOP
        v_total := v_total + pggit.build_histogram_rollups(3600, v_c, least(v_c + interval '1 day', v_new),
                                                           NULL, NULL, NULL);
        v_c := v_c + interval '1 day';
    END LOOP;

    -- Days: those of marked hours that were already complete, then the ones
    -- completed now (every hour of them before v_new).
    IF v_ops IS NOT NULL THEN
        SELECT array_agg(k.operation_type), array_agg(k.scope), array_agg(k.dy) INTO v_ops, v_scopes, v_hours
        FROM (SELECT DISTINCT u.operation_type, u.scope, pggit.utc_day(u.hour) AS dy
              FROM unnest(v_ops, v_scopes, v_hours) u(operation_type, scope, hour)
              WHERE pggit.utc_day(u.hour) < pggit.utc_day(v_start)) k;
        IF v_ops IS NOT NULL THEN
            v_total := v_total + pggit.build_histogram_rollups(86400, NULL, NULL, v_ops, v_scopes, v_hours);
        END IF;
    END IF;
    v_c := pggit.utc_day(v_start);
    WHILE v_c < pggit.utc_day(v_new) LOOP
        v_total := v_total + pggit.build_histogram_rollups(86400, v_c, v_c + interval '1 day', NULL, NULL, NULL);
        v_c := v_c + interval '1 day';
    END LOOP;

    UPDATE pggit.histogram_rollup_state SET rolled_through = v_new;
    -- Rollups no window can reach (lookback is at most 365 days).
    DELETE FROM pggit.histogram_rollups x WHERE x.bucket_start < v_floor;
    RETURN v_total;
END;
$$;
-- +goose StatementEnd

-- Histogram runs call the refresh first, then take whole hours before
-- rolled_through from the rollups and the rest of the window from the rows.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.recalculate_all_baselines_rolling(
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
    v_rolled   timestamptz;
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
            -- Rollups up to date (usually nothing is due: the worker's
            -- hourly job has built them); they cover whole hours before
            -- rolled_through.
            PERFORM pggit.refresh_histogram_rollups();
            SELECT s.rolled_through INTO v_rolled FROM pggit.histogram_rollup_state s;
            -- Whole rolled hours [v_h0, v_h1) and, inside them, whole days
            -- [v_d0, v_d1) come from the rollups; the minutes at the ends
            -- (and the hours after rolled_through) from the rows.
            v_h0 := pggit.utc_hour(v_from);
            IF v_h0 < v_from THEN
                v_h0 := v_h0 + interval '1 hour';
            END IF;
            v_h1 := least(pggit.utc_hour(v_to), coalesce(v_rolled, v_h0));
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
DROP TRIGGER histogram_rollups_mark_updated_new ON pggit.performance_histograms;
DROP TRIGGER histogram_rollups_mark_updated_old ON pggit.performance_histograms;
DROP TRIGGER histogram_rollups_reset ON pggit.performance_histograms;
DROP TRIGGER histogram_rollups_mark_deleted ON pggit.performance_histograms;
DROP TRIGGER histogram_rollups_mark_inserted ON pggit.performance_histograms;

-- recalculate_all_baselines_rolling as of 00022_recalc_from_histograms.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.recalculate_all_baselines_rolling(
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

DROP FUNCTION pggit.refresh_histogram_rollups();
-- refresh_histogram_rollups as of 00022_recalc_from_histograms.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.refresh_histogram_rollups(
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

-- compact_histograms as of 00010_histograms.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.compact_histograms(
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

DROP FUNCTION pggit.build_histogram_rollups(integer, timestamptz, timestamptz, text[], text[], timestamptz[]);
DROP FUNCTION pggit.histogram_rollups_reset();
DROP FUNCTION pggit.histogram_rollups_mark_deleted();
DROP FUNCTION pggit.histogram_rollups_mark_inserted();
CREATE INDEX performance_histograms_counts_idx
    ON pggit.performance_histograms (bucket_start) INCLUDE (operation_type, scope, sample_count, min_us, max_us);
DROP TABLE pggit.histogram_rollup_dirty;
DROP TABLE pggit.histogram_rollup_state;
