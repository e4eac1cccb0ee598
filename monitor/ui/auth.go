package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The console is read-only unless Config.Token is set. With a token, a person
// signs in with it and their name (recorded as the actor of what they do);
// the session is a cookie signed with a key derived from the token, so
// changing the token signs everyone out and the server keeps no state. Every
// form that changes something carries a CSRF token bound to the session, and
// a POST from another origin is refused.

const (
	sessionCookie = "pggit_ui_session"
	sessionTTL    = 12 * time.Hour
)

// session is a signed-in person.
type session struct {
	Actor string
	CSRF  string
}

type authenticator struct {
	key   []byte // nil: read-only console
	token []byte
	// actor, when set, names the person of a request authenticated by the
	// host service (Config.Actor); the console then has no sign-in.
	actor func(*http.Request) string
}

func newAuthenticator(token string, actor func(*http.Request) string) *authenticator {
	if actor != nil {
		// Keys the CSRF tokens: from the token when there is one (the same
		// on every replica), else random (forms of one process only).
		k := make([]byte, 32)
		if token != "" {
			d := sha256.Sum256([]byte("pggit-ui-host\x00" + token))
			k = d[:]
		} else if _, err := rand.Read(k); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		return &authenticator{key: k, actor: actor}
	}
	if token == "" {
		return &authenticator{}
	}
	k := sha256.Sum256([]byte("pggit-ui-session\x00" + token))
	return &authenticator{key: k[:], token: []byte(token)}
}

// hosted reports whether the host service authenticates people.
func (a *authenticator) hosted() bool { return a.actor != nil }

func (a *authenticator) enabled() bool { return a.key != nil }

func (a *authenticator) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, a.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// checkToken compares a presented token with the configured one in constant
// time.
func (a *authenticator) checkToken(t string) bool {
	if !a.enabled() || a.hosted() {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(t), a.token) == 1
}

// validActor checks a person's name: 1-100 characters, no control
// characters.
func validActor(name string) error {
	if strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) {
		return errors.New("name must be 1 to 100 characters")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return errors.New("name must not hold control characters")
		}
	}
	return nil
}

// issue returns the cookie of a new session for actor.
func (a *authenticator) issue(actor string, now time.Time, path string, secure bool) *http.Cookie {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	exp := now.Add(sessionTTL).Unix()
	e := base64.RawURLEncoding
	payload := e.EncodeToString([]byte(actor)) + "." + e.EncodeToString(nonce) + "." + e.EncodeToString([]byte(time.Unix(exp, 0).UTC().Format(time.RFC3339)))
	sig := e.EncodeToString(a.mac("session", payload))
	return &http.Cookie{
		Name: sessionCookie, Value: payload + "." + sig, Path: path,
		Expires: time.Unix(exp, 0), HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	}
}

// session returns the request's valid session, or nil.
func (a *authenticator) session(r *http.Request, now time.Time) *session {
	if !a.enabled() {
		return nil
	}
	if a.hosted() {
		name := a.actor(r)
		if name == "" || validActor(name) != nil {
			return nil // read-only for this request
		}
		return &session{Actor: name, CSRF: hex.EncodeToString(a.mac("csrf-host", name))}
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 {
		return nil
	}
	e := base64.RawURLEncoding
	payload := parts[0] + "." + parts[1] + "." + parts[2]
	sig, err := e.DecodeString(parts[3])
	if err != nil || !hmac.Equal(sig, a.mac("session", payload)) {
		return nil
	}
	actor, err1 := e.DecodeString(parts[0])
	expRaw, err2 := e.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return nil
	}
	exp, err := time.Parse(time.RFC3339, string(expRaw))
	if err != nil || !now.Before(exp) || validActor(string(actor)) != nil {
		return nil
	}
	return &session{Actor: string(actor), CSRF: hex.EncodeToString(a.mac("csrf", parts[1]))}
}

// sameOrigin refuses a browser request sent from another site: Origin (or,
// without it, Sec-Fetch-Site) must name this host.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
