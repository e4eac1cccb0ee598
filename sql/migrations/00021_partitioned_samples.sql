-- Time-partitioned samples. pggit.performance_metrics becomes a table
-- partitioned by RANGE (recorded_at): one partition per day by default
-- (samples_partition_width), created ahead (samples_partition_ahead_days) by
-- the worker's sample_partitions job and, for the first days, by this
-- migration; a default partition, pggit.performance_metrics_default, catches
-- samples no partition covers (strays: reported by `status` and the metric
-- pggit_sample_default_partition_rows; pggit.create_sample_partitions moves
-- them into the partition it creates for their range). Retention drops whole
-- partitions (pggit.drop_expired_sample_partitions, retention_samples_days,
-- default 30): no DELETE, no vacuum debt. Histograms are kept longer
-- (retention_histograms_days, default 400), deleted by pggit.apply_retention.
--
-- The contract does not change: INSERT, COPY, pggit.record_performance_metric
-- and the Recorder write to pggit.performance_metrics as before, and its
-- statement trigger (registration, histograms) now sits on the partitioned
-- table. Write to the parent, never to a partition: the trigger fires for
-- statements on the parent only. metric_id is still an identity column; the
-- parent has no primary key (a unique index on a partitioned table must hold
-- the partition key, and the identity already makes ids unique).
--
-- Upgrade of an installed database. This migration runs outside a
-- transaction so that the existing table is attached as a partition without
-- holding an exclusive lock while its rows are checked:
--   1. a CHECK (recorded_at < X) is added NOT VALID (a moment's lock), X the
--      end of tomorrow's partition (or later, past the newest sample);
--   2. the CHECK is validated: a scan under SHARE UPDATE EXCLUSIVE, which lets
--      inserts go on;
--   3. one short transaction (lock_timeout 10 s) renames the table
--      performance_metrics_legacy, creates the partitioned table, attaches the
--      legacy table as its partition FROM (MINVALUE) TO (X) (no scan: the
--      valid CHECK proves the range), reuses its indexes, creates the
--      partitions from X on and the default partition, moves the trigger and
--      repoints every view that read the table. An empty table is dropped
--      instead, and partitions are made for the retention window.
-- Each step is idempotent, so a migration interrupted between them can be
-- rerun. The legacy partition goes when retention passes X.
--
-- pg_partman may manage the partitions instead (docs/scaling.md): partitions
-- it creates are used as they are, and the worker's job only fills gaps.

-- +goose NO TRANSACTION
-- +goose Up

-- Settings. The retention list gains the samples and the histograms.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.check_retention_setting(p_name text, p_value text)
RETURNS integer
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF p_name IS NULL OR p_name NOT IN ('retention_alerts_days', 'retention_notifications_days',
            'retention_delivery_log_days', 'retention_runs_days', 'retention_baseline_history_days',
            'retention_samples_days', 'retention_histograms_days') THEN
        RAISE EXCEPTION 'setting_name must be one of retention_alerts_days, retention_notifications_days, retention_delivery_log_days, retention_runs_days, retention_baseline_history_days, retention_samples_days, retention_histograms_days, got %',
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

INSERT INTO pggit.monitor_settings (setting_name, setting_value, description) VALUES
    ('retention_samples_days', '30',
     'Days raw samples are kept: older partitions of performance_metrics are dropped whole (1..36500)'),
    ('retention_histograms_days', '400',
     'Days latency histograms (performance_histograms) are kept (1..36500)')
ON CONFLICT (setting_name) DO NOTHING;

-- Raises 22023 unless p_value is valid for partition setting p_name:
-- samples_partition_width, an interval of whole hours from 1 hour to 31 days
-- (no months: partitions are aligned on UTC hours from Monday 2000-01-03);
-- samples_partition_ahead_days, whole days from 1 to 365. Returns the value
-- normalized (an interval as hours, days as a number).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.check_partition_setting(p_name text, p_value text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_width interval;
BEGIN
    IF p_name IS NULL OR p_name NOT IN ('samples_partition_width', 'samples_partition_ahead_days') THEN
        RAISE EXCEPTION 'setting_name must be one of samples_partition_width, samples_partition_ahead_days, got %',
                coalesce(quote_literal(regexp_replace(left(p_name, 60), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'setting_name';
    END IF;
    IF p_name = 'samples_partition_ahead_days' THEN
        IF NOT coalesce(CASE WHEN p_value ~ '^[0-9]{1,3}$' THEN p_value::integer BETWEEN 1 AND 365 END, false) THEN
            RAISE EXCEPTION 'samples_partition_ahead_days must be a whole number of days between 1 and 365, got %',
                    coalesce(quote_literal(regexp_replace(left(p_value, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
                USING ERRCODE = 'invalid_parameter_value', COLUMN = p_name;
        END IF;
        RETURN p_value::integer::text;
    END IF;
    BEGIN
        v_width := p_value::interval;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
        v_width := NULL;
    END;
    IF v_width IS NULL OR extract(month FROM v_width) <> 0 OR extract(year FROM v_width) <> 0
       OR v_width < interval '1 hour' OR v_width > interval '31 days'
       OR extract(epoch FROM v_width)::numeric % 3600 <> 0 THEN
        RAISE EXCEPTION 'samples_partition_width must be a whole number of hours from 1 hour to 31 days (''1 day'', ''6 hours'', ''7 days''), got %',
                coalesce(quote_literal(regexp_replace(left(p_value, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = p_name;
    END IF;
    RETURN (extract(epoch FROM v_width)::bigint / 3600) || ' hours';
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.monitor_settings_check_partitions()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    PERFORM pggit.check_partition_setting(NEW.setting_name, NEW.setting_value);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

DROP TRIGGER IF EXISTS monitor_settings_check_partitions ON pggit.monitor_settings;

CREATE TRIGGER monitor_settings_check_partitions
    BEFORE INSERT OR UPDATE ON pggit.monitor_settings
    FOR EACH ROW
    WHEN (NEW.setting_name LIKE 'samples\_partition%')
    EXECUTE FUNCTION pggit.monitor_settings_check_partitions();

INSERT INTO pggit.monitor_settings (setting_name, setting_value, description) VALUES
    ('samples_partition_width', '1 day',
     'Width of a partition of performance_metrics: whole hours from 1 hour to 31 days, aligned on UTC (applies to partitions created from now on)'),
    ('samples_partition_ahead_days', '3',
     'Days ahead of now for which partitions of performance_metrics are created (1..365)')
ON CONFLICT (setting_name) DO NOTHING;

-- The width of new partitions (checked again when read: 22023 if bad).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.sample_partition_width()
RETURNS interval
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_value text;
BEGIN
    SELECT s.setting_value INTO v_value FROM pggit.monitor_settings s WHERE s.setting_name = 'samples_partition_width';
    RETURN pggit.check_partition_setting('samples_partition_width', coalesce(v_value, '1 day'))::interval;
END;
$$;
-- +goose StatementEnd

-- The partitions of pggit.performance_metrics with their ranges, oldest
-- first: range_start NULL for a partition from MINVALUE, range_end NULL to
-- MAXVALUE; the default partition (last) has is_default and no range. Bounds
-- are read from the catalog (pg_get_expr) in UTC and ISO style. row_estimate
-- is the planner's (NULL before the first ANALYZE); total_bytes counts the
-- indexes.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.sample_partitions()
RETURNS TABLE (partition_name text, range_start timestamptz, range_end timestamptz, is_default boolean,
               row_estimate bigint, total_bytes bigint)
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
SET datestyle = 'ISO, YMD'
SET timezone = 'UTC'
AS $$
BEGIN
    RETURN QUERY
    SELECT c.relname::text,
           CASE WHEN b.m[1] IS NULL OR b.m[1] = 'MINVALUE' THEN NULL ELSE btrim(b.m[1], '''')::timestamptz END,
           CASE WHEN b.m[2] IS NULL OR b.m[2] = 'MAXVALUE' THEN NULL ELSE btrim(b.m[2], '''')::timestamptz END,
           e.expr = 'DEFAULT',
           CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END,
           pg_catalog.pg_total_relation_size(c.oid)
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS expr) e
    CROSS JOIN LATERAL (SELECT regexp_match(e.expr, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m) b
    WHERE i.inhparent = 'pggit.performance_metrics'::regclass
    ORDER BY e.expr = 'DEFAULT', 2 NULLS FIRST;
END;
$$;
-- +goose StatementEnd

-- The partition covering p_at, or NULL (the default partition takes it).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.sample_partition_at(p_at timestamptz)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT p.partition_name FROM pggit.sample_partitions() p
    WHERE NOT p.is_default
      AND coalesce(p.range_start, '-infinity') <= p_at AND coalesce(p.range_end, 'infinity') > p_at
$$;
-- +goose StatementEnd

-- Creates the partitions missing in [p_from, p_to) (p_to NULL: now() plus
-- samples_partition_ahead_days), each one slot of samples_partition_width
-- aligned on UTC from Monday 2000-01-03 (a slot partly covered by an existing
-- partition gets the rest of it). Samples of the new range waiting in the
-- default partition are moved into it, without firing the trigger (their
-- histograms already count them). Idempotent: existing partitions are left
-- as they are, whoever made them. Concurrent callers run one after the other.
-- Returns the partitions it created.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.create_sample_partitions(
    p_from timestamptz DEFAULT now(),
    p_to   timestamptz DEFAULT NULL)
RETURNS TABLE (partition_name text, range_start timestamptz, range_end timestamptz, moved_rows bigint)
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
SET timezone = 'UTC'
SET lock_timeout = '10s'
AS $$
DECLARE
    v_width interval := pggit.sample_partition_width();
    v_to    timestamptz;
    v_at    timestamptz;
    v_hi    timestamptz;
    v_end   timestamptz;
    v_name  text;
    v_n     bigint;
    v_ahead text;
BEGIN
    IF p_from IS NULL OR NOT isfinite(p_from) THEN
        RAISE EXCEPTION 'p_from must be a finite timestamp, got %', coalesce(p_from::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_from';
    END IF;
    IF p_to IS NULL THEN
        SELECT s.setting_value INTO v_ahead FROM pggit.monitor_settings s WHERE s.setting_name = 'samples_partition_ahead_days';
        v_to := now() + make_interval(days => pggit.check_partition_setting('samples_partition_ahead_days', coalesce(v_ahead, '3'))::integer);
        IF v_to <= p_from THEN
            RETURN; -- nothing is due ahead of p_from
        END IF;
    ELSE
        v_to := p_to;
    END IF;
    IF NOT isfinite(v_to) OR v_to <= p_from OR v_to - p_from > interval '3660 days' THEN
        RAISE EXCEPTION 'p_to must be after p_from and at most 3660 days later, got % and %', p_from, coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_to';
    END IF;
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'pggit.performance_metrics'::regclass) <> 'p' THEN
        RAISE EXCEPTION 'pggit.performance_metrics is not partitioned'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pggit.sample_partitions'));

    v_at := date_bin(v_width, p_from, '2000-01-03 00:00:00+00');
    WHILE v_at < v_to LOOP
        SELECT p.range_end INTO v_end FROM pggit.sample_partitions() p
        WHERE NOT p.is_default
          AND coalesce(p.range_start, '-infinity') <= v_at AND coalesce(p.range_end, 'infinity') > v_at;
        IF FOUND THEN
            EXIT WHEN v_end IS NULL;
            v_at := v_end;
            CONTINUE;
        END IF;
        SELECT least(date_bin(v_width, v_at, '2000-01-03 00:00:00+00') + v_width, min(p.range_start)) INTO v_hi
        FROM pggit.sample_partitions() p
        WHERE NOT p.is_default AND p.range_start > v_at;
        v_name := 'performance_metrics_p' || to_char(v_at, CASE
            WHEN v_at = date_trunc('day', v_at) AND v_hi - v_at >= interval '1 day' THEN 'YYYYMMDD'
            WHEN v_at = date_trunc('hour', v_at) THEN 'YYYYMMDD"_"HH24'
            ELSE 'YYYYMMDD"_"HH24MISS' END);
        v_n := 0;
        IF to_regclass('pggit.performance_metrics_default') IS NOT NULL AND EXISTS (
                SELECT 1 FROM pggit.performance_metrics_default d WHERE d.recorded_at >= v_at AND d.recorded_at < v_hi) THEN
            EXECUTE format('CREATE TABLE pggit.%I (LIKE pggit.performance_metrics INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
            EXECUTE format('WITH moved AS (DELETE FROM pggit.performance_metrics_default d
                                           WHERE d.recorded_at >= $1 AND d.recorded_at < $2 RETURNING d.*)
                            INSERT INTO pggit.%I SELECT * FROM moved', v_name) USING v_at, v_hi;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            EXECUTE format('ALTER TABLE pggit.performance_metrics ATTACH PARTITION pggit.%I FOR VALUES FROM (%L) TO (%L)',
                           v_name, v_at, v_hi);
        ELSE
            EXECUTE format('CREATE TABLE pggit.%I PARTITION OF pggit.performance_metrics FOR VALUES FROM (%L) TO (%L)',
                           v_name, v_at, v_hi);
        END IF;
        partition_name := v_name; range_start := v_at; range_end := v_hi; moved_rows := v_n;
        RETURN NEXT;
        v_at := v_hi;
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- Drops the partitions whose range ends at or before p_before (never the
-- default partition; p_before not after now()): each is detached, then
-- dropped, so the parent is locked before the partition, in the order inserts
-- take them. Returns what it dropped and the bytes it freed.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.drop_sample_partitions(p_before timestamptz)
RETURNS TABLE (partition_name text, range_start timestamptz, range_end timestamptz, total_bytes bigint)
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
SET lock_timeout = '10s'
AS $$
DECLARE
    r record;
BEGIN
    IF p_before IS NULL OR NOT isfinite(p_before) OR p_before > now() THEN
        RAISE EXCEPTION 'p_before must be a finite timestamp not after now(), got %', coalesce(p_before::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_before';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pggit.sample_partitions'));
    FOR r IN
        SELECT p.* FROM pggit.sample_partitions() p
        WHERE NOT p.is_default AND p.range_end <= p_before
        ORDER BY p.range_end
    LOOP
        partition_name := r.partition_name; range_start := r.range_start; range_end := r.range_end;
        total_bytes := r.total_bytes;
        EXECUTE format('ALTER TABLE pggit.performance_metrics DETACH PARTITION pggit.%I', r.partition_name);
        EXECUTE format('DROP TABLE pggit.%I', r.partition_name);
        RETURN NEXT;
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- Drops the partitions older than retention_samples_days.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.drop_expired_sample_partitions()
RETURNS TABLE (partition_name text, range_start timestamptz, range_end timestamptz, total_bytes bigint)
LANGUAGE sql
SET search_path = pggit, pg_catalog
AS $$
    SELECT * FROM pggit.drop_sample_partitions(
        now() - make_interval(days => pggit.retention_days('retention_samples_days')))
$$;
-- +goose StatementEnd

-- The days of retention setting p_name: its stored value (checked again, in
-- case the trigger was bypassed), or its default when the row was deleted
-- (samples 30, histograms 400, the others 90).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.retention_days(p_name text)
RETURNS integer
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_value text;
BEGIN
    SELECT s.setting_value INTO v_value FROM pggit.monitor_settings s WHERE s.setting_name = p_name;
    RETURN pggit.check_retention_setting(p_name, CASE WHEN FOUND THEN v_value
        WHEN p_name = 'retention_samples_days' THEN '30'
        WHEN p_name = 'retention_histograms_days' THEN '400'
        ELSE '90' END);
END;
$$;
-- +goose StatementEnd

-- Deletes at most p_batch samples recorded before p_before (oldest first) and
-- returns how many; callers repeat until it returns less than p_batch, each
-- call in its own short transaction. Whole partitions go faster by
-- pggit.drop_sample_partitions: this is for what they leave, the default
-- partition's strays and a partition straddling p_before (such as
-- performance_metrics_legacy after an upgrade). The batch ends at the
-- p_batch-th oldest sample by (recorded_at, metric_id), found through the
-- recorded_at index: the parent has no index on metric_id.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.delete_old_samples(p_before timestamptz, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_n  integer;
    v_at timestamptz;
    v_id bigint;
BEGIN
    IF p_before IS NULL THEN
        RAISE EXCEPTION 'p_before must not be NULL' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_before';
    END IF;
    IF p_batch IS NULL OR p_batch NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'p_batch must be between 1 and 1000000, got %', coalesce(p_batch::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_batch';
    END IF;
    SELECT o.recorded_at, o.metric_id INTO v_at, v_id
    FROM pggit.performance_metrics o
    WHERE o.recorded_at < p_before
    ORDER BY o.recorded_at, o.metric_id
    OFFSET p_batch - 1
    LIMIT 1;
    IF FOUND THEN
        DELETE FROM pggit.performance_metrics m
        WHERE m.recorded_at <= v_at AND (m.recorded_at, m.metric_id) <= (v_at, v_id);
    ELSE
        DELETE FROM pggit.performance_metrics m WHERE m.recorded_at < p_before;
    END IF;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- Samples in the default partition: 0 when all is well (no samples outside
-- the partitions, or no default partition).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.default_partition_rows()
RETURNS bigint
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF to_regclass('pggit.performance_metrics_default') IS NULL THEN
        RETURN 0;
    END IF;
    RETURN (SELECT count(*) FROM pggit.performance_metrics_default);
END;
$$;
-- +goose StatementEnd

-- 1. The range CHECK, NOT VALID (only while the table is not partitioned).
-- +goose StatementBegin
DO $$
DECLARE
    v_width interval := pggit.sample_partition_width();
    v_until timestamptz;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'pggit.performance_metrics'::regclass) <> 'r'
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conname = 'performance_metrics_legacy_range'
                  AND conrelid = 'pggit.performance_metrics'::regclass) THEN
        RETURN;
    END IF;
    SELECT date_bin(v_width, greatest(now() + interval '1 day', max(m.recorded_at)), '2000-01-03 00:00:00+00') + v_width
    INTO v_until
    FROM pggit.performance_metrics m;
    SET LOCAL lock_timeout = '10s';
    EXECUTE format('ALTER TABLE pggit.performance_metrics ADD CONSTRAINT performance_metrics_legacy_range CHECK (recorded_at < %L) NOT VALID',
                   v_until);
    EXECUTE format('COMMENT ON CONSTRAINT performance_metrics_legacy_range ON pggit.performance_metrics IS %L', v_until);
END;
$$;
-- +goose StatementEnd

-- 2. Validated while inserts go on.
-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'pggit.performance_metrics'::regclass) = 'r' THEN
        ALTER TABLE pggit.performance_metrics VALIDATE CONSTRAINT performance_metrics_legacy_range;
    END IF;
END;
$$;
-- +goose StatementEnd

-- 3. The swap, in one short transaction.
-- +goose StatementBegin
DO $$
DECLARE
    v_until timestamptz;
    v_seq   text;
    v_last  bigint;
    v_next  bigint;
    v_empty boolean;
    v_view  record;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'pggit.performance_metrics'::regclass) <> 'r' THEN
        RETURN;
    END IF;
    SET LOCAL lock_timeout = '10s';
    LOCK TABLE pggit.performance_metrics IN ACCESS EXCLUSIVE MODE;
    SET LOCAL search_path = pg_catalog;

    v_until := obj_description(
        (SELECT co.oid FROM pg_constraint co WHERE co.conname = 'performance_metrics_legacy_range'
           AND co.conrelid = 'pggit.performance_metrics'::regclass), 'pg_constraint')::timestamptz;
    v_empty := NOT EXISTS (SELECT 1 FROM pggit.performance_metrics);
    v_seq := pg_get_serial_sequence('pggit.performance_metrics', 'metric_id');
    EXECUTE format('SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s', v_seq) INTO v_next;

    ALTER TABLE pggit.performance_metrics RENAME TO performance_metrics_legacy;
    ALTER INDEX pggit.performance_metrics_pkey RENAME TO performance_metrics_legacy_pkey;
    ALTER INDEX pggit.performance_metrics_operation_recorded_idx RENAME TO performance_metrics_legacy_operation_recorded_idx;
    ALTER INDEX pggit.performance_metrics_recorded_idx RENAME TO performance_metrics_legacy_recorded_idx;
    DROP TRIGGER performance_metrics_after_insert ON pggit.performance_metrics_legacy;
    ALTER TABLE pggit.performance_metrics_legacy ALTER COLUMN metric_id DROP IDENTITY;

    CREATE TABLE pggit.performance_metrics (
        metric_id             bigint      GENERATED ALWAYS AS IDENTITY,
        operation_type        text        NOT NULL,
        duration_microseconds bigint      NOT NULL,
        recorded_at           timestamptz NOT NULL DEFAULT now(),
        scope                 text        NOT NULL DEFAULT '',
        user_name             text,
        metadata              jsonb,
        CONSTRAINT performance_metrics_operation_type_check
            CHECK (btrim(operation_type) <> '' AND length(operation_type) <= 200),
        CONSTRAINT performance_metrics_duration_check
            CHECK (duration_microseconds > 0),
        CONSTRAINT performance_metrics_scope_check
            CHECK (length(scope) <= 200),
        CONSTRAINT performance_metrics_operation_type_valid CHECK (pggit.is_valid_name(operation_type)),
        CONSTRAINT performance_metrics_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)),
        CONSTRAINT performance_metrics_user_name_valid CHECK (user_name IS NULL OR pggit.is_valid_name(user_name))
    ) PARTITION BY RANGE (recorded_at);
    EXECUTE format('ALTER TABLE pggit.performance_metrics ALTER COLUMN metric_id RESTART WITH %s', v_next);
    COMMENT ON TABLE pggit.performance_metrics IS
        'Samples, partitioned by recorded_at (pggit.sample_partitions). Write here, not to a partition.';

    CREATE INDEX performance_metrics_operation_recorded_idx
        ON pggit.performance_metrics (operation_type, scope, recorded_at)
        INCLUDE (duration_microseconds);
    CREATE INDEX performance_metrics_recorded_idx
        ON pggit.performance_metrics (recorded_at);

    -- Its indexes match the parent's, so they are attached, not rebuilt.
    EXECUTE format('ALTER TABLE pggit.performance_metrics ATTACH PARTITION pggit.performance_metrics_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                   v_until);
    ALTER TABLE pggit.performance_metrics_legacy DROP CONSTRAINT performance_metrics_legacy_range;

    CREATE TABLE pggit.performance_metrics_default PARTITION OF pggit.performance_metrics DEFAULT;

    CREATE TRIGGER performance_metrics_after_insert
        AFTER INSERT ON pggit.performance_metrics
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT
        EXECUTE FUNCTION pggit.performance_metrics_after_insert();

    -- Views still read the renamed table: point them at the new one. Ours
    -- from their source (00009), a host's own views from their definition.
    SET LOCAL search_path = pggit, pg_catalog;
    CREATE OR REPLACE VIEW pggit.v_monitoring_system_health AS
    SELECT
        (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL)                               AS open_alerts,
        (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND severity = 'CRITICAL')     AS open_critical,
        (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND severity = 'WARNING')      AS open_warning,
        (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND acknowledged_at IS NULL)   AS open_unacknowledged,
        (SELECT count(*) FROM pggit.performance_alerts WHERE created_at > now() - interval '1 hour')             AS alerts_last_hour,
        (SELECT count(*) FROM pggit.performance_alerts WHERE created_at > now() - interval '1 day')              AS alerts_last_day,
        (SELECT count(*) FROM pggit.performance_operation_types WHERE is_tracked)                               AS tracked_operations,
        (SELECT count(*) FROM pggit.performance_baselines WHERE is_active)                                      AS active_baselines,
        (SELECT count(*) FROM pggit.performance_baselines
          WHERE is_active AND calculated_at < now() - interval '2 days')                                        AS stale_baselines,
        (SELECT count(*) FROM pggit.performance_metrics WHERE recorded_at > now() - interval '1 hour')           AS samples_last_hour,
        (SELECT max(started_at) FROM pggit.baseline_recalc_execution)                                           AS last_recalc_at,
        (SELECT status FROM pggit.baseline_recalc_execution ORDER BY execution_id DESC LIMIT 1)                 AS last_recalc_status,
        (SELECT count(*) FROM pggit.notification_batch_queue WHERE status IN ('accumulating', 'ready', 'sending')) AS notification_batches_pending,
        (SELECT count(*) FROM pggit.notification_batch_queue WHERE status = 'failed')                           AS notification_batches_retrying,
        (SELECT count(*) FROM pggit.alert_notification_log
          WHERE outcome = 'dead' AND created_at > now() - interval '1 day')                                     AS notification_batches_dead_last_day,
        (SELECT count(*) FROM pggit.alert_notification_webhooks WHERE enabled)                                  AS webhooks_enabled,
        (SELECT count(*) FROM pggit.alert_notification_webhooks WHERE enabled AND test_status = 'failed')        AS webhooks_failing_test,
        (SELECT count(*) FROM pggit.alert_snooze WHERE is_active AND snooze_until > now())                      AS active_snoozes,
        now()                                                                                                   AS generated_at;

    CREATE OR REPLACE VIEW pggit.v_operation_performance_trend AS
    WITH mark AS (
        -- Rolled hours are read from the rollup; later ones from the samples.
        SELECT greatest(coalesce(max(hour) + interval '1 hour', now() - interval '24 hours'),
                        date_trunc('hour', now() - interval '24 hours')) AS live_from
        FROM pggit.performance_hourly
        WHERE hour > now() - interval '25 hours'
    ),
    hours AS (
        SELECT r.operation_type, r.scope, r.hour, r.samples, r.avg_ms, r.p99_ms
        FROM pggit.performance_hourly r
        WHERE r.hour >= date_trunc('hour', now() - interval '24 hours')
          AND r.hour < (SELECT live_from FROM mark)
        UNION ALL
        -- A scalar subquery, not a join, so the bound is an index range scan key.
        SELECT m.operation_type, m.scope, date_trunc('hour', m.recorded_at),
               count(*),
               avg(m.duration_microseconds)::double precision / 1000.0,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY m.duration_microseconds) / 1000.0
        FROM pggit.performance_metrics m
        WHERE m.recorded_at >= (SELECT live_from FROM mark) AND m.recorded_at <= now()
        GROUP BY 1, 2, 3
    )
    SELECT h.operation_type,
           h.scope,
           h.hour,
           h.samples,
           h.avg_ms,
           h.p99_ms,
           b.p99_microseconds / 1000.0                     AS baseline_p99_ms,
           h.p99_ms / nullif(b.p99_microseconds / 1000.0, 0) AS p99_ratio,
           CASE
               WHEN b.baseline_id IS NULL THEN 'NO_BASELINE'
               WHEN h.p99_ms * 1000.0 >= b.p99_microseconds * coalesce(t.critical_multiplier, 5.0) THEN 'CRITICAL'
               WHEN h.p99_ms * 1000.0 >= b.p99_microseconds * coalesce(t.alert_threshold_multiplier, 2.0) THEN 'WARNING'
               ELSE 'NORMAL'
           END                                             AS status
    FROM hours h
    LEFT JOIN pggit.performance_baselines b
           ON b.operation_type = h.operation_type AND b.scope = h.scope AND b.is_active
    LEFT JOIN pggit.performance_operation_types t
           ON t.operation_type = h.operation_type;

    CREATE OR REPLACE VIEW pggit.v_monitoring_dashboard_freshness AS
    SELECT f.source, f.last_update_at, now() - f.last_update_at AS age
    FROM (
        SELECT 'samples'::text AS source,
               (SELECT max(recorded_at) FROM pggit.performance_metrics WHERE recorded_at <= now()) AS last_update_at
        UNION ALL
        SELECT 'baselines', (SELECT max(calculated_at) FROM pggit.performance_baselines)
        UNION ALL
        SELECT 'recalculation', (SELECT max(started_at) FROM pggit.baseline_recalc_execution)
        UNION ALL
        SELECT 'alerts', (SELECT max(last_seen_at) FROM pggit.performance_alerts)
        UNION ALL
        SELECT 'notifications', (SELECT max(created_at) FROM pggit.alert_notification_log)
        UNION ALL
        SELECT 'snoozes', (SELECT max(created_at) FROM pggit.alert_snooze)
    ) f;

    CREATE OR REPLACE VIEW pggit.v_complete_system_overview AS
    WITH keys AS (
        SELECT operation_type, scope FROM pggit.performance_baselines WHERE is_active
        UNION
        SELECT operation_type, scope FROM pggit.performance_alerts WHERE resolved_at IS NULL
    )
    SELECT k.operation_type,
           k.scope,
           t.category,
           coalesce(t.is_tracked, true)                                  AS is_tracked,
           b.sample_count                                                AS baseline_samples,
           b.p50_microseconds / 1000.0                                   AS baseline_p50_ms,
           b.p99_microseconds / 1000.0                                   AS baseline_p99_ms,
           b.calculated_at                                               AS baseline_calculated_at,
           (SELECT count(*) FROM pggit.performance_metrics m
            WHERE m.operation_type = k.operation_type AND m.scope = k.scope
              AND m.recorded_at > now() - interval '1 hour')             AS samples_last_hour,
           (SELECT count(*) FROM pggit.performance_alerts a
            WHERE a.operation_type = k.operation_type AND a.scope = k.scope AND a.resolved_at IS NULL) AS open_alerts,
           (SELECT a.severity FROM pggit.performance_alerts a
            WHERE a.operation_type = k.operation_type AND a.scope = k.scope AND a.resolved_at IS NULL
            ORDER BY pggit.severity_rank(a.severity) DESC LIMIT 1)       AS worst_open_severity,
           pggit.is_alert_snoozed(k.operation_type, 'THRESHOLD_EXCEEDED') AS threshold_snoozed
    FROM keys k
    LEFT JOIN pggit.performance_baselines b
           ON b.operation_type = k.operation_type AND b.scope = k.scope AND b.is_active
    LEFT JOIN pggit.performance_operation_types t
           ON t.operation_type = k.operation_type;
    SET LOCAL search_path = pg_catalog;
    FOR v_view IN
        SELECT DISTINCT c.oid::regclass::text AS name, pg_get_viewdef(c.oid) AS def
        FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid
        JOIN pg_class c ON c.oid = r.ev_class
        WHERE d.refobjid = 'pggit.performance_metrics_legacy'::regclass AND c.relkind = 'v'
          AND c.relnamespace <> 'pggit'::regnamespace
    LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v_view.name,
                       regexp_replace(v_view.def, '\mperformance_metrics_legacy\M', 'performance_metrics', 'g'));
    END LOOP;

    IF v_empty THEN
        DROP TABLE pggit.performance_metrics_legacy;
        PERFORM pggit.create_sample_partitions(now() - make_interval(days => pggit.retention_days('retention_samples_days')), NULL);
    ELSE
        PERFORM pggit.create_sample_partitions(v_until, NULL);
    END IF;
END;
$$;
-- +goose StatementEnd

-- Retention also deletes histograms past retention_histograms_days.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.apply_retention(p_batch integer DEFAULT 10000)
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
    v_hist    timestamptz;
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
    v_hist    := v_now - make_interval(days => pggit.retention_days('retention_histograms_days'));

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

    -- Histograms whose bucket started before retention_histograms_days.
    WITH gone AS (
        DELETE FROM pggit.performance_histograms h
        WHERE h.ctid = ANY (ARRAY(
            SELECT o.ctid
            FROM pggit.performance_histograms o
            WHERE o.bucket_start < v_hist
            ORDER BY o.bucket_start
            LIMIT p_batch
            FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*) INTO v_n FROM gone;
    table_name := 'performance_histograms'; deleted := v_n; RETURN NEXT;
END;
$$;
-- +goose StatementEnd


-- Partitions, their ranges, rows (planner estimate; NULL before the first
-- ANALYZE) and size on disk with indexes (pggit.sample_partitions).
CREATE OR REPLACE VIEW pggit.v_sample_partitions AS
SELECT * FROM pggit.sample_partitions();

-- +goose Down
-- Back to one plain table holding every sample (copied: run it on a
-- database of a size you can copy).
-- +goose StatementBegin
DO $$
DECLARE
    v_seq  text;
    v_next bigint;
    v_view record;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'pggit.performance_metrics'::regclass) <> 'p' THEN
        RETURN;
    END IF;
    SET LOCAL lock_timeout = '10s';
    LOCK TABLE pggit.performance_metrics IN ACCESS EXCLUSIVE MODE;
    SET LOCAL search_path = pg_catalog;

    v_seq := pg_get_serial_sequence('pggit.performance_metrics', 'metric_id');
    EXECUTE format('SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s', v_seq) INTO v_next;
    ALTER TABLE pggit.performance_metrics RENAME TO performance_metrics_partitioned;
    EXECUTE format('ALTER SEQUENCE %s RENAME TO performance_metrics_partitioned_metric_id_seq', v_seq);
    ALTER INDEX pggit.performance_metrics_operation_recorded_idx RENAME TO performance_metrics_partitioned_operation_recorded_idx;
    ALTER INDEX pggit.performance_metrics_recorded_idx RENAME TO performance_metrics_partitioned_recorded_idx;
    DROP TRIGGER performance_metrics_after_insert ON pggit.performance_metrics_partitioned;

    CREATE TABLE pggit.performance_metrics (
        metric_id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        operation_type        text        NOT NULL,
        duration_microseconds bigint      NOT NULL,
        recorded_at           timestamptz NOT NULL DEFAULT now(),
        scope                 text        NOT NULL DEFAULT '',
        user_name             text,
        metadata              jsonb,
        CONSTRAINT performance_metrics_operation_type_check
            CHECK (btrim(operation_type) <> '' AND length(operation_type) <= 200),
        CONSTRAINT performance_metrics_duration_check
            CHECK (duration_microseconds > 0),
        CONSTRAINT performance_metrics_scope_check
            CHECK (length(scope) <= 200),
        CONSTRAINT performance_metrics_operation_type_valid CHECK (pggit.is_valid_name(operation_type)),
        CONSTRAINT performance_metrics_scope_valid CHECK (pggit.is_valid_name(scope, 200, true)),
        CONSTRAINT performance_metrics_user_name_valid CHECK (user_name IS NULL OR pggit.is_valid_name(user_name))
    );
    INSERT INTO pggit.performance_metrics
        (metric_id, operation_type, duration_microseconds, recorded_at, scope, user_name, metadata)
    OVERRIDING SYSTEM VALUE
    SELECT metric_id, operation_type, duration_microseconds, recorded_at, scope, user_name, metadata
    FROM pggit.performance_metrics_partitioned;
    EXECUTE format('ALTER TABLE pggit.performance_metrics ALTER COLUMN metric_id RESTART WITH %s', v_next);
    CREATE INDEX performance_metrics_operation_recorded_idx
        ON pggit.performance_metrics (operation_type, scope, recorded_at)
        INCLUDE (duration_microseconds);
    CREATE INDEX performance_metrics_recorded_idx
        ON pggit.performance_metrics (recorded_at);
    CREATE TRIGGER performance_metrics_after_insert
        AFTER INSERT ON pggit.performance_metrics
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT
        EXECUTE FUNCTION pggit.performance_metrics_after_insert();

    SET LOCAL search_path = pggit, pg_catalog;
    CREATE OR REPLACE VIEW pggit.v_monitoring_system_health AS
    SELECT
        (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL)                               AS open_alerts,
        (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND severity = 'CRITICAL')     AS open_critical,
        (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND severity = 'WARNING')      AS open_warning,
        (SELECT count(*) FROM pggit.performance_alerts WHERE resolved_at IS NULL AND acknowledged_at IS NULL)   AS open_unacknowledged,
        (SELECT count(*) FROM pggit.performance_alerts WHERE created_at > now() - interval '1 hour')             AS alerts_last_hour,
        (SELECT count(*) FROM pggit.performance_alerts WHERE created_at > now() - interval '1 day')              AS alerts_last_day,
        (SELECT count(*) FROM pggit.performance_operation_types WHERE is_tracked)                               AS tracked_operations,
        (SELECT count(*) FROM pggit.performance_baselines WHERE is_active)                                      AS active_baselines,
        (SELECT count(*) FROM pggit.performance_baselines
          WHERE is_active AND calculated_at < now() - interval '2 days')                                        AS stale_baselines,
        (SELECT count(*) FROM pggit.performance_metrics WHERE recorded_at > now() - interval '1 hour')           AS samples_last_hour,
        (SELECT max(started_at) FROM pggit.baseline_recalc_execution)                                           AS last_recalc_at,
        (SELECT status FROM pggit.baseline_recalc_execution ORDER BY execution_id DESC LIMIT 1)                 AS last_recalc_status,
        (SELECT count(*) FROM pggit.notification_batch_queue WHERE status IN ('accumulating', 'ready', 'sending')) AS notification_batches_pending,
        (SELECT count(*) FROM pggit.notification_batch_queue WHERE status = 'failed')                           AS notification_batches_retrying,
        (SELECT count(*) FROM pggit.alert_notification_log
          WHERE outcome = 'dead' AND created_at > now() - interval '1 day')                                     AS notification_batches_dead_last_day,
        (SELECT count(*) FROM pggit.alert_notification_webhooks WHERE enabled)                                  AS webhooks_enabled,
        (SELECT count(*) FROM pggit.alert_notification_webhooks WHERE enabled AND test_status = 'failed')        AS webhooks_failing_test,
        (SELECT count(*) FROM pggit.alert_snooze WHERE is_active AND snooze_until > now())                      AS active_snoozes,
        now()                                                                                                   AS generated_at;

    CREATE OR REPLACE VIEW pggit.v_operation_performance_trend AS
    WITH mark AS (
        -- Rolled hours are read from the rollup; later ones from the samples.
        SELECT greatest(coalesce(max(hour) + interval '1 hour', now() - interval '24 hours'),
                        date_trunc('hour', now() - interval '24 hours')) AS live_from
        FROM pggit.performance_hourly
        WHERE hour > now() - interval '25 hours'
    ),
    hours AS (
        SELECT r.operation_type, r.scope, r.hour, r.samples, r.avg_ms, r.p99_ms
        FROM pggit.performance_hourly r
        WHERE r.hour >= date_trunc('hour', now() - interval '24 hours')
          AND r.hour < (SELECT live_from FROM mark)
        UNION ALL
        -- A scalar subquery, not a join, so the bound is an index range scan key.
        SELECT m.operation_type, m.scope, date_trunc('hour', m.recorded_at),
               count(*),
               avg(m.duration_microseconds)::double precision / 1000.0,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY m.duration_microseconds) / 1000.0
        FROM pggit.performance_metrics m
        WHERE m.recorded_at >= (SELECT live_from FROM mark) AND m.recorded_at <= now()
        GROUP BY 1, 2, 3
    )
    SELECT h.operation_type,
           h.scope,
           h.hour,
           h.samples,
           h.avg_ms,
           h.p99_ms,
           b.p99_microseconds / 1000.0                     AS baseline_p99_ms,
           h.p99_ms / nullif(b.p99_microseconds / 1000.0, 0) AS p99_ratio,
           CASE
               WHEN b.baseline_id IS NULL THEN 'NO_BASELINE'
               WHEN h.p99_ms * 1000.0 >= b.p99_microseconds * coalesce(t.critical_multiplier, 5.0) THEN 'CRITICAL'
               WHEN h.p99_ms * 1000.0 >= b.p99_microseconds * coalesce(t.alert_threshold_multiplier, 2.0) THEN 'WARNING'
               ELSE 'NORMAL'
           END                                             AS status
    FROM hours h
    LEFT JOIN pggit.performance_baselines b
           ON b.operation_type = h.operation_type AND b.scope = h.scope AND b.is_active
    LEFT JOIN pggit.performance_operation_types t
           ON t.operation_type = h.operation_type;

    CREATE OR REPLACE VIEW pggit.v_monitoring_dashboard_freshness AS
    SELECT f.source, f.last_update_at, now() - f.last_update_at AS age
    FROM (
        SELECT 'samples'::text AS source,
               (SELECT max(recorded_at) FROM pggit.performance_metrics WHERE recorded_at <= now()) AS last_update_at
        UNION ALL
        SELECT 'baselines', (SELECT max(calculated_at) FROM pggit.performance_baselines)
        UNION ALL
        SELECT 'recalculation', (SELECT max(started_at) FROM pggit.baseline_recalc_execution)
        UNION ALL
        SELECT 'alerts', (SELECT max(last_seen_at) FROM pggit.performance_alerts)
        UNION ALL
        SELECT 'notifications', (SELECT max(created_at) FROM pggit.alert_notification_log)
        UNION ALL
        SELECT 'snoozes', (SELECT max(created_at) FROM pggit.alert_snooze)
    ) f;

    CREATE OR REPLACE VIEW pggit.v_complete_system_overview AS
    WITH keys AS (
        SELECT operation_type, scope FROM pggit.performance_baselines WHERE is_active
        UNION
        SELECT operation_type, scope FROM pggit.performance_alerts WHERE resolved_at IS NULL
    )
    SELECT k.operation_type,
           k.scope,
           t.category,
           coalesce(t.is_tracked, true)                                  AS is_tracked,
           b.sample_count                                                AS baseline_samples,
           b.p50_microseconds / 1000.0                                   AS baseline_p50_ms,
           b.p99_microseconds / 1000.0                                   AS baseline_p99_ms,
           b.calculated_at                                               AS baseline_calculated_at,
           (SELECT count(*) FROM pggit.performance_metrics m
            WHERE m.operation_type = k.operation_type AND m.scope = k.scope
              AND m.recorded_at > now() - interval '1 hour')             AS samples_last_hour,
           (SELECT count(*) FROM pggit.performance_alerts a
            WHERE a.operation_type = k.operation_type AND a.scope = k.scope AND a.resolved_at IS NULL) AS open_alerts,
           (SELECT a.severity FROM pggit.performance_alerts a
            WHERE a.operation_type = k.operation_type AND a.scope = k.scope AND a.resolved_at IS NULL
            ORDER BY pggit.severity_rank(a.severity) DESC LIMIT 1)       AS worst_open_severity,
           pggit.is_alert_snoozed(k.operation_type, 'THRESHOLD_EXCEEDED') AS threshold_snoozed
    FROM keys k
    LEFT JOIN pggit.performance_baselines b
           ON b.operation_type = k.operation_type AND b.scope = k.scope AND b.is_active
    LEFT JOIN pggit.performance_operation_types t
           ON t.operation_type = k.operation_type;
    SET LOCAL search_path = pg_catalog;
    FOR v_view IN
        SELECT DISTINCT c.oid::regclass::text AS name, pg_get_viewdef(c.oid) AS def
        FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid
        JOIN pg_class c ON c.oid = r.ev_class
        WHERE d.refobjid = 'pggit.performance_metrics_partitioned'::regclass AND c.relkind = 'v'
          AND c.relnamespace <> 'pggit'::regnamespace
    LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v_view.name,
                       regexp_replace(v_view.def, '\mperformance_metrics_partitioned\M', 'performance_metrics', 'g'));
    END LOOP;
    DROP VIEW IF EXISTS pggit.v_sample_partitions;
    DROP TABLE pggit.performance_metrics_partitioned;
END;
$$;
-- +goose StatementEnd

DROP VIEW IF EXISTS pggit.v_sample_partitions;
DROP FUNCTION IF EXISTS pggit.drop_expired_sample_partitions();
DROP FUNCTION IF EXISTS pggit.drop_sample_partitions(timestamptz);
DROP FUNCTION IF EXISTS pggit.create_sample_partitions(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS pggit.sample_partition_at(timestamptz);
DROP FUNCTION IF EXISTS pggit.sample_partitions();
DROP FUNCTION IF EXISTS pggit.sample_partition_width();
DROP TRIGGER IF EXISTS monitor_settings_check_partitions ON pggit.monitor_settings;
DROP FUNCTION IF EXISTS pggit.monitor_settings_check_partitions();
DROP FUNCTION IF EXISTS pggit.check_partition_setting(text, text);
DROP FUNCTION IF EXISTS pggit.default_partition_rows();
DELETE FROM pggit.monitor_settings
WHERE setting_name IN ('samples_partition_width', 'samples_partition_ahead_days',
                       'retention_samples_days', 'retention_histograms_days');

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.check_retention_setting(p_name text, p_value text)
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
CREATE OR REPLACE FUNCTION pggit.apply_retention(p_batch integer DEFAULT 10000)
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

-- retention_days as of 00020_retention.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.retention_days(p_name text)
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

-- delete_old_samples as of 00008_scheduled_jobs.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.delete_old_samples(p_before timestamptz, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_n integer;
BEGIN
    IF p_before IS NULL THEN
        RAISE EXCEPTION 'p_before must not be NULL' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_before';
    END IF;
    IF p_batch IS NULL OR p_batch NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'p_batch must be between 1 and 1000000, got %', coalesce(p_batch::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_batch';
    END IF;
    DELETE FROM pggit.performance_metrics m
    WHERE m.metric_id IN (
        SELECT o.metric_id FROM pggit.performance_metrics o
        WHERE o.recorded_at < p_before
        ORDER BY o.recorded_at
        LIMIT p_batch);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

