package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The dashboard is a client of the APIs: every page reads, and every
// action writes, through the same Keystone, Glance and Cinder calls a CLI
// would make, with the logged-in user's token. So every action meets the
// same policy checks as the APIs, and what a member may not see through
// the API (another project's volumes, a type's store) the dashboard
// cannot show them either. Only the transfers page reads the task table
// directly (there is no API for it), filtered to the user's project
// unless they are an admin.

// apiError is a non-2xx answer of an API, with the message its body gave.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

// login is a successful password authentication.
type login struct {
	Token, UserID, UserName, ProjectID, ProjectName string
	Roles                                           []string
	Expires                                         time.Time
}

// admin reports whether the token carries the admin role.
func (l login) admin() bool {
	for _, r := range l.Roles {
		if r == "admin" {
			return true
		}
	}
	return false
}

// authenticate asks Keystone for a project-scoped token.
func (d *Dashboard) authenticate(ctx context.Context, user, password, project, domain string) (login, error) {
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "password": password, "domain": map[string]any{"name": domain}}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"name": domain}}},
	}}
	var out struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			User      struct{ ID, Name string }
			Project   struct{ ID, Name string }
			Roles     []struct{ Name string }
		}
	}
	resp, err := d.do(ctx, "", http.MethodPost, d.o.IdentityURL+"/v3/auth/tokens", body, &out)
	if err != nil {
		return login{}, err
	}
	l := login{Token: resp.Header.Get("X-Subject-Token"), UserID: out.Token.User.ID, UserName: out.Token.User.Name,
		ProjectID: out.Token.Project.ID, ProjectName: out.Token.Project.Name}
	for _, r := range out.Token.Roles {
		l.Roles = append(l.Roles, r.Name)
	}
	l.Expires, _ = time.Parse(time.RFC3339Nano, out.Token.ExpiresAt)
	if l.Token == "" || l.ProjectID == "" {
		return login{}, &apiError{Status: http.StatusUnauthorized, Message: "no project-scoped token"}
	}
	return l, nil
}

// revoke ends a token (logout); failures are not the user's problem.
func (d *Dashboard) revoke(ctx context.Context, token string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, d.o.IdentityURL+"/v3/auth/tokens", nil)
	if err != nil {
		return
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("X-Subject-Token", token)
	if resp, err := d.o.Client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// do sends a JSON request with token (when set) and decodes a JSON answer
// into out (when non-nil). Non-2xx answers are *apiError.
func (d *Dashboard) do(ctx context.Context, token, method, u string, in, out any, headers ...string) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := d.o.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return resp, &apiError{Status: resp.StatusCode, Message: errorMessage(data, resp.Status)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp, fmt.Errorf("%s %s: %w", method, u, err)
		}
	}
	return resp, nil
}

// errorMessage digs the message out of an OpenStack error body (Cinder's
// {"kind": {"message"}}, Keystone's {"error": {"message"}}, Glance's
// text or {"message"}).
func errorMessage(data []byte, status string) string {
	var m map[string]any
	if json.Unmarshal(data, &m) == nil {
		if s, ok := m["message"].(string); ok {
			return s
		}
		for _, v := range m {
			if inner, ok := v.(map[string]any); ok {
				if s, ok := inner["message"].(string); ok {
					return s
				}
			}
		}
	}
	if s := strings.TrimSpace(string(data)); s != "" && len(s) < 500 && !strings.Contains(s, "<") {
		return s
	}
	return status
}

// apiStore is one store of GET /v2/info/stores/detail.
type apiStore struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	Description string         `json:"description"`
	Default     string         `json:"default"`
	ReadOnly    string         `json:"read-only"`
	Properties  map[string]any `json:"properties"`
	Ashlar      struct {
		Images      int64  `json:"images"`
		Bytes       int64  `json:"bytes"`
		Health      string `json:"health"`
		HealthError string `json:"health_error"`
		CheckedAt   string `json:"checked_at"`
		FreeBytes   *int64 `json:"free_bytes"`
	} `json:"ashlar"`
}

// stores lists the image stores: in detail for admins (Glance's policy
// stores_info_detail), else the plain list.
func (d *Dashboard) stores(ctx context.Context, s *session) ([]apiStore, error) {
	var out struct{ Stores []apiStore }
	path := "/v2/info/stores"
	if s.Admin {
		path += "/detail"
	}
	_, err := d.do(ctx, s.Token, http.MethodGet, d.o.ImageURL+path, nil, &out)
	return out.Stores, err
}

// apiType is one volume type.
type apiType struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	IsPublic    bool              `json:"is_public"`
	ExtraSpecs  map[string]string `json:"extra_specs"`
}

func (d *Dashboard) types(ctx context.Context, s *session) ([]apiType, error) {
	var out struct {
		VolumeTypes []apiType `json:"volume_types"`
	}
	q := ""
	if s.Admin {
		q = "?is_public=None"
	}
	_, err := d.do(ctx, s.Token, http.MethodGet, d.volumeURL(s)+"/types"+q, nil, &out)
	return out.VolumeTypes, err
}

// apiVolume is one volume of volumes/detail.
type apiVolume struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Size       int64  `json:"size"`
	VolumeType string `json:"volume_type"`
	Host       string `json:"os-vol-host-attr:host"`
	ProjectID  string `json:"os-vol-tenant-attr:tenant_id"`
}

// volumeListLimit bounds the volumes and images a page shows.
const volumeListLimit = 200

func (d *Dashboard) volumes(ctx context.Context, s *session) ([]apiVolume, error) {
	var out struct{ Volumes []apiVolume }
	q := url.Values{"limit": {fmt.Sprint(volumeListLimit)}}
	if s.Admin {
		q.Set("all_tenants", "1")
	}
	_, err := d.do(ctx, s.Token, http.MethodGet, d.volumeURL(s)+"/volumes/detail?"+q.Encode(), nil, &out,
		"OpenStack-API-Version", "volume 3.0")
	return out.Volumes, err
}

// apiImage is one image of GET /v2/images.
type apiImage struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Size       *int64 `json:"size"`
	Owner      string `json:"owner"`
	Visibility string `json:"visibility"`
	Stores     string `json:"stores"`
	DiskFormat string `json:"disk_format"`
}

func (d *Dashboard) images(ctx context.Context, s *session) ([]apiImage, error) {
	var out struct{ Images []apiImage }
	_, err := d.do(ctx, s.Token, http.MethodGet, d.o.ImageURL+"/v2/images?limit="+fmt.Sprint(volumeListLimit), nil, &out)
	return out.Images, err
}

// volumeURL is the block-storage endpoint of the session's project.
func (d *Dashboard) volumeURL(s *session) string {
	return d.o.VolumeURL + "/v3/" + s.ProjectID
}
