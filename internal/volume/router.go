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

// routes registers only the /v3/{project_id}/... forms; project-less paths
// (microversion 3.67) are rewritten by the middleware, because ServeMux
// cannot hold both shapes (see go-libraries.md).
func (s *Service) routes() {
	m := s.mux
	m.HandleFunc("GET /{$}", s.versions)
	m.HandleFunc("GET /v3/{$}", s.versionV3)
	m.HandleFunc("GET /v3", s.versionV3)
	p := "/v3/{project_id}"

	m.HandleFunc("GET "+p+"/types", s.listTypes)
	m.HandleFunc("POST "+p+"/types", s.createType)
	m.HandleFunc("GET "+p+"/types/{type_id}", s.showType)
	m.HandleFunc("PUT "+p+"/types/{type_id}", s.updateType)
	m.HandleFunc("DELETE "+p+"/types/{type_id}", s.deleteType)
	m.HandleFunc("POST "+p+"/types/{type_id}/action", s.typeAction)
	m.HandleFunc("GET "+p+"/types/{type_id}/os-volume-type-access", s.listTypeAccess)
	m.HandleFunc("GET "+p+"/types/{type_id}/extra_specs", s.listExtraSpecs)
	m.HandleFunc("POST "+p+"/types/{type_id}/extra_specs", s.createExtraSpecs)
	m.HandleFunc("GET "+p+"/types/{type_id}/extra_specs/{key}", s.showExtraSpec)
	m.HandleFunc("PUT "+p+"/types/{type_id}/extra_specs/{key}", s.updateExtraSpec)
	m.HandleFunc("DELETE "+p+"/types/{type_id}/extra_specs/{key}", s.deleteExtraSpec)

	m.HandleFunc("GET "+p+"/volumes", s.listVolumes)
	m.HandleFunc("GET "+p+"/volumes/detail", s.listVolumesDetail)
	m.HandleFunc("GET "+p+"/volumes/summary", s.volumeSummary)
	m.HandleFunc("POST "+p+"/volumes", s.createVolume)
	m.HandleFunc("GET "+p+"/volumes/{volume_id}", s.showVolume)
	m.HandleFunc("PUT "+p+"/volumes/{volume_id}", s.updateVolume)
	m.HandleFunc("DELETE "+p+"/volumes/{volume_id}", s.deleteVolume)
	m.HandleFunc("POST "+p+"/volumes/{volume_id}/action", s.volumeAction)
	m.HandleFunc("GET "+p+"/volumes/{volume_id}/metadata", s.showMetadata)
	m.HandleFunc("POST "+p+"/volumes/{volume_id}/metadata", s.createMetadata)
	m.HandleFunc("PUT "+p+"/volumes/{volume_id}/metadata", s.replaceMetadata)
	m.HandleFunc("GET "+p+"/volumes/{volume_id}/metadata/{key}", s.showMetadataItem)
	m.HandleFunc("PUT "+p+"/volumes/{volume_id}/metadata/{key}", s.updateMetadataItem)
	m.HandleFunc("DELETE "+p+"/volumes/{volume_id}/metadata/{key}", s.deleteMetadataItem)

	m.HandleFunc("GET "+p+"/os-availability-zone", s.listAZs)
	m.HandleFunc("GET "+p+"/messages", s.listMessages)
	m.HandleFunc("GET "+p+"/messages/{message_id}", s.showMessage)
	m.HandleFunc("DELETE "+p+"/messages/{message_id}", s.deleteMessage)
	m.HandleFunc("GET "+p+"/extensions", s.listExtensions)
	m.HandleFunc("GET "+p+"/scheduler-stats/get_pools", s.getPools)

	// Anything else under /v3 is Cinder's 404.
	m.HandleFunc("/v3/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, r, api.Cinder, errs.E(errs.NotFound, "The resource could not be found."))
	})
}

// projectRE is Cinder's project_id_regex.
var projectRE = regexp.MustCompile(`^[0-9a-fA-F\-]+$`)

// collections are the first path segments after /v3/ that name a resource
// rather than a project: paths starting with them are project-less.
var collections = map[string]bool{
	"types": true, "volumes": true, "os-availability-zone": true, "messages": true,
	"extensions": true, "limits": true, "snapshots": true, "backups": true,
	"os-quota-sets": true, "scheduler-stats": true, "os-services": true,
	"attachments": true, "groups": true, "group_types": true, "qos-specs": true,
}

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
	fail := func(w http.ResponseWriter, r *http.Request, err error) { api.WriteError(w, r, api.Cinder, err) }
	authed := auth.Require(s.deps.Validator, isPublic, fail)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := auth.FromContext(r.Context()); c != nil && strings.HasPrefix(r.URL.Path, "/v3/") {
			rest := strings.TrimPrefix(r.URL.Path, "/v3/")
			first, _, _ := strings.Cut(rest, "/")
			switch {
			case collections[first]:
				r = rewritePath(r, "/v3/"+c.ProjectID+"/"+rest)
			case first != "" && !projectRE.MatchString(first):
				fail(w, r, errs.E(errs.NotFound, "The resource could not be found."))
				return
			case first != "" && first != c.ProjectID:
				fail(w, r, errs.E(errs.Invalid, "Malformed request url"))
				return
			}
		}
		next.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Compute-Request-Id", h.Get(api.HeaderRequestID))
		if r.URL.Path == "/" {
			authed.ServeHTTP(w, r)
			return
		}
		v, err := parseVersion(r)
		if err != nil {
			if errs.KindOf(err) == errs.NotAcceptable {
				// Cinder renders the microversion refusal as a computeFault.
				api.WriteJSON(w, http.StatusNotAcceptable, map[string]any{"computeFault": map[string]any{
					"code": http.StatusNotAcceptable, "message": errs.Message(err)}})
				return
			}
			fail(w, r, err)
			return
		}
		h.Set("OpenStack-API-Version", "volume "+v.String())
		h.Add("Vary", "OpenStack-API-Version")
		authed.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyVersion, v)))
	})
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

// fail renders err as a Cinder error body.
func fail(w http.ResponseWriter, r *http.Request, err error) { api.WriteError(w, r, api.Cinder, err) }

// publicURL is the URL prefix of links for the request's project.
func (s *Service) linkBase(r *http.Request) string {
	return strings.TrimRight(s.deps.Config.Volume.PublicURL, "/") + "/v3/" + r.PathValue("project_id")
}
