-- Notifications: routing of alerts to webhooks, a durable queue grouped into
-- batches per webhook, the delivery log, and the message formatter.
--
-- Flow: an alert opens, escalates or resolves (and was not snoozed when
-- raised) -> in the same transaction, one queue item per matching enabled
-- webhook, appended to that webhook's accumulating batch
-- (pggit.enqueue_notification_batch) -> the batch becomes due when full or when
-- its timeout passes -> a dispatcher claims it (FOR UPDATE SKIP LOCKED, with a
-- lease), sends one message for the whole batch, and completes it (sent, retry
-- later, or dead).

-- +goose Up
CREATE TABLE pggit.alert_notification_settings (
    setting_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- An alert type, or 'ALL'.
    alert_type   text        NOT NULL DEFAULT 'ALL',
    -- Alerts of this severity or worse are routed.
    min_severity text        NOT NULL DEFAULT 'WARNING',
    webhook_id   bigint      NOT NULL REFERENCES pggit.alert_notification_webhooks (webhook_id) ON DELETE CASCADE,
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_notification_settings_type_check CHECK (alert_type IN
        ('ALL', 'THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION', 'BASELINE_RECALC_ERROR')),
    CONSTRAINT alert_notification_settings_severity_check CHECK (min_severity IN ('CRITICAL', 'WARNING', 'INFO')),
    CONSTRAINT alert_notification_settings_route_key UNIQUE (alert_type, webhook_id)
);
CREATE INDEX alert_notification_settings_webhook_idx ON pggit.alert_notification_settings (webhook_id);

CREATE TABLE pggit.notification_batch_config (
    webhook_type          text    PRIMARY KEY,
    -- Most alerts in one message.
    batch_size            integer NOT NULL DEFAULT 10,
    -- A batch is sent when full or when its oldest item has waited this long
    -- (0: at once, i.e. no batching delay).
    batch_timeout_seconds integer NOT NULL DEFAULT 30,
    -- Delivery attempts before a batch is dead.
    max_attempts          integer NOT NULL DEFAULT 6,
    CONSTRAINT notification_batch_config_type_check
        CHECK (webhook_type IN ('slack', 'mattermost', 'pagerduty', 'email', 'webhook')),
    CONSTRAINT notification_batch_config_size_check CHECK (batch_size BETWEEN 1 AND 100),
    CONSTRAINT notification_batch_config_timeout_check CHECK (batch_timeout_seconds BETWEEN 0 AND 3600),
    CONSTRAINT notification_batch_config_attempts_check CHECK (max_attempts BETWEEN 1 AND 50),
    -- The Events API takes one event per request.
    CONSTRAINT notification_batch_config_pagerduty_check CHECK (webhook_type <> 'pagerduty' OR batch_size = 1)
);
INSERT INTO pggit.notification_batch_config (webhook_type, batch_size, batch_timeout_seconds) VALUES
    ('slack', 10, 30), ('mattermost', 10, 30), ('email', 10, 30), ('webhook', 10, 30), ('pagerduty', 1, 0);

CREATE TABLE pggit.notification_batch_queue (
    batch_id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      bigint      NOT NULL REFERENCES pggit.alert_notification_webhooks (webhook_id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'accumulating',
    batch_size      integer     NOT NULL,
    item_count      integer     NOT NULL DEFAULT 0,
    opened_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- When an accumulating batch is sent even if not full.
    due_at          timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until     timestamptz,
    leased_by       text,
    last_error      text,
    sent_at         timestamptz,
    CONSTRAINT notification_batch_queue_status_check
        CHECK (status IN ('accumulating', 'ready', 'sending', 'sent', 'failed', 'dead')),
    CONSTRAINT notification_batch_queue_size_check CHECK (item_count BETWEEN 0 AND batch_size),
    CONSTRAINT notification_batch_queue_lease_check CHECK ((status = 'sending') = (lease_until IS NOT NULL))
);
CREATE INDEX notification_batch_queue_webhook_idx ON pggit.notification_batch_queue (webhook_id);

-- The accumulating batch of each webhook. Appending locks this one row, so
-- appends to one webhook are serialized and there is never more than one
-- accumulating batch per webhook; finding the batch is one primary-key lookup
-- however many batches a transaction opens (a partial index on status would
-- be scanned through every batch the same transaction filled before).
CREATE TABLE pggit.notification_batch_open (
    webhook_id bigint PRIMARY KEY REFERENCES pggit.alert_notification_webhooks (webhook_id) ON DELETE CASCADE,
    batch_id   bigint REFERENCES pggit.notification_batch_queue (batch_id) ON DELETE SET NULL
);
-- What a dispatcher looks at: unfinished batches.
CREATE INDEX notification_batch_queue_due_idx
    ON pggit.notification_batch_queue (next_attempt_at) WHERE status IN ('accumulating', 'ready', 'sending', 'failed');

CREATE TABLE pggit.alert_notification_queue (
    notification_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint      NOT NULL REFERENCES pggit.performance_alerts (alert_id) ON DELETE CASCADE,
    webhook_id      bigint      NOT NULL REFERENCES pggit.alert_notification_webhooks (webhook_id) ON DELETE CASCADE,
    -- What happened to the alert: opened, escalated, resolved.
    event           text        NOT NULL,
    severity        text        NOT NULL,
    batch_id        bigint      REFERENCES pggit.notification_batch_queue (batch_id) ON DELETE SET NULL,
    -- Mirrors the batch: pending (accumulating/ready), sending, sent, failed (will retry), dead.
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until     timestamptz,
    last_error      text,
    -- Stable across retries and dispatchers: receivers deduplicate with it.
    dedup_key       text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz,
    CONSTRAINT alert_notification_queue_event_check CHECK (event IN ('opened', 'escalated', 'resolved')),
    CONSTRAINT alert_notification_queue_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead')),
    CONSTRAINT alert_notification_queue_dedup_key UNIQUE (dedup_key)
);
CREATE INDEX alert_notification_queue_batch_idx ON pggit.alert_notification_queue (batch_id);
CREATE INDEX alert_notification_queue_alert_idx ON pggit.alert_notification_queue (alert_id);
CREATE INDEX alert_notification_queue_webhook_idx ON pggit.alert_notification_queue (webhook_id, status);

CREATE TABLE pggit.alert_notification_log (
    log_id        bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id      bigint           REFERENCES pggit.notification_batch_queue (batch_id) ON DELETE CASCADE,
    webhook_id    bigint           REFERENCES pggit.alert_notification_webhooks (webhook_id) ON DELETE CASCADE,
    attempt       integer          NOT NULL,
    -- sent, retry (will be tried again), dead (given up).
    outcome       text             NOT NULL,
    http_status   integer,
    smtp_reply    text,
    latency_ms    double precision NOT NULL,
    -- Never contains the webhook URL or key: the dispatcher strips them.
    error         text,
    worker        text             NOT NULL,
    item_count    integer          NOT NULL,
    created_at    timestamptz      NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT alert_notification_log_outcome_check CHECK (outcome IN ('sent', 'retry', 'dead'))
);
CREATE INDEX alert_notification_log_batch_idx ON pggit.alert_notification_log (batch_id);
CREATE INDEX alert_notification_log_webhook_idx ON pggit.alert_notification_log (webhook_id, created_at);

-- Appends one queue item to its webhook's accumulating batch, opening one if
-- needed; the batch is ready when full. Race-free: the webhook's row in
-- pggit.notification_batch_open is locked for the rest of the transaction, so
-- appends to one webhook are serialized, and it names the one accumulating
-- batch. Notifies dispatchers when a batch becomes ready (or is due at once).
-- +goose StatementBegin
CREATE FUNCTION pggit.enqueue_notification_batch(p_notification_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_item   pggit.alert_notification_queue;
    v_config pggit.notification_batch_config;
    v_batch  pggit.notification_batch_queue;
    v_open   bigint;
    v_now    timestamptz := clock_timestamp();
BEGIN
    SELECT q.* INTO v_item FROM pggit.alert_notification_queue q
    WHERE q.notification_id = p_notification_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'notification % does not exist', p_notification_id
            USING ERRCODE = 'no_data_found', COLUMN = 'p_notification_id';
    END IF;
    IF v_item.batch_id IS NOT NULL THEN
        RETURN v_item.batch_id; -- already batched
    END IF;
    SELECT c.* INTO v_config
    FROM pggit.notification_batch_config c
    JOIN pggit.alert_notification_webhooks w ON w.webhook_type = c.webhook_type
    WHERE w.webhook_id = v_item.webhook_id;

    INSERT INTO pggit.notification_batch_open (webhook_id) VALUES (v_item.webhook_id)
    ON CONFLICT (webhook_id) DO NOTHING;
    SELECT o.batch_id INTO v_open FROM pggit.notification_batch_open o
    WHERE o.webhook_id = v_item.webhook_id
    FOR UPDATE;

    -- Still accumulating? A dispatcher may have claimed it since (timeout).
    SELECT b.* INTO v_batch FROM pggit.notification_batch_queue b
    WHERE b.batch_id = v_open AND b.status = 'accumulating'
    FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO pggit.notification_batch_queue
            (webhook_id, status, batch_size, opened_at, due_at, max_attempts, next_attempt_at)
        VALUES
            (v_item.webhook_id, 'accumulating', v_config.batch_size, v_now,
             v_now + make_interval(secs => v_config.batch_timeout_seconds), v_config.max_attempts, v_now)
        RETURNING * INTO v_batch;
        UPDATE pggit.notification_batch_open SET batch_id = v_batch.batch_id WHERE webhook_id = v_item.webhook_id;
    END IF;

    UPDATE pggit.notification_batch_queue b
    SET item_count = b.item_count + 1,
        status = CASE WHEN b.item_count + 1 >= b.batch_size THEN 'ready' ELSE 'accumulating' END
    WHERE b.batch_id = v_batch.batch_id
    RETURNING b.* INTO v_batch;

    UPDATE pggit.alert_notification_queue q
    SET batch_id = v_batch.batch_id, max_attempts = v_batch.max_attempts
    WHERE q.notification_id = p_notification_id;

    IF v_batch.status = 'ready' OR v_batch.due_at <= v_now THEN
        PERFORM pg_notify('pggit_notifications', v_batch.batch_id::text);
    END IF;
    RETURN v_batch.batch_id;
END;
$$;
-- +goose StatementEnd

-- Queues one notification per enabled route and enabled webhook matching the
-- alert's type and severity, and batches each.
-- +goose StatementBegin
CREATE FUNCTION pggit.enqueue_alert_notifications(p_alert pggit.performance_alerts, p_event text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_id bigint;
    v_n  integer := 0;
BEGIN
    FOR v_id IN
        INSERT INTO pggit.alert_notification_queue
            (alert_id, webhook_id, event, severity, max_attempts, dedup_key)
        SELECT p_alert.alert_id, w.webhook_id, p_event, p_alert.severity, c.max_attempts,
               format('pggit-%s-%s-%s-%s', p_alert.alert_id, p_event, p_alert.severity, w.webhook_id)
        FROM (SELECT DISTINCT s.webhook_id
              FROM pggit.alert_notification_settings s
              WHERE s.enabled
                AND s.alert_type IN (p_alert.alert_type, 'ALL')
                AND pggit.severity_rank(p_alert.severity) >= pggit.severity_rank(s.min_severity)) r
        JOIN pggit.alert_notification_webhooks w ON w.webhook_id = r.webhook_id AND w.enabled
        JOIN pggit.notification_batch_config c ON c.webhook_type = w.webhook_type
        ORDER BY w.webhook_id
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING notification_id
    LOOP
        PERFORM pggit.enqueue_notification_batch(v_id);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION pggit.performance_alerts_notify()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pggit.enqueue_alert_notifications(NEW, 'opened');
    ELSIF OLD.resolved_at IS NULL AND NEW.resolved_at IS NOT NULL THEN
        PERFORM pggit.enqueue_alert_notifications(NEW, 'resolved');
    ELSIF pggit.severity_rank(NEW.severity) > pggit.severity_rank(OLD.severity) THEN
        PERFORM pggit.enqueue_alert_notifications(NEW, 'escalated');
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- Snoozed alerts are recorded, never notified: not when they open, escalate
-- or resolve.
CREATE TRIGGER performance_alerts_notify_insert
    AFTER INSERT ON pggit.performance_alerts
    FOR EACH ROW
    WHEN (NOT NEW.snoozed)
    EXECUTE FUNCTION pggit.performance_alerts_notify();
CREATE TRIGGER performance_alerts_notify_update
    AFTER UPDATE OF severity, resolved_at ON pggit.performance_alerts
    FOR EACH ROW
    WHEN (NOT NEW.snoozed AND (OLD.severity IS DISTINCT FROM NEW.severity
                               OR (OLD.resolved_at IS NULL AND NEW.resolved_at IS NOT NULL)))
    EXECUTE FUNCTION pggit.performance_alerts_notify();

-- Claims up to p_limit due batches for p_worker: ready ones, accumulating ones
-- past their timeout, failed ones whose retry time came, and sending ones whose
-- lease expired (their dispatcher died). Each claim counts an attempt and
-- leases the batch for p_lease_seconds. A batch whose attempts are used up is
-- made dead instead of claimed.
-- +goose StatementBegin
CREATE FUNCTION pggit.claim_notification_batches(p_worker text, p_limit integer, p_lease_seconds integer)
RETURNS SETOF pggit.notification_batch_queue
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    IF p_worker IS NULL OR btrim(p_worker) = '' THEN
        RAISE EXCEPTION 'p_worker must be a non-empty name' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_worker';
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 1000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_limit';
    END IF;
    IF p_lease_seconds IS NULL OR p_lease_seconds NOT BETWEEN 1 AND 3600 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 3600, got %', coalesce(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_lease_seconds';
    END IF;

    -- Expired leases with no attempt left: dead.
    WITH dead AS (
        UPDATE pggit.notification_batch_queue b
        SET status = 'dead', lease_until = NULL,
            last_error = coalesce(b.last_error || '; ', '') || 'lease of ' || b.leased_by || ' expired on the last attempt'
        WHERE b.status = 'sending' AND b.lease_until < v_now AND b.attempts >= b.max_attempts
        RETURNING b.batch_id, b.last_error
    )
    UPDATE pggit.alert_notification_queue q
    SET status = 'dead', lease_until = NULL, last_error = d.last_error
    FROM dead d WHERE q.batch_id = d.batch_id;

    RETURN QUERY
    WITH due AS (
        SELECT b.batch_id
        FROM pggit.notification_batch_queue b
        WHERE b.status IN ('accumulating', 'ready', 'sending', 'failed')
          AND b.next_attempt_at <= v_now
          AND CASE b.status
                  WHEN 'accumulating' THEN b.due_at <= v_now
                  WHEN 'sending' THEN b.lease_until < v_now
                  ELSE true
              END
        ORDER BY b.next_attempt_at, b.batch_id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
        UPDATE pggit.notification_batch_queue b
        SET status = 'sending',
            attempts = b.attempts + 1,
            lease_until = v_now + make_interval(secs => p_lease_seconds),
            leased_by = p_worker
        FROM due
        WHERE b.batch_id = due.batch_id
        RETURNING b.*
    ),
    items AS (
        UPDATE pggit.alert_notification_queue q
        SET status = 'sending', attempts = c.attempts, lease_until = c.lease_until
        FROM claimed c
        WHERE q.batch_id = c.batch_id
    )
    SELECT c.* FROM claimed c ORDER BY c.batch_id;
END;
$$;
-- +goose StatementEnd

-- Records the outcome of one delivery attempt of a batch claimed by p_worker:
-- 'sent'; 'retry' (transient failure: tried again at p_retry_at, or dead when
-- no attempt is left); 'dead' (permanent failure). Logs the attempt. Returns
-- false, changing nothing but the log, when p_worker no longer holds the lease
-- (another dispatcher took the batch over).
-- +goose StatementBegin
CREATE FUNCTION pggit.complete_notification_batch(
    p_batch_id    bigint,
    p_worker      text,
    p_outcome     text,
    p_http_status integer,
    p_smtp_reply  text,
    p_latency_ms  double precision,
    p_error       text,
    p_retry_at    timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_batch  pggit.notification_batch_queue;
    v_status text;
BEGIN
    IF p_outcome IS NULL OR p_outcome NOT IN ('sent', 'retry', 'dead') THEN
        RAISE EXCEPTION 'p_outcome must be one of sent, retry, dead, got %', coalesce(quote_literal(p_outcome), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_outcome';
    END IF;
    SELECT b.* INTO v_batch FROM pggit.notification_batch_queue b WHERE b.batch_id = p_batch_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batch % does not exist', p_batch_id USING ERRCODE = 'no_data_found', COLUMN = 'p_batch_id';
    END IF;
    IF v_batch.status <> 'sending' OR v_batch.leased_by IS DISTINCT FROM p_worker THEN
        INSERT INTO pggit.alert_notification_log
            (batch_id, webhook_id, attempt, outcome, http_status, smtp_reply, latency_ms, error, worker, item_count)
        VALUES (p_batch_id, v_batch.webhook_id, v_batch.attempts, CASE WHEN p_outcome = 'sent' THEN 'sent' ELSE 'retry' END,
                p_http_status, p_smtp_reply, coalesce(p_latency_ms, 0),
                coalesce(p_error || '; ', '') || 'lease lost to ' || coalesce(v_batch.leased_by, '(none)'),
                p_worker, v_batch.item_count);
        RETURN false;
    END IF;

    v_status := CASE
        WHEN p_outcome = 'sent' THEN 'sent'
        WHEN p_outcome = 'dead' OR v_batch.attempts >= v_batch.max_attempts THEN 'dead'
        ELSE 'failed'
    END;
    UPDATE pggit.notification_batch_queue b
    SET status = v_status,
        lease_until = NULL,
        sent_at = CASE WHEN v_status = 'sent' THEN clock_timestamp() END,
        last_error = CASE WHEN v_status = 'sent' THEN b.last_error ELSE p_error END,
        next_attempt_at = CASE WHEN v_status = 'failed' THEN coalesce(p_retry_at, clock_timestamp()) ELSE b.next_attempt_at END
    WHERE b.batch_id = p_batch_id;
    UPDATE pggit.alert_notification_queue q
    SET status = v_status,
        lease_until = NULL,
        sent_at = CASE WHEN v_status = 'sent' THEN clock_timestamp() END,
        last_error = CASE WHEN v_status = 'sent' THEN q.last_error ELSE p_error END,
        next_attempt_at = CASE WHEN v_status = 'failed' THEN coalesce(p_retry_at, clock_timestamp()) ELSE q.next_attempt_at END
    WHERE q.batch_id = p_batch_id;
    INSERT INTO pggit.alert_notification_log
        (batch_id, webhook_id, attempt, outcome, http_status, smtp_reply, latency_ms, error, worker, item_count)
    VALUES (p_batch_id, v_batch.webhook_id, v_batch.attempts, CASE v_status WHEN 'failed' THEN 'retry' ELSE v_status END,
            p_http_status, p_smtp_reply, coalesce(p_latency_ms, 0), p_error, p_worker, v_batch.item_count);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION pggit.complete_notification_batch(bigint, text, text, integer, text, double precision, text, timestamptz);
DROP FUNCTION pggit.claim_notification_batches(text, integer, integer);
DROP TRIGGER performance_alerts_notify_update ON pggit.performance_alerts;
DROP TRIGGER performance_alerts_notify_insert ON pggit.performance_alerts;
DROP FUNCTION pggit.performance_alerts_notify();
DROP FUNCTION pggit.enqueue_alert_notifications(pggit.performance_alerts, text);
DROP FUNCTION pggit.enqueue_notification_batch(bigint);
DROP TABLE pggit.alert_notification_log;
DROP TABLE pggit.alert_notification_queue;
DROP TABLE pggit.notification_batch_open;
DROP TABLE pggit.notification_batch_queue;
DROP TABLE pggit.notification_batch_config;
DROP TABLE pggit.alert_notification_settings;
