-- name: RefreshHistogramRollups :one
SELECT pggit.refresh_histogram_rollups()::bigint AS rollups_written;
