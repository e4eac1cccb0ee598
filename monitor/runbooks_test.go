package monitor_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

var sqlBlock = regexp.MustCompile("(?s)```sql\n(.*?)```")

// TestRunbookSQLRuns runs every SQL block of docs/runbooks, in order, against a
// migrated database holding samples, baselines, alerts (one THRESHOLD_EXCEEDED
// on merge_branches is alert 1), a recalculation run with a failure, and a
// failed notification batch.
func TestRunbookSQLRuns(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../docs/runbooks/*.md")
	require.NoError(t, err)
	require.Len(t, files, 6)
	// Alert messages link to <base>/<alert type in lower case>.md: each exists.
	for _, typ := range []string{monitor.AlertThresholdExceeded, monitor.AlertAnomaly, monitor.AlertDegradation,
		monitor.AlertCorrelation, monitor.AlertBaselineRecalcError} {
		require.FileExists(t, filepath.Join("..", "docs", "runbooks", strings.ToLower(typ)+".md"))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			now := time.Now()
			for i := range 120 {
				at := now.Add(-time.Duration(i) * time.Minute)
				e.copySamples("merge_branches", "", at, 1000+int64(i%7)*10, 1100)
				e.copySamples("commit", "", at, 300+int64(i%5)*10)
			}
			e.recalc(nil)
			_, err := e.client.ConfigureOperation(e.ctx, monitor.OperationParams{OperationType: "merge_branches", MinWindowCount: ptr(1)})
			require.NoError(t, err)
			e.copySamples("merge_branches", "", now, 9000)
			require.Len(t, e.detect(now), 1) // alert 1: CRITICAL
			e.exec(`SELECT pggit.raise_alert('commit', '', 'BASELINE_RECALC_ERROR', 'WARNING', '{"message": "no space left"}')`)
			e.exec(`INSERT INTO pggit.alert_notification_webhooks (webhook_type, name, secret_ciphertext, secret_nonce, key_id)
				VALUES ('slack', 's', '\x00112233445566778899aabbccddeeff00', '\x001122334455667788990011', 'k')`)
			e.exec(`INSERT INTO pggit.notification_batch_queue (webhook_id, status, batch_size, item_count, due_at, max_attempts, attempts, last_error)
				VALUES (1, 'dead', 10, 1, now(), 3, 3, 'HTTP 404: no_service')`)

			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			blocks := sqlBlock.FindAllStringSubmatch(string(raw), -1)
			require.NotEmpty(t, blocks, "a runbook without a query")
			for _, b := range blocks {
				rows, err := e.pool.Query(e.ctx, b[1])
				require.NoError(t, err, b[1])
				for rows.Next() {
				}
				require.NoError(t, rows.Err(), b[1])
			}
		})
	}
}
