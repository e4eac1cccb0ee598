-- Scheduled jobs of the pggit-monitor worker (baseline recalculation, sample
-- retention). A worker runs a job only after claiming it with one UPDATE that
-- succeeds at most once per period, so with several workers on one database
-- each job runs once per period, whichever worker claims it.

-- +goose Up
CREATE TABLE pggit.scheduled_jobs (
    job_name         text        PRIMARY KEY,
    period_seconds   integer     NOT NULL,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_status      text,
    last_error       text,
    last_worker      text,
    runs             bigint      NOT NULL DEFAULT 0,
    CONSTRAINT scheduled_jobs_period_check CHECK (period_seconds BETWEEN 1 AND 31536000),
    CONSTRAINT scheduled_jobs_status_check CHECK (last_status IN ('running', 'ok', 'failed'))
);

-- Claims job p_job_name for p_worker when its period has passed since it last
-- started (or it never ran). Returns whether this caller won the claim.
-- +goose StatementBegin
CREATE FUNCTION pggit.claim_scheduled_job(p_job_name text, p_worker text, p_period_seconds integer)
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

-- Records the end of a claimed run; a failed run becomes due again soon.
-- +goose StatementBegin
CREATE FUNCTION pggit.finish_scheduled_job(p_job_name text, p_worker text, p_error text)
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

-- Deletes at most p_batch samples recorded before p_before (oldest first) and
-- returns how many; callers repeat until it returns less than p_batch, each
-- call in its own short transaction.
-- +goose StatementBegin
CREATE FUNCTION pggit.delete_old_samples(p_before timestamptz, p_batch integer)
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

-- +goose Down
DROP FUNCTION pggit.delete_old_samples(timestamptz, integer);
DROP FUNCTION pggit.finish_scheduled_job(text, text, text);
DROP FUNCTION pggit.claim_scheduled_job(text, text, integer);
DROP TABLE pggit.scheduled_jobs;
