package monitor

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// redactedText replaces every part of a secret in errors and logs.
const redactedText = "[redacted]"

// redactMinLen is the shortest part of a secret that is redacted: shorter
// parts ("v1", "api", a one-digit query value) protect nothing and would
// shred every message they occur in.
const redactMinLen = 4

// publicPathSegments are the path segments of well-known webhook URLs that
// name an API, not a secret; they stay in errors so that "/services/[redacted]"
// still says which URL failed. Every other segment of a secret URL is
// redacted. Compared without regard to case.
var publicPathSegments = map[string]bool{
	"api": true, "hook": true, "hooks": true, "webhook": true, "webhooks": true,
	"services": true, "incoming": true, "integrations": true, "events": true,
	"enqueue": true, "notify": true, "alerts": true, "v1": true, "v2": true, "v3": true,
}

// redact removes from s the webhook's secret and every part of it that could
// be echoed on its own (see secretParts), in any letter case.
func redact(s string, w *Webhook) string {
	return redactParts(s, secretParts(w))
}

// secretParts lists what redact removes for w, longest first:
//   - the whole secret (a URL, a PagerDuty routing key);
//   - of a URL: the user and the password, the HTTP Basic Authorization value
//     and the SMTP AUTH PLAIN blob made from them, every path segment except
//     publicPathSegments, every query value except an SMTP URL's from (the
//     sender, which every message shows anyway), and the fragment;
//   - each of them also URL-escaped (path and query), URL-unescaped, and as
//     quoted in JSON and Go strings.
//
// Parts shorter than redactMinLen are left alone. The host is not a secret:
// it stays, so that "connection refused" still says where.
func secretParts(w *Webhook) []string {
	if w == nil {
		return nil
	}
	secret := w.Secret.Reveal()
	if secret == "" {
		return nil
	}
	raw := []string{secret}
	if w.Type != WebhookPagerDuty {
		if u, err := url.Parse(secret); err == nil {
			raw = append(raw, urlParts(u)...)
		}
	}
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if len(p) >= redactMinLen && !seen[strings.ToLower(p)] {
			seen[strings.ToLower(p)] = true
			out = append(out, p)
		}
	}
	for _, p := range raw {
		add(p)
		add(url.PathEscape(p))
		add(url.QueryEscape(p))
		if v, err := url.PathUnescape(p); err == nil {
			add(v)
		}
		if v, err := url.QueryUnescape(p); err == nil {
			add(v)
		}
		if j, err := json.Marshal(p); err == nil {
			add(string(j[1 : len(j)-1]))
		}
		q := strconv.Quote(p)
		add(q[1 : len(q)-1])
	}
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return out
}

// urlParts are the parts of a secret URL that redact removes besides the
// whole URL; see secretParts.
func urlParts(u *url.URL) []string {
	var parts []string
	if u.User != nil {
		user := u.User.Username()
		pass, _ := u.User.Password()
		parts = append(parts, user, pass,
			base64.StdEncoding.EncodeToString([]byte(user+":"+pass)),           // Authorization: Basic
			base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass))) // AUTH PLAIN
	}
	for _, path := range []string{u.EscapedPath(), u.Path} {
		for seg := range strings.SplitSeq(path, "/") {
			if !publicPathSegments[strings.ToLower(seg)] {
				parts = append(parts, seg)
			}
		}
	}
	smtp := u.Scheme == "smtp" || u.Scheme == "smtps"
	for pair := range strings.SplitSeq(u.RawQuery, "&") {
		key, value, _ := strings.Cut(pair, "=")
		if smtp && key == "from" {
			continue
		}
		parts = append(parts, value)
	}
	return append(parts, u.EscapedFragment(), u.Fragment)
}

// redactParts replaces every occurrence of every part in s, in any ASCII
// letter case, in one pass: at each position the longest matching part
// wins, and replaced text is not searched again.
func redactParts(s string, parts []string) string {
	if len(parts) == 0 {
		return s
	}
	lower := asciiLower(s)
	lowParts := make([]string, len(parts))
	for i, p := range parts {
		lowParts[i] = asciiLower(p)
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := 0
		for _, p := range lowParts { // longest first
			if strings.HasPrefix(lower[i:], p) {
				matched = len(p)
				break
			}
		}
		if matched == 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString(redactedText)
		i += matched
	}
	return b.String()
}

// asciiLower lowercases ASCII letters only, byte by byte, so that offsets
// into s stay valid even in invalid UTF-8 (a body cut mid-character).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
