-- Notification lifecycle, after Alertmanager:
--
-- * A snooze suppresses at notification time, like a silence: a notification
--   of an alert that a snooze matches when it is queued is held (status
--   'held'), not dropped. When no snooze matches any more (expiry or
--   unsnooze), held notifications of an open alert are sent, saying who
--   snoozed it and why; of a resolved alert, only the resolve is sent, and
--   only to webhooks that were told the alert opened.
-- * Repeat reminders: per route, repeat_interval_seconds (default 4 h) for
--   alerts still open and not acknowledged; send_resolved per route (default
--   on). An Alertmanager webhook re-posts open alerts every resend_seconds of
--   its type (default 2 min), acknowledged or not, so Alertmanager does not
--   expire them.
-- * Per (alert, webhook), notifications are sent in the order they were
--   queued: a batch is not claimed while an earlier notification of one of
--   its alerts to the same webhook is unfinished, and messages are formatted
--   from each notification's event (a PagerDuty trigger stays a trigger even
--   if the alert resolved since).
-- * The webhook type 'alertmanager' (API v2) and the message format
--   'alertmanager'.
-- * Dispatchers extend leases while sending and release batches they could
--   not send in time; recording an outcome twice is harmless.

-- +goose Up
ALTER TABLE pggit.alert_notification_settings
    ADD COLUMN repeat_interval_seconds integer NOT NULL DEFAULT 14400,
    ADD COLUMN send_resolved boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT alert_notification_settings_repeat_check
        CHECK (repeat_interval_seconds = 0 OR repeat_interval_seconds BETWEEN 60 AND 2592000);

ALTER TABLE pggit.alert_notification_webhooks
    DROP CONSTRAINT alert_notification_webhooks_type_check,
    ADD CONSTRAINT alert_notification_webhooks_type_check
        CHECK (webhook_type IN ('slack', 'mattermost', 'pagerduty', 'email', 'webhook', 'alertmanager'));

ALTER TABLE pggit.notification_batch_config
    ADD COLUMN resend_seconds integer,
    DROP CONSTRAINT notification_batch_config_type_check,
    ADD CONSTRAINT notification_batch_config_type_check
        CHECK (webhook_type IN ('slack', 'mattermost', 'pagerduty', 'email', 'webhook', 'alertmanager')),
    ADD CONSTRAINT notification_batch_config_resend_check
        CHECK (resend_seconds IS NULL OR resend_seconds BETWEEN 10 AND 86400);
COMMENT ON COLUMN pggit.notification_batch_config.resend_seconds IS
    'Re-post open alerts this often, acknowledged or not (Alertmanager expires alerts not re-posted within its resolve_timeout); NULL: the routes'' repeat_interval_seconds applies';
INSERT INTO pggit.notification_batch_config (webhook_type, batch_size, batch_timeout_seconds, max_attempts, resend_seconds)
VALUES ('alertmanager', 50, 0, 6, 120);

ALTER TABLE pggit.alert_notification_queue
    ADD COLUMN held_snooze_id bigint REFERENCES pggit.alert_snooze (snooze_id) ON DELETE SET NULL,
    DROP CONSTRAINT alert_notification_queue_event_check,
    ADD CONSTRAINT alert_notification_queue_event_check CHECK (event IN ('opened', 'escalated', 'resolved', 'reminder')),
    DROP CONSTRAINT alert_notification_queue_status_check,
    ADD CONSTRAINT alert_notification_queue_status_check
        CHECK (status IN ('held', 'pending', 'sending', 'sent', 'failed', 'dead', 'suppressed'));
COMMENT ON COLUMN pggit.alert_notification_queue.held_snooze_id IS
    'The snooze that held this notification (status held, or sent after the snooze ended)';
CREATE INDEX alert_notification_queue_held_idx ON pggit.alert_notification_queue (held_snooze_id, alert_id) WHERE status = 'held';
-- The claim's order check: is an earlier notification of this alert to this
-- webhook unfinished? One probe per item, whatever the statistics say (on a
-- queue never analyzed, the planner otherwise scans the webhook's items).
CREATE INDEX alert_notification_queue_unfinished_idx ON pggit.alert_notification_queue (alert_id, webhook_id, notification_id)
    WHERE status IN ('held', 'pending', 'sending', 'failed');
CREATE INDEX alert_notification_queue_snooze_idx ON pggit.alert_notification_queue (held_snooze_id);

-- What each webhook was told about each alert, and when to remind it.
CREATE TABLE pggit.alert_notification_state (
    alert_id                 bigint      NOT NULL REFERENCES pggit.performance_alerts (alert_id) ON DELETE CASCADE,
    webhook_id               bigint      NOT NULL REFERENCES pggit.alert_notification_webhooks (webhook_id) ON DELETE CASCADE,
    -- Whether a firing notification (opened, escalated) was queued unheld.
    notified                 boolean     NOT NULL DEFAULT false,
    -- 0: no reminders.
    repeat_seconds           integer     NOT NULL DEFAULT 0,
    repeat_when_acknowledged boolean     NOT NULL DEFAULT false,
    repeats                  integer     NOT NULL DEFAULT 0,
    next_repeat_at           timestamptz,
    PRIMARY KEY (alert_id, webhook_id),
    CONSTRAINT alert_notification_state_repeat_check CHECK (repeat_seconds >= 0 AND repeats >= 0)
);
CREATE INDEX alert_notification_state_webhook_idx ON pggit.alert_notification_state (webhook_id);
CREATE INDEX alert_notification_state_due_idx ON pggit.alert_notification_state (next_repeat_at)
    WHERE next_repeat_at IS NOT NULL;

-- Alerts already open and notified keep being reminded after the upgrade.
INSERT INTO pggit.alert_notification_state (alert_id, webhook_id, notified, repeat_seconds, next_repeat_at)
SELECT q.alert_id, q.webhook_id, true, 14400, max(q.created_at) + interval '4 hours'
FROM pggit.alert_notification_queue q
JOIN pggit.performance_alerts a ON a.alert_id = q.alert_id AND a.resolved_at IS NULL
WHERE q.event IN ('opened', 'escalated')
GROUP BY q.alert_id, q.webhook_id;

INSERT INTO pggit.monitor_settings (setting_name, setting_value, description) VALUES
    ('console_base_url', '',
     'Base URL of the web console as users reach it; when set, Alertmanager alerts link to <console_base_url>/alerts/<id> (generatorURL)');

-- Queues one notification of p_event per enabled webhook that an enabled
-- route of the alert's type and severity names. Held while a snooze matches
-- the alert; a resolve goes only to webhooks that were told the alert fired
-- and whose routes send resolved messages.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.enqueue_alert_notifications(p_alert pggit.performance_alerts, p_event text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    r        record;
    v_state  pggit.alert_notification_state;
    v_snooze bigint := pggit.active_snooze_id(p_alert.operation_type, p_alert.alert_type);
    v_hold   bigint; -- held under this snooze (0: a snooze since deleted); NULL: not held
    v_id     bigint;
    v_n      integer := 0;
    v_now    timestamptz := clock_timestamp();
BEGIN
    IF p_alert.alert_id IS NULL OR p_alert.alert_id < 1 THEN
        RAISE EXCEPTION 'p_alert must be a stored alert (a pggit.performance_alerts row with its alert_id), got %',
                CASE WHEN p_alert IS NULL THEN 'NULL' ELSE 'alert_id ' || coalesce(p_alert.alert_id::text, 'NULL') END
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert';
    END IF;
    IF p_event IS NULL OR p_event NOT IN ('opened', 'escalated', 'resolved') THEN
        RAISE EXCEPTION 'p_event must be one of opened, escalated, resolved, got %', coalesce(quote_literal(p_event), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_event';
    END IF;
    FOR r IN
        SELECT w.webhook_id, c.max_attempts, c.resend_seconds,
               coalesce(min(s.repeat_interval_seconds) FILTER (WHERE s.repeat_interval_seconds > 0), 0) AS repeat_seconds,
               bool_or(s.send_resolved) AS send_resolved
        FROM pggit.alert_notification_settings s
        JOIN pggit.alert_notification_webhooks w ON w.webhook_id = s.webhook_id AND w.enabled
        JOIN pggit.notification_batch_config c ON c.webhook_type = w.webhook_type
        WHERE s.enabled
          AND s.alert_type IN (p_alert.alert_type, 'ALL')
          AND pggit.severity_rank(p_alert.severity) >= pggit.severity_rank(s.min_severity)
        GROUP BY w.webhook_id, c.max_attempts, c.resend_seconds
        ORDER BY w.webhook_id
    LOOP
        -- Locks in one order everywhere: the webhook's open-batch row, then
        -- the state row (run_notification_followups never waits for either).
        INSERT INTO pggit.notification_batch_open (webhook_id) VALUES (r.webhook_id)
        ON CONFLICT (webhook_id) DO NOTHING;
        PERFORM 1 FROM pggit.notification_batch_open o WHERE o.webhook_id = r.webhook_id FOR UPDATE;
        INSERT INTO pggit.alert_notification_state (alert_id, webhook_id)
        VALUES (p_alert.alert_id, r.webhook_id)
        ON CONFLICT (alert_id, webhook_id) DO NOTHING;
        SELECT s.* INTO v_state FROM pggit.alert_notification_state s
        WHERE s.alert_id = p_alert.alert_id AND s.webhook_id = r.webhook_id
        FOR UPDATE;
        -- Behind a held notification, a new one is held too (under the same
        -- snooze until the follow-ups release them all, in order), so the
        -- notifications of one alert to one webhook are batched in the order
        -- they were queued and the order check can never wait in a circle.
        v_hold := v_snooze;
        IF v_hold IS NULL THEN
            SELECT coalesce(q.held_snooze_id, 0) INTO v_hold
            FROM pggit.alert_notification_queue q
            WHERE q.alert_id = p_alert.alert_id AND q.webhook_id = r.webhook_id AND q.status = 'held'
            ORDER BY q.notification_id DESC
            LIMIT 1;
        END IF;

        IF p_event = 'resolved' THEN
            UPDATE pggit.alert_notification_state s SET next_repeat_at = NULL
            WHERE s.alert_id = p_alert.alert_id AND s.webhook_id = r.webhook_id;
            IF NOT r.send_resolved OR NOT v_state.notified THEN
                -- Nothing to say: the webhook never heard of the alert, or
                -- its routes want no resolved message. What was held is moot.
                UPDATE pggit.alert_notification_queue q SET status = 'suppressed'
                WHERE q.alert_id = p_alert.alert_id AND q.webhook_id = r.webhook_id AND q.status = 'held';
                CONTINUE;
            END IF;
        ELSE
            UPDATE pggit.alert_notification_state s
            SET repeat_seconds = coalesce(r.resend_seconds, r.repeat_seconds),
                repeat_when_acknowledged = r.resend_seconds IS NOT NULL
            WHERE s.alert_id = p_alert.alert_id AND s.webhook_id = r.webhook_id;
        END IF;

        v_id := NULL;
        INSERT INTO pggit.alert_notification_queue
            (alert_id, webhook_id, event, severity, max_attempts, dedup_key, status, held_snooze_id)
        VALUES (p_alert.alert_id, r.webhook_id, p_event, p_alert.severity, r.max_attempts,
                format('pggit-%s-%s-%s-%s', p_alert.alert_id, p_event, p_alert.severity, r.webhook_id),
                CASE WHEN v_hold IS NULL THEN 'pending' ELSE 'held' END, nullif(v_hold, 0))
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING notification_id INTO v_id;
        IF v_id IS NULL OR v_hold IS NOT NULL THEN
            CONTINUE;
        END IF;
        PERFORM pggit.enqueue_notification_batch(v_id);
        v_n := v_n + 1;
        IF p_event <> 'resolved' THEN
            UPDATE pggit.alert_notification_state s
            SET notified = true,
                next_repeat_at = CASE WHEN s.repeat_seconds > 0 THEN v_now + make_interval(secs => s.repeat_seconds) END
            WHERE s.alert_id = p_alert.alert_id AND s.webhook_id = r.webhook_id;
        END IF;
    END LOOP;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- Its lookups by key (held notifications, state rows, open-batch rows) have
-- index paths; with the statistics of a queue vacuumed while empty, the
-- planner would scan instead, once per alert raised in a transaction
-- (quadratic; see migration 00015).
ALTER FUNCTION pggit.enqueue_alert_notifications(pggit.performance_alerts, text) SET enable_seqscan = off;

-- Every alert event is queued: snoozes hold notifications instead of the
-- triggers skipping snoozed alerts.
DROP TRIGGER performance_alerts_notify_insert ON pggit.performance_alerts;
DROP TRIGGER performance_alerts_notify_update ON pggit.performance_alerts;
CREATE TRIGGER performance_alerts_notify_insert
    AFTER INSERT ON pggit.performance_alerts
    FOR EACH ROW
    EXECUTE FUNCTION pggit.performance_alerts_notify();
CREATE TRIGGER performance_alerts_notify_update
    AFTER UPDATE OF severity, resolved_at ON pggit.performance_alerts
    FOR EACH ROW
    WHEN (OLD.severity IS DISTINCT FROM NEW.severity OR (OLD.resolved_at IS NULL AND NEW.resolved_at IS NOT NULL))
    EXECUTE FUNCTION pggit.performance_alerts_notify();

-- Follow-ups that come due with time rather than with an alert event: held
-- notifications whose snooze ended, and reminders. Run by every claim
-- (pggit.claim_notification_batches). It never waits for a lock: one caller
-- at a time (others return at once), and when a transaction that queues
-- notifications holds a webhook's open-batch row or a state row, that work
-- waits for the next call. Cheap when nothing is due: one index probe per
-- snooze that holds notifications, one for reminders. Returns how many
-- notifications it queued.
-- +goose StatementBegin
CREATE FUNCTION pggit.run_notification_followups(p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    r        record;
    v_alert  pggit.performance_alerts;
    v_state  pggit.alert_notification_state;
    v_snooze bigint;
    v_id     bigint;
    v_n      integer := 0;
    v_now    timestamptz := clock_timestamp();
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 100000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_limit';
    END IF;
    -- Usually nothing is due: two index probes, and no lock, no plan of the
    -- queries below (this runs on every claim of every dispatcher).
    IF NOT EXISTS (SELECT 1 FROM pggit.alert_notification_queue q WHERE q.status = 'held')
       AND NOT EXISTS (SELECT 1 FROM pggit.alert_notification_state s WHERE s.next_repeat_at <= v_now) THEN
        RETURN 0;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('pggit.run_notification_followups')) THEN
        RETURN 0;
    END IF;
    -- The open-batch rows first (the order enqueue_alert_notifications
    -- takes), without waiting: a transaction queueing notifications holds
    -- its webhooks' rows until it commits.
    BEGIN
        PERFORM 1 FROM pggit.notification_batch_open o ORDER BY o.webhook_id FOR UPDATE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;

    -- Held notifications whose snooze ended (expired, cancelled or
    -- deleted): the snoozes that hold any, found by a skip scan of the held
    -- index, then the alerts of those that ended.
    FOR r IN
        WITH RECURSIVE holding(snooze_id) AS (
            (SELECT q.held_snooze_id FROM pggit.alert_notification_queue q
             WHERE q.status = 'held' AND q.held_snooze_id IS NOT NULL
             ORDER BY q.held_snooze_id LIMIT 1)
            UNION ALL
            SELECT (SELECT q.held_snooze_id FROM pggit.alert_notification_queue q
                    WHERE q.status = 'held' AND q.held_snooze_id > h.snooze_id
                    ORDER BY q.held_snooze_id LIMIT 1)
            FROM holding h WHERE h.snooze_id IS NOT NULL
        ),
        ended AS (
            SELECT h.snooze_id
            FROM holding h
            LEFT JOIN pggit.alert_snooze s ON s.snooze_id = h.snooze_id
            WHERE h.snooze_id IS NOT NULL AND (s.snooze_id IS NULL OR NOT s.is_active OR s.snooze_until <= v_now)
        )
        SELECT DISTINCT q.alert_id, q.webhook_id
        FROM pggit.alert_notification_queue q
        WHERE q.status = 'held'
          AND (q.held_snooze_id IN (SELECT e.snooze_id FROM ended e) OR q.held_snooze_id IS NULL)
        ORDER BY q.alert_id, q.webhook_id
        LIMIT p_limit
    LOOP
        SELECT s.* INTO v_state FROM pggit.alert_notification_state s
        WHERE s.alert_id = r.alert_id AND s.webhook_id = r.webhook_id
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND; -- being queued to right now: next call
        SELECT a.* INTO v_alert FROM pggit.performance_alerts a WHERE a.alert_id = r.alert_id;
        v_snooze := pggit.active_snooze_id(v_alert.operation_type, v_alert.alert_type);
        IF v_snooze IS NOT NULL AND v_alert.resolved_at IS NULL THEN
            -- Another snooze still matches: held on, under it.
            UPDATE pggit.alert_notification_queue q SET held_snooze_id = v_snooze
            WHERE q.alert_id = r.alert_id AND q.webhook_id = r.webhook_id AND q.status = 'held';
            CONTINUE;
        END IF;
        IF v_alert.resolved_at IS NOT NULL THEN
            -- Over before anyone was told: only a resolve of an alert the
            -- webhook heard of is still news.
            UPDATE pggit.alert_notification_queue q SET status = 'suppressed'
            WHERE q.alert_id = r.alert_id AND q.webhook_id = r.webhook_id AND q.status = 'held'
              AND (q.event <> 'resolved' OR NOT v_state.notified);
        END IF;
        FOR v_id IN
            SELECT q.notification_id FROM pggit.alert_notification_queue q
            WHERE q.alert_id = r.alert_id AND q.webhook_id = r.webhook_id AND q.status = 'held'
            ORDER BY q.notification_id
        LOOP
            UPDATE pggit.alert_notification_queue q SET status = 'pending' WHERE q.notification_id = v_id;
            PERFORM pggit.enqueue_notification_batch(v_id);
            v_n := v_n + 1;
        END LOOP;
        IF v_alert.resolved_at IS NULL THEN
            UPDATE pggit.alert_notification_state s
            SET notified = true,
                next_repeat_at = CASE WHEN s.repeat_seconds > 0 THEN v_now + make_interval(secs => s.repeat_seconds) END
            WHERE s.alert_id = r.alert_id AND s.webhook_id = r.webhook_id;
        END IF;
    END LOOP;

    -- Reminders of open alerts.
    FOR r IN
        SELECT s.alert_id, s.webhook_id, s.repeat_seconds, s.repeat_when_acknowledged, s.repeats,
               a.resolved_at, a.acknowledged_at, a.severity, a.operation_type, a.alert_type,
               w.enabled AS webhook_enabled, c.max_attempts
        FROM pggit.alert_notification_state s
        JOIN pggit.performance_alerts a ON a.alert_id = s.alert_id
        JOIN pggit.alert_notification_webhooks w ON w.webhook_id = s.webhook_id
        JOIN pggit.notification_batch_config c ON c.webhook_type = w.webhook_type
        WHERE s.next_repeat_at <= v_now
        ORDER BY s.next_repeat_at
        LIMIT p_limit
        FOR UPDATE OF s SKIP LOCKED
    LOOP
        IF r.resolved_at IS NOT NULL OR NOT r.webhook_enabled OR r.repeat_seconds = 0
           OR (r.acknowledged_at IS NOT NULL AND NOT r.repeat_when_acknowledged) THEN
            UPDATE pggit.alert_notification_state s SET next_repeat_at = NULL
            WHERE s.alert_id = r.alert_id AND s.webhook_id = r.webhook_id;
            CONTINUE;
        END IF;
        IF pggit.active_snooze_id(r.operation_type, r.alert_type) IS NULL
           AND NOT EXISTS (SELECT 1 FROM pggit.alert_notification_queue q
                           WHERE q.alert_id = r.alert_id AND q.webhook_id = r.webhook_id AND q.status = 'held') THEN
            v_id := NULL;
            INSERT INTO pggit.alert_notification_queue
                (alert_id, webhook_id, event, severity, max_attempts, dedup_key)
            VALUES (r.alert_id, r.webhook_id, 'reminder', r.severity, r.max_attempts,
                    format('pggit-%s-reminder-%s-%s', r.alert_id, r.repeats + 1, r.webhook_id))
            ON CONFLICT (dedup_key) DO NOTHING
            RETURNING notification_id INTO v_id;
            IF v_id IS NOT NULL THEN
                PERFORM pggit.enqueue_notification_batch(v_id);
                v_n := v_n + 1;
            END IF;
        END IF;
        -- While snoozed, reminders are skipped, not held.
        UPDATE pggit.alert_notification_state s
        SET repeats = s.repeats + 1, next_repeat_at = v_now + make_interval(secs => s.repeat_seconds)
        WHERE s.alert_id = r.alert_id AND s.webhook_id = r.webhook_id;
    END LOOP;
    RETURN v_n;
END;
$$;
-- +goose StatementEnd

-- Claims up to p_limit due batches for p_worker (see migration 00006), after
-- running the follow-ups. A batch is not claimed while an earlier
-- notification of one of its alerts to the same webhook is unfinished
-- (held, pending in another batch, sending or failed), so per alert and
-- webhook, events are sent one after another in the order they happened.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.claim_notification_batches(p_worker text, p_limit integer, p_lease_seconds integer)
RETURNS SETOF pggit.notification_batch_queue
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_now timestamptz;
BEGIN
    IF p_worker IS NULL OR btrim(p_worker) = '' THEN
        RAISE EXCEPTION 'p_worker must be a non-empty name' USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_worker';
    END IF;
    PERFORM pggit.check_name(p_worker, 'p_worker');
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 1000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_limit';
    END IF;
    IF p_lease_seconds IS NULL OR p_lease_seconds NOT BETWEEN 1 AND 3600 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 3600, got %', coalesce(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_lease_seconds';
    END IF;

    PERFORM pggit.run_notification_followups();
    v_now := clock_timestamp();

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
          -- Correlated subqueries (OFFSET 0 keeps them so), tested per
          -- candidate in next_attempt_at order until p_limit pass: a few
          -- index probes per claimed item, whatever the statistics say.
          AND NOT EXISTS (
              SELECT 1
              FROM pggit.alert_notification_queue q
              WHERE q.batch_id = b.batch_id
                AND EXISTS (
                    SELECT 1
                    FROM pggit.alert_notification_queue p
                    WHERE p.alert_id = q.alert_id AND p.webhook_id = q.webhook_id
                      AND p.notification_id < q.notification_id
                      AND p.status IN ('held', 'pending', 'sending', 'failed')
                      AND p.batch_id IS DISTINCT FROM b.batch_id
                    OFFSET 0)
              OFFSET 0)
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
-- Every statement of the claim has an index path; on a queue whose
-- statistics are missing or stale (it starts empty, fills in one
-- transaction) the planner would otherwise pick scans that make each claim
-- linear in the queue (see migration 00015).
ALTER FUNCTION pggit.claim_notification_batches(text, integer, integer) SET enable_seqscan = off;

-- Records the outcome of attempt p_attempt of a batch (see migration
-- 00006); NULL p_attempt: the batch's current attempt. Idempotent: a call
-- repeated after its reply was lost (the connection broke) finds its attempt
-- already logged and returns what it returned, without logging again; and
-- because the attempt is named, a repeated call never records onto a later
-- claim of the same batch by the same worker.
DROP FUNCTION pggit.complete_notification_batch(bigint, text, text, integer, text, double precision, text, timestamptz);
-- +goose StatementBegin
CREATE FUNCTION pggit.complete_notification_batch(
    p_batch_id    bigint,
    p_worker      text,
    p_outcome     text,
    p_http_status integer,
    p_smtp_reply  text,
    p_latency_ms  double precision,
    p_error       text,
    p_retry_at    timestamptz,
    p_attempt     integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_batch   pggit.notification_batch_queue;
    v_status  text;
    v_attempt integer;
    v_logged  text;
BEGIN
    PERFORM pggit.check_id(p_batch_id, 'p_batch_id');
    PERFORM pggit.check_name(p_worker, 'p_worker');
    IF p_attempt < 1 THEN
        RAISE EXCEPTION 'p_attempt must be a positive attempt number (NULL: the current one), got %', p_attempt
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_attempt';
    END IF;
    IF p_outcome IS NULL OR p_outcome NOT IN ('sent', 'retry', 'dead') THEN
        RAISE EXCEPTION 'p_outcome must be one of sent, retry, dead, got %', coalesce(quote_literal(p_outcome), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_outcome';
    END IF;
    IF p_http_status NOT BETWEEN 100 AND 599 THEN
        RAISE EXCEPTION 'p_http_status must be an HTTP status code from 100 to 599 (NULL when there was no response), got %',
                p_http_status
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_http_status';
    END IF;
    IF p_latency_ms IS NULL OR p_latency_ms < 0 OR p_latency_ms = 'NaN' OR p_latency_ms = 'Infinity' THEN
        RAISE EXCEPTION 'p_latency_ms must be a finite number of milliseconds >= 0, got %', coalesce(p_latency_ms::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_latency_ms';
    END IF;
    SELECT b.* INTO v_batch FROM pggit.notification_batch_queue b WHERE b.batch_id = p_batch_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batch % does not exist', p_batch_id USING ERRCODE = 'no_data_found', COLUMN = 'p_batch_id';
    END IF;
    v_attempt := coalesce(p_attempt, v_batch.attempts);
    SELECT coalesce(l.error, '') INTO v_logged FROM pggit.alert_notification_log l
    WHERE l.batch_id = p_batch_id AND l.attempt = v_attempt AND l.worker = p_worker
    ORDER BY l.log_id LIMIT 1;
    IF FOUND THEN
        RETURN v_logged NOT LIKE '%lease lost to %'; -- already recorded
    END IF;
    IF v_batch.status <> 'sending' OR v_batch.leased_by IS DISTINCT FROM p_worker OR v_batch.attempts <> v_attempt THEN
        INSERT INTO pggit.alert_notification_log
            (batch_id, webhook_id, attempt, outcome, http_status, smtp_reply, latency_ms, error, worker, item_count)
        VALUES (p_batch_id, v_batch.webhook_id, v_attempt, CASE WHEN p_outcome = 'sent' THEN 'sent' ELSE 'retry' END,
                p_http_status, p_smtp_reply, p_latency_ms,
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
            p_http_status, p_smtp_reply, p_latency_ms, p_error, p_worker, v_batch.item_count);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- Gives back a batch p_worker claimed (attempt p_attempt, or any) but did not send (its time budget ran
-- out before the request could start, or it is stopping): due again at once,
-- the attempt not counted, nothing logged. Returns false when p_worker no
-- longer holds it.
-- +goose StatementBegin
CREATE FUNCTION pggit.release_notification_batch(p_batch_id bigint, p_worker text, p_attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_batch pggit.notification_batch_queue;
BEGIN
    PERFORM pggit.check_id(p_batch_id, 'p_batch_id');
    PERFORM pggit.check_name(p_worker, 'p_worker');
    IF p_attempt < 1 THEN
        RAISE EXCEPTION 'p_attempt must be a positive attempt number (NULL: the current one), got %', p_attempt
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_attempt';
    END IF;
    UPDATE pggit.notification_batch_queue b
    SET status = CASE WHEN b.attempts > 1 THEN 'failed' ELSE 'ready' END,
        attempts = b.attempts - 1,
        lease_until = NULL,
        next_attempt_at = clock_timestamp()
    WHERE b.batch_id = p_batch_id AND b.status = 'sending' AND b.leased_by = p_worker
      AND (p_attempt IS NULL OR b.attempts = p_attempt)
    RETURNING b.* INTO v_batch;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE pggit.alert_notification_queue q
    SET status = CASE WHEN v_batch.status = 'failed' THEN 'failed' ELSE 'pending' END,
        attempts = v_batch.attempts,
        lease_until = NULL,
        next_attempt_at = v_batch.next_attempt_at
    WHERE q.batch_id = p_batch_id;
    PERFORM pg_notify('pggit_notifications', p_batch_id::text);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- The message of one alert list in p_format, from facts built by
-- pggit.alert_message_facts (plus, from notifications: event, service,
-- generator_url, snooze). Formats: json, slack, mattermost, text, pagerduty,
-- email, alertmanager (API v2 postable alerts).
-- +goose StatementBegin
CREATE FUNCTION pggit.format_alert_facts(p_facts jsonb[], p_format text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_f    jsonb;
    v_n    integer := coalesce(cardinality(p_facts), 0);
    v_body text;
    v_crit integer;
BEGIN
    IF p_format IS NULL OR p_format NOT IN ('json', 'slack', 'mattermost', 'text', 'pagerduty', 'email', 'alertmanager') THEN
        RAISE EXCEPTION 'p_format must be one of json, slack, mattermost, text, pagerduty, email, alertmanager, got %',
                coalesce(quote_literal(p_format), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_format';
    END IF;
    IF v_n = 0 OR v_n > 100 THEN
        RAISE EXCEPTION 'p_facts must hold 1 to 100 alerts, got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_facts';
    END IF;
    IF p_format = 'pagerduty' AND v_n > 1 THEN
        RAISE EXCEPTION 'p_facts must hold one alert for the pagerduty format (one event per request), got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_facts';
    END IF;

    CASE p_format
    WHEN 'json' THEN
        RETURN jsonb_build_object('source', 'pggit-monitor', 'count', v_n, 'alerts', to_jsonb(p_facts))::text;

    WHEN 'slack', 'mattermost' THEN
        RETURN jsonb_build_object(
            'text', CASE WHEN v_n = 1 THEN 'pgGit Performance Alert' ELSE format('pgGit Performance Alerts (%s)', v_n) END,
            'attachments', (
                SELECT jsonb_agg(
                    jsonb_build_object(
                        'color', CASE
                            WHEN p_format = 'slack' THEN CASE f ->> 'state'
                                WHEN 'CRITICAL' THEN 'danger' WHEN 'WARNING' THEN 'warning' ELSE 'good' END
                            ELSE CASE f ->> 'state'
                                WHEN 'CRITICAL' THEN '#FF0000' WHEN 'WARNING' THEN '#FFA500' ELSE '#36A64F' END
                        END,
                        'title', f ->> 'summary',
                        'title_link', f ->> 'runbook_url',
                        'fields', jsonb_build_array(
                            jsonb_build_object('title', 'Operation', 'value', f ->> 'subject', 'short', true),
                            jsonb_build_object('title', 'Severity', 'value', f ->> 'state', 'short', true),
                            jsonb_build_object('title', 'Actual', 'value', coalesce((f ->> 'actual_ms') || ' ms', '-'), 'short', true),
                            jsonb_build_object('title', 'Baseline p99', 'value', coalesce((f ->> 'baseline_p99_ms') || ' ms', '-'), 'short', true),
                            jsonb_build_object('title', 'Multiplier', 'value', coalesce((f ->> 'violation_multiplier') || 'x', '-'), 'short', true),
                            jsonb_build_object('title', 'Occurrences', 'value', f ->> 'occurrences', 'short', true),
                            jsonb_build_object('title', 'Runbook', 'value', f ->> 'runbook_url', 'short', false))
                          || CASE WHEN f ? 'snooze_note'
                                  THEN jsonb_build_array(jsonb_build_object('title', 'Snoozed', 'value', f ->> 'snooze_note', 'short', false))
                                  ELSE '[]'::jsonb END,
                        'footer', 'pggit-monitor alert ' || (f ->> 'alert_id')
                    ) || CASE WHEN p_format = 'mattermost' THEN jsonb_build_object('fallback', f ->> 'summary') ELSE '{}'::jsonb END
                    ORDER BY o)
                FROM unnest(p_facts) WITH ORDINALITY AS x(f, o))
        )::text;

    WHEN 'text' THEN
        SELECT string_agg(format(E'%s\nRunbook: %s', f ->> 'summary', f ->> 'runbook_url')
                          || coalesce(E'\n' || (f ->> 'snooze_note'), ''), E'\n\n' ORDER BY o)
        INTO v_body
        FROM unnest(p_facts) WITH ORDINALITY AS x(f, o);
        RETURN v_body;

    WHEN 'pagerduty' THEN
        v_f := p_facts[1];
        IF (v_f ->> 'resolved')::boolean THEN
            RETURN jsonb_build_object('event_action', 'resolve', 'dedup_key', v_f ->> 'dedup_key')::text;
        END IF;
        RETURN jsonb_build_object(
            'event_action', 'trigger',
            'dedup_key', v_f ->> 'dedup_key',
            'payload', jsonb_build_object(
                'summary', left(v_f ->> 'summary', 1024),
                'source', 'pggit-monitor',
                'severity', lower(v_f ->> 'severity'),
                'component', v_f ->> 'operation_type',
                'group', nullif(v_f ->> 'scope', ''),
                'class', v_f ->> 'alert_type',
                'timestamp', v_f -> 'last_seen_at',
                'custom_details', jsonb_strip_nulls(jsonb_build_object(
                    'alert_id', v_f -> 'alert_id',
                    'actual_ms', v_f -> 'actual_ms',
                    'baseline_p99_ms', v_f -> 'baseline_p99_ms',
                    'violation_multiplier', v_f -> 'violation_multiplier',
                    'occurrences', v_f -> 'occurrences',
                    'details', v_f -> 'details',
                    'snoozed', v_f -> 'snooze_note'))),
            'links', jsonb_build_array(jsonb_build_object('href', v_f ->> 'runbook_url', 'text', 'Runbook'))
        )::text;

    WHEN 'email' THEN
        SELECT string_agg(format(E'%s\nRunbook: %s', f ->> 'summary', f ->> 'runbook_url')
                          || coalesce(E'\n' || (f ->> 'snooze_note'), ''), E'\n\n' ORDER BY o),
               count(*) FILTER (WHERE f ->> 'state' = 'CRITICAL')
        INTO v_body, v_crit
        FROM unnest(p_facts) WITH ORDINALITY AS x(f, o);
        RETURN format(E'Subject: %s\n\n%s\n\n-- \npggit-monitor\n',
            CASE WHEN v_n = 1 THEN '[pggit] ' || (p_facts[1] ->> 'state') || ' ' || (p_facts[1] ->> 'alert_type')
                                   || ' ' || (p_facts[1] ->> 'subject')
                 ELSE format('[pggit] %s alerts (%s CRITICAL)', v_n, v_crit) END,
            v_body);

    WHEN 'alertmanager' THEN
        -- Alertmanager API v2 (POST /api/v2/alerts): a firing alert has no
        -- endsAt (Alertmanager ends it after its resolve_timeout unless it
        -- is posted again); a resolved one ends when it resolved.
        RETURN (
            SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                'labels', jsonb_build_object(
                    'alertname', f ->> 'alert_type',
                    'operation', f ->> 'operation_type',
                    'scope', nullif(f ->> 'scope', ''),
                    'severity', lower(f ->> 'severity'),
                    'service', coalesce(nullif(f ->> 'service', ''), 'pggit-monitor')),
                'annotations', jsonb_build_object(
                    'summary', f ->> 'summary',
                    'description', coalesce(f -> 'details' ->> 'message', f ->> 'summary')
                                   || coalesce(E'\n' || (f ->> 'snooze_note'), ''),
                    'runbook_url', f ->> 'runbook_url'),
                'startsAt', f -> 'first_seen_at',
                'endsAt', CASE WHEN (f ->> 'resolved')::boolean THEN f -> 'resolved_at' END,
                'generatorURL', f ->> 'generator_url')) ORDER BY o)
            FROM unnest(p_facts) WITH ORDINALITY AS x(f, o))::text;
    ELSE
        RAISE EXCEPTION 'format % has no renderer', p_format USING ERRCODE = 'internal_error';
    END CASE;
END;
$$;
-- +goose StatementEnd

-- Formats alerts p_alert_ids (in that order) as one message in p_format, from
-- their current state.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.format_alert_batch(p_alert_ids bigint[], p_format text DEFAULT 'json')
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_facts   jsonb[];
    v_n       integer;
    v_id      bigint;
    v_missing bigint;
BEGIN
    IF p_format IS NULL OR p_format NOT IN ('json', 'slack', 'mattermost', 'text', 'pagerduty', 'email', 'alertmanager') THEN
        RAISE EXCEPTION 'p_format must be one of json, slack, mattermost, text, pagerduty, email, alertmanager, got %',
                coalesce(quote_literal(p_format), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_format';
    END IF;
    v_n := coalesce(cardinality(p_alert_ids), 0);
    IF v_n = 0 OR v_n > 100 THEN
        RAISE EXCEPTION 'p_alert_ids must hold 1 to 100 alert ids, got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_ids';
    END IF;
    FOREACH v_id IN ARRAY p_alert_ids LOOP
        PERFORM pggit.check_id(v_id, 'p_alert_ids');
    END LOOP;
    IF p_format = 'pagerduty' AND v_n > 1 THEN
        RAISE EXCEPTION 'p_alert_ids must hold one alert id for the pagerduty format (one event per request), got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_ids';
    END IF;
    SELECT i.id INTO v_missing
    FROM unnest(p_alert_ids) WITH ORDINALITY AS i(id, ord)
    WHERE NOT EXISTS (SELECT 1 FROM pggit.performance_alerts a WHERE a.alert_id = i.id)
    ORDER BY i.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'alert % does not exist', coalesce(v_missing::text, 'NULL')
            USING ERRCODE = 'no_data_found', COLUMN = 'p_alert_ids';
    END IF;
    SELECT array_agg(pggit.alert_message_facts(a) || pggit.alert_link_facts(a.alert_id) ORDER BY i.ord)
    INTO v_facts
    FROM unnest(p_alert_ids) WITH ORDINALITY AS i(id, ord)
    JOIN pggit.performance_alerts a ON a.alert_id = i.id;
    RETURN pggit.format_alert_facts(v_facts, p_format);
END;
$$;
-- +goose StatementEnd

-- generator_url of an alert, when console_base_url is set.
-- +goose StatementBegin
CREATE FUNCTION pggit.alert_link_facts(p_alert_id bigint)
RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = pggit, pg_catalog
AS $$
    SELECT coalesce((
        SELECT jsonb_build_object('generator_url', rtrim(s.setting_value, '/') || '/alerts/' || p_alert_id)
        FROM pggit.monitor_settings s
        WHERE s.setting_name = 'console_base_url' AND s.setting_value <> ''), '{}'::jsonb)
$$;
-- +goose StatementEnd

-- The message of a notification batch in p_format: its alerts in the order
-- they were queued, each as its latest notification in the batch says (the
-- event and severity when it was queued, not the alert's state now), with
-- who snoozed it and why when it was held, and REMINDER for reminders. The
-- service label of the alertmanager format is the webhook's channel.
-- +goose StatementBegin
CREATE FUNCTION pggit.format_notification_batch(p_batch_id bigint, p_format text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    r       record;
    v_alert pggit.performance_alerts;
    v_snz   pggit.alert_snooze;
    v_f     jsonb;
    v_facts jsonb[] := '{}'::jsonb[];
    v_svc   text;
BEGIN
    PERFORM pggit.check_id(p_batch_id, 'p_batch_id');
    SELECT w.channel INTO v_svc
    FROM pggit.notification_batch_queue b
    JOIN pggit.alert_notification_webhooks w ON w.webhook_id = b.webhook_id
    WHERE b.batch_id = p_batch_id;
    FOR r IN
        SELECT q.*
        FROM (SELECT DISTINCT ON (q.alert_id) q.*, min(q.notification_id) OVER (PARTITION BY q.alert_id) AS first_id
              FROM pggit.alert_notification_queue q
              WHERE q.batch_id = p_batch_id
              ORDER BY q.alert_id, q.notification_id DESC) q
        ORDER BY q.first_id
    LOOP
        SELECT a.* INTO v_alert FROM pggit.performance_alerts a WHERE a.alert_id = r.alert_id;
        CONTINUE WHEN NOT FOUND;
        v_alert.severity := r.severity;
        IF r.event <> 'resolved' THEN
            v_alert.resolved_at := NULL;
            v_alert.resolved_by := NULL;
        END IF;
        v_f := pggit.alert_message_facts(v_alert) || pggit.alert_link_facts(v_alert.alert_id)
               || jsonb_build_object('event', r.event, 'service', v_svc);
        IF r.event = 'reminder' THEN
            v_f := v_f || jsonb_build_object('summary', 'REMINDER ' || (v_f ->> 'summary'));
        END IF;
        IF r.held_snooze_id IS NOT NULL THEN
            SELECT s.* INTO v_snz FROM pggit.alert_snooze s WHERE s.snooze_id = r.held_snooze_id;
            IF FOUND THEN
                v_f := v_f || jsonb_build_object('snooze_note', format('Held while snoozed by %s%s; the snooze %s.',
                    v_snz.created_by,
                    coalesce(' (' || nullif(v_snz.snooze_reason, '') || ')', ''),
                    CASE WHEN v_snz.cancelled_at IS NOT NULL
                         THEN format('was cancelled by %s at %s', v_snz.cancelled_by, to_char(v_snz.cancelled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'))
                         ELSE format('ended at %s', to_char(v_snz.snooze_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')) END));
            END IF;
        END IF;
        v_facts := v_facts || v_f;
    END LOOP;
    IF cardinality(v_facts) = 0 THEN
        RAISE EXCEPTION 'batch % holds no alert (its alerts were deleted)', p_batch_id
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_batch_id';
    END IF;
    RETURN pggit.format_alert_facts(v_facts, p_format);
END;
$$;
-- +goose StatementEnd
-- +goose Down
DROP FUNCTION pggit.format_notification_batch(bigint, text);
DROP FUNCTION pggit.complete_notification_batch(bigint, text, text, integer, text, double precision, text, timestamptz, integer);
-- format_alert_batch as of 00017_input_validation.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.format_alert_batch(p_alert_ids bigint[], p_format text DEFAULT 'json')
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_facts jsonb[];
    v_f     jsonb;
    v_n     integer;
    v_missing bigint;
    v_body  text;
    v_crit  integer;
    v_id    bigint;
BEGIN
    IF p_format IS NULL OR p_format NOT IN ('json', 'slack', 'mattermost', 'text', 'pagerduty', 'email') THEN
        RAISE EXCEPTION 'p_format must be one of json, slack, mattermost, text, pagerduty, email, got %',
                coalesce(quote_literal(p_format), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_format';
    END IF;
    v_n := coalesce(cardinality(p_alert_ids), 0);
    IF v_n = 0 OR v_n > 100 THEN
        RAISE EXCEPTION 'p_alert_ids must hold 1 to 100 alert ids, got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_ids';
    END IF;
    FOREACH v_id IN ARRAY p_alert_ids LOOP
        PERFORM pggit.check_id(v_id, 'p_alert_ids');
    END LOOP;
    IF p_format = 'pagerduty' AND v_n > 1 THEN
        RAISE EXCEPTION 'p_alert_ids must hold one alert id for the pagerduty format (one event per request), got %', v_n
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert_ids';
    END IF;

    SELECT i.id INTO v_missing
    FROM unnest(p_alert_ids) WITH ORDINALITY AS i(id, ord)
    WHERE NOT EXISTS (SELECT 1 FROM pggit.performance_alerts a WHERE a.alert_id = i.id)
    ORDER BY i.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'alert % does not exist', coalesce(v_missing::text, 'NULL')
            USING ERRCODE = 'no_data_found', COLUMN = 'p_alert_ids';
    END IF;

    SELECT array_agg(pggit.alert_message_facts(a) ORDER BY i.ord)
    INTO v_facts
    FROM unnest(p_alert_ids) WITH ORDINALITY AS i(id, ord)
    JOIN pggit.performance_alerts a ON a.alert_id = i.id;

    CASE p_format
    WHEN 'json' THEN
        RETURN jsonb_build_object('source', 'pggit-monitor', 'count', v_n, 'alerts', to_jsonb(v_facts))::text;

    WHEN 'slack', 'mattermost' THEN
        RETURN jsonb_build_object(
            'text', CASE WHEN v_n = 1 THEN 'pgGit Performance Alert' ELSE format('pgGit Performance Alerts (%s)', v_n) END,
            'attachments', (
                SELECT jsonb_agg(
                    jsonb_build_object(
                        'color', CASE
                            WHEN p_format = 'slack' THEN CASE f ->> 'state'
                                WHEN 'CRITICAL' THEN 'danger' WHEN 'WARNING' THEN 'warning' ELSE 'good' END
                            ELSE CASE f ->> 'state'
                                WHEN 'CRITICAL' THEN '#FF0000' WHEN 'WARNING' THEN '#FFA500' ELSE '#36A64F' END
                        END,
                        'title', f ->> 'summary',
                        'title_link', f ->> 'runbook_url',
                        'fields', jsonb_build_array(
                            jsonb_build_object('title', 'Operation', 'value', f ->> 'subject', 'short', true),
                            jsonb_build_object('title', 'Severity', 'value', f ->> 'state', 'short', true),
                            jsonb_build_object('title', 'Actual', 'value', coalesce((f ->> 'actual_ms') || ' ms', '-'), 'short', true),
                            jsonb_build_object('title', 'Baseline p99', 'value', coalesce((f ->> 'baseline_p99_ms') || ' ms', '-'), 'short', true),
                            jsonb_build_object('title', 'Multiplier', 'value', coalesce((f ->> 'violation_multiplier') || 'x', '-'), 'short', true),
                            jsonb_build_object('title', 'Occurrences', 'value', f ->> 'occurrences', 'short', true),
                            jsonb_build_object('title', 'Runbook', 'value', f ->> 'runbook_url', 'short', false)),
                        'footer', 'pggit-monitor alert ' || (f ->> 'alert_id')
                    ) || CASE WHEN p_format = 'mattermost' THEN jsonb_build_object('fallback', f ->> 'summary') ELSE '{}'::jsonb END
                    ORDER BY o)
                FROM unnest(v_facts) WITH ORDINALITY AS x(f, o))
        )::text;

    WHEN 'text' THEN
        SELECT string_agg(format(E'%s\nRunbook: %s', f ->> 'summary', f ->> 'runbook_url'), E'\n\n' ORDER BY o)
        INTO v_body
        FROM unnest(v_facts) WITH ORDINALITY AS x(f, o);
        RETURN v_body;

    WHEN 'pagerduty' THEN
        v_f := v_facts[1];
        IF (v_f ->> 'resolved')::boolean THEN
            RETURN jsonb_build_object('event_action', 'resolve', 'dedup_key', v_f ->> 'dedup_key')::text;
        END IF;
        RETURN jsonb_build_object(
            'event_action', 'trigger',
            'dedup_key', v_f ->> 'dedup_key',
            'payload', jsonb_build_object(
                'summary', left(v_f ->> 'summary', 1024),
                'source', 'pggit-monitor',
                'severity', lower(v_f ->> 'severity'),
                'component', v_f ->> 'operation_type',
                'group', nullif(v_f ->> 'scope', ''),
                'class', v_f ->> 'alert_type',
                'timestamp', v_f -> 'last_seen_at',
                'custom_details', jsonb_build_object(
                    'alert_id', v_f -> 'alert_id',
                    'actual_ms', v_f -> 'actual_ms',
                    'baseline_p99_ms', v_f -> 'baseline_p99_ms',
                    'violation_multiplier', v_f -> 'violation_multiplier',
                    'occurrences', v_f -> 'occurrences',
                    'details', v_f -> 'details')),
            'links', jsonb_build_array(jsonb_build_object('href', v_f ->> 'runbook_url', 'text', 'Runbook'))
        )::text;

    WHEN 'email' THEN
        SELECT string_agg(format(E'%s\nRunbook: %s', f ->> 'summary', f ->> 'runbook_url'), E'\n\n' ORDER BY o),
               count(*) FILTER (WHERE f ->> 'state' = 'CRITICAL')
        INTO v_body, v_crit
        FROM unnest(v_facts) WITH ORDINALITY AS x(f, o);
        RETURN format(E'Subject: %s\n\n%s\n\n-- \npggit-monitor\n',
            CASE WHEN v_n = 1 THEN '[pggit] ' || (v_facts[1] ->> 'state') || ' ' || (v_facts[1] ->> 'alert_type')
                                   || ' ' || (v_facts[1] ->> 'subject')
                 ELSE format('[pggit] %s alerts (%s CRITICAL)', v_n, v_crit) END,
            v_body);
    END CASE;
END;
$$;
-- +goose StatementEnd

-- claim_notification_batches as of 00017_input_validation.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.claim_notification_batches(p_worker text, p_limit integer, p_lease_seconds integer)
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
    PERFORM pggit.check_name(p_worker, 'p_worker');
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

-- complete_notification_batch as of 00017_input_validation.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.complete_notification_batch(
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
    PERFORM pggit.check_id(p_batch_id, 'p_batch_id');
    PERFORM pggit.check_name(p_worker, 'p_worker');
    IF p_outcome IS NULL OR p_outcome NOT IN ('sent', 'retry', 'dead') THEN
        RAISE EXCEPTION 'p_outcome must be one of sent, retry, dead, got %', coalesce(quote_literal(p_outcome), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_outcome';
    END IF;
    IF p_http_status NOT BETWEEN 100 AND 599 THEN
        RAISE EXCEPTION 'p_http_status must be an HTTP status code from 100 to 599 (NULL when there was no response), got %',
                p_http_status
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_http_status';
    END IF;
    IF p_latency_ms < 0 THEN
        RAISE EXCEPTION 'p_latency_ms must be at least 0, got %', p_latency_ms
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_latency_ms';
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

-- enqueue_alert_notifications as of 00017_input_validation.sql.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION pggit.enqueue_alert_notifications(p_alert pggit.performance_alerts, p_event text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pggit, pg_catalog
AS $$
DECLARE
    v_id bigint;
    v_n  integer := 0;
BEGIN
    IF p_alert.alert_id IS NULL OR p_alert.alert_id < 1 THEN
        RAISE EXCEPTION 'p_alert must be a stored alert (a pggit.performance_alerts row with its alert_id), got %',
                CASE WHEN p_alert IS NULL THEN 'NULL' ELSE 'alert_id ' || coalesce(p_alert.alert_id::text, 'NULL') END
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_alert';
    END IF;
    IF p_event IS NULL OR p_event NOT IN ('opened', 'escalated', 'resolved') THEN
        RAISE EXCEPTION 'p_event must be one of opened, escalated, resolved, got %',
                coalesce(quote_literal(regexp_replace(left(p_event, 40), '[[:cntrl:]]', '?', 'g')), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'p_event';
    END IF;
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

DROP FUNCTION pggit.alert_link_facts(bigint);
DROP FUNCTION pggit.format_alert_facts(jsonb[], text);
DROP FUNCTION pggit.release_notification_batch(bigint, text, integer);
DROP FUNCTION pggit.run_notification_followups(integer);

DROP TRIGGER performance_alerts_notify_insert ON pggit.performance_alerts;
DROP TRIGGER performance_alerts_notify_update ON pggit.performance_alerts;
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

DELETE FROM pggit.monitor_settings WHERE setting_name = 'console_base_url';
DROP TABLE pggit.alert_notification_state;

-- What the old schema cannot hold goes: reminders, held and suppressed
-- notifications, and Alertmanager webhooks (with their routes and queue).
DELETE FROM pggit.alert_notification_queue WHERE event = 'reminder' OR status IN ('held', 'suppressed');
DELETE FROM pggit.alert_notification_webhooks WHERE webhook_type = 'alertmanager';
DELETE FROM pggit.notification_batch_config WHERE webhook_type = 'alertmanager';
DROP INDEX pggit.alert_notification_queue_snooze_idx;
DROP INDEX pggit.alert_notification_queue_unfinished_idx;
DROP INDEX pggit.alert_notification_queue_held_idx;
ALTER TABLE pggit.alert_notification_queue
    DROP COLUMN held_snooze_id,
    DROP CONSTRAINT alert_notification_queue_event_check,
    ADD CONSTRAINT alert_notification_queue_event_check CHECK (event IN ('opened', 'escalated', 'resolved')),
    DROP CONSTRAINT alert_notification_queue_status_check,
    ADD CONSTRAINT alert_notification_queue_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead'));
ALTER TABLE pggit.notification_batch_config
    DROP CONSTRAINT notification_batch_config_resend_check,
    DROP COLUMN resend_seconds,
    DROP CONSTRAINT notification_batch_config_type_check,
    ADD CONSTRAINT notification_batch_config_type_check
        CHECK (webhook_type IN ('slack', 'mattermost', 'pagerduty', 'email', 'webhook'));
ALTER TABLE pggit.alert_notification_webhooks
    DROP CONSTRAINT alert_notification_webhooks_type_check,
    ADD CONSTRAINT alert_notification_webhooks_type_check
        CHECK (webhook_type IN ('slack', 'mattermost', 'pagerduty', 'email', 'webhook'));
ALTER TABLE pggit.alert_notification_settings
    DROP CONSTRAINT alert_notification_settings_repeat_check,
    DROP COLUMN send_resolved,
    DROP COLUMN repeat_interval_seconds;
