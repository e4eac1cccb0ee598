-- Batching a notification looks up its queue row, its webhook's open batch
-- and that batch by primary key. After a VACUUM or ANALYZE of the empty
-- queue tables (autovacuum, when the queue drains), their statistics say
-- "empty", and the plan PL/pgSQL caches for those lookups is a sequential
-- scan; a transaction that then raises many alerts (a detection catch-up, a
-- bulk import) rescans every notification and batch it has queued so far,
-- once per notification: quadratic. 100,000 alerts in one statement did not
-- finish in 5 minutes; with index lookups they take seconds
-- (`go run ./internal/cmd/bench -only views,ui`). Every statement of the
-- function is a key lookup, so the index is always the right plan.

-- +goose Up
ALTER FUNCTION pggit.enqueue_notification_batch(bigint) SET enable_seqscan = off;

-- +goose Down
ALTER FUNCTION pggit.enqueue_notification_batch(bigint) RESET enable_seqscan;
