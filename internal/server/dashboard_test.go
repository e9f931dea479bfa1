package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/identity"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
)

// Tests of the dashboard as served by `ashlar serve`: a real listener,
// logins against the embedded Keystone, actions through the APIs.

// dashEnv is a running server with its dashboard, an admin and a member.
type dashEnv struct {
	cfg                  *config.Config
	url                  string
	adminToken           string
	memberProjectID      string
	volume               *apitest.Client
	images               *apitest.Client
	memberUser, memberPw string
}

func startDashboard(t *testing.T) *dashEnv {
	t.Helper()
	t.Setenv(identity.EnvAdminPassword, adminPassword)
	cfg := parseTestConfig(t, "sqlite:///"+t.TempDir()+"/a.db", map[string]string{
		"DEFAULT": "progress_stall_after = 30", "dashboard": "bind = " + freePort(t),
		"image": "store_check_interval = 1"}, drivers.Check)
	serve(t, cfg)
	e := &dashEnv{cfg: cfg, url: "http://" + cfg.Dashboard.Bind, memberUser: "dash-member", memberPw: "dash-member-pw"}
	e.adminToken = adminToken(t, "http://"+cfg.Identity.Bind)
	id := &apitest.Client{T: t, URL: "http://" + cfg.Identity.Bind}
	p := id.MustJSON(201, id.Do(e.adminToken, "POST", "/v3/projects", `{"project": {"name": "dash-project"}}`))
	e.memberProjectID, _ = apitest.Dig(p, "project", "id").(string)
	u := id.MustJSON(201, id.Do(e.adminToken, "POST", "/v3/users",
		fmt.Sprintf(`{"user": {"name": %q, "password": %q}}`, e.memberUser, e.memberPw)))
	userID, _ := apitest.Dig(u, "user", "id").(string)
	roles, _ := id.MustJSON(200, id.Do(e.adminToken, "GET", "/v3/roles?name=member", nil))["roles"].([]any)
	role, _ := apitest.Dig(roles[0], "id").(string)
	id.Must(204, id.Do(e.adminToken, "PUT", "/v3/projects/"+e.memberProjectID+"/users/"+userID+"/roles/"+role, nil))
	e.volume = &apitest.Client{T: t, URL: "http://" + cfg.Volume.Bind + "/v3", Header: http.Header{}}
	e.volume.Header.Set("OpenStack-API-Version", "volume 3.67")
	e.images = &apitest.Client{T: t, URL: "http://" + cfg.Image.Bind}
	return e
}

// browser is a cookie-keeping client of the dashboard that does not
// follow redirects (the test looks at them).
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the first CSRF token of a page.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, body, _ := b.get(path)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no csrf token on %s: %s", path, body)
	}
	return m[1]
}

func (b *browser) login(user, password, project string) (int, http.Header) {
	b.t.Helper()
	code, _, h := b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "username": {user}, "password": {password},
		"project": {project}})
	return code, h
}

func TestDashboard(t *testing.T) {
	e := startDashboard(t)

	t.Run("login needs the form's CSRF token and right credentials", func(t *testing.T) {
		b := newBrowser(t, e.url)
		if code, _, h := b.get("/stores"); code != http.StatusSeeOther || h.Get("Location") != "/login" {
			t.Fatalf("anonymous /stores: %d %s", code, h.Get("Location"))
		}
		b.csrf("/login")
		code, _, _ := b.post("/login", url.Values{"csrf": {"forged"}, "username": {"admin"}, "password": {adminPassword}})
		if code != http.StatusForbidden {
			t.Errorf("forged csrf login: %d, want 403", code)
		}
		if code, _ := b.login("admin", "wrong", "admin"); code != http.StatusUnauthorized {
			t.Errorf("wrong password: %d, want 401", code)
		}
		code, h := b.login("admin", adminPassword, "admin")
		if code != http.StatusSeeOther || h.Get("Location") != "/stores" {
			t.Fatalf("admin login: %d %s", code, h.Get("Location"))
		}
		var cookie string
		for _, c := range h.Values("Set-Cookie") {
			if strings.HasPrefix(c, "ashlar_session=") {
				cookie = c
			}
		}
		if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
			t.Errorf("session cookie %q: want HttpOnly and SameSite=Strict", cookie)
		}
		if strings.Contains(h.Get("Location"), "token") {
			t.Errorf("token in a URL: %s", h.Get("Location"))
		}
	})

	admin := newBrowser(t, e.url)
	admin.login("admin", adminPassword, "admin")
	member := newBrowser(t, e.url)
	if code, h := member.login(e.memberUser, e.memberPw, "dash-project"); code != http.StatusSeeOther || h.Get("Location") != "/transfers" {
		t.Fatalf("member login: %d %s", code, h.Get("Location"))
	}

	t.Run("stores page", func(t *testing.T) {
		apitest.Eventually(t, 10*time.Second, func() bool {
			_, body, _ := admin.get("/stores")
			return strings.Contains(body, `data-store="fast"`) && strings.Contains(body, "healthy")
		}, func() string { _, body, _ := admin.get("/stores"); return body })
		code, body, h := admin.get("/stores")
		if code != 200 || !strings.Contains(body, "__DEFAULT__") || !strings.Contains(h.Get("Content-Security-Policy"), "nonce-") {
			t.Errorf("stores: %d %s", code, body)
		}
	})

	t.Run("members are refused the operator pages", func(t *testing.T) {
		for _, p := range []string{"/stores", "/types"} {
			if code, body, _ := member.get(p); code != http.StatusForbidden || !strings.Contains(body, "administrators") {
				t.Errorf("member %s: %d", p, code)
			}
		}
		if code, _, _ := member.post("/images/x/copy", url.Values{"csrf": {member.csrf("/volumes")}, "store": {"cheap"}}); code != http.StatusForbidden {
			t.Errorf("member copy-to-store: %d, want 403", code)
		}
	})

	// A volume of the admin project, uploaded to an image from the volumes
	// page; the transfers JSON shows it through to done.
	volID, _ := apitest.Dig(e.volume.MustJSON(202, e.volume.Do(e.adminToken, "POST", "/volumes",
		`{"volume": {"size": 1, "name": "dash"}}`)), "volume", "id").(string)
	apitest.Eventually(t, 30*time.Second, func() bool {
		return apitest.Dig(e.volume.MustJSON(200, e.volume.Do(e.adminToken, "GET", "/volumes/"+volID, nil)), "volume", "status") == "available"
	}, func() string { return "volume not available" })

	t.Run("upload to image from the volumes page reaches done", func(t *testing.T) {
		_, page, _ := admin.get("/volumes")
		if !strings.Contains(page, `data-volume="`+volID+`"`) || !strings.Contains(page, "→ store <strong>fast</strong>") {
			t.Fatalf("volumes page does not offer the upload to store fast: %s", page)
		}
		if code, _, _ := admin.post("/volumes/"+volID+"/upload", url.Values{"csrf": {"stale"}, "image_name": {"x"}}); code != http.StatusForbidden {
			t.Errorf("upload with a bad CSRF token: %d, want 403", code)
		}
		code, _, h := admin.post("/volumes/"+volID+"/upload", url.Values{"csrf": {admin.csrf("/volumes")}, "image_name": {"dash-img"},
			"disk_format": {"raw"}})
		if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/transfers") {
			t.Fatalf("upload: %d %s", code, h.Get("Location"))
		}
		var last string
		apitest.Eventually(t, 60*time.Second, func() bool {
			_, body, _ := admin.get("/transfers.json")
			last = body
			var out struct {
				Transfers []struct {
					Kind, Subject, State string
					Done                 int64 `json:"bytes_done"`
					Total                int64 `json:"bytes_total"`
					Percent              int
				}
			}
			json.Unmarshal([]byte(body), &out)
			for _, tr := range out.Transfers {
				if tr.Kind == "volume.upload" && tr.Subject == volID && tr.State == "done" {
					return tr.Percent == 100 && tr.Done == 1<<30 && tr.Total == 1<<30
				}
			}
			return false
		}, func() string { return "transfers: " + last })
		// the member sees none of the admin project's transfers
		_, body, _ := member.get("/transfers.json")
		if strings.Contains(body, volID) {
			t.Errorf("member sees another project's transfer: %s", body)
		}
	})

	t.Run("a type whose store fails its check is flagged", func(t *testing.T) {
		e.volume.Must(200, e.volume.Do(e.adminToken, "POST", "/types",
			`{"volume_type": {"name": "on-cheap", "extra_specs": {"image_service:store_id": "cheap"}}}`))
		dir := e.cfg.Stores[1].Options["filesystem_store_datadir"]
		if e.cfg.Stores[1].ID != "cheap" || dir == "" {
			t.Fatalf("stores: %+v", e.cfg.Stores)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		var body string
		apitest.Eventually(t, 15*time.Second, func() bool {
			_, body, _ = admin.get("/types")
			return strings.Contains(body, "store unhealthy")
		}, func() string { return "types page: " + body })
		if !strings.Contains(body, `data-type="on-cheap" class="flag"`) {
			t.Errorf("on-cheap not flagged: %s", body)
		}
	})

	t.Run("logout ends the session", func(t *testing.T) {
		b := newBrowser(t, e.url)
		b.login("admin", adminPassword, "admin")
		if code, _, _ := b.post("/logout", url.Values{"csrf": {b.csrf("/transfers")}}); code != http.StatusSeeOther {
			t.Fatalf("logout: %d", code)
		}
		if code, _, _ := b.get("/transfers.json"); code != http.StatusUnauthorized {
			t.Errorf("after logout: %d, want 401", code)
		}
	})
}
