// Package dashboard is Ashlar's web UI for operators and users: the image
// stores, the volume types that feed them (and their drift), the data
// moving between them with live progress, images and volumes. It is served
// by `ashlar serve` on [dashboard] bind; pages are rendered on the server
// with html/template, with small inline scripts only for live progress.
//
// Security: a login is a Keystone password authentication (embedded or
// external Keystone alike); the token stays on the server, in the session
// the HttpOnly, SameSite=Strict cookie names, and is never put in a URL.
// Every form carries a CSRF token; every read and action is an API call
// made with the user's token (client.go), so the APIs' policy decides.
package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// Options configure a Dashboard.
type Options struct {
	// DB is read for the transfers page (the task table).
	DB *db.DB
	// Client reaches the APIs (an in-process loopback for the services of
	// this process).
	Client *http.Client
	// IdentityURL, ImageURL and VolumeURL are the APIs' base URLs
	// (without /v3 or /v2).
	IdentityURL, ImageURL, VolumeURL string
	// SessionTTL bounds a session (it never outlives its token).
	SessionTTL time.Duration
	// StallAfter flags running work stalled ([DEFAULT] progress_stall_after).
	StallAfter time.Duration
	// Domain is the login form's default domain.
	Domain string
	Logger *slog.Logger
}

// Dashboard serves the web UI.
type Dashboard struct {
	o    Options
	tmpl *template.Template
	mux  *http.ServeMux
	mu   sync.Mutex
	byID map[string]*session
	now  func() time.Time
}

//go:embed templates/*.html
var templates embed.FS

// session is one logged-in user.
type session struct {
	ID, CSRF                     string
	Token                        string
	UserName, ProjectID, Project string
	Admin                        bool
	Expires                      time.Time
}

// sessionCookie names the session; csrfCookie carries the login form's
// CSRF token (double submit: there is no session yet).
const (
	sessionCookie = "ashlar_session"
	csrfCookie    = "ashlar_login_csrf"
)

// New returns the dashboard.
func New(o Options) (*Dashboard, error) {
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.Domain == "" {
		o.Domain = "Default"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: time.Minute}
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	d := &Dashboard{o: o, tmpl: t, mux: http.NewServeMux(), byID: map[string]*session{}, now: time.Now}
	d.routes()
	return d, nil
}

// Handler returns the dashboard's handler, with its security headers.
func (d *Dashboard) Handler() http.Handler { return http.HandlerFunc(d.serve) }

func (d *Dashboard) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	d.mux.ServeHTTP(w, r)
}

func (d *Dashboard) routes() {
	d.mux.HandleFunc("GET /{$}", d.authed(func(w http.ResponseWriter, r *http.Request, s *session) error {
		http.Redirect(w, r, "/transfers", http.StatusSeeOther)
		return nil
	}))
	d.mux.HandleFunc("GET /login", d.loginPage)
	d.mux.HandleFunc("POST /login", d.loginPost)
	d.mux.HandleFunc("POST /logout", d.authed(d.logout))
	d.mux.HandleFunc("GET /stores", d.authed(d.admin(d.storesPage)))
	d.mux.HandleFunc("GET /types", d.authed(d.admin(d.typesPage)))
	d.mux.HandleFunc("GET /transfers", d.authed(d.transfersPage))
	d.mux.HandleFunc("GET /transfers.json", d.authed(d.transfersJSON))
	d.mux.HandleFunc("GET /images", d.authed(d.imagesPage))
	d.mux.HandleFunc("POST /images/{id}/copy", d.authed(d.form(d.admin(d.copyImage))))
	d.mux.HandleFunc("POST /images/{id}/delete-from-store", d.authed(d.form(d.admin(d.deleteFromStore))))
	d.mux.HandleFunc("GET /volumes", d.authed(d.volumesPage))
	d.mux.HandleFunc("POST /volumes/{id}/upload", d.authed(d.form(d.uploadVolume)))
}

// pageHandler is a handler of a logged-in user's request. What it returns
// is the page shown instead: a *pageError with its status and message, or
// a failed API call (apiFail).
type pageHandler func(w http.ResponseWriter, r *http.Request, s *session) error

// pageError is a failure of the dashboard itself, not of an API call.
type pageError struct {
	code int
	msg  string
}

func (e *pageError) Error() string { return e.msg }

// authed passes the request's session to h, or sends the browser to log
// in (JSON callers get 401).
func (d *Dashboard) authed(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := d.session(r)
		if s == nil {
			if r.URL.Path == "/transfers.json" || r.Method != http.MethodGet {
				http.Error(w, "not logged in", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if err := h(w, r, s); err != nil {
			var pe *pageError
			if errors.As(err, &pe) {
				d.fail(w, s, pe.code, pe.msg)
				return
			}
			d.apiFail(w, s, err)
		}
	}
}

// admin refuses members a page or action for admins only (403): the
// operator's pages read stores detail and every type's extra specs,
// which the APIs allow admins only.
func (d *Dashboard) admin(h pageHandler) pageHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		if !s.Admin {
			return &pageError{http.StatusForbidden, "This page is for administrators: your role in project " + s.Project + " does not allow it."}
		}
		return h(w, r, s)
	}
}

// form checks a state-changing request's CSRF token against the session's.
func (d *Dashboard) form(h pageHandler) pageHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil || !same(r.PostForm.Get("csrf"), s.CSRF) {
			return &pageError{http.StatusForbidden, "The form has expired or did not come from this dashboard; reload the page and try again."}
		}
		return h(w, r, s)
	}
}

func same(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// session returns the live session the request's cookie names.
func (d *Dashboard) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.byID[c.Value]
	if s == nil {
		return nil
	}
	if d.now().After(s.Expires) {
		delete(d.byID, s.ID)
		return nil
	}
	return s
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.renderLogin(w, r, http.StatusOK, "")
}

func (d *Dashboard) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	token := randomToken()
	setCookie(w, r, csrfCookie, token, 3600)
	d.render(w, code, "login", map[string]any{"CSRF": token, "Error": msg, "Domain": d.o.Domain,
		"Username": r.PostFormValue("username"), "Project": r.PostFormValue("project")})
}

func (d *Dashboard) loginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		d.renderLogin(w, r, http.StatusBadRequest, "The login form could not be read.")
		return
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || !same(r.PostForm.Get("csrf"), c.Value) {
		d.renderLogin(w, r, http.StatusForbidden, "The login form has expired; please try again.")
		return
	}
	domain := r.PostForm.Get("domain")
	if domain == "" {
		domain = d.o.Domain
	}
	project := r.PostForm.Get("project")
	if project == "" {
		project = r.PostForm.Get("username")
	}
	l, err := d.authenticate(r.Context(), r.PostForm.Get("username"), r.PostForm.Get("password"), project, domain)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound) {
			d.renderLogin(w, r, http.StatusUnauthorized, "The user name, password or project is not right.")
			return
		}
		d.o.Logger.Warn("dashboard login", "err", err)
		d.renderLogin(w, r, http.StatusBadGateway, "The identity service could not be reached: "+err.Error())
		return
	}
	s := &session{ID: randomToken(), CSRF: randomToken(), Token: l.Token, UserName: l.UserName, ProjectID: l.ProjectID,
		Project: l.ProjectName, Admin: l.admin(), Expires: d.now().Add(d.o.SessionTTL)}
	if !l.Expires.IsZero() && l.Expires.Before(s.Expires) {
		s.Expires = l.Expires
	}
	d.mu.Lock()
	for id, old := range d.byID { // sweep expired sessions now and then
		if d.now().After(old.Expires) {
			delete(d.byID, id)
		}
	}
	d.byID[s.ID] = s
	d.mu.Unlock()
	setCookie(w, r, csrfCookie, "", -1)
	setCookie(w, r, sessionCookie, s.ID, int(time.Until(s.Expires).Seconds()))
	next := "/transfers"
	if s.Admin {
		next = "/stores"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !same(r.PostForm.Get("csrf"), s.CSRF) {
		return &pageError{http.StatusForbidden, "The form has expired; reload the page and try again."}
	}
	d.mu.Lock()
	delete(d.byID, s.ID)
	d.mu.Unlock()
	d.revoke(r.Context(), s.Token)
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// render executes the named page; a template error is a 500.
func (d *Dashboard) render(w http.ResponseWriter, code int, name string, data map[string]any) {
	nonce := randomToken()
	data["Nonce"] = nonce
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'nonce-"+nonce+"'; style-src 'unsafe-inline'; "+
		"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := d.tmpl.ExecuteTemplate(w, name, data); err != nil {
		d.o.Logger.Error("dashboard template", "page", name, "err", err)
	}
}

// page renders a logged-in page with the common data; it returns nil, for
// handlers to end with.
func (d *Dashboard) page(w http.ResponseWriter, s *session, name string, data map[string]any) error {
	data["S"] = s
	data["Page"] = name
	d.render(w, http.StatusOK, name, data)
	return nil
}

// fail renders an error page with code.
func (d *Dashboard) fail(w http.ResponseWriter, s *session, code int, msg string) {
	d.render(w, code, "error", map[string]any{"S": s, "Page": "error", "Code": code, "Message": msg})
}

// apiFail renders an API error (its status and message) as the page.
func (d *Dashboard) apiFail(w http.ResponseWriter, s *session, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		code := ae.Status
		if code < 400 {
			code = http.StatusBadGateway
		}
		d.fail(w, s, code, ae.Message)
		return
	}
	d.o.Logger.Warn("dashboard API call", "err", err)
	d.fail(w, s, http.StatusBadGateway, "An API call failed: "+err.Error())
}
