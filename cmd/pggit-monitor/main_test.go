package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor/monitortest"
)

func TestMain(m *testing.M) {
	monitortest.Main(m, monitortest.CheckGoroutines(), monitortest.EmptySearchPath())
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestCLIEndToEnd(t *testing.T) {
	t.Setenv("DATABASE_URL", monitortest.NewEmptyDB(t))

	out, err := runCLI(t, "migrate", "status")
	require.NoError(t, err)
	require.Regexp(t, `1 +00001_baselines_schema.sql +pending`, out)

	out, err = runCLI(t, "migrate", "up")
	require.NoError(t, err)
	require.Contains(t, out, "up 00001_baselines_schema.sql")
	out, err = runCLI(t, "migrate", "up")
	require.NoError(t, err)
	require.Contains(t, out, "nothing to do")

	out, err = runCLI(t, "recalc", "-min-samples", "1")
	require.NoError(t, err)
	require.Regexp(t, `run 1: SUCCESS`, out)

	_, err = runCLI(t, "recalc", "-lookback-days", "0")
	require.ErrorContains(t, err, "-lookback-days must be between 1 and 365, got 0")
	_, err = runCLI(t, "recalc", "-lookback-days", "400")
	require.ErrorContains(t, err, "p_lookback_days must be between 1 and 365, got 400")

	out, err = runCLI(t, "baselines")
	require.NoError(t, err)
	require.Contains(t, out, "OPERATION")

	_, err = runCLI(t, "migrate", "down-to", "x")
	require.ErrorContains(t, err, `VERSION must be a number >= 0, got "x"`)
	out, err = runCLI(t, "migrate", "down-to", "0")
	require.NoError(t, err)
	require.Contains(t, out, "down 00001_baselines_schema.sql")

	_, err = runCLI(t, "frobnicate")
	require.ErrorContains(t, err, `unknown command "frobnicate"`)
	_, err = runCLI(t)
	require.ErrorContains(t, err, "no command given")
	out, err = runCLI(t, "recalc", "-h")
	require.ErrorIs(t, err, flagErrHelp)
	require.Contains(t, out, "-lookback-days")
	// -h everywhere: every command and subcommand explains itself.
	for _, args := range [][]string{{"run", "-h"}, {"status", "-h"}, {"demo", "-h"}, {"migrate", "-h"}, {"baselines", "-h"},
		{"snooze", "-h"}, {"snooze", "add", "-h"}, {"snooze", "list", "-h"}, {"snooze", "cancel", "-h"},
		{"alerts", "--help"}, {"alerts", "list", "-h"}, {"alerts", "ack", "-h"}, {"alerts", "resolve", "-h"},
		{"alerts", "accept", "-h"}, {"detect", "-h"}, {"backtest", "-h"},
		{"webhook", "-h"}, {"webhook", "add", "-h"}, {"webhook", "list", "-h"}, {"webhook", "test", "-h"}, {"webhook", "rotate-keys", "-h"}} {
		_, err := runCLI(t, args...)
		require.ErrorIs(t, err, flagErrHelp, "%v", args)
	}
}

func TestCLINeedsADatabase(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("PGHOST", "")
	t.Setenv("PGDATABASE", "")
	t.Setenv("PGSERVICE", "")
	_, err := runCLI(t, "recalc")
	require.ErrorContains(t, err, "no database: set DATABASE_URL")
}

// With no DATABASE_URL, the demo starts a server itself: the local binaries,
// else a testcontainers container. When neither works, its error names all
// three ways. (The container is forced here, against an unreachable Docker
// daemon: this machine has the binaries.)
func TestDemoWithoutAnyServerNamesEveryWay(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("PGTEST_BACKEND", "container")
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	t.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	_, err := runCLI(t, "demo")
	require.Error(t, err)
	for _, want := range []string{"set DATABASE_URL", "install the PostgreSQL server binaries", "run a Docker daemon for testcontainers"} {
		require.ErrorContains(t, err, want)
	}
}

// demo -serve keeps the web console of the demo's data up until cancelled.
func TestDemoServesTheConsole(t *testing.T) {
	t.Setenv("DATABASE_URL", monitortest.NewEmptyDB(t))
	t.Setenv("PGGIT_WEBHOOK_KEYS", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"demo", "-serve", "-addr", "127.0.0.1:0"}, &out, &out) }()
	re := regexp.MustCompile(`Web console: (http://\S+/ui/) +\(sign in with any name and the token (demo-[0-9a-f]+);`)
	var m []string
	require.Eventually(t, func() bool { m = re.FindStringSubmatch(out.String()); return m != nil }, 60*time.Second, 50*time.Millisecond,
		"no console URL; output:\n%s", out.String())
	resp, err := http.Get(m[1] + "operations/merge_branches")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 3, strings.Count(string(body), `<polyline class="series `))
	cancel()
	require.NoError(t, <-done)
}
