-- The original system's runbook queries (phase7-week3-summary.md), verbatim.
-- TestRunbookQueriesRunUnchanged runs each statement, separated by blank lines.

-- View recent alerts with trend
SELECT alert_id, operation_type, severity, violation_multiplier,
       actual_duration_microseconds / 1000.0 as actual_ms, created_at
FROM pggit.performance_alerts
WHERE created_at >= CURRENT_TIMESTAMP - INTERVAL '1 hour'
ORDER BY created_at DESC;

-- Check if alert is snoozed
SELECT pggit.is_alert_snoozed('merge_branches', 'THRESHOLD_EXCEEDED');

-- Manual snooze for maintenance
SELECT pggit.snooze_alerts(
    p_operation_type => 'merge_branches',
    p_alert_type => 'THRESHOLD_EXCEEDED',
    p_snooze_minutes => 120,
    p_snooze_reason => 'Database maintenance window'
);

-- Snooze all alerts during maintenance
SELECT pggit.snooze_alerts(
    p_operation_type => 'ALL',
    p_alert_type => 'ALL',
    p_snooze_minutes => 120,
    p_snooze_reason => 'Database maintenance'
);

-- Snooze specific operation during known slow operation
SELECT pggit.snooze_alerts(
    p_operation_type => 'merge_branches',
    p_alert_type => 'THRESHOLD_EXCEEDED',
    p_snooze_minutes => 60,
    p_snooze_reason => 'Large merge operation expected'
);

-- Check if alert is snoozed
SELECT pggit.is_alert_snoozed('merge_branches', 'THRESHOLD_EXCEEDED');
