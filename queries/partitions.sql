-- name: CreateSamplePartitions :many
-- Creates the missing partitions of [from, to) (to NULL: now() plus
-- samples_partition_ahead_days), moving strays out of the default partition.
SELECT p.partition_name::text AS partition_name, p.range_start::timestamptz AS range_start,
       p.range_end::timestamptz AS range_end, p.moved_rows::bigint AS moved_rows
FROM pggit.create_sample_partitions(sqlc.arg(from_at)::timestamptz, sqlc.narg(to_at)::timestamptz) p;

-- name: DefaultPartitionRows :one
SELECT pggit.default_partition_rows()::bigint AS rows;

-- name: PartitionSettings :one
-- The width of new partitions (in hours) and how many days ahead they are
-- made; 22023 when a stored value is invalid.
SELECT (extract(epoch FROM pggit.sample_partition_width()) / 3600)::integer AS width_hours,
       pggit.check_partition_setting('samples_partition_ahead_days',
           coalesce((SELECT s.setting_value FROM pggit.monitor_settings s
                     WHERE s.setting_name = 'samples_partition_ahead_days'), '3'))::integer AS ahead_days;
