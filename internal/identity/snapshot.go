package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
)

// The identity data set (domains, projects, users, roles, assignments,
// catalog, revocations) is small, so every process keeps all of it in
// memory as an immutable snapshot: token validation and reads never touch
// the database. Writes go to the database, bump a generation stamp in the
// same transaction and reload; other processes sharing the database notice
// the new generation when they poll.

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

	// callers caches the per (user, project) part of a Caller; filled
	// lazily by Validate and dropped with the snapshot.
	callersMu sync.RWMutex
	callers   map[[2]string]*callerBase
}

const genKey = "identity_generation"

// loadSnapshot reads the whole identity data set.
func loadSnapshot(ctx context.Context, d *db.DB) (*snapshot, error) {
	// every table from one moment: a user is never loaded without the
	// role assignment committed with it
	return db.Snapshot(ctx, d, func(q db.Querier) (*snapshot, error) { return readSnapshot(ctx, q) })
}

// readSnapshot reads every identity table through d.
func readSnapshot(ctx context.Context, d db.Querier) (*snapshot, error) {
	s := &snapshot{
		domains: map[string]*domain{}, domainByName: map[string]*domain{},
		projects: map[string]*project{}, projByName: map[[2]string]*project{},
		users: map[string]*user{}, userByName: map[[2]string]*user{},
		roles: map[string]*role{}, roleByName: map[string]*role{},
		serviceByID: map[string]*catalogService{}, endpointByID: map[string]*endpoint{},
		direct: map[[2]string][]string{}, callers: map[[2]string]*callerBase{}, revoked: map[[auditSize]byte]bool{},
	}
	// The generation is read first: were the tables not read in one
	// snapshot, a write racing with this load would leave the snapshot
	// stamped older than its content, and the next poll would reload.
	if err := d.QueryRowContext(ctx, "SELECT value FROM ashlar_meta WHERE name = ?", genKey).Scan(&s.gen); err != nil && !db.IsNoRows(err) {
		return nil, fmt.Errorf("reading identity generation: %w", err)
	}
	type loader struct {
		q    string
		scan func(func(...any) error) error
	}
	loaders := []loader{
		{"SELECT id, name, description, enabled FROM identity_domains", func(scan func(...any) error) error {
			x := &domain{}
			if err := scan(&x.ID, &x.Name, &x.Description, &x.Enabled); err != nil {
				return err
			}
			s.domains[x.ID], s.domainByName[x.Name] = x, x
			return nil
		}},
		{"SELECT id, name, domain_id, description, enabled, extra FROM identity_projects", func(scan func(...any) error) error {
			x := &project{}
			if err := scan(&x.ID, &x.Name, &x.DomainID, &x.Description, &x.Enabled, jsonColumn{&x.Extra}); err != nil {
				return err
			}
			s.projects[x.ID], s.projByName[[2]string{x.DomainID, x.Name}] = x, x
			return nil
		}},
		{`SELECT id, name, domain_id, password_hash, enabled, default_project_id, tokens_valid_after, extra, options,
			email, description FROM identity_users`, func(scan func(...any) error) error {
			x := &user{}
			var va db.Timestamp
			var email, description string
			if err := scan(&x.ID, &x.Name, &x.DomainID, &x.PasswordHash, &x.Enabled, &x.DefaultProj, &va,
				jsonColumn{&x.Extra}, jsonColumn{&x.Options}, &email, &description); err != nil {
				return err
			}
			x.ValidAfter = va.Time
			legacyExtras(x.Extra, map[string]string{"email": email, "description": description})
			s.users[x.ID], s.userByName[[2]string{x.DomainID, x.Name}] = x, x
			return nil
		}},
		{"SELECT id, name, description, extra FROM identity_roles", func(scan func(...any) error) error {
			x := &role{}
			if err := scan(&x.ID, &x.Name, &x.Description, jsonColumn{&x.Extra}); err != nil {
				return err
			}
			s.roles[x.ID], s.roleByName[x.Name] = x, x
			return nil
		}},
		{"SELECT user_id, project_id, role_id FROM identity_assignments ORDER BY user_id, project_id, role_id", func(scan func(...any) error) error {
			var a assignment
			if err := scan(&a.UserID, &a.ProjectID, &a.RoleID); err != nil {
				return err
			}
			s.assignments = append(s.assignments, a)
			k := [2]string{a.UserID, a.ProjectID}
			s.direct[k] = append(s.direct[k], a.RoleID)
			return nil
		}},
		{"SELECT id, type, name, enabled, extra, description FROM identity_services ORDER BY type, name, id", func(scan func(...any) error) error {
			x := &catalogService{}
			var description string
			if err := scan(&x.ID, &x.Type, &x.Name, &x.Enabled, jsonColumn{&x.Extra}, &description); err != nil {
				return err
			}
			legacyExtras(x.Extra, map[string]string{"description": description})
			s.services, s.serviceByID[x.ID] = append(s.services, x), x
			return nil
		}},
		{"SELECT id, service_id, interface, region, url, enabled, extra FROM identity_endpoints ORDER BY service_id, interface, id", func(scan func(...any) error) error {
			x := &endpoint{}
			if err := scan(&x.ID, &x.ServiceID, &x.Interface, &x.Region, &x.URL, &x.Enabled, jsonColumn{&x.Extra}); err != nil {
				return err
			}
			s.endpoints, s.endpointByID[x.ID] = append(s.endpoints, x), x
			return nil
		}},
		{"SELECT audit_id, expires_at FROM identity_revocations", func(scan func(...any) error) error {
			var id string
			var exp db.Timestamp
			if err := scan(&id, &exp); err != nil {
				return err
			}
			if a, ok := decodeAudit(id); ok && exp.Time.After(time.Now()) {
				s.revoked[a] = true
			}
			return nil
		}},
	}
	for _, l := range loaders {
		rows, err := d.QueryContext(ctx, l.q)
		if err != nil {
			return nil, fmt.Errorf("loading identity data: %w", err)
		}
		for rows.Next() {
			if err := l.scan(rows.Scan); err != nil {
				rows.Close()
				return nil, fmt.Errorf("loading identity data: %w", err)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("loading identity data: %w", err)
		}
	}
	return s, nil
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
