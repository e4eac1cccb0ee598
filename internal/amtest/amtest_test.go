package amtest_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pggit/pggit-monitor/internal/amtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait for a notification: generous, never a timing
// assertion.
const wait = 30 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func hasAlert(n amtest.Notification, labels map[string]string) bool {
	_, ok := n.Alert(labels)
	return ok
}

// Alerts posted through the API reach the receiver grouped by alertname and
// operation, with their labels, annotations, times and generator URL.
func TestFiringAlertsReachTheReceiverGrouped(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	am := amtest.Start(t, nil)

	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	alert := func(op, instance string) amtest.PostableAlert {
		return amtest.PostableAlert{
			Labels:       map[string]string{"alertname": "LatencyRegression", "operation": op, "instance": instance},
			Annotations:  map[string]string{"summary": op + " is slower"},
			StartsAt:     start,
			GeneratorURL: "http://console.test/alerts/" + op,
		}
	}
	require.NoError(t, am.PostAlerts(ctx, []amtest.PostableAlert{
		alert("checkout", "a"), alert("checkout", "b"), alert("search", "a"),
	}))

	checkout, err := am.WaitNotification(ctx, func(n amtest.Notification) bool {
		return n.GroupLabels["operation"] == "checkout"
	})
	require.NoError(t, err)
	require.Equal(t, amtest.ReceiverName, checkout.Receiver)
	require.Equal(t, "firing", checkout.Status)
	require.Equal(t, map[string]string{"alertname": "LatencyRegression", "operation": "checkout"}, checkout.GroupLabels)
	require.Equal(t, map[string]string{"alertname": "LatencyRegression", "operation": "checkout"}, checkout.CommonLabels)
	require.Equal(t, map[string]string{"summary": "checkout is slower"}, checkout.CommonAnnotations)
	require.Len(t, checkout.Alerts, 2)
	for _, instance := range []string{"a", "b"} {
		a, ok := checkout.Alert(map[string]string{"instance": instance})
		require.True(t, ok, "instance %s", instance)
		require.Equal(t, "firing", a.Status)
		require.Equal(t, alert("checkout", instance).Labels, a.Labels)
		require.Equal(t, alert("checkout", instance).Annotations, a.Annotations)
		require.True(t, a.StartsAt.Equal(start), "startsAt %v", a.StartsAt)
		require.True(t, a.EndsAt.IsZero(), "endsAt %v", a.EndsAt)
		require.Equal(t, "http://console.test/alerts/checkout", a.GeneratorURL)
		require.NotEmpty(t, a.Fingerprint)
	}

	search, err := am.WaitNotification(ctx, func(n amtest.Notification) bool {
		return n.GroupLabels["operation"] == "search"
	})
	require.NoError(t, err)
	require.Len(t, search.Alerts, 1)
	require.True(t, hasAlert(search, alert("search", "a").Labels))

	alerts, err := am.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, alerts, 3)
	for _, a := range alerts {
		require.Equal(t, "active", a.Status.State)
		require.Equal(t, []amtest.Receiver{{Name: amtest.ReceiverName}}, a.Receivers)
		require.True(t, a.StartsAt.Equal(start))
		require.NotEmpty(t, a.Fingerprint)
	}
}

// Options.GroupBy is the route's group_by.
func TestGroupByOption(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	am := amtest.Start(t, &amtest.Options{GroupBy: []string{"alertname"}, GroupWait: 200 * time.Millisecond})
	require.NoError(t, am.PostAlerts(ctx, []amtest.PostableAlert{
		{Labels: map[string]string{"alertname": "LatencyRegression", "operation": "checkout"}},
		{Labels: map[string]string{"alertname": "LatencyRegression", "operation": "search"}},
	}))
	n, err := am.WaitNotification(ctx, func(n amtest.Notification) bool { return len(n.Alerts) == 2 })
	require.NoError(t, err)
	require.Equal(t, map[string]string{"alertname": "LatencyRegression"}, n.GroupLabels)
}

// An alert posted again with endsAt in the past yields a resolved
// notification for it.
func TestResolvedAlertYieldsResolvedNotification(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	am := amtest.Start(t, nil)

	labels := map[string]string{"alertname": "LatencyRegression", "operation": "checkout"}
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	require.NoError(t, am.PostAlerts(ctx, []amtest.PostableAlert{{Labels: labels, StartsAt: start}}))
	firing, err := am.WaitNotification(ctx, func(n amtest.Notification) bool { return n.Status == "firing" })
	require.NoError(t, err)
	fa, ok := firing.Alert(labels)
	require.True(t, ok)

	end := time.Now().UTC().Add(-time.Second).Truncate(time.Second)
	require.NoError(t, am.PostAlerts(ctx, []amtest.PostableAlert{{Labels: labels, StartsAt: start, EndsAt: end}}))
	resolved, err := am.WaitNotification(ctx, func(n amtest.Notification) bool { return n.Status == "resolved" })
	require.NoError(t, err)
	require.Equal(t, labels, resolved.GroupLabels)
	ra, ok := resolved.Alert(labels)
	require.True(t, ok)
	require.Equal(t, "resolved", ra.Status)
	require.True(t, ra.EndsAt.Equal(end), "endsAt %v, want %v", ra.EndsAt, end)
	require.True(t, ra.StartsAt.Equal(start))
	require.Equal(t, fa.Fingerprint, ra.Fingerprint)
}

// A silence created through the API suppresses the alerts it matches: a
// silenced alert alone in its group is never notified and one sharing a
// group with an unsilenced alert is left out of that group's notification,
// while the unsilenced alerts posted in the same run and after are
// notified. Once the silence expires, the silenced alerts are notified.
func TestSilenceSuppressesMatchingAlerts(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	am := amtest.Start(t, nil)

	id, err := am.CreateSilence(ctx, map[string]string{"silenced": "yes"}, time.Hour, "amtest", "maintenance")
	require.NoError(t, err)
	require.NotEmpty(t, id)

	muted := map[string]string{"alertname": "LatencyRegression", "operation": "muted", "silenced": "yes"}
	loud := map[string]string{"alertname": "LatencyRegression", "operation": "loud"}
	loudMuted := map[string]string{"alertname": "LatencyRegression", "operation": "loud", "silenced": "yes"}
	require.NoError(t, am.PostAlerts(ctx, []amtest.PostableAlert{{Labels: muted}, {Labels: loud}, {Labels: loudMuted}}))

	n, err := am.WaitNotification(ctx, func(n amtest.Notification) bool { return n.GroupLabels["operation"] == "loud" })
	require.NoError(t, err)
	require.Len(t, n.Alerts, 1, "the silenced alert of the group is left out")
	require.Equal(t, loud, n.Alerts[0].Labels)

	alerts, err := am.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, alerts, 3)
	for _, a := range alerts {
		if a.Labels["silenced"] == "yes" {
			require.Equal(t, "suppressed", a.Status.State, "%v", a.Labels)
			require.Equal(t, []string{id}, a.Status.SilencedBy)
		} else {
			require.Equal(t, "active", a.Status.State)
			require.Empty(t, a.Status.SilencedBy)
		}
	}

	// A later alert, posted after the muted group's group_wait, is notified
	// and proves the pipeline moved on; the silenced alerts never were.
	time.Sleep(3 * amtest.DefaultGroupInterval)
	late := map[string]string{"alertname": "LatencyRegression", "operation": "late"}
	require.NoError(t, am.PostAlerts(ctx, []amtest.PostableAlert{{Labels: late}}))
	_, err = am.WaitNotification(ctx, func(n amtest.Notification) bool { return hasAlert(n, late) })
	require.NoError(t, err)
	for _, n := range am.Notifications() {
		require.False(t, hasAlert(n, map[string]string{"silenced": "yes"}), "silenced alert notified: %+v", n)
	}

	require.NoError(t, am.ExpireSilence(ctx, id))
	_, err = am.WaitNotification(ctx, func(n amtest.Notification) bool { return hasAlert(n, muted) })
	require.NoError(t, err)
	n, err = am.WaitNotification(ctx, func(n amtest.Notification) bool { return hasAlert(n, loudMuted) })
	require.NoError(t, err)
	require.True(t, hasAlert(n, loud))
}

// Bad calls come back as errors that carry Alertmanager's answer.
func TestAPIErrors(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	am := amtest.Start(t, nil)
	err := am.PostAlerts(ctx, []amtest.PostableAlert{{Labels: map[string]string{}}})
	require.ErrorContains(t, err, "POST /api/v2/alerts: 400")
	_, err = am.CreateSilence(ctx, map[string]string{"": "b"}, time.Hour, "amtest", "no name")
	require.ErrorContains(t, err, "POST /api/v2/silences: 400")
	err = am.ExpireSilence(ctx, "00000000-0000-0000-0000-000000000000")
	require.ErrorContains(t, err, "DELETE /api/v2/silence/")
}

// A missing binary is an error that says what to install; Start fails the
// test with it, it never skips.
func TestMissingBinary(t *testing.T) {
	real, err := amtest.Find()
	require.NoError(t, err, "this test needs the binary to exist when the environment allows it")

	t.Setenv("PATH", t.TempDir())
	t.Setenv(amtest.BinEnv, "")
	_, err = amtest.Find()
	require.ErrorIs(t, err, amtest.ErrNotFound)
	require.ErrorContains(t, err, "apt-get install prometheus-alertmanager")
	require.ErrorContains(t, err, amtest.BinEnv)

	missing := filepath.Join(t.TempDir(), "alertmanager")
	t.Setenv(amtest.BinEnv, missing)
	_, err = amtest.Find()
	require.ErrorIs(t, err, amtest.ErrNotFound)
	require.ErrorContains(t, err, missing)

	ft := &fakeTB{TB: t}
	ft.run(func() { amtest.Start(ft, nil) })
	require.False(t, ft.skipped)
	require.Contains(t, ft.fatal, "apt-get install prometheus-alertmanager")

	// ALERTMANAGER_BIN wins over PATH.
	t.Setenv(amtest.BinEnv, real)
	got, err := amtest.Find()
	require.NoError(t, err)
	require.Equal(t, real, got)
	_, err = exec.LookPath(got)
	require.NoError(t, err)
}

// Bad Options fail the test with a message naming the field.
func TestBadOptions(t *testing.T) {
	t.Parallel()
	ft := &fakeTB{TB: t}
	ft.run(func() { amtest.Start(ft, &amtest.Options{GroupWait: 500 * time.Microsecond}) })
	require.Contains(t, ft.fatal, "Options.GroupWait")
	require.Contains(t, ft.fatal, "milliseconds")
}

// fakeTB records a Fatal or Skip instead of ending the real test.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	fatal   string
	skipped bool
}

func (f *fakeTB) run(fn func()) {
	var wg sync.WaitGroup
	wg.Go(fn) // Fatal and Skip end the goroutine with runtime.Goexit
	wg.Wait()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Skip(args ...any)                 { f.SkipNow() }
func (f *fakeTB) Skipf(format string, args ...any) { f.SkipNow() }
func (f *fakeTB) SkipNow() {
	f.mu.Lock()
	f.skipped = true
	f.mu.Unlock()
	runtime.Goexit()
}
