package monitor_test

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pggit/pggit-monitor/monitor"
)

// TestDeliveryRedactsEveryPartOfASecret has each receiver echo one part of
// its secret (a path segment, a query value, the user, the password, the
// Authorization header, the routing key, the SMTP AUTH blob) back in its
// error, through real deliveries and TestWebhook, and finds none of them in
// the delivery log, the queue, the webhook's test error or the process log.
func TestDeliveryRedactsEveryPartOfASecret(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)

	// Echoes each path segment on its own, and the path around them.
	segs := newSink(t)
	segs.setRespond(func(_ int, r *http.Request) (int, string, http.Header) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		return http.StatusInternalServerError, "bad token " + strings.Join(parts[1:], ", ") + " in " + r.URL.Path, nil
	})
	// Echoes each query value, decoded, and the raw query.
	query := newSink(t)
	query.setRespond(func(_ int, r *http.Request) (int, string, http.Header) {
		q := r.URL.Query()
		return http.StatusInternalServerError, "token=" + q.Get("token") + " sig " + q.Get("sig") + " raw " + r.URL.RawQuery, nil
	})
	// Echoes the credentials of the URL, as the Authorization header and decoded.
	userinfo := newSink(t)
	userinfo.setRespond(func(_ int, r *http.Request) (int, string, http.Header) {
		user, pass, _ := r.BasicAuth()
		return http.StatusInternalServerError, "denied " + r.Header.Get("Authorization") + " for " + user + "/" + pass, nil
	})
	// PagerDuty echoes the routing key of the body, as given and in lower case.
	pd := newSink(t)
	pd.setRespond(func(i int, _ *http.Request) (int, string, http.Header) {
		var ev struct {
			RoutingKey string `json:"routing_key"`
		}
		_ = json.Unmarshal(pd.received()[i-1].Body, &ev)
		return http.StatusBadRequest, `{"message":"invalid routing key ` + ev.RoutingKey + `", "key":"` + strings.ToLower(ev.RoutingKey) + `"}`, nil
	})
	// The SMTP server rejects the message quoting the user, password and AUTH PLAIN blob.
	const mailUser, mailPass = "mailUser77", "mailPass77"
	authBlob := base64.StdEncoding.EncodeToString([]byte("\x00" + mailUser + "\x00" + mailPass))
	smtpSrv, roots := newSMTPServer(t, true, mailUser, mailPass)
	smtpSrv.mu.Lock()
	smtpSrv.reply = "554 5.7.1 rejected for " + mailUser + " with " + mailPass + " (" + authBlob + ")"
	smtpSrv.mu.Unlock()

	segsURL := segs.URL + "/services/T0AB12CD/B0EF34GH/XyZsecretTok3n"
	queryURL := query.URL + "/hook?token=QueryTok3nXYZ&sig=ab%2Fcd%2BSIGpart&v=1"
	u, _ := url.Parse(userinfo.URL)
	u.User, u.Path = url.UserPassword("hookUser9", "hookPass9"), "/hooks/UserinfoTok"
	hooks := []*monitor.Webhook{
		n.webhook("slack", "segments", segsURL, ""),
		n.webhook("webhook", "query", queryURL, ""),
		n.webhook("mattermost", "userinfo", u.String(), ""),
		n.webhook("pagerduty", "pd", "PDKeyAbCd1234", ""),
		n.webhook("email", "mail", "smtp://"+mailUser+":"+mailPass+"@"+smtpSrv.addr()+"?from=pggit@example.com", "oncall@example.com"),
	}
	for _, w := range hooks {
		n.route(w, "ALL", "INFO")
	}
	n.raise("op", "ANOMALY", "WARNING")
	cfg := &monitor.DispatcherConfig{PagerDutyURL: pd.URL + "/v2/enqueue", SMTPTLSConfig: &tls.Config{RootCAs: roots}}
	d := n.dispatcher(cfg)
	require.Equal(t, len(hooks), n.runOnce(d))
	for _, w := range hooks {
		tested, err := n.c.TestWebhook(n.ctx, w.ID, cfg)
		require.NoError(t, err)
		require.Equal(t, "failed", tested.TestStatus, w.Name)
	}

	secrets := []string{
		"T0AB12CD", "B0EF34GH", "XyZsecretTok3n", // path segments
		"QueryTok3nXYZ", "ab/cd+SIGpart", "ab%2Fcd%2BSIGpart", "SIGpart", // query values, decoded and raw
		"hookUser9", "hookPass9", base64.StdEncoding.EncodeToString([]byte("hookUser9:hookPass9")), "UserinfoTok",
		"PDKeyAbCd1234",
		mailUser, mailPass, authBlob,
	}
	var stored []string
	for _, q := range []string{
		`SELECT coalesce(error, '') FROM pggit.alert_notification_log`,
		`SELECT coalesce(last_error, '') FROM pggit.notification_batch_queue`,
		`SELECT coalesce(last_error, '') FROM pggit.alert_notification_queue`,
		`SELECT coalesce(test_error, '') FROM pggit.alert_notification_webhooks`,
	} {
		rows, err := n.pool.Query(n.ctx, q)
		require.NoError(t, err)
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			require.NotEmpty(t, s, q) // every delivery failed: the test below has something to look at
			stored = append(stored, s)
		}
		require.NoError(t, rows.Err())
	}
	all := strings.ToLower(strings.Join(stored, "\n") + "\n" + n.logs.String())
	for _, s := range secrets {
		require.NotContains(t, all, strings.ToLower(s))
		require.NotContains(t, all, strings.ToLower(url.QueryEscape(s)))
	}

	// The rule, as it reads: well-known words and short tokens stay, so the
	// error still says what went wrong.
	errorOf := func(w *monitor.Webhook) string {
		var s string
		require.NoError(t, n.pool.QueryRow(n.ctx, `SELECT test_error FROM pggit.alert_notification_webhooks WHERE webhook_id = $1`, w.ID).Scan(&s))
		return s
	}
	require.Equal(t, "HTTP 500: bad token [redacted], [redacted], [redacted] in /services/[redacted]/[redacted]/[redacted]", errorOf(hooks[0]))
	require.Equal(t, "HTTP 500: token=[redacted] sig [redacted] raw token=[redacted]&sig=[redacted]&v=1", errorOf(hooks[1]))
	require.Equal(t, "HTTP 500: denied Basic [redacted] for [redacted]/[redacted]", errorOf(hooks[2]))
	require.Equal(t, `HTTP 400: {"message":"invalid routing key [redacted]", "key":"[redacted]"}`, errorOf(hooks[3]))
	require.Equal(t, `SMTP: 554 "5.7.1 rejected for [redacted] with [redacted] ([redacted])"`, errorOf(hooks[4]))
	require.Contains(t, n.logs.String(), "[redacted]")
}
