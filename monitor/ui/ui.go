// Package ui is pggit-monitor's web console: an http.Handler that shows the
// health of the monitor, open alerts with sparklines, each operation's
// latency (p50, p90, p99 from the histograms) against its baseline band with
// alert spans and change points, alert history with the notifications sent,
// snoozes and webhooks; and, for a signed-in person, acknowledges, resolves
// and accepts alerts and snoozes operations.
//
// It is server-rendered HTML with inline SVG (no script, no CDN: it works on
// an air-gapped host), and reads views and histograms, never raw samples.
// `pggit-monitor run -ui` serves it; a host service can mount it behind its
// own authentication:
//
//	h, err := ui.New(ui.Config{Client: client, Token: os.Getenv("PGGIT_UI_TOKEN"), BasePath: "/pggit"})
//	mux.Handle("/pggit/", h)
//
// Without a Token it is read-only: every action is refused with 403. With
// one, a person signs in with the token and their name; their name is
// recorded as the actor of what they do, and every form carries a CSRF token.
// A host that authenticates people itself sets Config.Actor instead: the
// person it names acts without signing in.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pggit/pggit-monitor/monitor"
)

//go:embed templates/*.html
var templateFS embed.FS

// Config configures the console.
type Config struct {
	// Client is the monitor the console reads and acts through. Required.
	Client *monitor.Client
	// Token enables actions: a person signs in with it and their name.
	// Empty (and no Actor): read-only.
	Token string
	// Actor, for a host service that authenticates people itself, returns
	// the name of the person making a request ("" for nobody): that person
	// may act without signing in, and is recorded as the actor; a request
	// it returns "" for is read-only. There is then no sign-in page. Forms
	// still carry a CSRF token, keyed from Token when set (set it when
	// several replicas serve the console) or else from a random key.
	Actor func(r *http.Request) string
	// BasePath is the path the handler is mounted at ("" for the root, or
	// e.g. "/ui"); links are built under it and it is stripped from requests.
	BasePath string
	// Logger receives errors of requests; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the time; nil means time.Now (tests).
	Now func() time.Time
}

// Handler is the console.
type Handler struct {
	client *monitor.Client
	auth   *authenticator
	base   string
	logger *slog.Logger
	now    func() time.Time
	pages  map[string]*template.Template
	mux    *http.ServeMux
}

// New returns the console's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Client == nil {
		return nil, errors.New("ui: Config.Client is required")
	}
	base := strings.TrimSuffix(cfg.BasePath, "/")
	if base != "" && !strings.HasPrefix(base, "/") {
		return nil, fmt.Errorf("ui: Config.BasePath must start with / (or be empty), got %q", cfg.BasePath)
	}
	h := &Handler{client: cfg.Client, auth: newAuthenticator(cfg.Token, cfg.Actor), base: base,
		logger: cfg.Logger, now: cfg.Now}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if err := h.parse(); err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", h.overview)
	m.HandleFunc("GET /operations/{op}", h.operation)
	m.HandleFunc("GET /alerts", h.alerts)
	m.HandleFunc("GET /alerts/{id}", h.alert)
	m.HandleFunc("POST /alerts/{id}/{action}", h.alertAction)
	m.HandleFunc("GET /snoozes", h.snoozes)
	m.HandleFunc("POST /snoozes", h.snoozeCreate)
	m.HandleFunc("POST /snoozes/{id}/cancel", h.snoozeCancel)
	m.HandleFunc("GET /webhooks", h.webhooks)
	m.HandleFunc("GET /login", h.loginForm)
	m.HandleFunc("POST /login", h.login)
	m.HandleFunc("POST /logout", h.logout)
	h.mux = m
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.base != "" {
		// Strip the base from the escaped path, so an operation name holding
		// a slash (%2F) stays one path segment.
		ep := r.URL.EscapedPath()
		rp := strings.TrimPrefix(ep, h.base)
		if len(rp) == len(ep) || (rp != "" && rp[0] != '/') {
			http.NotFound(w, r)
			return
		}
		if rp == "" {
			rp = "/"
		}
		p, err := url.PathUnescape(rp)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = p, rp
		r = r2
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) parse() error {
	funcs := template.FuncMap{
		"ago":         func(t time.Time) string { return ago(h.now(), t) },
		"ts":          fmtTime,
		"tsOpt":       func(t *time.Time) string { return fmtTime(deref(t)) },
		"dur":         fmtDur,
		"ms":          fmtDur,
		"us":          func(v float64) string { return fmtMS(v / 1000) },
		"usOpt":       func(v *float64) string { return optMS(v) },
		"pctOpt":      func(v *float64) string { return optPct(v) },
		"deref":       func(s *string) string { return deref(s) },
		"derefInt":    func(i *int32) int32 { return deref(i) },
		"pathEscape":  url.PathEscape,
		"queryEscape": url.QueryEscape,
		"message":     alertMessage,
		"secs":        func(s float64) string { return (time.Duration(s) * time.Second).String() },
	}
	h.pages = map[string]*template.Template{}
	for _, name := range []string{"overview", "operation", "alerts", "alert", "snoozes", "webhooks", "login", "error"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("ui: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	return nil
}

// page is what every template gets.
type page struct {
	Title    string
	Base     string
	Path     string
	Session  *session
	Writable bool // a person can sign in with the token
	Hosted   bool // the host service signs people in (Config.Actor)
	Flash    string
	Data     any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any, flash string) {
	p := page{Title: title, Base: h.base, Path: h.base + r.URL.Path, Session: h.auth.session(r, h.now()),
		Writable: h.auth.enabled() && !h.auth.hosted(), Hosted: h.auth.hosted(), Flash: flash, Data: data}
	var b strings.Builder
	if err := h.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		h.logger.Error("pggit ui: rendering", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail renders an error page: bad input (400, with the message), a missing
// thing (404), or an internal error (500, logged, a generic message).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var arg *monitor.ArgumentError
	switch {
	case errors.As(err, &arg):
		h.render(w, r, http.StatusBadRequest, "error", "Bad request", err.Error(), "")
	case errors.Is(err, monitor.ErrNotFound):
		h.render(w, r, http.StatusNotFound, "error", "Not found", err.Error(), "")
	case errors.Is(err, monitor.ErrAlreadyResolved):
		h.render(w, r, http.StatusConflict, "error", "Already resolved", err.Error(), "")
	case errors.Is(err, context.Canceled):
		// The client went away.
	default:
		h.logger.Error("pggit ui: request failed", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		h.render(w, r, http.StatusInternalServerError, "error", "Error", "The request failed; the server log has the details.", "")
	}
}

// forbid refuses an action with 403 and says why.
func (h *Handler) forbid(w http.ResponseWriter, r *http.Request, why string) {
	h.render(w, r, http.StatusForbidden, "error", "Forbidden", why, "")
}

// actor returns the signed-in person of a state-changing request, after the
// origin and CSRF checks, or writes a 403 and returns "".
func (h *Handler) actor(w http.ResponseWriter, r *http.Request) string {
	if !h.auth.enabled() {
		h.forbid(w, r, "The console is read-only: it has no token (set PGGIT_UI_TOKEN or -ui-token-file for pggit-monitor run).")
		return ""
	}
	if !sameOrigin(r) {
		h.forbid(w, r, "Refused: the request came from another site.")
		return ""
	}
	s := h.auth.session(r, h.now())
	if s == nil && h.auth.hosted() {
		h.forbid(w, r, "The service this console is part of did not sign you in.")
		return ""
	}
	if s == nil {
		h.forbid(w, r, "Sign in first.")
		return ""
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("csrf") != s.CSRF {
		h.forbid(w, r, "Refused: the form's CSRF token is missing or wrong; reload the page and try again.")
		return ""
	}
	return s.Actor
}

// pathID parses the {id} of the path, or writes a 400 that names what it
// identifies and returns false.
func (h *Handler) pathID(w http.ResponseWriter, r *http.Request, what string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		h.render(w, r, http.StatusBadRequest, "error", "Bad request", what+" id must be a number", "")
		return 0, false
	}
	return id, true
}

// back redirects (303) to a path under the console.
func (h *Handler) back(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, h.base+path, http.StatusSeeOther)
}

func (h *Handler) alertAction(w http.ResponseWriter, r *http.Request) {
	id, ok := h.pathID(w, r, "alert")
	if !ok {
		return
	}
	actor := h.actor(w, r)
	if actor == "" {
		return
	}
	ctx := r.Context()
	var err error
	switch r.PathValue("action") {
	case "acknowledge":
		_, err = h.client.AcknowledgeAlert(ctx, id, actor)
	case "resolve":
		_, err = h.client.ResolveAlert(ctx, id, actor, r.PostForm.Get("note"))
	case "accept":
		_, err = h.client.AcceptRegression(ctx, id, actor)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.back(w, r, fmt.Sprintf("/alerts/%d", id))
}

func (h *Handler) snoozeCreate(w http.ResponseWriter, r *http.Request) {
	actor := h.actor(w, r)
	if actor == "" {
		return
	}
	minutes, err := strconv.Atoi(r.PostForm.Get("minutes"))
	if err != nil || minutes < 1 || minutes > 43200 {
		h.render(w, r, http.StatusBadRequest, "error", "Bad request",
			fmt.Sprintf("minutes must be a whole number between 1 and 43200 (30 days), got %q", r.PostForm.Get("minutes")), "")
		return
	}
	typ := r.PostForm.Get("type")
	if typ == "ALL" {
		typ = ""
	}
	op := r.PostForm.Get("operation")
	if op == "ALL" {
		op = ""
	}
	if _, err := h.client.SnoozeAlerts(r.Context(), monitor.SnoozeParams{OperationType: op, Type: typ,
		Duration: time.Duration(minutes) * time.Minute, Reason: r.PostForm.Get("reason"), CreatedBy: actor}); err != nil {
		h.fail(w, r, err)
		return
	}
	h.back(w, r, "/snoozes")
}

func (h *Handler) snoozeCancel(w http.ResponseWriter, r *http.Request) {
	id, ok := h.pathID(w, r, "snooze")
	if !ok {
		return
	}
	actor := h.actor(w, r)
	if actor == "" {
		return
	}
	if _, err := h.client.Unsnooze(r.Context(), id, actor); err != nil {
		h.fail(w, r, err)
		return
	}
	h.back(w, r, "/snoozes")
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if h.auth.hosted() {
		h.forbid(w, r, "Sign-in is handled by the service this console is part of.")
		return
	}
	if !h.auth.enabled() {
		h.forbid(w, r, "The console is read-only: it has no token.")
		return
	}
	h.render(w, r, http.StatusOK, "login", "Sign in", struct{ Next string }{safeNext(r.URL.Query().Get("next"), h.base)}, "")
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if h.auth.hosted() {
		h.forbid(w, r, "Sign-in is handled by the service this console is part of.")
		return
	}
	if !h.auth.enabled() {
		h.forbid(w, r, "The console is read-only: it has no token.")
		return
	}
	if !sameOrigin(r) {
		h.forbid(w, r, "Refused: the request came from another site.")
		return
	}
	if err := r.ParseForm(); err != nil {
		h.render(w, r, http.StatusBadRequest, "error", "Bad request", "unreadable form", "")
		return
	}
	next := safeNext(r.PostForm.Get("next"), h.base)
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if err := validActor(name); err != nil {
		h.render(w, r, http.StatusBadRequest, "login", "Sign in", struct{ Next string }{next}, "Your "+err.Error()+".")
		return
	}
	if !h.auth.checkToken(r.PostForm.Get("token")) {
		h.render(w, r, http.StatusForbidden, "login", "Sign in", struct{ Next string }{next}, "Wrong token.")
		return
	}
	http.SetCookie(w, h.auth.issue(name, h.now(), h.base+"/", r.TLS != nil))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if h.actor(w, r) == "" {
		return
	}
	if h.auth.hosted() {
		h.forbid(w, r, "Sign-out is handled by the service this console is part of.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: h.base + "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	h.back(w, r, "/")
}

// safeNext keeps a redirect target inside the console.
func safeNext(next, base string) string {
	if next == "" || !strings.HasPrefix(next, base+"/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return base + "/"
	}
	return next
}

func alertMessage(a *monitor.Alert) string {
	var d struct {
		Message string `json:"message"`
	}
	if len(a.Details) > 0 && json.Unmarshal(a.Details, &d) == nil && d.Message != "" {
		return d.Message
	}
	if a.ActualDuration > 0 && a.BaselineP99 > 0 {
		return fmt.Sprintf("%s against a baseline p99 of %s", fmtDur(a.ActualDuration), fmtDur(a.BaselineP99))
	}
	return ""
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func fmtDur(d time.Duration) string {
	return fmtMS(float64(d) / float64(time.Millisecond))
}

func optMS(v *float64) string {
	if v == nil {
		return ""
	}
	return fmtMS(*v / 1000)
}

func optPct(v *float64) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%+.1f%%", *v)
}

// ago says how long ago t was, coarsely.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}
