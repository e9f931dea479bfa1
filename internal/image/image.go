// Package image serves the Glance v2 API with multiple image stores.
package image

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/policy"
	"github.com/ashlar-dev/ashlar/internal/service"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// Service is the image API.
type Service struct {
	deps    service.Deps
	cfg     *config.Config
	stores  *store.Set
	mux     *api.Mux
	handler http.Handler
	// fetch is the HTTP client of web-download: redirects and connections
	// are checked against the import filter (see newFetchClient).
	fetch *http.Client
	// StallTimeout abandons an upload, or a web-download whose source
	// sends nothing, for this long (DefaultStallTimeout; <= 0 disables).
	StallTimeout time.Duration

	// tasks runs the service's durable work; ownTasks when the service
	// made it itself (no shared runner in Deps) and runs it.
	tasks    *tasks.Runner
	ownTasks bool
	// health is the stores' last check (health.go).
	health healthBook
}

// New builds the image service on the stores the configuration names,
// opened with factories (store type -> driver factory).
func New(ctx context.Context, deps service.Deps, factories map[string]store.Factory) (*Service, error) {
	set, err := store.NewSet(ctx, deps.Config, factories, deps.Registry)
	if err != nil {
		return nil, err
	}
	return NewWithStores(ctx, deps, set)
}

// NewWithStores builds the image service on an already opened store set.
// Its durable work (uploads, deletes, imports) runs on deps.Tasks, whose
// runner also recovers what a dead node left behind; without one the
// service makes and runs its own.
func NewWithStores(ctx context.Context, deps service.Deps, set *store.Set) (*Service, error) {
	s := &Service{deps: deps, cfg: deps.Config, stores: set, mux: api.NewMux(), StallTimeout: DefaultStallTimeout,
		tasks: deps.Tasks}
	if s.tasks == nil {
		s.tasks, s.ownTasks = tasks.New(deps.DB, tasks.Options{Lease: deps.Config.Default.TaskLease,
			Exclusive: !deps.DB.Postgres(), Logger: deps.Logger, Address: deps.Config.Default.SelfURL}), true
	}
	s.registerWork(s.tasks)
	s.fetch = s.newFetchClient()
	s.routes()
	s.handler = auth.Require(deps.Validator, public, func(w http.ResponseWriter, r *http.Request, err error) {
		api.WriteError(w, r, api.Glance, err)
	})(s.mux)
	return s, nil
}

// public: version documents need no token.
func public(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/" || r.URL.Path == "/versions")
}

// handlerFunc is an image API handler: it parses, authorizes, acts and
// renders, and returns the error that stopped it, which handle renders.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers h; its error becomes Glance's error body. This is the
// one place image handlers' errors are rendered.
func (s *Service) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			api.WriteError(w, r, api.Glance, err)
		}
	})
}

// closeOnError ends the connection when a data handler fails: the client
// may still be sending a body nobody will read.
func closeOnError(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		if err != nil {
			w.Header().Set("Connection", "close")
		}
		return err
	}
}

func (s *Service) routes() {
	h := s.handle
	h("GET /{$}", s.versions)
	h("GET /versions", s.versions)
	h("GET /v2/schemas/image", schema("image"))
	h("GET /v2/schemas/images", schema("images"))
	h("GET /v2/schemas/member", schema("member"))
	h("GET /v2/schemas/members", schema("members"))
	h("GET /v2/schemas/task", schema("task"))
	h("GET /v2/schemas/tasks", schema("tasks"))
	h("GET /v2/info/stores", s.storesInfo)
	h("GET /v2/info/stores/detail", s.storesDetail)
	h("GET /v2/info/import", s.importInfo)
	h("GET /v2/info/usage", s.usageInfo)
	h("POST /v2/images", s.create)
	h("GET /v2/images", s.list)
	h("GET /v2/images/{id}", s.show)
	h("PATCH /v2/images/{id}", s.update)
	h("DELETE /v2/images/{id}", s.delete)
	h("POST /v2/images/{id}/actions/deactivate", s.deactivate)
	h("POST /v2/images/{id}/actions/reactivate", s.reactivate)
	h("PUT /v2/images/{id}/tags/{tag}", s.addTag)
	h("DELETE /v2/images/{id}/tags/{tag}", s.deleteTag)
	h("GET /v2/images/{id}/members", s.listMembers)
	h("POST /v2/images/{id}/members", s.addMember)
	h("GET /v2/images/{id}/members/{member}", s.showMember)
	h("PUT /v2/images/{id}/members/{member}", s.updateMember)
	h("DELETE /v2/images/{id}/members/{member}", s.deleteMember)
	h("PUT /v2/images/{id}/file", closeOnError(s.upload))
	h("GET /v2/images/{id}/file", s.download)
	h("HEAD /v2/images/{id}/file", fileNotAllowed)
	h("/v2/images/{id}/file", fileNotAllowed)
	h("PUT /v2/images/{id}/stage", closeOnError(s.stage))
	h("POST /v2/images/{id}/import", s.importImage)
	h("GET /v2/images/{id}/tasks", s.imageTasks)
	h("GET /v2/tasks/{id}", s.showTask)
	h("DELETE /v2/stores/{store}/{id}", s.deleteFromStore)
}

// fileNotAllowed answers the methods the image data URL does not serve.
func fileNotAllowed(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Allow", "GET, PUT")
	return errs.E(errs.NotAllowed, "The method %s is not allowed for this resource.", r.Method)
}

// Name implements service.Service.
func (s *Service) Name() string { return config.ServiceImage }

// Handler implements service.Service.
func (s *Service) Handler() http.Handler { return s.handler }

// Run implements service.Runner: the service's work runs on the shared
// task runner (a runner of its own, when Deps had none, runs here), and a
// node-local staging directory is swept, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	go s.runStoreChecks(ctx)
	if !s.ownTasks {
		s.runStagingSweeps(ctx)
		return nil
	}
	go s.runStagingSweeps(ctx)
	return s.tasks.Run(ctx)
}

// versionIDs are the Glance API versions served, newest first.
var versionIDs = []string{"v2.16", "v2.15", "v2.14", "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8",
	"v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"}

func (s *Service) versions(w http.ResponseWriter, r *http.Request) error {
	vs := make([]object, 0, len(versionIDs))
	for i, id := range versionIDs {
		status := "SUPPORTED"
		if i == 0 {
			status = "CURRENT"
		}
		vs = append(vs, object{{"id", id}, {"status", status},
			{"links", []object{{{"rel", "self"}, {"href", strings.TrimSuffix(s.cfg.Image.PublicURL, "/") + "/v2/"}}}}})
	}
	code := http.StatusMultipleChoices
	if r.URL.Path == "/versions" {
		code = http.StatusOK
	}
	api.WriteJSON(w, code, map[string]any{"versions": vs})
	return nil
}

// rules is the image policy table, after Glance's defaults: readers read,
// members of the owning project write, admins do anything. Visibility
// (another project's private image is a 404) is checked before policy.
var rules = policy.Table{
	"add_image":             policy.Member,
	"get_image":             policy.Reader,
	"get_images":            policy.Reader,
	"modify_image":          policy.Member,
	"publicize_image":       policy.Admin,
	"communitize_image":     policy.Member,
	"delete_image":          policy.Member,
	"upload_image":          policy.Member,
	"download_image":        policy.Reader,
	"deactivate":            policy.Member,
	"reactivate":            policy.Member,
	"add_member":            policy.Member,
	"get_members":           policy.Reader,
	"modify_member":         policy.Member,
	"delete_member":         policy.Member,
	"add_image_tag":         policy.Member,
	"delete_image_tag":      policy.Member,
	"stores_info_detail":    policy.Admin,
	"copy_image":            policy.Admin,
	"import_image":          policy.Member,
	"delete_image_location": policy.Member,
	"get_tasks":             policy.Reader,
	// Glance's default: admin, or a reader of the owning project. Members
	// of a shared image and viewers of a public one do not see where its
	// data lives (and only when show_multiple_locations /
	// show_image_direct_url are on at all).
	"get_image_location": policy.Reader,
}

func caller(r *http.Request) *auth.Caller { return auth.FromContext(r.Context()) }

// enforce checks action against the image's owner, or the caller's own
// project when im is nil.
func enforce(c *auth.Caller, action string, im *Image) error {
	t := policy.Target{}
	if im != nil {
		t.ProjectID = im.Owner
	}
	if err := rules.Enforce(c, action, t); err != nil {
		return &errs.Error{Kind: errs.Forbidden, Msg: "You are not authorized to complete " + action + " action."}
	}
	return nil
}

// readable is the "read" policy for a visible image: any reader role.
func readable(c *auth.Caller, action string) error {
	return enforce(c, action, nil)
}

// writeEmpty writes a bodiless success response the way Glance does.
func writeEmpty(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}
