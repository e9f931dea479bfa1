package interop

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

// ksClient speaks the Keystone v3 API (Ashlar's embedded identity or a
// real Keystone) to provision the accounts the suite needs.
type ksClient struct {
	authURL string // .../v3
	token   string
	http    *http.Client
}

// tokenInfo is the part of a Keystone token body the suite reads.
type tokenInfo struct {
	Token struct {
		ExpiresAt string `json:"expires_at"`
		User      struct {
			ID     string `json:"id"`
			Name   string `json:"name"`
			Domain struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"domain"`
		} `json:"user"`
		Project struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"project"`
		Roles []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"roles"`
		Catalog []struct {
			Type      string `json:"type"`
			Name      string `json:"name"`
			Endpoints []struct {
				Interface string `json:"interface"`
				Region    string `json:"region"`
				URL       string `json:"url"`
			} `json:"endpoints"`
		} `json:"catalog"`
	} `json:"token"`
}

// endpoint returns the public URL of a catalog service type, or "".
func (ti *tokenInfo) endpoint(typ string) string {
	for _, s := range ti.Token.Catalog {
		if s.Type != typ {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Interface == "public" {
				return e.URL
			}
		}
	}
	return ""
}

// login issues a project-scoped token for user/password in domain Default.
func login(ctx context.Context, authURL, user, password, project string) (*ksClient, *tokenInfo, error) {
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "password": password, "domain": map[string]string{"name": "Default"}}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]string{"name": "Default"}}},
	}}
	c := &ksClient{authURL: strings.TrimRight(authURL, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	var ti tokenInfo
	hdr, err := c.do(ctx, "POST", "/auth/tokens", body, &ti, http.StatusCreated)
	if err != nil {
		return nil, nil, fmt.Errorf("token for %s/%s: %w", user, project, err)
	}
	c.token = hdr.Get("X-Subject-Token")
	if c.token == "" {
		return nil, nil, fmt.Errorf("token for %s/%s: no X-Subject-Token header", user, project)
	}
	return c, &ti, nil
}

// do sends one JSON request and decodes the JSON answer into out.
func (c *ksClient) do(ctx context.Context, method, path string, in, out any, want ...int) (http.Header, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.authURL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Auth-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ok := false
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		return resp.Header, fmt.Errorf("%s %s: status %d: %.500s", method, path, resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: decoding %.300s: %w", method, path, b, err)
		}
	}
	return resp.Header, nil
}

type idName struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// find returns the id of the named entity of a collection ("projects",
// "users", "roles"), or "" when there is none.
func (c *ksClient) find(ctx context.Context, collection, name string) (string, error) {
	var out map[string]json.RawMessage
	if _, err := c.do(ctx, "GET", "/"+collection+"?name="+url.QueryEscape(name), nil, &out, http.StatusOK); err != nil {
		return "", err
	}
	var list []idName
	if err := json.Unmarshal(out[collection], &list); err != nil {
		return "", fmt.Errorf("GET /%s: %w", collection, err)
	}
	for _, e := range list {
		if e.Name == name {
			return e.ID, nil
		}
	}
	return "", nil
}

// ensureProject returns the id of project name in domain domainID,
// creating it when missing.
func (c *ksClient) ensureProject(ctx context.Context, domainID, name string) (string, error) {
	id, err := c.find(ctx, "projects", name)
	if err != nil || id != "" {
		return id, err
	}
	var out struct{ Project idName }
	_, err = c.do(ctx, "POST", "/projects", map[string]any{"project": map[string]any{
		"name": name, "domain_id": domainID, "enabled": true}}, &out, http.StatusCreated)
	return out.Project.ID, err
}

// ensureUser returns the id of user name, creating it or resetting its
// password.
func (c *ksClient) ensureUser(ctx context.Context, domainID, name, password, projectID string) (string, error) {
	id, err := c.find(ctx, "users", name)
	if err != nil {
		return "", err
	}
	if id != "" {
		_, err = c.do(ctx, "PATCH", "/users/"+id, map[string]any{"user": map[string]any{"password": password}}, nil, http.StatusOK)
		return id, err
	}
	var out struct{ User idName }
	_, err = c.do(ctx, "POST", "/users", map[string]any{"user": map[string]any{
		"name": name, "password": password, "domain_id": domainID, "default_project_id": projectID, "enabled": true}},
		&out, http.StatusCreated)
	return out.User.ID, err
}

// grant gives user the named role on project.
func (c *ksClient) grant(ctx context.Context, projectID, userID, role string) error {
	roleID, err := c.find(ctx, "roles", role)
	if err != nil {
		return err
	}
	if roleID == "" {
		return fmt.Errorf("role %q does not exist", role)
	}
	_, err = c.do(ctx, "PUT", "/projects/"+projectID+"/users/"+userID+"/roles/"+roleID, nil, nil, http.StatusNoContent, http.StatusOK, http.StatusCreated)
	return err
}

// account is one user with a role on its own project of the same name.
type account struct {
	User, Password, Project, Role string
}

// provision creates the accounts (idempotent) as the admin of c.
func (c *ksClient) provision(ctx context.Context, domainID string, accounts ...account) error {
	for _, a := range accounts {
		pid, err := c.ensureProject(ctx, domainID, a.Project)
		if err != nil {
			return err
		}
		uid, err := c.ensureUser(ctx, domainID, a.User, a.Password, pid)
		if err != nil {
			return err
		}
		if err := c.grant(ctx, pid, uid, a.Role); err != nil {
			return err
		}
	}
	return nil
}
