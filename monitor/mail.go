package monitor

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// mail sends an email message ("Subject: ..." line, blank line, body) over
// SMTP, with STARTTLS when the server offers it, or TLS from the start for
// smtps://. Success is the server's 250 to the message.
//
// Header values cannot carry a header of their own: the subject has every
// control character (CR, LF, ...) replaced by a space before it is encoded
// per RFC 2047, display names are encoded by net/mail, and a header value
// that still holds CR or LF is refused (the batch is dead) rather than sent.
func (d *Dispatcher) mail(ctx context.Context, w *Webhook, msg, dedup string) attempt {
	u, err := url.Parse(w.Secret.Reveal())
	if err != nil {
		return attempt{outcome: "dead", err: "invalid SMTP URL"}
	}
	from, fromErr := mail.ParseAddress(u.Query().Get("from"))
	rcpts, err := mail.ParseAddressList(w.Channel)
	if err != nil || fromErr != nil {
		return attempt{outcome: "dead", err: "email webhook needs ?from= in its URL and recipients in its channel"}
	}
	subject, body, _ := strings.Cut(msg, "\n\n")
	subject = strings.TrimPrefix(subject, "Subject: ")
	to := make([]string, len(rcpts))
	addrs := make([]string, len(rcpts))
	for i, r := range rcpts {
		to[i], addrs[i] = r.String(), r.Address
	}
	var m bytes.Buffer
	for _, h := range [][2]string{
		{"From", from.String()},
		{"To", strings.Join(to, ", ")},
		{"Subject", mimeHeader(subject)},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"Message-ID", "<" + dedup + "@pggit-monitor>"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "8bit"},
	} {
		if strings.ContainsAny(h[1], "\r\n") {
			return attempt{outcome: "dead", err: "email header " + h[0] + " holds a line break; refused"}
		}
		m.WriteString(foldHeader(h[0] + ": " + h[1]))
		m.WriteString("\r\n")
	}
	m.WriteString("\r\n")
	// Lines end in CRLF, and only there: a lone CR is dropped.
	body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\r", "")
	m.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))

	reply, err := d.smtpSend(ctx, u, from.Address, addrs, m.Bytes())
	res := attempt{}
	if reply != "" {
		res.smtpReply = &reply
	}
	if err == nil {
		res.outcome = "sent"
		return res
	}
	res.outcome = "retry"
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) && tpErr.Code >= 500 {
		res.outcome = "dead" // permanent SMTP failure
	}
	res.err = redact("SMTP: "+err.Error(), w)
	return res
}

// mimeHeader makes s a safe header value: each run of control characters
// (CR, LF, tab, ...) becomes one space, then the text is encoded per RFC 2047
// (Q encoding, UTF-8) when it holds anything but printable ASCII. ASCII text
// is kept as is.
func mimeHeader(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return mime.QEncoding.Encode("utf-8", b.String())
}

// foldHeader folds a header line longer than 78 characters at its spaces
// (RFC 5322 2.2.3), so that long encoded subjects stay within line limits.
// Unfolding removes only the CRLF, so the text reads back the same.
func foldHeader(line string) string {
	const limit = 78
	if len(line) <= limit {
		return line
	}
	var b strings.Builder
	n := 0
	for i, word := range strings.Split(line, " ") {
		if i > 0 {
			if n+1+len(word) > limit && n > 0 {
				b.WriteString("\r\n")
				n = 0
			}
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

func (d *Dispatcher) smtpSend(ctx context.Context, u *url.URL, from string, to []string, msg []byte) (string, error) {
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "25"
		if u.Scheme == "smtps" {
			port = "465"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	tlsCfg := d.cfg.SMTPTLSConfig.Clone()
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = host
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if u.Scheme == "smtps" {
		conn = tls.Client(conn, tlsCfg)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return "", err
	}
	defer c.Close()
	if err := c.Hello("pggit-monitor"); err != nil {
		return "", err
	}
	if ok, _ := c.Extension("STARTTLS"); ok && u.Scheme == "smtp" {
		if err := c.StartTLS(tlsCfg); err != nil {
			return "", err
		}
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		if ok, _ := c.Extension("AUTH"); !ok {
			return "", errors.New("server offers no AUTH but the URL has credentials")
		}
		if err := c.Auth(smtp.PlainAuth("", u.User.Username(), pass, host)); err != nil {
			return "", err
		}
	}
	if err := c.Mail(from); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return "", err
		}
	}
	wc, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := wc.Write(msg); err != nil {
		return "", err
	}
	if err := wc.Close(); err != nil { // the server's reply to the message: 250 or an error
		return "", err
	}
	_ = c.Quit()
	return "250", nil
}
