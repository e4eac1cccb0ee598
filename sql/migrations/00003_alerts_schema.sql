-- Alerts and snoozes: tables.

-- +goose Up

-- Severity boundary: a violation of at least critical_multiplier x p99 is
-- CRITICAL; from alert_threshold_multiplier up to it, WARNING.
ALTER TABLE pggit.performance_operation_types
    ADD COLUMN critical_multiplier double precision NOT NULL DEFAULT 5.0,
    ADD CONSTRAINT performance_operation_types_critical_check
        CHECK (critical_multiplier >= alert_threshold_multiplier AND critical_multiplier <= 1000.0);

CREATE TABLE pggit.performance_alerts (
    alert_id                     bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_type               text             NOT NULL,
    scope                        text             NOT NULL DEFAULT '',
    alert_type                   text             NOT NULL,
    severity                     text             NOT NULL,
    -- The worst violation seen while the alert is open.
    actual_duration_microseconds bigint,
    baseline_p99_microseconds    double precision,
    violation_multiplier         double precision,
    threshold_multiplier         double precision,
    created_at                   timestamptz      NOT NULL DEFAULT now(),
    first_seen_at                timestamptz      NOT NULL DEFAULT now(),
    last_seen_at                 timestamptz      NOT NULL DEFAULT now(),
    occurrence_count             bigint           NOT NULL DEFAULT 1,
    -- The sample that opened the alert, and the sample of the worst violation.
    metric_id                    bigint,
    worst_metric_id              bigint,
    baseline_id                  bigint           REFERENCES pggit.performance_baselines (baseline_id)
                                                  ON DELETE SET NULL,
    execution_id                 bigint           REFERENCES pggit.baseline_recalc_execution (execution_id)
                                                  ON DELETE SET NULL,
    acknowledged                 boolean          GENERATED ALWAYS AS (acknowledged_at IS NOT NULL) STORED,
    acknowledged_at              timestamptz,
    acknowledged_by              text,
    resolved_at                  timestamptz,
    resolved_by                  text,
    resolution_notes             text,
    details                      jsonb            NOT NULL DEFAULT '{}'::jsonb,
    -- Whether a snooze matched when the alert was raised (it is recorded, not notified).
    snoozed                      boolean          NOT NULL DEFAULT false,
    snooze_id                    bigint,
    CONSTRAINT performance_alerts_type_check CHECK (alert_type IN
        ('THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION', 'BASELINE_RECALC_ERROR')),
    CONSTRAINT performance_alerts_severity_check CHECK (severity IN ('CRITICAL', 'WARNING', 'INFO')),
    CONSTRAINT performance_alerts_occurrences_check CHECK (occurrence_count >= 1),
    CONSTRAINT performance_alerts_ack_check CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL)),
    CONSTRAINT performance_alerts_resolve_check CHECK ((resolved_at IS NULL) = (resolved_by IS NULL))
);

-- One open alert per (operation, scope, type); detection upserts into it.
CREATE UNIQUE INDEX performance_alerts_one_open_idx
    ON pggit.performance_alerts (operation_type, scope, alert_type)
    WHERE resolved_at IS NULL;
CREATE INDEX performance_alerts_created_idx ON pggit.performance_alerts (created_at);
CREATE INDEX performance_alerts_operation_idx ON pggit.performance_alerts (operation_type, created_at);
CREATE INDEX performance_alerts_metric_idx ON pggit.performance_alerts (metric_id);
CREATE INDEX performance_alerts_baseline_idx ON pggit.performance_alerts (baseline_id);
CREATE INDEX performance_alerts_execution_idx ON pggit.performance_alerts (execution_id);

CREATE TABLE pggit.alert_snooze (
    snooze_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- An operation name, or 'ALL'.
    operation_type text        NOT NULL,
    -- An alert type, or 'ALL'.
    alert_type     text        NOT NULL,
    snooze_until   timestamptz NOT NULL,
    snooze_reason  text,
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- false once cancelled; expired snoozes stay active rows but no longer match.
    is_active      boolean     NOT NULL DEFAULT true,
    cancelled_at   timestamptz,
    cancelled_by   text,
    CONSTRAINT alert_snooze_operation_check
        CHECK (btrim(operation_type) <> '' AND length(operation_type) <= 200),
    CONSTRAINT alert_snooze_type_check CHECK (alert_type IN
        ('ALL', 'THRESHOLD_EXCEEDED', 'ANOMALY', 'DEGRADATION', 'CORRELATION', 'BASELINE_RECALC_ERROR')),
    CONSTRAINT alert_snooze_until_check CHECK (snooze_until > created_at),
    CONSTRAINT alert_snooze_cancel_check CHECK (is_active = (cancelled_at IS NULL))
);

-- is_alert_snoozed: at most four index probes ((op | ALL) x (type | ALL)).
CREATE INDEX alert_snooze_match_idx
    ON pggit.alert_snooze (operation_type, alert_type, snooze_until)
    WHERE is_active;

ALTER TABLE pggit.performance_alerts
    ADD CONSTRAINT performance_alerts_snooze_fkey FOREIGN KEY (snooze_id)
        REFERENCES pggit.alert_snooze (snooze_id) ON DELETE SET NULL;
CREATE INDEX performance_alerts_snooze_idx ON pggit.performance_alerts (snooze_id);

-- +goose Down
DROP TABLE pggit.performance_alerts;
DROP TABLE pggit.alert_snooze;
ALTER TABLE pggit.performance_operation_types
    DROP CONSTRAINT performance_operation_types_critical_check,
    DROP COLUMN critical_multiplier;
