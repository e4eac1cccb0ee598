-- The exact recalculation ran about twice as slow from its sixth run in a
-- connection on (10 M samples: 4.8-5.7 s, then 10-11 s; `make bench`, recalc
-- section). PL/pgSQL caches the plans of its queries and, after five
-- executions, switches to a generic plan when it does not look costlier; a
-- generic plan does not know the window's bounds, so it cannot prune the
-- samples' partitions when it is planned nor size the window, and reads more.
-- A worker's pooled connection runs the daily recalculation for weeks, so
-- every run from the sixth day on paid it. Plans are now made for the bounds
-- of each call (a few milliseconds of planning for a pass of seconds).

-- +goose Up
ALTER FUNCTION pggit.recalculate_all_baselines_rolling(integer, integer, boolean, integer, text, text)
    SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION pggit.compute_baseline_stats(text, text, timestamptz, timestamptz, integer)
    SET plan_cache_mode = force_custom_plan;

-- +goose Down
ALTER FUNCTION pggit.compute_baseline_stats(text, text, timestamptz, timestamptz, integer)
    RESET plan_cache_mode;
ALTER FUNCTION pggit.recalculate_all_baselines_rolling(integer, integer, boolean, integer, text, text)
    RESET plan_cache_mode;
