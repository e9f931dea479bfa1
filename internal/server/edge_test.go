package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// inDialect reports whether r is an error of the given status in the
// service's own dialect: Cinder's {"<name>": {"code", "message"}},
// Glance's webob text (no Accept header: text/plain) and Keystone's
// {"error": {"code", "title", "message"}}.
func inDialect(service string, status int, r apitest.Resp) bool {
	if r.Code != status {
		return false
	}
	switch service {
	case config.ServiceImage:
		return r.Header.Get("Content-Type") == "text/plain; charset=UTF-8" &&
			strings.HasPrefix(string(r.Body), fmt.Sprintf("%d %s\n\n", status, http.StatusText(status)))
	case config.ServiceIdentity:
		var e struct {
			Error struct {
				Code           int
				Title, Message string
			}
		}
		return json.Unmarshal(r.Body, &e) == nil && e.Error.Code == status && e.Error.Title != "" && e.Error.Message != ""
	}
	var e map[string]struct {
		Code    int
		Message string
	}
	if json.Unmarshal(r.Body, &e) != nil || len(e) != 1 {
		return false
	}
	for _, v := range e {
		return v.Code == status && v.Message != ""
	}
	return false
}

const jsonPatch = "application/openstack-images-v2.1-json-patch"

// A NUL character or bytes that are not UTF-8, anywhere a client can put
// them (path segments, query filters and markers, headers, JSON keys and
// values), are a 400 in each API's dialect on both engines, never a 500
// (PostgreSQL refuses NUL in text and non-UTF-8 bytes).
func TestBadBytesAre400(t *testing.T) {
	const (
		img = config.ServiceImage
		vol = config.ServiceVolume
		id  = config.ServiceIdentity
	)
	tests := []struct {
		service, method, path string
		body                  any // string: JSON text; []byte: data
		hdr                   []string
	}{
		{img, "GET", "/v2/images/%00", nil, nil},
		{img, "GET", "/v2/images/%FF", nil, nil},
		{img, "GET", "/v2/images?name=%00", nil, nil},
		{img, "GET", "/v2/images?marker=%FF", nil, nil},
		{img, "GET", "/v2/images?tag=a%00", nil, nil},
		{img, "GET", "/v2/images?owner=%FF&visibility=all", nil, nil},
		{img, "GET", "/v2/images?sort_key=name%00", nil, nil},
		{img, "PUT", "/v2/images/{img}/tags/%00", nil, nil},
		{img, "DELETE", "/v2/images/{img}/tags/%FF", nil, nil},
		{img, "POST", "/v2/images", `{"name": "a\u0000"}`, nil},
		{img, "POST", "/v2/images", `{"name": "a", "x_prop\u0000": "v"}`, nil},
		{img, "POST", "/v2/images", "{\"name\": \"\xff\"}", nil},
		{img, "PATCH", "/v2/images/{img}", `[{"op": "add", "path": "/x_p", "value": "\u0000"}]`, []string{"Content-Type", jsonPatch}},
		{img, "PATCH", "/v2/images/{img}", `[{"op": "add", "path": "/x\u0000", "value": "v"}]`, []string{"Content-Type", jsonPatch}},
		{img, "POST", "/v2/images/{img}/members", `{"member": "\u0000"}`, nil},
		{img, "GET", "/v2/images/{img}/members/%FF", nil, nil},
		{img, "PUT", "/v2/images/{img}/members/%00", `{"status": "accepted"}`, nil},
		{img, "PUT", "/v2/images/{img}/file", []byte("data"), []string{"X-Image-Meta-Store", "\xff"}},
		{img, "PUT", "/v2/images/{img}/file", []byte("data"), []string{"X-Image-Meta-Store", "fa\x00st"}},
		{img, "DELETE", "/v2/stores/%00/{img}", nil, nil},
		{img, "POST", "/v2/images/{img}/import", `{"method": {"name": "copy-image"}, "stores": ["\u0000"]}`, nil},

		{vol, "GET", "/v3/{p}/volumes/%00", nil, nil},
		{vol, "GET", "/v3/{p}/volumes/%FF", nil, nil},
		{vol, "GET", "/v3/{p}/volumes?name=%00", nil, nil},
		{vol, "GET", "/v3/{p}/volumes/detail?marker=%FF", nil, nil},
		{vol, "GET", "/v3/{p}/volumes?metadata=%7B%22k%22%3A%22%00%22%7D", nil, nil},
		{vol, "GET", "/v3/{p}/volumes?sort=name%00", nil, nil},
		{vol, "GET", "/v3/{p}/messages?marker=%00", nil, nil},
		{vol, "GET", "/v3/%FF/volumes", nil, nil},
		{vol, "GET", "/v3/{p}/volumes", nil, []string{"OpenStack-API-Version", "volume 3.\xff"}},
		{vol, "POST", "/v3/{p}/volumes", `{"volume": {"size": 1, "name": "\u0000"}}`, nil},
		{vol, "POST", "/v3/{p}/volumes", `{"volume": {"size": 1, "metadata": {"k\u0000": "v"}}}`, nil},
		{vol, "POST", "/v3/{p}/volumes", "{\"volume\": {\"size\": 1, \"name\": \"\xff\"}}", nil},
		{vol, "PUT", "/v3/{p}/volumes/{vol}", `{"volume": {"description": "\u0000"}}`, nil},
		{vol, "POST", "/v3/{p}/volumes/{vol}/metadata", `{"metadata": {"k": "\u0000"}}`, nil},
		{vol, "GET", "/v3/{p}/volumes/{vol}/metadata/%FF", nil, nil},
		{vol, "POST", "/v3/{p}/volumes/{vol}/action", `{"os-volume_upload_image": {"image_name": "\u0000"}}`, nil},
		{vol, "POST", "/v3/{p}/types", `{"volume_type": {"name": "\u0000"}}`, nil},
		{vol, "GET", "/v3/{p}/types/%00", nil, nil},
		{vol, "POST", "/v3/{p}/types/{type}/extra_specs", `{"extra_specs": {"image_service:store_id": "\u0000"}}`, nil},
		{vol, "PUT", "/v3/{p}/types/{type}/extra_specs/%FF", `{"k": "v"}`, nil},

		{id, "POST", "/v3/auth/tokens", `{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin\u0000", "domain": {"id": "default"}, "password": "x"}}}}}`, nil},
		{id, "POST", "/v3/auth/tokens", "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": \"admin\", \"domain\": {\"id\": \"default\"}, \"password\": \"\xff\"}}}}}", nil},
		{id, "GET", "/v3/auth/tokens", nil, []string{"X-Subject-Token", "\xff"}},
		{id, "GET", "/v3/projects/%00", nil, nil},
		{id, "GET", "/v3/projects?name=%FF", nil, nil},
		{id, "GET", "/v3/users?name=%00", nil, nil},
		{id, "GET", "/v3/users?domain_id=%FF", nil, nil},
		{id, "GET", "/v3/role_assignments?user.id=%00", nil, nil},
		{id, "GET", "/v3/endpoints/%FF", nil, nil},
		{id, "POST", "/v3/projects", `{"project": {"name": "\u0000"}}`, nil},
		{id, "PATCH", "/v3/projects/{p}", `{"project": {"description": "\u0000"}}`, nil},
		{id, "POST", "/v3/users", `{"user": {"name": "u", "password": "\u0000"}}`, nil},
		{id, "POST", "/v3/users/{user}/password", `{"user": {"original_password": "\u0000", "password": "x"}}`, nil},
		{id, "PUT", "/v3/projects/{p}/users/{user}/roles/%00", nil, nil},
		{id, "POST", "/v3/roles", `{"role": {"name": "\u0000"}}`, nil},
		{id, "POST", "/v3/endpoints", `{"endpoint": {"service_id": "x", "interface": "public", "url": "http://h\u0000"}}`, nil},
	}
	for _, engine := range dbtest.Engines {
		t.Run(engine, func(t *testing.T) {
			c := newCluster(t, engine)
			for _, tt := range tests {
				t.Run(tt.service+" "+tt.method+" "+tt.path, func(t *testing.T) {
					cl := c.client(tt.service)
					body := tt.body
					if s, ok := body.(string); ok {
						body = c.expand(s)
					}
					r := cl.Do(c.token, tt.method, c.expand(tt.path), body, tt.hdr...)
					if !inDialect(tt.service, http.StatusBadRequest, r) {
						t.Errorf("%d %q: want a 400 in the %s dialect", r.Code, r.Body, tt.service)
					}
				})
			}
		})
	}
}

// A method a path does not take (TRACE) is a 405 with Allow, and a path no
// route takes a 404, in each API's dialect instead of ServeMux's plain
// text. (A TRACE under Cinder's /v3/ meets its catch-all 404, as routes
// answers in Cinder.)
func TestUnknownMethodsInDialect(t *testing.T) {
	c := newCluster(t, "sqlite")
	tests := []struct {
		service, method, path string
		status                int
	}{
		{config.ServiceImage, "TRACE", "/v2/images", 405},
		{config.ServiceImage, "TRACE", "/v2/images/{img}", 405},
		{config.ServiceImage, "TRACE", "/v2/images/{img}/file", 405},
		{config.ServiceImage, "PROPFIND", "/v2/images/{img}/members", 405},
		{config.ServiceImage, "GET", "/v2/nothing", 404},
		{config.ServiceVolume, "TRACE", "/", 405},
		{config.ServiceVolume, "TRACE", "/v3/{p}/volumes", 404},
		{config.ServiceIdentity, "TRACE", "/v3/projects", 405},
		{config.ServiceIdentity, "TRACE", "/v3/auth/tokens", 405},
		{config.ServiceIdentity, "GET", "/v3/nothing", 404},
	}
	for _, tt := range tests {
		t.Run(tt.service+" "+tt.method+" "+tt.path, func(t *testing.T) {
			r := c.client(tt.service).Do(c.token, tt.method, c.expand(tt.path), nil)
			if !inDialect(tt.service, tt.status, r) {
				t.Errorf("%d %q %q: want a %d in the %s dialect", r.Code, r.Header.Get("Content-Type"), r.Body, tt.status, tt.service)
			}
			if tt.status == 405 && r.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}
