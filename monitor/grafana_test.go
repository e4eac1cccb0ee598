package monitor_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGrafanaDashboardQueriesRun runs every query of dashboards/pggit-monitor.json
// against a migrated database with data.
func TestGrafanaDashboardQueriesRun(t *testing.T) {
	t.Parallel()
	e := setup(t)
	seedDashboards(e)
	raw, err := os.ReadFile("../dashboards/pggit-monitor.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RawSQL string `json:"rawSql"`
				Format string `json:"format"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.GreaterOrEqual(t, len(dash.Panels), 12)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, target := range p.Targets {
			rows, err := e.pool.Query(e.ctx, target.RawSQL)
			require.NoError(t, err, p.Title)
			n := 0
			for rows.Next() {
				n++
			}
			require.NoError(t, rows.Err(), p.Title)
			require.Positive(t, n, "%s returned no rows on seeded data", p.Title)
			if target.Format == "time_series" {
				require.Equal(t, "time", rows.FieldDescriptions()[0].Name, p.Title)
			}
		}
	}
}
