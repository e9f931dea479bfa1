package identity

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

func TestVersionDiscovery(t *testing.T) {
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	r := e.Do("", "GET", "/", nil)
	if r.Code != 300 {
		t.Fatalf("GET / = %d", r.Code)
	}
	vals, _ := apitest.Dig(r.JSON(t), "versions", "values").([]any)
	if len(vals) != 1 || apitest.Dig(vals[0], "id") != "v3.14" || apitest.Dig(vals[0], "status") != "stable" {
		t.Fatalf("GET / values = %v", vals)
	}
	links := apitest.Dig(vals[0], "links").([]any)
	if apitest.Dig(links[0], "href") != e.srv.URL+"/v3/" || apitest.Dig(links[0], "rel") != "self" {
		t.Errorf("links = %v", links)
	}
	for _, p := range []string{"/v3", "/v3/"} {
		r = e.Do("", "GET", p, nil)
		if r.Code != 200 || apitest.Dig(r.JSON(t), "version", "id") != "v3.14" {
			t.Errorf("GET %s = %d %s", p, r.Code, r.Body)
		}
	}
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	r := e.Do("", "GET", "/v3/nothing", nil)
	if r.Code != 404 || string(r.Body) != `{"error":{"code":404,"message":"The resource could not be found.","title":"Not Found"}}` {
		t.Errorf("unknown path: %d %s", r.Code, r.Body)
	}
	// Allow is a set: Keystone (werkzeug) lists it in no fixed order.
	r = e.Do("", "PUT", "/v3/auth/tokens", nil)
	allow := strings.Split(r.Header.Get("Allow"), ", ")
	slices.Sort(allow)
	if r.Code != 405 || apitest.Dig(r.JSON(t), "error", "title") != "Method Not Allowed" ||
		apitest.Dig(r.JSON(t), "error", "message") != "The method is not allowed for the requested URL." ||
		!slices.Equal(allow, []string{"DELETE", "GET", "HEAD", "POST"}) {
		t.Errorf("wrong method: %d %s %q", r.Code, r.Body, r.Header.Get("Allow"))
	}
}

func TestIssueToken(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		snap := e.s.snap.Load()
		admin := snap.userByName[[2]string{"default", "admin"}]
		adminProj := snap.projByName[[2]string{"default", "admin"}]
		userByID := map[string]any{"id": admin.ID, "password": adminPW}
		userByName := map[string]any{"name": "admin", "domain": map[string]any{"id": "default"}, "password": adminPW}
		tests := []struct {
			name    string
			user    map[string]any
			scope   any
			project string
		}{
			{"name+domain id, project by id", userByName, map[string]any{"project": map[string]any{"id": adminProj.ID}}, adminProj.ID},
			{"user id, project by name", userByID, map[string]any{"project": map[string]any{"name": "admin", "domain": map[string]any{"name": "Default"}}}, adminProj.ID},
			{"explicitly unscoped", userByID, "unscoped", ""},
			{"default project", userByID, nil, adminProj.ID},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := map[string]any{"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": tt.user}}}
				if tt.scope != nil {
					a["scope"] = tt.scope
				}
				before := time.Now().UTC().Add(-time.Second)
				r := e.Do("", "POST", "/v3/auth/tokens", map[string]any{"auth": a})
				if r.Code != 201 || r.Header.Get("X-Subject-Token") == "" {
					t.Fatalf("got %d %s", r.Code, r.Body)
				}
				tok := r.JSON(t)["token"].(map[string]any)
				if !slices.Equal(toStrings(tok["methods"]), []string{"password"}) {
					t.Errorf("methods = %v", tok["methods"])
				}
				if apitest.Dig(tok, "user", "id") != admin.ID || apitest.Dig(tok, "user", "name") != "admin" ||
					apitest.Dig(tok, "user", "domain", "id") != "default" || apitest.Dig(tok, "user", "domain", "name") != "Default" {
					t.Errorf("user = %v", tok["user"])
				}
				issued, err1 := time.Parse(keystoneTime, tok["issued_at"].(string))
				expires, err2 := time.Parse(keystoneTime, tok["expires_at"].(string))
				if err1 != nil || err2 != nil || issued.Before(before) || expires.Sub(issued) != time.Hour {
					t.Errorf("issued_at %v expires_at %v", tok["issued_at"], tok["expires_at"])
				}
				if ids := toStrings(tok["audit_ids"]); len(ids) != 1 || len(ids[0]) != 22 {
					t.Errorf("audit_ids = %v", ids)
				}
				if tt.project == "" {
					for _, k := range []string{"project", "roles", "catalog"} {
						if _, ok := tok[k]; ok {
							t.Errorf("unscoped token has %q", k)
						}
					}
					return
				}
				if apitest.Dig(tok, "project", "id") != tt.project || apitest.Dig(tok, "project", "name") != "admin" || apitest.Dig(tok, "project", "domain", "name") != "Default" {
					t.Errorf("project = %v", tok["project"])
				}
				var roles []string
				for _, ro := range tok["roles"].([]any) {
					roles = append(roles, apitest.Dig(ro, "name").(string))
				}
				if !slices.Equal(roles, []string{"admin", "member", "reader"}) {
					t.Errorf("roles = %v (want implied roles too)", roles)
				}
				checkCatalog(t, tok["catalog"].([]any), e.srv.URL, tt.project)
			})
		}
	})
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// checkCatalog wants identity, image, volumev3 and block-storage with
// public, internal and admin endpoints in RegionOne.
func checkCatalog(t *testing.T, cat []any, identityURL, projectID string) {
	t.Helper()
	want := map[string]string{
		"identity":      identityURL + "/v3/",
		"image":         "http://image.test:9292",
		"volumev3":      "http://volume.test:8776/v3/" + projectID,
		"block-storage": "http://volume.test:8776/v3/" + projectID,
	}
	for _, svc := range cat {
		typ := apitest.Dig(svc, "type").(string)
		url, ok := want[typ]
		if !ok {
			continue
		}
		delete(want, typ)
		if apitest.Dig(svc, "id") == "" || apitest.Dig(svc, "name") == "" {
			t.Errorf("%s: no id or name: %v", typ, svc)
		}
		var ifaces []string
		for _, ep := range apitest.Dig(svc, "endpoints").([]any) {
			ifaces = append(ifaces, apitest.Dig(ep, "interface").(string))
			if apitest.Dig(ep, "url") != url || apitest.Dig(ep, "region_id") != "RegionOne" || apitest.Dig(ep, "region") != "RegionOne" || apitest.Dig(ep, "id") == "" {
				t.Errorf("%s endpoint = %v, want url %s", typ, ep, url)
			}
		}
		slices.Sort(ifaces)
		if !slices.Equal(ifaces, []string{"admin", "internal", "public"}) {
			t.Errorf("%s interfaces = %v", typ, ifaces)
		}
	}
	if len(want) != 0 {
		t.Errorf("catalog lacks %v", want)
	}
}

func TestAuthFailures(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.user("nobody", "member")
		unauth := `{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`
		tests := []struct {
			name string
			body any
			code int
			want string
		}{
			{"bad password", passwordAuth("admin", "wrong", "admin"), 401, unauth},
			{"unknown user", passwordAuth("ghost", "wrong", "admin"), 401, unauth},
			{"empty password", passwordAuth("admin", "", "admin"), 401, unauth},
			{"no role on project", passwordAuth("nobody", "nobody-pw", "admin"), 401, unauth},
			{"unknown project", passwordAuth("admin", adminPW, "nope"), 401, unauth},
			{"domain scope", map[string]any{"auth": map[string]any{"identity": apitest.Dig(passwordAuth("admin", adminPW, ""), "auth", "identity"),
				"scope": map[string]any{"domain": map[string]any{"id": "default"}}}}, 401, unauth},
			{"unknown method", `{"auth":{"identity":{"methods":["totp"]}}}`, 401, ""},
			{"malformed", `{"auth":`, 400, ""},
			{"no methods", `{"auth":{"identity":{}}}`, 400, ""},
			{"user without domain", `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","password":"x"}}}}}`, 400, ""},
			{"bad token method", `{"auth":{"identity":{"methods":["token"],"token":{"id":"garbage"}}}}`, 401, unauth},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.Do("", "POST", "/v3/auth/tokens", tt.body)
				if r.Code != tt.code || tt.want != "" && string(r.Body) != tt.want {
					t.Errorf("got %d %s, want %d %s", r.Code, r.Body, tt.code, tt.want)
				}
				if r.Code == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Keystone uri=") {
					t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
				}
				if r.Header.Get("X-Subject-Token") != "" {
					t.Error("failed auth returned a token")
				}
			})
		}
	})
}

func TestValidateAndRevoke(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		admin := e.token("admin", adminPW, "admin")
		userTok, userID, _ := e.user("u1", "member")
		other, _, _ := e.user("u2", "member")

		r := e.Do(admin, "GET", "/v3/auth/tokens", nil, "X-Subject-Token", userTok)
		if r.Code != 200 || r.Header.Get("X-Subject-Token") != userTok || apitest.Dig(r.JSON(t), "token", "user", "id") != userID {
			t.Fatalf("validate: %d %s", r.Code, r.Body)
		}
		if _, ok := apitest.Dig(e.Do(admin, "GET", "/v3/auth/tokens?nocatalog", nil, "X-Subject-Token", userTok).JSON(t), "token").(map[string]any)["catalog"]; ok {
			t.Error("nocatalog still has a catalog")
		}
		if r := e.Do(userTok, "HEAD", "/v3/auth/tokens", nil, "X-Subject-Token", userTok); r.Code != 200 || len(r.Body) != 0 {
			t.Errorf("HEAD own token: %d", r.Code)
		}
		if r := e.Do(other, "GET", "/v3/auth/tokens", nil, "X-Subject-Token", userTok); r.Code != 403 {
			t.Errorf("another user's token: %d", r.Code)
		}
		// keystonemiddleware's service user: may validate, not revoke.
		svcTok, _, _ := e.user("svc", RoleService)
		if r := e.Do(svcTok, "GET", "/v3/auth/tokens", nil, "X-Subject-Token", userTok); r.Code != 200 {
			t.Errorf("service role validating: %d %s", r.Code, r.Body)
		}
		if r := e.Do(svcTok, "DELETE", "/v3/auth/tokens", nil, "X-Subject-Token", userTok); r.Code != 403 {
			t.Errorf("service role revoking: %d %s", r.Code, r.Body)
		}
		if r := e.Do(admin, "GET", "/v3/auth/tokens", nil); r.Code != 400 {
			t.Errorf("no subject: %d", r.Code)
		}
		if r := e.Do("", "GET", "/v3/auth/tokens", nil, "X-Subject-Token", userTok); r.Code != 401 {
			t.Errorf("no auth token: %d", r.Code)
		}
		if _, err := e.s.Validator().Validate(context.Background(), userTok); err != nil {
			t.Fatalf("Validator before revoke: %v", err)
		}
		if r := e.Do(userTok, "DELETE", "/v3/auth/tokens", nil, "X-Subject-Token", userTok); r.Code != 204 {
			t.Fatalf("revoke: %d %s", r.Code, r.Body)
		}
		r = e.Do(admin, "GET", "/v3/auth/tokens", nil, "X-Subject-Token", userTok)
		if r.Code != 404 || apitest.Dig(r.JSON(t), "error", "message") != "Could not find token: "+userTok+"." {
			t.Errorf("revoked token: %d %s", r.Code, r.Body)
		}
		if _, err := e.s.Validator().Validate(context.Background(), userTok); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("Validator after revoke: %v", err)
		}
		if _, err := e.s.Validator().Validate(context.Background(), other); err != nil {
			t.Errorf("revoking one token hit another: %v", err)
		}
	})
}

func TestTokenInvalidation(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		admin := e.token("admin", adminPW, "admin")
		memberRole := e.s.snap.Load().roleByName["member"].ID
		v := e.s.Validator()
		ctx := context.Background()
		tests := []struct {
			name   string
			change func(userID, projectID string)
		}{
			{"password change", func(u, _ string) {
				e.Must(200, e.Do(admin, "PATCH", "/v3/users/"+u, map[string]any{"user": map[string]any{"password": "new"}}))
			}},
			{"user disabled", func(u, _ string) {
				e.Must(200, e.Do(admin, "PATCH", "/v3/users/"+u, map[string]any{"user": map[string]any{"enabled": false}}))
			}},
			{"user deleted", func(u, _ string) { e.MustJSON(204, e.Do(admin, "DELETE", "/v3/users/"+u, nil)) }},
			{"role removed", func(u, p string) {
				e.Must(204, e.Do(admin, "DELETE", "/v3/projects/"+p+"/users/"+u+"/roles/"+memberRole, nil))
			}},
			{"project disabled", func(_, p string) {
				e.Must(200, e.Do(admin, "PATCH", "/v3/projects/"+p, map[string]any{"project": map[string]any{"enabled": false}}))
			}},
			{"project deleted", func(_, p string) { e.MustJSON(204, e.Do(admin, "DELETE", "/v3/projects/"+p, nil)) }},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				name := "inv" + string(rune('a'+i))
				tok, u, p := e.user(name, "member")
				c, err := v.Validate(ctx, tok)
				if err != nil || c.UserID != u || c.ProjectID != p || !c.HasRole("reader") || c.IsAdmin() {
					t.Fatalf("before: %+v %v", c, err)
				}
				tt.change(u, p)
				if _, err := v.Validate(ctx, tok); !errs.Is(err, errs.Unauthorized) {
					t.Errorf("after %s: err = %v", tt.name, err)
				}
			})
		}
		t.Run("new password works", func(t *testing.T) {
			_, u, _ := e.user("pwuser", "member")
			e.Must(200, e.Do(admin, "PATCH", "/v3/users/"+u, map[string]any{"user": map[string]any{"password": "changed"}}))
			if r := e.Do("", "POST", "/v3/auth/tokens", passwordAuth("pwuser", "pwuser-pw", "pwuser")); r.Code != 401 {
				t.Errorf("old password: %d", r.Code)
			}
			tok := e.token("pwuser", "changed", "pwuser")
			if _, err := v.Validate(ctx, tok); err != nil {
				t.Errorf("token after the change: %v", err)
			}
		})
		t.Run("expiry", func(t *testing.T) {
			tok, _, _ := e.user("exp", "reader")
			c, err := v.Validate(ctx, tok)
			if err != nil || c.HasRole("member") || !c.HasRole("reader") {
				t.Fatalf("reader: %+v %v", c, err)
			}
			e.s.now = func() time.Time { return time.Now().UTC().Add(time.Hour + time.Second) }
			defer func() { e.s.now = func() time.Time { return time.Now().UTC() } }()
			if _, err := v.Validate(ctx, tok); !errs.Is(err, errs.Unauthorized) {
				t.Errorf("expired token: %v", err)
			}
		})
		t.Run("forged", func(t *testing.T) {
			tok, _, _ := e.user("forge", "member")
			b := []byte(tok)
			b[10] ^= 1
			for _, bad := range []string{string(b), tok[:len(tok)-2], "", "x", strings.Repeat("A", 2000)} {
				if _, err := v.Validate(ctx, bad); !errs.Is(err, errs.Unauthorized) {
					t.Errorf("Validate(%.20q) = %v", bad, err)
				}
			}
			// Signed with another key: rejected.
			p, _ := open(e.s.signer(), tok)
			other, _ := seal(newSigner(make([]byte, keySize)), p)
			if _, err := v.Validate(ctx, other); !errs.Is(err, errs.Unauthorized) {
				t.Errorf("token signed with another key: %v", err)
			}
		})
	})
}

func TestRescope(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		unscoped := e.token("admin", adminPW, "")
		r := e.Do("", "POST", "/v3/auth/tokens", map[string]any{"auth": map[string]any{
			"identity": map[string]any{"methods": []string{"token"}, "token": map[string]any{"id": unscoped}},
			"scope":    map[string]any{"project": map[string]any{"name": "admin", "domain": map[string]any{"name": "Default"}}}}})
		if r.Code != 201 {
			t.Fatalf("rescope: %d %s", r.Code, r.Body)
		}
		tok := r.JSON(t)["token"].(map[string]any)
		parent := e.Do(unscoped, "GET", "/v3/auth/tokens", nil, "X-Subject-Token", unscoped).JSON(t)["token"].(map[string]any)
		ids := toStrings(tok["audit_ids"])
		if len(ids) != 2 || ids[1] != toStrings(parent["audit_ids"])[0] {
			t.Errorf("audit_ids = %v, parent %v", ids, parent["audit_ids"])
		}
		if tok["expires_at"] != parent["expires_at"] || apitest.Dig(tok, "project", "name") != "admin" {
			t.Errorf("rescoped token = %v", tok)
		}
		if m := toStrings(tok["methods"]); !slices.Contains(m, "token") || !slices.Contains(m, "password") {
			t.Errorf("methods = %v", m)
		}
		// Revoking the parent revokes what was derived from it.
		scoped := r.Header.Get("X-Subject-Token")
		if r := e.Do(scoped, "DELETE", "/v3/auth/tokens", nil, "X-Subject-Token", unscoped); r.Code != 204 {
			t.Fatalf("revoke parent: %d", r.Code)
		}
		if _, err := e.s.Validator().Validate(context.Background(), scoped); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("child of a revoked token: %v", err)
		}
	})
}

func TestAuthCatalogAndProjects(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		tok, _, pid := e.user("cat", "member")
		m := e.MustJSON(200, e.Do(tok, "GET", "/v3/auth/catalog", nil))
		checkCatalog(t, m["catalog"].([]any), e.srv.URL, pid)
		if apitest.Dig(m, "links", "self") != e.srv.URL+"/v3/auth/catalog" {
			t.Errorf("links = %v", m["links"])
		}
		m = e.MustJSON(200, e.Do(tok, "GET", "/v3/auth/projects", nil))
		ps := m["projects"].([]any)
		if len(ps) != 1 || apitest.Dig(ps[0], "id") != pid || apitest.Dig(ps[0], "domain_id") != "default" {
			t.Errorf("projects = %v", ps)
		}
		unscoped := e.token("cat", "cat-pw", "")
		// The user's default project is unset: unscoped, and no catalog.
		e.Must(403, e.Do(unscoped, "GET", "/v3/auth/catalog", nil))
	})
}

// TestDoneWhen walks the issue's acceptance flow over HTTP: an admin
// creates a project, a user and a member grant; the user authenticates and
// is refused admin-only calls with 403.
func TestDoneWhen(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		admin := e.token("admin", adminPW, "admin")
		p := e.MustJSON(201, e.Do(admin, "POST", "/v3/projects", map[string]any{"project": map[string]any{"name": "p2", "description": "d"}}))
		pid := apitest.Dig(p, "project", "id").(string)
		if apitest.Dig(p, "project", "parent_id") != "default" || apitest.Dig(p, "project", "is_domain") != false || apitest.Dig(p, "project", "links", "self") != e.srv.URL+"/v3/projects/"+pid {
			t.Errorf("project = %v", p)
		}
		e.Must(409, e.Do(admin, "POST", "/v3/projects", map[string]any{"project": map[string]any{"name": "p2"}}))
		e.Must(400, e.Do(admin, "POST", "/v3/projects", map[string]any{"project": map[string]any{"name": ""}}))
		u := e.MustJSON(201, e.Do(admin, "POST", "/v3/users", map[string]any{"user": map[string]any{"name": "u2", "password": "x", "enabled": true}}))
		uid := apitest.Dig(u, "user", "id").(string)
		if _, ok := apitest.Dig(u, "user").(map[string]any)["password"]; ok {
			t.Error("user body shows the password")
		}
		e.Must(409, e.Do(admin, "POST", "/v3/users", map[string]any{"user": map[string]any{"name": "u2"}}))
		// The CLI resolves names through the list filters.
		if l := e.MustJSON(200, e.Do(admin, "GET", "/v3/users?name=u2", nil))["users"].([]any); len(l) != 1 || apitest.Dig(l[0], "id") != uid {
			t.Errorf("users?name=u2 = %v", l)
		}
		roles := e.MustJSON(200, e.Do(admin, "GET", "/v3/roles?name=member", nil))["roles"].([]any)
		if len(roles) != 1 {
			t.Fatalf("roles?name=member = %v", roles)
		}
		rid := apitest.Dig(roles[0], "id").(string)
		e.Must(404, e.Do(admin, "GET", "/v3/roles/member", nil))
		e.Must(404, e.Do(admin, "HEAD", "/v3/projects/"+pid+"/users/"+uid+"/roles/"+rid, nil))
		e.Must(204, e.Do(admin, "PUT", "/v3/projects/"+pid+"/users/"+uid+"/roles/"+rid, nil))
		e.Must(204, e.Do(admin, "HEAD", "/v3/projects/"+pid+"/users/"+uid+"/roles/"+rid, nil))

		ra := e.MustJSON(200, e.Do(admin, "GET", "/v3/role_assignments?user.id="+uid+"&scope.project.id="+pid+"&include_names=True", nil))["role_assignments"].([]any)
		if len(ra) != 1 || apitest.Dig(ra[0], "role", "name") != "member" || apitest.Dig(ra[0], "user", "name") != "u2" ||
			apitest.Dig(ra[0], "scope", "project", "name") != "p2" || apitest.Dig(ra[0], "user", "domain", "name") != "Default" {
			t.Errorf("role_assignments = %v", ra)
		}
		eff := e.MustJSON(200, e.Do(admin, "GET", "/v3/role_assignments?user.id="+uid+"&effective", nil))["role_assignments"].([]any)
		if len(eff) != 2 {
			t.Errorf("effective assignments = %v (want member and implied reader)", eff)
		}

		u2 := e.token("u2", "x", "p2")
		for _, call := range [][2]string{{"GET", "/v3/users"}, {"GET", "/v3/projects"}, {"POST", "/v3/projects"},
			{"GET", "/v3/role_assignments"}, {"DELETE", "/v3/users/" + uid}, {"GET", "/v3/services"}} {
			r := e.Do(u2, call[0], call[1], map[string]any{"project": map[string]any{"name": "x"}})
			if r.Code != 403 || !strings.HasPrefix(apitest.Dig(r.JSON(t), "error", "message").(string), "You are not authorized to perform the requested action: identity:") {
				t.Errorf("%s %s as member: %d %s", call[0], call[1], r.Code, r.Body)
			}
		}
		e.Must(200, e.Do(u2, "GET", "/v3/projects/"+pid, nil))
		e.Must(200, e.Do(u2, "GET", "/v3/users/"+uid, nil))
		e.Must(204, e.Do(admin, "DELETE", "/v3/projects/"+pid+"/users/"+uid+"/roles/"+rid, nil))
		e.Must(404, e.Do(admin, "DELETE", "/v3/projects/"+pid+"/users/"+uid+"/roles/"+rid, nil))
		e.Must(204, e.Do(admin, "DELETE", "/v3/users/"+uid, nil))
		e.Must(404, e.Do(admin, "GET", "/v3/users/"+uid, nil))
		e.Must(204, e.Do(admin, "DELETE", "/v3/projects/"+pid, nil))
		e.Must(404, e.Do(admin, "DELETE", "/v3/projects/"+pid, nil))

		// Services and endpoints: the extra catalog entry tempest's remote
		// image tests want shows up in new tokens.
		svc := e.MustJSON(201, e.Do(admin, "POST", "/v3/services", map[string]any{"service": map[string]any{"type": "image_remote", "name": "glance-remote"}}))
		sid := apitest.Dig(svc, "service", "id").(string)
		e.Must(400, e.Do(admin, "POST", "/v3/endpoints", map[string]any{"endpoint": map[string]any{"service_id": sid, "interface": "weird", "url": "http://x"}}))
		e.Must(201, e.Do(admin, "POST", "/v3/endpoints", map[string]any{"endpoint": map[string]any{"service_id": sid, "interface": "public",
			"url": "http://remote.test:9292", "region_id": "RegionOne"}}))
		c, err := e.s.Validator().Validate(context.Background(), e.token("admin", adminPW, "admin"))
		if err != nil || c.EndpointURL("image_remote", "") != "http://remote.test:9292" || c.EndpointURL("image", "internal") != "http://image.test:9292" {
			t.Errorf("catalog after endpoint create: %+v %v", c, err)
		}
		e.Must(204, e.Do(admin, "DELETE", "/v3/services/"+sid, nil))
		if l := e.MustJSON(200, e.Do(admin, "GET", "/v3/endpoints?service_id="+sid, nil))["endpoints"].([]any); len(l) != 0 {
			t.Errorf("endpoints of a deleted service: %v", l)
		}
		for _, path := range []string{"/v3/domains", "/v3/domains/default", "/v3/regions", "/v3/regions/RegionOne",
			"/v3/services?type=image", "/v3/endpoints?interface=public"} {
			e.Must(200, e.Do(admin, "GET", path, nil))
		}
		e.Must(404, e.Do(admin, "GET", "/v3/domains/nope", nil))

		// Custom roles come and go; the defaults are immutable.
		ro := e.MustJSON(201, e.Do(admin, "POST", "/v3/roles", map[string]any{"role": map[string]any{"name": "custom"}}))
		e.Must(409, e.Do(admin, "POST", "/v3/roles", map[string]any{"role": map[string]any{"name": "custom"}}))
		e.Must(204, e.Do(admin, "DELETE", "/v3/roles/"+apitest.Dig(ro, "role", "id").(string), nil))
		e.Must(403, e.Do(admin, "DELETE", "/v3/roles/"+e.s.snap.Load().roleByName["reader"].ID, nil))
	})
}

// TestSelfService: users change their own password and list their own
// projects, and nobody else's (another's password only with the original).
func TestSelfService(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		tok, uid, pid := e.user("self", "member")
		_, otherID, _ := e.user("other", "member")
		ps := e.MustJSON(200, e.Do(tok, "GET", "/v3/users/"+uid+"/projects", nil))["projects"].([]any)
		if len(ps) != 1 || apitest.Dig(ps[0], "id") != pid {
			t.Errorf("own projects = %v", ps)
		}
		e.Must(403, e.Do(tok, "GET", "/v3/users/"+otherID+"/projects", nil))
		e.Must(403, e.Do(tok, "GET", "/v3/users/"+otherID, nil))
		change := func(orig, pw string) map[string]any {
			return map[string]any{"user": map[string]any{"original_password": orig, "password": pw}}
		}
		e.Must(401, e.Do(tok, "POST", "/v3/users/"+uid+"/password", change("wrong", "new-pw")))
		// Another user's password: the original password is the check (no
		// policy, as in Keystone; TestChangePassword).
		e.Must(401, e.Do(tok, "POST", "/v3/users/"+otherID+"/password", change("wrong", "new-pw")))
		e.Must(204, e.Do(tok, "POST", "/v3/users/"+uid+"/password", change("self-pw", "new-pw")))
		if _, err := e.s.Validator().Validate(context.Background(), tok); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("token survived its user's password change: %v", err)
		}
		e.token("self", "new-pw", "self")
	})
}

func TestNoBodyDetailsLeak(t *testing.T) {
	e := newEnv(t, dbtest.Open(t, "sqlite"))
	admin := e.token("admin", adminPW, "admin")
	for _, body := range []string{`{"user": {"name": "x", "password": "` + strings.Repeat("p", 80) + `"}}`, `{"user": "x"}`, `[]`} {
		r := e.Do(admin, "POST", "/v3/users", body)
		if r.Code != 400 {
			t.Errorf("POST /v3/users %.40s: %d %s", body, r.Code, r.Body)
		}
	}
}

func TestBootstrap(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		cfg := testConfig(t, "http://127.0.0.1:21099")
		s, err := newService(ctx, cfg, d, quietLogger(), 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(EnvAdminPassword, "")
		res, err := s.Bootstrap(ctx, BootstrapOptions{})
		if err != nil || !res.Created || !res.Generated || len(res.AdminPassword) < 20 {
			t.Fatalf("first bootstrap: %+v %v", res, err)
		}
		if err := s.WriteClientFiles(res.AdminPassword); err != nil {
			t.Fatal(err)
		}
		counts := func() string {
			var out []string
			for _, tbl := range []string{"identity_domains", "identity_projects", "identity_users", "identity_roles",
				"identity_assignments", "identity_services", "identity_endpoints"} {
				var n int
				if err := d.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil {
					t.Fatal(err)
				}
				out = append(out, tbl+"="+string(rune('0'+n/10))+string(rune('0'+n%10)))
			}
			return strings.Join(out, " ")
		}
		first := counts()
		if want := "identity_domains=01 identity_projects=02 identity_users=01 identity_roles=04 identity_assignments=01 identity_services=04 identity_endpoints=12"; first != want {
			t.Errorf("after bootstrap: %s, want %s", first, want)
		}
		// A restart keeps the password (remembered in the state path) and
		// creates nothing new; a new public URL moves the managed endpoints.
		cfg.Image.PublicURL = "http://moved.test:9292"
		res2, err := s.Bootstrap(ctx, BootstrapOptions{})
		if err != nil || res2.Created || res2.Generated || res2.AdminPassword != res.AdminPassword {
			t.Fatalf("second bootstrap: %+v %v", res2, err)
		}
		if got := counts(); got != first {
			t.Errorf("second bootstrap changed counts: %s", got)
		}
		if c := s.snap.Load().catalog(""); findURL(c, "image") != "http://moved.test:9292" {
			t.Errorf("image endpoint not moved: %+v", c)
		}
		openrc, err := os.ReadFile(filepath.Join(cfg.Default.StatePath, "openrc"))
		if err != nil || !strings.Contains(string(openrc), "export OS_PASSWORD='"+res.AdminPassword+"'") ||
			!strings.Contains(string(openrc), "export OS_AUTH_URL='http://127.0.0.1:21099/v3'") {
			t.Errorf("openrc = %s %v", openrc, err)
		}
		clouds, err := os.ReadFile(filepath.Join(cfg.Default.StatePath, "clouds.yaml"))
		if err != nil || !strings.Contains(string(clouds), "  ashlar:\n") || !strings.Contains(string(clouds), "password: '"+res.AdminPassword+"'") {
			t.Errorf("clouds.yaml = %s %v", clouds, err)
		}
		if fi, err := os.Stat(filepath.Join(cfg.Default.StatePath, "openrc")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("openrc mode: %v %v", fi, err)
		}
		// The environment variable resets the password.
		t.Setenv(EnvAdminPassword, "from-env")
		res3, err := s.Bootstrap(ctx, BootstrapOptions{})
		if err != nil || res3.AdminPassword != "from-env" {
			t.Fatalf("env bootstrap: %+v %v", res3, err)
		}
		if _, err := s.authenticate(authRequestFor(t, "admin", "from-env")); err != nil {
			t.Errorf("password from the environment refused: %v", err)
		}
		// Without the variable again, the old generated password is not
		// resurrected: the password is unknown and openrc stays as it is.
		if err := s.WriteClientFiles(res3.AdminPassword); err != nil {
			t.Fatal(err)
		}
		t.Setenv(EnvAdminPassword, "")
		res4, err := s.Bootstrap(ctx, BootstrapOptions{})
		if err != nil || res4.AdminPassword != "" {
			t.Fatalf("bootstrap after env: %+v %v", res4, err)
		}
		if err := s.WriteClientFiles(res4.AdminPassword); err != nil {
			t.Fatal(err)
		}
		if rc, _ := os.ReadFile(filepath.Join(cfg.Default.StatePath, "openrc")); !strings.Contains(string(rc), "OS_PASSWORD='from-env'") {
			t.Errorf("openrc lost the current password:\n%s", rc)
		}
	})
}

func findURL(c []auth.CatalogEntry, typ string) string {
	for _, e := range c {
		if e.Type == typ {
			return e.Endpoints[0].URL
		}
	}
	return ""
}

// TestSharedDatabase: a second process on the same database (and key)
// sees a revocation made by the first once it polls.
func TestSharedDatabase(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		tok, uid, _ := e.user("shared", "member")
		s2, err := newService(context.Background(), e.cfg, d, quietLogger(), 4)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s2.Validator().Validate(context.Background(), tok); err != nil {
			t.Fatalf("second process: %v", err)
		}
		admin := e.token("admin", adminPW, "admin")
		e.Must(200, e.Do(admin, "PATCH", "/v3/users/"+uid, map[string]any{"user": map[string]any{"enabled": false}}))
		if _, err := s2.Validator().Validate(context.Background(), tok); err != nil {
			t.Fatalf("before polling, the second process still has its snapshot: %v", err)
		}
		if err := s2.poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := s2.Validator().Validate(context.Background(), tok); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("after polling: %v", err)
		}
	})
}

// TestConcurrentBootstrap: two processes starting on one empty database
// both come up; exactly one creates the admin, and its password works.
func TestConcurrentBootstrap(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		t.Setenv(EnvAdminPassword, "")
		var svcs [2]*Service
		var results [2]*BootstrapResult
		var errsOut [2]error
		for i := range svcs {
			s, err := newService(ctx, testConfig(t, "http://127.0.0.1:21099"), d, quietLogger(), 4)
			if err != nil {
				t.Fatal(err)
			}
			svcs[i] = s
		}
		var wg sync.WaitGroup
		for i := range svcs {
			wg.Go(func() { results[i], errsOut[i] = svcs[i].Bootstrap(ctx, BootstrapOptions{}) })
		}
		wg.Wait()
		created := 0
		for i, r := range results {
			if errsOut[i] != nil {
				t.Fatalf("bootstrap %d: %v", i, errsOut[i])
			}
			if r.Created {
				created++
				if _, err := svcs[i].authenticate(authRequestFor(t, "admin", r.AdminPassword)); err != nil {
					t.Errorf("the creator's password does not work: %v", err)
				}
			} else if r.AdminPassword != "" {
				if _, err := svcs[i].authenticate(authRequestFor(t, "admin", r.AdminPassword)); err != nil {
					t.Errorf("process %d reports a password that does not work: %v", i, err)
				}
			}
		}
		var n int
		if err := d.QueryRowContext(ctx, "SELECT COUNT(*) FROM identity_users").Scan(&n); err != nil || n != 1 || created != 1 {
			t.Errorf("%d users, %d creators (%v)", n, created, err)
		}
	})
}
