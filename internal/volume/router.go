package volume

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// handler is the shape of every volume API handler: it writes its response
// and returns the error to answer instead, which ServeHTTP renders as
// Cinder's error body. Nothing else in the service writes error bodies.
type handler func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP implements http.Handler.
func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		writeError(w, r, err)
	}
}

// lister is the handler of a collection's list (detail false) or of its
// /detail list: one function serves both.
func lister(list func(w http.ResponseWriter, r *http.Request, detail bool) error, detail bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error { return list(w, r, detail) }
}

// writeError renders err as a Cinder error body; a refusal for quota
// carries Cinder's Retry-After header and retryAfter.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if isQuotaError(err) {
		w.Header().Set("Retry-After", "0")
		api.WriteJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"overLimit": map[string]any{
			"code": http.StatusRequestEntityTooLarge, "message": errs.Message(err), "retryAfter": "0"}})
		return
	}
	api.WriteError(w, r, api.Cinder, err)
}

// reply writes v as the JSON response body with status code.
func reply(w http.ResponseWriter, code int, v any) error {
	api.WriteJSON(w, code, v)
	return nil
}

// replyEmpty answers status code without a body.
func replyEmpty(w http.ResponseWriter, code int) error {
	w.WriteHeader(code)
	return nil
}

// routes registers only the /v3/{project_id}/... forms; project-less paths
// (microversion 3.67) are rewritten by the middleware, because ServeMux
// cannot hold both shapes (see go-libraries.md).
func (s *Service) routes() {
	m := s.mux
	m.Handle("GET /{$}", handler(s.versions))
	m.Handle("GET /v3/{$}", handler(s.versionV3))
	m.Handle("GET /v3", handler(s.versionV3))
	p := "/v3/{project_id}"

	m.Handle("GET "+p+"/types", handler(s.listTypes))
	m.Handle("POST "+p+"/types", handler(s.createType))
	m.Handle("GET "+p+"/types/{type_id}", handler(s.showType))
	m.Handle("PUT "+p+"/types/{type_id}", handler(s.updateType))
	m.Handle("DELETE "+p+"/types/{type_id}", handler(s.deleteType))
	m.Handle("POST "+p+"/types/{type_id}/action", handler(s.typeAction))
	m.Handle("GET "+p+"/types/{type_id}/os-volume-type-access", handler(s.listTypeAccess))
	m.Handle("GET "+p+"/types/{type_id}/extra_specs", handler(s.listExtraSpecs))
	m.Handle("POST "+p+"/types/{type_id}/extra_specs", handler(s.createExtraSpecs))
	m.Handle("GET "+p+"/types/{type_id}/extra_specs/{key}", handler(s.showExtraSpec))
	m.Handle("PUT "+p+"/types/{type_id}/extra_specs/{key}", handler(s.updateExtraSpec))
	m.Handle("DELETE "+p+"/types/{type_id}/extra_specs/{key}", handler(s.deleteExtraSpec))

	m.Handle("GET "+p+"/volumes", lister(s.list, false))
	m.Handle("GET "+p+"/volumes/detail", lister(s.list, true))
	m.Handle("GET "+p+"/volumes/summary", handler(s.volumeSummary))
	m.Handle("POST "+p+"/volumes", handler(s.createVolume))
	m.Handle("GET "+p+"/volumes/{volume_id}", handler(s.showVolume))
	m.Handle("GET "+p+"/volumes/{volume_id}/progress", handler(s.showVolumeProgress))
	m.Handle("PUT "+p+"/volumes/{volume_id}", handler(s.updateVolume))
	m.Handle("DELETE "+p+"/volumes/{volume_id}", handler(s.deleteVolume))
	m.Handle("POST "+p+"/volumes/{volume_id}/action", handler(s.volumeAction))
	s.volumeMetadata().routes(m, p+"/volumes/{volume_id}")
	s.snapshotRoutes(m, p)
	s.quotaRoutes(m, p)
	s.attachmentRoutes(m, p)
	s.backupRoutes(m, p)

	m.Handle("GET "+p+"/os-availability-zone", handler(s.listAZs))
	m.Handle("GET "+p+"/messages", handler(s.listMessages))
	m.Handle("GET "+p+"/messages/{message_id}", handler(s.showMessage))
	m.Handle("DELETE "+p+"/messages/{message_id}", handler(s.deleteMessage))
	m.Handle("GET "+p+"/extensions", handler(s.listExtensions))
	m.Handle("GET "+p+"/scheduler-stats/get_pools", handler(s.getPools))

	m.Handle("GET "+p+"/types/{type_id}/encryption", handler(s.showEncryption))
	m.Handle("POST "+p+"/types/{type_id}/encryption", handler(s.createEncryption))
	m.Handle("GET "+p+"/types/{type_id}/encryption/{key}", handler(s.showEncryptionItem))
	m.Handle("PUT "+p+"/types/{type_id}/encryption/{key}", handler(s.updateEncryption))
	m.Handle("DELETE "+p+"/types/{type_id}/encryption/{key}", handler(s.deleteEncryption))
	m.Handle("GET "+p+"/volumes/{volume_id}/encryption", handler(s.showVolumeEncryption))
	m.Handle("GET "+p+"/volumes/{volume_id}/encryption/{key}", handler(s.showVolumeEncryptionItem))
	for _, c := range []string{"os-volume-transfer", transferPathV3} {
		m.Handle("GET "+p+"/"+c, lister(s.transferList, false))
		m.Handle("POST "+p+"/"+c, handler(s.createTransfer))
		m.Handle("GET "+p+"/"+c+"/detail", lister(s.transferList, true))
		m.Handle("GET "+p+"/"+c+"/{transfer_id}", handler(s.showTransfer))
		m.Handle("DELETE "+p+"/"+c+"/{transfer_id}", handler(s.deleteTransfer))
		m.Handle("POST "+p+"/"+c+"/{transfer_id}/accept", handler(s.acceptTransfer))
	}
	m.Handle("GET "+p+"/os-services", handler(s.listServices))
	m.Handle("PUT "+p+"/os-services/{action}", handler(s.updateService))
	m.Handle("GET "+p+"/os-hosts", handler(s.listHosts))
	m.Handle("GET "+p+"/os-hosts/{host}", handler(s.showHost))
	m.Handle("GET "+p+"/capabilities/{host}", handler(s.showCapabilities))

	// Anything else under /v3 is Cinder's 404.
	m.Handle("/v3/", handler(func(w http.ResponseWriter, r *http.Request) error {
		return errResourceNotFound
	}))
}

// errResourceNotFound is Cinder's answer for a path it does not route.
var errResourceNotFound = errs.E(errs.NotFound, "The resource could not be found.")

// projectRE is Cinder's project_id_regex.
var projectRE = regexp.MustCompile(`^[0-9a-fA-F\-]+$`)

// collections are the first path segments after /v3/ that name a resource
// rather than a project: paths starting with them are project-less.
var collections = map[string]bool{
	"types": true, "volumes": true, "os-availability-zone": true, "messages": true,
	"extensions": true, "limits": true, "snapshots": true, "backups": true,
	"os-quota-sets": true, "os-quota-class-sets": true, "scheduler-stats": true, "os-services": true,
	"attachments": true, "groups": true, "group_types": true, "qos-specs": true,
	"os-volume-transfer": true, "volume-transfers": true, "os-hosts": true, "capabilities": true,
}

// noProject stands for the project of a project-less path requested with
// an unscoped token, which has none. The middleware never lets it in from
// a client (it is not the caller's project), so it only marks that case;
// links then carry no project, as in Cinder.
const noProject = "-"

type ctxKey int

const keyVersion ctxKey = iota

// microversion is a negotiated 3.x version; only the minor number varies.
type microversion int

// versionOf returns the request's negotiated microversion (minor part).
func versionOf(r *http.Request) microversion {
	v, _ := r.Context().Value(keyVersion).(microversion)
	return v
}

func (v microversion) String() string { return "3." + strconv.Itoa(int(v)) }

const maxMinor = 70

// parseVersion negotiates the OpenStack-API-Version header. A header not
// naming the volume service means 3.0, as in Cinder.
func parseVersion(r *http.Request) (microversion, error) {
	var val string
	for _, h := range r.Header.Values("OpenStack-API-Version") {
		for _, part := range strings.Split(h, ",") {
			f := strings.Fields(part)
			if len(f) >= 1 && strings.EqualFold(f[0], "volume") {
				if len(f) != 2 {
					return 0, errs.E(errs.Invalid, "Invalid API version header %q.", strings.TrimSpace(part))
				}
				val = f[1]
			}
		}
	}
	if val == "" {
		return 0, nil
	}
	if strings.EqualFold(val, "latest") {
		return maxMinor, nil
	}
	major, minor, ok := strings.Cut(val, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if !ok || err1 != nil || err2 != nil || ma < 0 || mi < 0 {
		return 0, errs.E(errs.Invalid, "API Version String %s is of invalid format. Must be of format MajorNum.MinorNum.", val)
	}
	if ma != 3 || mi > maxMinor {
		return 0, errs.E(errs.NotAcceptable, "Version %s is not supported by the API. Minimum is %s and maximum is %s.", val, MinVersion, MaxVersion)
	}
	return microversion(mi), nil
}

func isPublic(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/" || r.URL.Path == "/v3/" || r.URL.Path == "/v3")
}

// middleware: microversion negotiation, authentication, and the rewrite of
// project-less paths to the caller's project.
func (s *Service) middleware(next http.Handler) http.Handler {
	authed := auth.Require(s.deps.Validator, isPublic, writeError)(handler(func(w http.ResponseWriter, r *http.Request) error {
		r, err := projectPath(r)
		if err != nil {
			return err
		}
		next.ServeHTTP(w, r)
		return nil
	}))
	return handler(func(w http.ResponseWriter, r *http.Request) error {
		h := w.Header()
		h.Set("X-Compute-Request-Id", h.Get(api.HeaderRequestID))
		if r.URL.Path == "/" {
			authed.ServeHTTP(w, r)
			return nil
		}
		v, err := parseVersion(r)
		if errs.KindOf(err) == errs.NotAcceptable {
			// Cinder renders the microversion refusal as a computeFault.
			return reply(w, http.StatusNotAcceptable, map[string]any{"computeFault": map[string]any{
				"code": http.StatusNotAcceptable, "message": errs.Message(err)}})
		}
		if err != nil {
			return err
		}
		h.Set("OpenStack-API-Version", "volume "+v.String())
		h.Add("Vary", "OpenStack-API-Version")
		authed.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyVersion, v)))
		return nil
	})
}

// projectPath puts the caller's project into a project-less path and
// refuses a path naming a project that is not the caller's (Cinder's
// "Malformed request url"; a segment that cannot be a project is 404).
func projectPath(r *http.Request) (*http.Request, error) {
	c := auth.FromContext(r.Context())
	rest, ok := strings.CutPrefix(r.URL.Path, "/v3/")
	if c == nil || !ok {
		return r, nil
	}
	first, _, _ := strings.Cut(rest, "/")
	switch {
	case collections[first]:
		project := c.ProjectID
		if project == "" {
			// An unscoped token: the handler runs without a project and
			// its policy check refuses the caller, as Cinder's does. An
			// empty segment would make ServeMux redirect to the
			// project-less path, which comes back here: a loop.
			project = noProject
		}
		return rewritePath(r, "/v3/"+project+"/"+rest), nil
	case first != "" && !projectRE.MatchString(first):
		return nil, errResourceNotFound
	case first != "" && first != c.ProjectID:
		return nil, errs.E(errs.Invalid, "Malformed request url")
	}
	return r, nil
}

func rewritePath(r *http.Request, path string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL.Path = path
	r2.URL.RawPath = ""
	r2.RequestURI = r2.URL.RequestURI()
	return r2
}

// caller returns the request's authenticated caller (never nil behind Require).
func caller(r *http.Request) *auth.Caller { return auth.FromContext(r.Context()) }

// linkBase is the URL prefix of links for the request's project: the
// public URL's /v3, then the project unless the request has none.
func (s *Service) linkBase(r *http.Request) string {
	return s.urlFor(r, "/v3")
}

// bookmarkBase is linkBase without the API version, for bookmark links.
func (s *Service) bookmarkBase(r *http.Request) string {
	return s.urlFor(r, "")
}

func (s *Service) urlFor(r *http.Request, version string) string {
	base := strings.TrimRight(s.deps.Config.Volume.PublicURL, "/") + version
	if p := r.PathValue("project_id"); p != noProject {
		base += "/" + p
	}
	return base
}
