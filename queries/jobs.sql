-- name: ClaimScheduledJob :one
SELECT pggit.claim_scheduled_job(sqlc.arg(job_name)::text, sqlc.arg(worker)::text, sqlc.arg(period_seconds)::integer)::boolean AS claimed;

-- name: FinishScheduledJob :exec
SELECT pggit.finish_scheduled_job(sqlc.arg(job_name)::text, sqlc.arg(worker)::text, sqlc.narg(error_message)::text);

-- name: DeleteOldSamples :one
SELECT pggit.delete_old_samples(sqlc.arg(before)::timestamptz, sqlc.arg(batch)::integer)::integer AS deleted;

-- name: ListScheduledJobs :many
SELECT * FROM pggit.scheduled_jobs ORDER BY job_name;

-- name: RollupPerformanceHours :one
SELECT pggit.rollup_performance_hours()::integer AS hours;

-- name: RollupPerformanceHoursWithCurrent :one
-- The rollup as the worker runs it: complete hours and the current one so
-- far, so v_operation_performance_trend reads no samples (its current hour
-- is then as old as the last run, RollupInterval).
SELECT pggit.rollup_performance_hours(now() + interval '1 hour')::integer AS hours;
