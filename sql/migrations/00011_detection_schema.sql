-- Windowed detection: per-operation detection settings, the detector state,
-- the per-hour and per-minute series the detectors read, operation
-- references (the operation's own history by hour of day), baseline floors
-- (accepted regressions) and the record of detection runs.
--
-- The detectors themselves are in 00012_detection_functions.sql; the design is
-- in docs/detection.md.

-- +goose Up

-- Per-operation detection settings (Client.ConfigureOperation).
ALTER TABLE pggit.performance_operation_types
    -- Fewest samples in a window that can raise an alert (THRESHOLD,
    -- ANOMALY); sparse operations get longer windows, up to 1 hour. 1 opts in
    -- to the per-sample rule: any sample over the threshold raises.
    ADD COLUMN min_window_count           integer          NOT NULL DEFAULT 20,
    -- ANOMALY: robust z-score of a window's log latency against the
    -- operation's history for that hour of day; confirmed by k of n windows.
    ADD COLUMN anomaly_warning_z          double precision NOT NULL DEFAULT 3.5,
    ADD COLUMN anomaly_critical_z         double precision NOT NULL DEFAULT 5.0,
    ADD COLUMN anomaly_confirm_k          integer          NOT NULL DEFAULT 2,
    ADD COLUMN anomaly_confirm_n          integer          NOT NULL DEFAULT 3,
    -- DEGRADATION: a sustained shift of at least the warning ratio is what the
    -- CUSUM looks for; the p99 ratio after/before sets the severity.
    ADD COLUMN degradation_warning_ratio  double precision NOT NULL DEFAULT 1.3,
    ADD COLUMN degradation_critical_ratio double precision NOT NULL DEFAULT 1.5,
    -- CUSUM decision threshold (log-likelihood ratio): higher is slower and
    -- quieter.
    ADD COLUMN degradation_threshold      double precision NOT NULL DEFAULT 12.0,
    -- An alert resolves itself after the operation is healthy this long.
    ADD COLUMN resolve_after_minutes      integer          NOT NULL DEFAULT 30,
    ADD CONSTRAINT performance_operation_types_min_window_check
        CHECK (min_window_count BETWEEN 1 AND 100000),
    ADD CONSTRAINT performance_operation_types_anomaly_z_check
        CHECK (anomaly_warning_z BETWEEN 1 AND 100 AND anomaly_critical_z >= anomaly_warning_z
               AND anomaly_critical_z <= 100),
    ADD CONSTRAINT performance_operation_types_anomaly_confirm_check
        CHECK (anomaly_confirm_n BETWEEN 1 AND 20 AND anomaly_confirm_k BETWEEN 1 AND anomaly_confirm_n),
    ADD CONSTRAINT performance_operation_types_degradation_ratio_check
        CHECK (degradation_warning_ratio > 1 AND degradation_warning_ratio <= 100
               AND degradation_critical_ratio >= degradation_warning_ratio AND degradation_critical_ratio <= 100),
    ADD CONSTRAINT performance_operation_types_degradation_threshold_check
        CHECK (degradation_threshold BETWEEN 1 AND 1000),
    ADD CONSTRAINT performance_operation_types_resolve_after_check
        CHECK (resolve_after_minutes BETWEEN 1 AND 10080);

-- Sample time at which a detector raised the alert (first_seen_at is the start
-- of the first offending window, or the change point).
ALTER TABLE pggit.performance_alerts ADD COLUMN detected_at timestamptz;
-- Alerts open at a past time (replays, CORRELATION).
CREATE INDEX performance_alerts_resolved_idx ON pggit.performance_alerts (resolved_at);

-- An accepted regression re-baselines from its change point.
ALTER TABLE pggit.baseline_recalc_execution
    DROP CONSTRAINT baseline_recalc_execution_reason_check,
    ADD CONSTRAINT baseline_recalc_execution_reason_check
        CHECK (reason IN ('scheduled', 'manual', 'force', 'accepted'));
ALTER TABLE pggit.performance_baseline_history
    DROP CONSTRAINT performance_baseline_history_reason_check,
    ADD CONSTRAINT performance_baseline_history_reason_check
        CHECK (reason IN ('scheduled', 'manual', 'force', 'accepted'));

-- Samples before `since` no longer describe the operation: an operator
-- accepted a regression that started then (pggit.accept_regression).
-- Recalculation and detection references start there.
CREATE TABLE pggit.performance_baseline_floors (
    operation_type text        NOT NULL,
    scope          text        NOT NULL,
    since          timestamptz NOT NULL,
    alert_id       bigint      REFERENCES pggit.performance_alerts (alert_id) ON DELETE SET NULL,
    accepted_by    text        NOT NULL,
    accepted_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (operation_type, scope)
);
CREATE INDEX performance_baseline_floors_alert_idx ON pggit.performance_baseline_floors (alert_id);

-- How far detection has evaluated: every minute bucket that ends at or before
-- evaluated_through has been judged (one row).
CREATE TABLE pggit.detection_progress (
    singleton         boolean     PRIMARY KEY DEFAULT true,
    evaluated_through timestamptz,
    CONSTRAINT detection_progress_singleton_check CHECK (singleton)
);
INSERT INTO pggit.detection_progress (singleton) VALUES (true);

-- One row per (operation, scope, hour): its sample count and log-latency
-- quantiles (ln of microseconds), from the histograms when the hour closes.
CREATE TABLE pggit.detection_hours (
    operation_type text             NOT NULL,
    scope          text             NOT NULL,
    hour           timestamptz      NOT NULL,
    sample_count   bigint           NOT NULL,
    l25            double precision NOT NULL,
    l50            double precision NOT NULL,
    l75            double precision NOT NULL,
    l90            double precision NOT NULL,
    l99            double precision NOT NULL,
    PRIMARY KEY (operation_type, scope, hour)
);
CREATE INDEX detection_hours_hour_idx ON pggit.detection_hours (hour);

-- What normal looks like for an operation, from its own history (up to the
-- detection lookback, without the hours of its alerts and before an accepted
-- change point). Log latency (ln of microseconds) throughout.
CREATE TABLE pggit.detection_references (
    operation_type  text               NOT NULL,
    scope           text               NOT NULL,
    -- The hour boundary it was built at; it describes the history before it.
    built_at        timestamptz        NOT NULL,
    history_from    timestamptz        NOT NULL,
    hours_used      integer            NOT NULL,
    -- Hours of the day with a level of their own (history on >= 2 days).
    seasonal_hours  integer            NOT NULL,
    -- Median of the hourly medians.
    level           double precision   NOT NULL,
    -- Expected median by hour of day (UTC), 24 entries; `level` where the
    -- history is too short.
    hod_level       double precision[] NOT NULL,
    -- Robust spread of log latency within an hour (IQR / 1.349), >= 0.05.
    scale           double precision   NOT NULL,
    -- ln p90 - ln p50.
    d90             double precision   NOT NULL,
    -- Hour-to-hour variation of the median and p90 beyond sampling noise.
    tau50           double precision   NOT NULL,
    tau90           double precision   NOT NULL,
    rate_per_minute double precision   NOT NULL,
    -- Length of the ANOMALY windows: the shortest of 5, 10, 15, 30, 60
    -- minutes that usually holds min_window_count samples.
    block_minutes   integer            NOT NULL,
    -- Set by accept_regression: rebuilt at the next hour.
    stale           boolean            NOT NULL DEFAULT false,
    PRIMARY KEY (operation_type, scope),
    CONSTRAINT detection_references_hod_check CHECK (cardinality(hod_level) = 24),
    CONSTRAINT detection_references_block_check CHECK (block_minutes IN (5, 10, 15, 30, 60))
);

-- ANOMALY windows that were judged: one row per (operation, scope, window
-- end) whose robust mean passed the pre-screen (see pggit.detection_process).
CREATE TABLE pggit.detection_blocks (
    operation_type text             NOT NULL,
    scope          text             NOT NULL,
    block_end      timestamptz      NOT NULL,
    block_minutes  integer          NOT NULL,
    sample_count   bigint           NOT NULL,
    p50_us         double precision NOT NULL,
    p90_us         double precision NOT NULL,
    expected_us    double precision NOT NULL,
    z50            double precision NOT NULL,
    z90            double precision NOT NULL,
    -- max(z50, z90), or NULL when the window holds fewer than
    -- min_window_count samples.
    score          double precision,
    PRIMARY KEY (operation_type, scope, block_end)
);
CREATE INDEX detection_blocks_end_idx ON pggit.detection_blocks (block_end);

-- Detector state per (operation, scope), as of updated_through.
CREATE TABLE pggit.detection_state (
    operation_type        text               NOT NULL,
    scope                 text               NOT NULL,
    -- DEGRADATION: CUSUM of log latency (in millionths of a log-likelihood
    -- ratio unit, integer-valued so any evaluation order gives the same
    -- value); cusum_since is the minute after its last zero.
    cusum                 bigint             NOT NULL DEFAULT 0,
    cusum_since           timestamptz,
    mwu_tested_at         timestamptz,
    degradation_alert_id  bigint,
    -- Recovery CUSUM of an open DEGRADATION, and the shift it tests against
    -- (standardized units).
    recovery_cusum        bigint             NOT NULL DEFAULT 0,
    recovery_since        timestamptz,
    shift                 double precision,
    threshold_alert_id    bigint,
    threshold_last_hit    timestamptz,
    anomaly_alert_id      bigint,
    anomaly_last_hit      timestamptz,
    -- Scores and window ends of the last anomaly_confirm_n windows.
    anomaly_scores        double precision[] NOT NULL DEFAULT '{}',
    anomaly_ends          timestamptz[]      NOT NULL DEFAULT '{}',
    updated_through       timestamptz,
    PRIMARY KEY (operation_type, scope)
);

CREATE TABLE pggit.detection_runs (
    run_id          bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at      timestamptz      NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    duration_ms     double precision,
    as_of           timestamptz      NOT NULL,
    evaluated_from  timestamptz      NOT NULL,
    evaluated_to    timestamptz      NOT NULL,
    operations      integer          NOT NULL DEFAULT 0,
    alerts_opened   integer          NOT NULL DEFAULT 0,
    alerts_changed  integer          NOT NULL DEFAULT 0,
    alerts_resolved integer          NOT NULL DEFAULT 0
);
CREATE INDEX detection_runs_started_idx ON pggit.detection_runs (started_at);

INSERT INTO pggit.monitor_settings (setting_name, setting_value, description) VALUES
    ('detection_lookback_days', '7',
     'Days of history behind detection references (1..60)'),
    ('detection_settle_seconds', '10',
     'run_detection() without p_as_of judges buckets that ended this long ago (0..600), so samples still buffered by recorders are in'),
    ('detection_min_history_hours', '2',
     'Hours of history an operation needs before ANOMALY and DEGRADATION judge it (1..168)'),
    ('detection_threshold_confidence', '0.999',
     'THRESHOLD: confidence that the window p99 is over the threshold (0.5..0.999999)'),
    ('detection_correlation_r', '0.75',
     'CORRELATION: Pearson r of the de-seasonalised 5-minute series (0.5..1)');

-- +goose Down
DELETE FROM pggit.monitor_settings WHERE setting_name IN
    ('detection_lookback_days', 'detection_settle_seconds', 'detection_min_history_hours',
     'detection_threshold_confidence', 'detection_correlation_r');
DROP TABLE pggit.detection_runs;
DROP TABLE pggit.detection_state;
DROP TABLE pggit.detection_blocks;
DROP TABLE pggit.detection_references;
DROP TABLE pggit.detection_hours;
DROP TABLE pggit.detection_progress;
DROP TABLE pggit.performance_baseline_floors;
UPDATE pggit.performance_baseline_history SET reason = 'force' WHERE reason = 'accepted';
UPDATE pggit.baseline_recalc_execution SET reason = 'force' WHERE reason = 'accepted';
ALTER TABLE pggit.performance_baseline_history
    DROP CONSTRAINT performance_baseline_history_reason_check,
    ADD CONSTRAINT performance_baseline_history_reason_check
        CHECK (reason IN ('scheduled', 'manual', 'force'));
ALTER TABLE pggit.baseline_recalc_execution
    DROP CONSTRAINT baseline_recalc_execution_reason_check,
    ADD CONSTRAINT baseline_recalc_execution_reason_check
        CHECK (reason IN ('scheduled', 'manual', 'force'));
DROP INDEX pggit.performance_alerts_resolved_idx;
ALTER TABLE pggit.performance_alerts DROP COLUMN detected_at;
ALTER TABLE pggit.performance_operation_types
    DROP CONSTRAINT performance_operation_types_resolve_after_check,
    DROP CONSTRAINT performance_operation_types_degradation_threshold_check,
    DROP CONSTRAINT performance_operation_types_degradation_ratio_check,
    DROP CONSTRAINT performance_operation_types_anomaly_confirm_check,
    DROP CONSTRAINT performance_operation_types_anomaly_z_check,
    DROP CONSTRAINT performance_operation_types_min_window_check,
    DROP COLUMN resolve_after_minutes,
    DROP COLUMN degradation_threshold,
    DROP COLUMN degradation_critical_ratio,
    DROP COLUMN degradation_warning_ratio,
    DROP COLUMN anomaly_confirm_n,
    DROP COLUMN anomaly_confirm_k,
    DROP COLUMN anomaly_critical_z,
    DROP COLUMN anomaly_warning_z,
    DROP COLUMN min_window_count;
