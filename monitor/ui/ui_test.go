package ui_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/internal/demo"
	"github.com/pggit/pggit-monitor/monitor"
	"github.com/pggit/pggit-monitor/monitor/monitortest"
	"github.com/pggit/pggit-monitor/monitor/ui"
)

func TestMain(m *testing.M) {
	os.Unsetenv("PGGIT_WEBHOOK_KEYS") // the demo makes its own key
	monitortest.Main(m, monitortest.CheckGoroutines())
}

const hostile = `<script>alert("op")</script>`

// secretParts are pieces of the demo's and this test's webhook URLs: none
// may appear in any page.
var secretParts = []string{"services/T000", "hooks/demo", "s3cr3t-token-value", "/integration/"}

type fixture struct {
	t      *testing.T
	ctx    context.Context
	pool   *pgxpool.Pool
	client *monitor.Client
	srv    *httptest.Server
	http   *http.Client
}

// newFixture loads the demo's data (30 hours of five operations, a
// regression detected and resolved, one ongoing, deliveries to three
// webhooks), adds an operation with a hostile name and its alert, and serves
// the console at /ui with token (read-only when empty).
func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	ctx := context.Background()
	pool := monitortest.New(t)
	require.NoError(t, demo.Run(ctx, pool, io.Discard))
	// The demo ends with every alert resolved; two open ones on top, as a
	// detector would have raised them two hours ago.
	_, err := pool.Exec(ctx, `
		SELECT pggit.raise_alert('get_history', '', 'DEGRADATION', 'CRITICAL', '{"message": "latency up 199%"}');
		SELECT pggit.raise_alert('get_history', '', 'ANOMALY', 'WARNING', '{"message": "p50 2.97x its usual"}');
		UPDATE pggit.performance_alerts SET first_seen_at = now() - interval '2 hours' WHERE resolved_at IS NULL;`)
	require.NoError(t, err)
	key := make([]byte, 32)
	key[0] = 1 // a key of zeros is refused
	ring, err := monitor.NewKeyRing(map[string][]byte{"k": key}, "k")
	require.NoError(t, err)
	client, err := monitor.New(pool, &monitor.Config{KeyRing: ring, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = client.StoreWebhook(ctx, monitor.WebhookParams{Type: monitor.WebhookGeneric, Name: "ops-hook",
		Secret: monitor.Secret("https://hooks.example.com/integration/s3cr3t-token-value")})
	require.NoError(t, err)
	now := time.Now()
	_, err = client.RecordSample(ctx, monitor.Sample{OperationType: hostile, Duration: 5 * time.Millisecond, Scope: `"><img src=x>`, RecordedAt: now.Add(-time.Hour)})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `SELECT pggit.raise_alert($1, $2, 'THRESHOLD_EXCEEDED', 'WARNING', '{"message": "<b>bold</b> claim"}')`, hostile, `"><img src=x>`)
	require.NoError(t, err)

	h, err := ui.New(ui.Config{Client: client, Token: token, BasePath: "/ui", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &fixture{t: t, ctx: ctx, pool: pool, client: client, srv: srv, http: hc}
}

func (f *fixture) get(path string) (int, string) {
	f.t.Helper()
	resp, err := f.http.Get(f.srv.URL + path)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	body := string(b)
	for _, s := range secretParts {
		require.NotContains(f.t, body, s, "a secret in %s", path)
	}
	return resp.StatusCode, body
}

func (f *fixture) post(path string, form url.Values, header http.Header) (int, string, *http.Response) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.http.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

func (f *fixture) scalar(sql string, args ...any) string {
	f.t.Helper()
	var s *string
	require.NoError(f.t, f.pool.QueryRow(f.ctx, sql, args...).Scan(&s))
	if s == nil {
		return ""
	}
	return *s
}

func (f *fixture) openAlertID(op, typ string) int64 {
	f.t.Helper()
	var id int64
	require.NoError(f.t, f.pool.QueryRow(f.ctx, `SELECT alert_id FROM pggit.performance_alerts
		WHERE operation_type = $1 AND alert_type = $2 AND resolved_at IS NULL`, op, typ).Scan(&id))
	return id
}

func TestPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")

	code, body := f.get("/ui/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "Open alerts by severity")
	require.Contains(t, body, "get_history")
	require.Contains(t, body, `<svg class="spark"`, "sparklines of the open alerts' operations")
	require.Contains(t, body, "demo-slack", "queue health")
	require.Contains(t, body, "read-only")
	require.NotContains(t, body, "<form", "no action without a token")

	// The operation page: three series from the histograms, the baseline
	// band, the alert spans and the change point of the DEGRADATION.
	code, body = f.get("/ui/operations/merge_branches?range=24h")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 3, strings.Count(body, `<polyline class="series `), "p50, p90, p99")
	require.Regexp(t, `<polyline class="series p99" points="(\d+\.\d,\d+\.\d ?){100,}"`, body, "10-minute points over 24 h")
	require.Contains(t, body, `<rect class="band"`)
	require.Regexp(t, `<rect class="span critical"`, body)
	require.Contains(t, body, `<line class="mark"`)
	require.Contains(t, body, "Baseline history")
	code, body = f.get("/ui/operations/merge_branches?range=7d&scope=main")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "scope main")

	code, body = f.get("/ui/alerts?status=all&severity=CRITICAL")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "merge_branches")
	require.NotRegexp(t, `<td class="WARNING">`, body, "the severity filter")
	code, body = f.get("/ui/alerts?status=all&type=ANOMALY&op=get_history")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, strings.Count(body, `<td class="CRITICAL">`))

	id := f.openAlertID("get_history", "DEGRADATION")
	code, body = f.get(fmt.Sprintf("/ui/alerts/%d", id))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "Notifications")
	require.Regexp(t, `demo-slack <span class="muted">slack</span></td><td>pending`, body, "queued, no dispatcher running")
	first := f.scalar(`SELECT min(alert_id)::text FROM pggit.performance_alerts WHERE operation_type = 'merge_branches' AND alert_type = 'DEGRADATION'`)
	code, body = f.get("/ui/alerts/" + first)
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, `demo-slack <span class="muted">slack</span></td><td>sent</td>`, body, "what the demo delivered")
	require.Regexp(t, `sent \(HTTP 200\)`, body)

	code, body = f.get("/ui/snoozes")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "Snoozes")
	code, body = f.get("/ui/webhooks")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "ops-hook")
	require.Contains(t, body, "#pgit-alerts")

	// Hostile names are text, never markup.
	for _, path := range []string{"/ui/", "/ui/alerts", "/ui/operations/" + url.PathEscape(hostile) + "?scope=" + url.QueryEscape(`"><img src=x>`)} {
		code, body = f.get(path)
		require.Equal(t, http.StatusOK, code, path)
		require.NotContains(t, body, hostile, path)
		require.NotContains(t, body, `"><img src=x>`, path)
		require.NotContains(t, body, "<b>bold</b>", path)
	}
	require.Contains(t, body, "&lt;script&gt;")

	// Bad input: a clear 400 or 404, never a 500.
	for path, want := range map[string]int{
		"/ui/operations/merge_branches?range=1y": http.StatusBadRequest,
		"/ui/operations/no_such_op":              http.StatusNotFound,
		"/ui/alerts?status=maybe":                http.StatusBadRequest,
		"/ui/alerts?severity=LOUD":               http.StatusBadRequest,
		"/ui/alerts/x":                           http.StatusBadRequest,
		"/ui/alerts/999999":                      http.StatusNotFound,
		"/ui/nowhere":                            http.StatusNotFound,
		"/":                                      http.StatusNotFound,
	} {
		code, _ := f.get(path)
		require.Equal(t, want, code, path)
	}
}

func TestReadOnlyWithoutToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	id := f.openAlertID("get_history", "DEGRADATION")
	snoozes := f.scalar(`SELECT count(*)::text FROM pggit.alert_snooze`)
	for _, path := range []string{fmt.Sprintf("/ui/alerts/%d/acknowledge", id), fmt.Sprintf("/ui/alerts/%d/resolve", id),
		fmt.Sprintf("/ui/alerts/%d/accept", id), "/ui/snoozes", "/ui/login"} {
		code, body, _ := f.post(path, url.Values{"name": {"mallory"}, "token": {""}, "operation": {"x"}, "minutes": {"5"}}, nil)
		require.Equal(t, http.StatusForbidden, code, path)
		require.Contains(t, body, "read-only", path)
	}
	require.Empty(t, f.scalar(`SELECT acknowledged_by FROM pggit.performance_alerts WHERE alert_id = $1`, id))
	require.Equal(t, snoozes, f.scalar(`SELECT count(*)::text FROM pggit.alert_snooze`))
}

func TestActionsNeedSignInCSRFAndSameOrigin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "open-sesame")
	id := f.openAlertID("get_history", "DEGRADATION")
	ack := fmt.Sprintf("/ui/alerts/%d/acknowledge", id)

	// Not signed in.
	code, body, _ := f.post(ack, url.Values{}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "Sign in first")
	// A wrong token, a bad name, a cross-site sign-in.
	code, body, _ = f.post("/ui/login", url.Values{"name": {"alice"}, "token": {"guess"}}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "Wrong token")
	code, _, _ = f.post("/ui/login", url.Values{"name": {"al\nice"}, "token": {"open-sesame"}}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, _, _ = f.post("/ui/login", url.Values{"name": {"alice"}, "token": {"open-sesame"}}, http.Header{"Origin": {"https://evil.example"}})
	require.Equal(t, http.StatusForbidden, code)

	// Signed in.
	code, _, resp := f.post("/ui/login", url.Values{"name": {"alice"}, "token": {"open-sesame"}, "next": {"https://evil.example/"}}, nil)
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/ui/", resp.Header.Get("Location"), "next stays inside the console")
	_, page := f.get(fmt.Sprintf("/ui/alerts/%d", id))
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	require.NotNil(t, m, "forms carry a CSRF token")
	csrf := m[1]
	require.Contains(t, page, `id="acknowledge"`)

	// Without the CSRF token, with a wrong one, from another site: refused.
	code, _, _ = f.post(ack, url.Values{}, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = f.post(ack, url.Values{"csrf": {strings.Repeat("0", 64)}}, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = f.post(ack, url.Values{"csrf": {csrf}}, http.Header{"Origin": {"https://evil.example"}})
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = f.post(ack, url.Values{"csrf": {csrf}}, http.Header{"Sec-Fetch-Site": {"cross-site"}})
	require.Equal(t, http.StatusForbidden, code)
	require.Empty(t, f.scalar(`SELECT acknowledged_by FROM pggit.performance_alerts WHERE alert_id = $1`, id))
	// A forged session cookie: refused.
	other := newFixtureClientWithCookie(t, f, "pggit_ui_session", "YWxpY2U.AAAA.AAAA.AAAA")
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+ack, strings.NewReader("csrf="+csrf))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := other.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// Done right: the actor is recorded.
	code, _, resp = f.post(ack, url.Values{"csrf": {csrf}}, http.Header{"Origin": {f.srv.URL}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, fmt.Sprintf("/ui/alerts/%d", id), resp.Header.Get("Location"))
	require.Equal(t, "alice", f.scalar(`SELECT acknowledged_by FROM pggit.performance_alerts WHERE alert_id = $1`, id))

	// Resolve one alert with a note, accept the regression of the other.
	anomaly := f.openAlertID("get_history", "ANOMALY")
	code, _, _ = f.post(fmt.Sprintf("/ui/alerts/%d/resolve", anomaly), url.Values{"csrf": {csrf}, "note": {"deploy rolled back"}}, nil)
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "deploy rolled back", f.scalar(`SELECT resolution_notes FROM pggit.performance_alerts WHERE alert_id = $1`, anomaly))
	// Resolving it again is a clear error, not a 500.
	code, body, _ = f.post(fmt.Sprintf("/ui/alerts/%d/resolve", anomaly), url.Values{"csrf": {csrf}}, nil)
	require.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict}, code, body)
	code, _, _ = f.post(fmt.Sprintf("/ui/alerts/%d/accept", id), url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "alice", f.scalar(`SELECT resolved_by FROM pggit.performance_alerts WHERE alert_id = $1`, id))
	require.Equal(t, "alice", f.scalar(`SELECT accepted_by FROM pggit.performance_baseline_floors
		WHERE operation_type = 'get_history' AND scope = ''`), "the baseline starts again at the change point")

	// Snooze and unsnooze; bad minutes are a 400 that names the field.
	code, _, _ = f.post("/ui/snoozes", url.Values{"csrf": {csrf}, "operation": {"merge_branches"}, "type": {"ANOMALY"}, "minutes": {"90"}, "reason": {"deploy"}}, nil)
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "alice", f.scalar(`SELECT created_by FROM pggit.alert_snooze WHERE operation_type = 'merge_branches'`))
	for _, minutes := range []string{"abc", "0", "99999999"} {
		code, body, _ = f.post("/ui/snoozes", url.Values{"csrf": {csrf}, "operation": {"merge_branches"}, "minutes": {minutes}}, nil)
		require.Equal(t, http.StatusBadRequest, code, minutes)
		require.Regexp(t, `(?i)minutes|Duration`, body)
	}
	sid := f.scalar(`SELECT snooze_id::text FROM pggit.alert_snooze WHERE operation_type = 'merge_branches'`)
	code, _, _ = f.post("/ui/snoozes/"+sid+"/cancel", url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "alice", f.scalar(`SELECT cancelled_by FROM pggit.alert_snooze WHERE snooze_id = $1::bigint`, sid))

	// Signing out ends the session.
	code, _, _ = f.post("/ui/logout", url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, code)
	code, _, _ = f.post(fmt.Sprintf("/ui/alerts/%d/acknowledge", id), url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusForbidden, code)
}

func newFixtureClientWithCookie(t *testing.T, f *fixture, name, value string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(f.srv.URL + "/ui/")
	jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/ui/"}})
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := ui.New(ui.Config{})
	require.ErrorContains(t, err, "Client is required")
	client, err := monitor.New(monitortest.New(t), nil)
	require.NoError(t, err)
	_, err = ui.New(ui.Config{Client: client, BasePath: "ui"})
	require.ErrorContains(t, err, "BasePath must start with /")
}

// TestHostAuthenticatesPeople mounts the console in a "host service" whose
// own middleware authenticates people (HTTP basic auth here): Config.Actor
// names them, they act without the token sign-in and are recorded, forms
// still need their CSRF token, and nobody signed in is read-only.
func TestHostAuthenticatesPeople(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	users := map[string]string{"dave": "pw-dave", "erin": "pw-erin"}
	h, err := ui.New(ui.Config{Client: f.client, BasePath: "/pggit", Logger: slog.New(slog.DiscardHandler),
		Actor: func(r *http.Request) string {
			u, p, ok := r.BasicAuth()
			if ok && users[u] == p {
				return u
			}
			return ""
		}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/pggit/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	id := f.openAlertID("get_history", "DEGRADATION")
	ack := fmt.Sprintf("%s/pggit/alerts/%d/acknowledge", srv.URL, id)
	do := func(method, url, user, pass string, form url.Values) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := f.http.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	page := fmt.Sprintf("%s/pggit/alerts/%d", srv.URL, id)

	// Nobody signed in by the host: read-only, no sign-in link, actions refused.
	code, body := do(http.MethodGet, page, "", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "read-only")
	require.NotContains(t, body, `id="acknowledge"`)
	code, body = do(http.MethodPost, ack, "dave", "wrong", url.Values{})
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "did not sign you in")
	code, _ = do(http.MethodGet, srv.URL+"/pggit/login", "", "", nil)
	require.Equal(t, http.StatusForbidden, code, "no sign-in page: the host signs people in")

	// dave: his name on the page, a CSRF token in the forms.
	code, body = do(http.MethodGet, page, "dave", "pw-dave", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `id="acknowledge"`)
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body)
	require.NotNil(t, m)
	csrf := m[1]
	// Without it, or with dave's token as erin: refused.
	code, _ = do(http.MethodPost, ack, "dave", "pw-dave", url.Values{})
	require.Equal(t, http.StatusForbidden, code)
	code, _ = do(http.MethodPost, ack, "erin", "pw-erin", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusForbidden, code)
	require.Empty(t, f.scalar(`SELECT acknowledged_by FROM pggit.performance_alerts WHERE alert_id = $1`, id))
	// Done right: recorded as dave.
	code, _ = do(http.MethodPost, ack, "dave", "pw-dave", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "dave", f.scalar(`SELECT acknowledged_by FROM pggit.performance_alerts WHERE alert_id = $1`, id))
}
