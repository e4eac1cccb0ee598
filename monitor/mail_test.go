package monitor_test

import (
	"mime"
	"net/mail"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMailHeadersCannotBeInjected hands the mailer a subject with CR/LF and
// a forged Bcc header, and display names outside ASCII, and reads what a real
// SMTP server received: no extra header, no extra recipient, and every header
// encoded per RFC 2047 so that it decodes back to what was meant.
func TestMailHeadersCannotBeInjected(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	smtpSrv, _ := newSMTPServer(t, false, "", "")
	from := url.QueryEscape("Ålerts Bot <pggit@example.com>")
	stored := n.webhook("email", "m", "smtp://"+smtpSrv.addr()+"?from="+from, "Dépôt DBA <dba@example.com>, oncall@example.com")
	w, err := n.c.Webhook(n.ctx, stored.ID)
	require.NoError(t, err)
	d := n.dispatcher(nil)

	long := strings.Repeat("opération_très_lente ", 20)
	for _, c := range []struct{ subject, want string }{
		{"[pggit] CRITICAL ANOMALY op\r\nBcc: evil@x.example", "[pggit] CRITICAL ANOMALY op Bcc: evil@x.example"},
		{"[pggit] WARNING ANOMALY ünïcode\rX-Evil: 1\nBcc: evil@x.example", "[pggit] WARNING ANOMALY ünïcode X-Evil: 1 Bcc: evil@x.example"},
		{"[pggit] " + long, "[pggit] " + long},
	} {
		outcome, errText := d.MailForTest(n.ctx, w, "Subject: "+c.subject+"\n\nbody line\n", "pggit-test-mail")
		require.Equal(t, "sent", outcome, errText)
		got := smtpSrv.received()
		data := got[len(got)-1].Data
		require.Equal(t, "pggit@example.com", got[len(got)-1].From)
		require.Equal(t, []string{"dba@example.com", "oncall@example.com"}, got[len(got)-1].To)

		// Every line ends in CRLF, none is longer than RFC 5322 allows.
		require.True(t, strings.HasSuffix(data, "\r\n"))
		for line := range strings.SplitSeq(strings.TrimSuffix(data, "\r\n"), "\r\n") {
			require.NotContains(t, line, "\r")
			require.NotContains(t, line, "\n")
			require.LessOrEqual(t, len(line), 998)
		}
		msg, err := mail.ReadMessage(strings.NewReader(data))
		require.NoError(t, err)
		require.Empty(t, msg.Header["Bcc"])
		require.Empty(t, msg.Header["X-Evil"])
		require.Len(t, msg.Header["Subject"], 1)
		subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		require.NoError(t, err)
		require.Equal(t, c.want, subject)
		sender, err := mail.ParseAddress(msg.Header.Get("From"))
		require.NoError(t, err)
		require.Equal(t, &mail.Address{Name: "Ålerts Bot", Address: "pggit@example.com"}, sender)
		to, err := msg.Header.AddressList("To")
		require.NoError(t, err)
		require.Equal(t, []*mail.Address{{Name: "Dépôt DBA", Address: "dba@example.com"}, {Address: "oncall@example.com"}}, to)
	}
}

// TestMailDisplayNamesCannotForgeHeaders stores recipients and a sender whose
// display names decode (RFC 2047) to CR/LF and a Bcc header: they are sent
// encoded again, so the names read back intact and no header is added.
func TestMailDisplayNamesCannotForgeHeaders(t *testing.T) {
	t.Parallel()
	n := setupNotify(t)
	smtpSrv, _ := newSMTPServer(t, false, "", "")
	forged := "=?utf-8?q?Evil=0D=0ABcc=3A_evil=40x.example?="
	w := n.webhook("email", "m", "smtp://"+smtpSrv.addr()+"?from="+url.QueryEscape(forged+" <pggit@example.com>"), forged+" <dba@example.com>")
	tested, err := n.c.TestWebhook(n.ctx, w.ID, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", tested.TestStatus, tested.TestError)

	got := smtpSrv.received()
	require.Len(t, got, 1)
	require.Equal(t, "pggit@example.com", got[0].From) // the envelope takes the address alone
	require.Equal(t, []string{"dba@example.com"}, got[0].To)
	msg, err := mail.ReadMessage(strings.NewReader(got[0].Data))
	require.NoError(t, err)
	require.Empty(t, msg.Header["Bcc"])
	for _, h := range []string{"From", "To"} {
		addrs, err := msg.Header.AddressList(h)
		require.NoError(t, err)
		require.Len(t, addrs, 1)
		require.Equal(t, "Evil\r\nBcc: evil@x.example", addrs[0].Name, h)
	}
}
