package main

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScaleSmoke runs the -scale mode end to end at 200,000 samples: the
// load, the worker's state and every measurement, against TEST_DATABASE_URL
// (or a throwaway cluster), and checks that the report has every section.
func TestScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 200,000 samples")
	}
	// run reads DATABASE_URL; the test server is TEST_DATABASE_URL.
	t.Setenv("DATABASE_URL", os.Getenv("TEST_DATABASE_URL"))
	var out bytes.Buffer
	err := run(context.Background(), []string{"-scale", "-scale-samples", "200000", "-scale-days", "8",
		"-scale-ingest", "20000", "-scale-alerts", "1000", "-runs", "1", "-md"}, &out)
	require.NoError(t, err)
	for _, title := range []string{
		"### Recalculation at 200,000 samples, 200 operations: exact against histograms",
		"### Detection at 200,000 samples: 200 operations",
		"### Dashboard views at 200,000 samples",
		"### Ingestion at 200,000 samples stored: 20,000 samples a run over 200 operations",
		"### Retention at 200,000 samples",
		"### Storage at 200,000 samples",
		"| bytes per sample (a day's partition: table + indexes / rows) |",
		"| v_complete_system_overview at scale (ms) |",
	} {
		require.Contains(t, out.String(), title)
	}
}
