package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromium finds a Chromium or Chrome binary; a missing browser fails the
// test (it never skips).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no headless Chromium for the browser test: looked for chromium, chromium-browser, google-chrome and headless-shell on PATH; install one (Debian: apt-get install chromium; .ci/run does)")
	return ""
}

// TestInARealBrowser loads the console of the demo's data in headless
// Chromium: the overview with its sparklines, an operation's chart with its
// three series, a phone-sized overview that does not overflow, and signs in
// and acknowledges an alert by clicking. Screenshots go to the test's temp
// directory (kept with PGGIT_UI_SCREENSHOTS=dir).
func TestInARealBrowser(t *testing.T) {
	t.Parallel()
	exe := chromium(t)
	const token = "browser-test-token-0123"
	f := newFixture(t, token)
	shots := t.TempDir()
	if d := os.Getenv("PGGIT_UI_SCREENSHOTS"); d != "" {
		shots = d
		require.NoError(t, os.MkdirAll(shots, 0o755))
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // root in CI containers
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first call starts the browser; it lives as long as bctx, so that
	// call carries no timeout (chromedp's rule). Later calls do.
	require.NoError(t, chromedp.Do(bctx), "starting headless Chromium (%s)", exe)
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100: PNG
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		}
	}
	eval := func(expr string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		require.NoError(t, err, expr)
		return n
	}
	base := f.srv.URL + "/ui"
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	))
	title, err := chromedp.Run(ctx, chromedp.Title())
	require.NoError(t, err)
	sparks := eval(`document.querySelectorAll('svg.spark polyline').length`)
	require.NoError(t, chromedp.Do(ctx,
		shot("overview"),
		chromedp.Navigate(base+"/operations/merge_branches?range=24h"),
		chromedp.WaitVisible(chromedp.CSS("svg.chart")),
	))
	series := eval(`document.querySelectorAll('svg.chart polyline.series').length`)
	bands := eval(`document.querySelectorAll('svg.chart rect.band').length`)
	require.NoError(t, chromedp.Do(ctx, shot("operation")))
	require.Equal(t, "Overview · pggit-monitor", title)
	require.GreaterOrEqual(t, sparks, 1, "a sparkline per open alert's operation")
	require.Equal(t, 3, series, "p50, p90, p99")
	require.Equal(t, 1, bands, "the baseline band")

	// On a phone the page fits its width (wide tables scroll in their box).
	require.NoError(t, chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	))
	overflow := eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`)
	require.NoError(t, chromedp.Do(ctx, shot("overview-phone"), chromedp.EmulateViewport(1280, 900)))
	require.LessOrEqual(t, overflow, 0, "the overview overflows a phone's width by %dpx", overflow)

	// Sign in, open an alert, click Acknowledge.
	id := f.openAlertID("get_history", "DEGRADATION")
	alertPath := fmt.Sprintf("/ui/alerts/%d", id)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/login?next="+alertPath),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "carol"),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("acknowledge")),
		shot("alert-before"),
		chromedp.Click(chromedp.ID("acknowledge")),
		chromedp.WaitVisible(chromedp.Search(`//td[contains(., "by carol")]`)),
	))
	who, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".who")))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, shot("alert-acknowledged")))
	require.Contains(t, who, "carol")
	require.Equal(t, "carol", f.scalar(`SELECT acknowledged_by FROM pggit.performance_alerts WHERE alert_id = $1`, id))
	for _, n := range []string{"overview", "operation", "overview-phone", "alert-before", "alert-acknowledged"} {
		st, err := os.Stat(filepath.Join(shots, n+".png"))
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(1000), n)
	}
}
