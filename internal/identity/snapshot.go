package identity

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ashlar-dev/ashlar/internal/auth"
)

// The identity data set (domains, projects, users, roles, assignments,
// catalog, revocations, token keys) is small, so every process keeps all
// of it in memory as an immutable snapshot: token validation never touches
// the database. Writes go to the database, bump a generation stamp in the
// same transaction and reload; other processes sharing the database notice
// the new generation when they poll (every PollInterval), before every
// request to the identity API (which so reads its own writes made on any
// node), and before refusing a token their snapshot cannot vouch for (a
// user, project, grant or key newer than the snapshot). What a stale
// snapshot can still accept for up to PollInterval: a token revoked, or of
// a user disabled or a grant removed, on another node.

// common is what every admin entity has: its id and, as in Keystone, its
// "extra": the attributes Keystone has no column for (a user's email, an
// endpoint's name, anything a client sends), kept and returned as given.
type common struct {
	ID    string
	Extra map[string]any
}

func (c *common) base() *common { return c }

// entity is an admin API resource, for the generic handlers in crud.go.
type entity interface{ base() *common }

type domain struct {
	common
	Name, Description string
	Enabled           bool
}

type project struct {
	common
	Name, DomainID, Description string
	Enabled                     bool
}

type user struct {
	common
	Name, DomainID, PasswordHash string
	Enabled                      bool
	DefaultProj                  string
	ValidAfter                   time.Time
	// Options are the Keystone user options set (userOptions names them).
	Options map[string]any
}

type role struct {
	common
	Name, Description string
}

type assignment struct{ UserID, ProjectID, RoleID string }

type catalogService struct {
	common
	Type, Name string
	Enabled    bool
}

type endpoint struct {
	common
	ServiceID, Interface, Region, URL string
	Enabled                           bool
}

type snapshot struct {
	gen          string
	domains      map[string]*domain
	domainByName map[string]*domain
	projects     map[string]*project
	projByName   map[[2]string]*project // domain id, name
	users        map[string]*user
	userByName   map[[2]string]*user
	roles        map[string]*role
	roleByName   map[string]*role
	assignments  []assignment // sorted by user, project, role
	direct       map[[2]string][]string
	services     []*catalogService // sorted by type, name
	serviceByID  map[string]*catalogService
	endpoints    []*endpoint // sorted by service, interface
	endpointByID map[string]*endpoint
	revoked      map[[auditSize]byte]bool
	// keys sign and verify tokens (keys.go).
	keys keyring

	// callers caches the per (user, project) part of a Caller; filled
	// lazily by Validate and dropped with the snapshot.
	callersMu sync.RWMutex
	callers   map[[2]string]*callerBase
}

// legacyExtras adds the values of columns that were attributes before
// migration 01001 (a user's email and description, a service's
// description) to extra, where they live now; the row's next write moves
// them for good.
func legacyExtras(extra map[string]any, columns map[string]string) {
	for k, v := range columns {
		if _, ok := extra[k]; !ok && v != "" {
			extra[k] = v
		}
	}
}

// implied lists the roles a role name implies, Keystone's defaults:
// admin implies member, member implies reader.
func implied(name string) []string {
	switch name {
	case auth.RoleAdmin:
		return []string{auth.RoleMember, auth.RoleReader}
	case auth.RoleMember:
		return []string{auth.RoleReader}
	}
	return nil
}

// effectiveRoles returns the roles userID has on projectID, directly or by
// implication, sorted by name.
func (s *snapshot) effectiveRoles(userID, projectID string) []*role {
	ids := s.direct[[2]string{userID, projectID}]
	if len(ids) == 0 {
		return nil
	}
	seen := map[string]*role{}
	for _, id := range ids {
		r := s.roles[id]
		if r == nil {
			continue
		}
		seen[r.Name] = r
		for _, n := range implied(r.Name) {
			if ir := s.roleByName[n]; ir != nil {
				seen[n] = ir
			}
		}
	}
	out := make([]*role, 0, len(seen))
	for _, r := range seen {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *role) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// userProjects lists the enabled projects on which userID has a role.
func (s *snapshot) userProjects(userID string) []*project {
	var out []*project
	seen := map[string]bool{}
	for _, a := range s.assignments {
		if a.UserID != userID || seen[a.ProjectID] {
			continue
		}
		seen[a.ProjectID] = true
		if p := s.projects[a.ProjectID]; p != nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *project) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// walkCatalog calls fn for each enabled service of the catalog of a
// project, with its enabled endpoints and their URLs, project templates
// substituted. Endpoints whose URL needs a project are left out of
// unscoped catalogs, as Keystone does.
func (s *snapshot) walkCatalog(projectID string, fn func(svc *catalogService, eps []*endpoint, urls []string)) {
	for _, svc := range s.services {
		if !svc.Enabled {
			continue
		}
		var eps []*endpoint
		var urls []string
		for _, ep := range s.endpoints {
			if ep.ServiceID != svc.ID || !ep.Enabled {
				continue
			}
			if u, ok := substitute(ep.URL, projectID); ok {
				eps, urls = append(eps, ep), append(urls, u)
			}
		}
		fn(svc, eps, urls)
	}
}

// catalog is the catalog of a project as callers of the other services
// see it.
func (s *snapshot) catalog(projectID string) []auth.CatalogEntry {
	var out []auth.CatalogEntry
	s.walkCatalog(projectID, func(svc *catalogService, eps []*endpoint, urls []string) {
		e := auth.CatalogEntry{Type: svc.Type, Name: svc.Name}
		for i, ep := range eps {
			e.Endpoints = append(e.Endpoints, auth.Endpoint{Interface: ep.Interface, Region: ep.Region, URL: urls[i]})
		}
		out = append(out, e)
	})
	return out
}

var projectTemplates = []string{"%(project_id)s", "$(project_id)s", "%(tenant_id)s", "$(tenant_id)s"}

func substitute(url, projectID string) (string, bool) {
	for _, t := range projectTemplates {
		if strings.Contains(url, t) {
			if projectID == "" {
				return "", false
			}
			url = strings.ReplaceAll(url, t, projectID)
		}
	}
	return url, true
}
