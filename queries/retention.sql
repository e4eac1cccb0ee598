-- name: ApplyRetention :many
-- One bounded step of retention: at most batch rows deleted per table, and
-- how many from each. (Columns cast one by one: sqlc cannot see a function's
-- composite result type.)
SELECT r.table_name::text AS table_name, r.deleted::bigint AS deleted
FROM pggit.apply_retention(sqlc.arg(batch)::integer) r;

-- name: RetentionDays :many
-- The days each named retention setting keeps (90 when its row is absent);
-- 22023 when a stored value is invalid.
SELECT n.name::text AS setting_name, pggit.retention_days(n.name)::integer AS days
FROM unnest(sqlc.arg(setting_names)::text[]) WITH ORDINALITY AS n(name, i)
ORDER BY n.i;
