package volume

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/schedulerstats"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

func TestVersionsAndMicroversions(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		r := e.Do("", "GET", "/", nil)
		if r.Code != 300 || r.Header.Get("OpenStack-API-Version") != "volume 3.0" {
			t.Fatalf("GET /: %d %v", r.Code, r.Header)
		}
		v := r.JSON(t)["versions"].([]any)[0].(map[string]any)
		if v["id"] != "v3.0" || v["version"] != "3.70" || v["min_version"] != "3.0" {
			t.Errorf("version doc %v", v)
		}
		e.MustJSON(200, e.Do("", "GET", "/v3/", nil))

		tests := []struct {
			header, want string
			code         int
		}{
			{"", "volume 3.0", 200},
			{"volume 3.12", "volume 3.12", 200},
			{"volume latest", "volume 3.70", 200},
			{"compute 2.1", "volume 3.0", 200},
			{"volume 3.71", "", 406},
			{"volume 2.9", "", 406},
			{"volume x", "", 400},
		}
		for _, tt := range tests {
			r := e.Do("member", "GET", "/v3/"+projA+"/types", nil, "OpenStack-API-Version", tt.header)
			if r.Code != tt.code || r.Header.Get("OpenStack-API-Version") != tt.want {
				t.Errorf("%q: %d %q, want %d %q (%s)", tt.header, r.Code, r.Header.Get("OpenStack-API-Version"), tt.code, tt.want, r.Body)
			}
			if tt.code == 200 && r.Header.Get("Vary") != "OpenStack-API-Version" {
				t.Errorf("%q: Vary %q", tt.header, r.Header.Get("Vary"))
			}
			if tt.code == 406 {
				name, msg := errMessage(t, r)
				want := fmt.Sprintf("Version %s is not supported by the API. Minimum is 3.0 and maximum is 3.70.", strings.TrimPrefix(tt.header, "volume "))
				if name != "computeFault" || msg != want {
					t.Errorf("406 body %s", r.Body)
				}
			}
		}
		// Project-less paths act on the token's project; a foreign project id in the URL is refused.
		e.MustJSON(200, e.Do("member", "GET", "/v3/types", nil))
		e.MustJSON(200, e.Do("member", "GET", "/v3/volumes/detail", nil))
		if r := e.Do("member", "GET", "/v3/"+projB+"/volumes", nil); r.Code != 400 {
			t.Errorf("foreign project url: %d", r.Code)
		}
		if r := e.Do("member", "GET", "/v3/admin/volumes", nil); r.Code != 404 {
			t.Errorf("non-hex project: %d", r.Code)
		}
		if r := e.Do("", "GET", "/v3/types", nil); r.Code != 401 {
			t.Errorf("no token: %d", r.Code)
		}
		if r := e.Do("bogus", "GET", "/v3/types", nil); r.Code != 401 {
			t.Errorf("bad token: %d", r.Code)
		}
		if got := e.Do("member", "GET", "/v3/types", nil).Header.Get("X-Compute-Request-Id"); !strings.HasPrefix(got, "req-") {
			t.Errorf("X-Compute-Request-Id %q", got)
		}
	})
}

func TestTypesAndExtraSpecs(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		base := "/v3/" + projA + "/types"
		// The default type exists.
		def := e.MustJSON(200, e.Do("member", "GET", base+"/default", nil))["volume_type"].(map[string]any)
		if def["name"] != "__DEFAULT__" {
			t.Fatalf("default type %v", def)
		}
		created := e.MustJSON(200, e.Do("admin", "POST", base, map[string]any{"volume_type": map[string]any{"name": "gold", "description": "d"}}))["volume_type"].(map[string]any)
		wantKeys(t, "create", created, "description", "extra_specs", "id", "is_public", "name", "os-volume-type-access:is_public")
		id := created["id"].(string)
		checks := []struct {
			name, token, method, path string
			body                      any
			code                      int
			fault, msg                string
		}{
			{"dup", "admin", "POST", base, map[string]any{"volume_type": map[string]any{"name": "gold"}}, 409, "conflictingRequest", "Volume Type gold already exists."},
			{"empty", "admin", "POST", base, map[string]any{"volume_type": map[string]any{"name": ""}}, 400, "badRequest", "Invalid input for field/attribute name. Value: . '' is too short"},
			{"member create", "member", "POST", base, map[string]any{"volume_type": map[string]any{"name": "x"}}, 403, "forbidden", "Policy doesn't allow volume_extension:types_manage to be performed."},
			{"unknown", "admin", "GET", base + "/0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e", nil, 404, "itemNotFound", "Volume type with id 0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e could not be found."},
			{"store unknown", "admin", "POST", base + "/" + id + "/extra_specs", map[string]any{"extra_specs": map[string]any{StoreSpec: "nope"}}, 404, "itemNotFound", "Store nope not enabled in glance."},
			{"store case", "admin", "POST", base + "/" + id + "/extra_specs", map[string]any{"extra_specs": map[string]any{StoreSpec: "FAST"}}, 404, "itemNotFound", "Store FAST not enabled in glance."},
			{"store read-only", "admin", "PUT", base + "/" + id + "/extra_specs/" + StoreSpec, map[string]any{StoreSpec: "web"}, 400, "badRequest", "Store web is read-only in glance."},
			{"store value type", "admin", "POST", base + "/" + id + "/extra_specs", map[string]any{"extra_specs": map[string]any{StoreSpec: 5}}, 400, "badRequest", "Invalid input for field/attribute image_service:store_id. Value: 5. 5 is not of type 'string', 'null'"},
			{"mismatch", "admin", "PUT", base + "/" + id + "/extra_specs/a", map[string]any{"b": "c"}, 400, "badRequest", "Request body and URI mismatch"},
			{"two keys", "admin", "PUT", base + "/" + id + "/extra_specs/a", map[string]any{"a": "b", "c": "d"}, 400, "badRequest", "Invalid input for field/attribute body. Value: {'a': 'b', 'c': 'd'}. {'a': 'b', 'c': 'd'} has too many properties"},
			{"null body", "admin", "PUT", base + "/" + id + "/extra_specs/a", "null", 400, "badRequest", ""},
			{"list body", "admin", "POST", base + "/" + id + "/extra_specs", map[string]any{"extra_specs": []string{"invalid"}}, 400, "badRequest", ""},
			{"member spec", "member", "POST", base + "/" + id + "/extra_specs", map[string]any{"extra_specs": map[string]any{"a": "b"}}, 403, "forbidden", ""},
			{"no key", "admin", "GET", base + "/" + id + "/extra_specs/nokey", nil, 404, "itemNotFound", "Volume Type " + id + " has no extra specs with key nokey."},
			{"type create bad store", "admin", "POST", base, map[string]any{"volume_type": map[string]any{"name": "s", "extra_specs": map[string]any{StoreSpec: "nope"}}}, 404, "itemNotFound", "Store nope not enabled in glance."},
		}
		for _, c := range checks {
			r := e.Do(c.token, c.method, c.path, c.body)
			if r.Code != c.code {
				t.Errorf("%s: %d %s, want %d", c.name, r.Code, r.Body, c.code)
				continue
			}
			fault, msg := errMessage(t, r)
			if fault != c.fault || c.msg != "" && msg != c.msg {
				t.Errorf("%s: %s %q, want %s %q", c.name, fault, msg, c.fault, c.msg)
			}
		}
		// Valid store: echoed; visible to admins only. (multiattach is
		// "<is> True": as in Cinder, "<is> False" would only schedule to a
		// backend that cannot multiattach, and the file backend can.)
		got := e.MustJSON(200, e.Do("admin", "POST", base+"/"+id+"/extra_specs", map[string]any{"extra_specs": map[string]any{StoreSpec: "cheap", "multiattach": "<is> True"}}))
		if got["extra_specs"].(map[string]any)[StoreSpec] != "cheap" {
			t.Errorf("echo %v", got)
		}
		e.MustJSON(200, e.Do("admin", "PUT", base+"/"+id+"/extra_specs/"+StoreSpec, map[string]any{StoreSpec: "fast"}))
		adminView := e.MustJSON(200, e.Do("admin", "GET", base+"/"+id, nil))["volume_type"].(map[string]any)
		wantKeys(t, "admin show", adminView, "description", "extra_specs", "id", "is_public", "name", "os-volume-type-access:is_public", "qos_specs_id")
		if adminView["extra_specs"].(map[string]any)[StoreSpec] != "fast" {
			t.Errorf("admin show %v", adminView)
		}
		memberSpecs := e.MustJSON(200, e.Do("member", "GET", base+"/"+id+"/extra_specs", nil))["extra_specs"].(map[string]any)
		if _, ok := memberSpecs[StoreSpec]; ok || memberSpecs["multiattach"] != "<is> True" {
			t.Errorf("member sees %v", memberSpecs)
		}
		// Update: the update schema has no os-volume-type-access:is_public.
		upd := e.MustJSON(200, e.Do("admin", "PUT", base+"/"+id, map[string]any{"volume_type": map[string]any{"description": "new"}}))["volume_type"].(map[string]any)
		wantKeys(t, "update", upd, "description", "extra_specs", "id", "is_public", "name")
		// In use: specs are frozen and the type cannot be deleted.
		e.createVolume("member", projA, map[string]any{"volume_type": "gold"}, "available")
		for _, r := range []apitest.Resp{
			e.Do("admin", "PUT", base+"/"+id+"/extra_specs/"+StoreSpec, map[string]any{StoreSpec: "cheap"}),
			e.Do("admin", "DELETE", base+"/"+id+"/extra_specs/"+StoreSpec, nil),
		} {
			if _, msg := errMessage(t, r); r.Code != 400 || msg != "Volume Type is currently in use." {
				t.Errorf("in use: %d %s", r.Code, r.Body)
			}
		}
		if r := e.Do("admin", "DELETE", base+"/"+id, nil); r.Code != 400 {
			t.Errorf("delete in-use type: %d", r.Code)
		}
		// Delete an unused type, then its spec is gone.
		other := e.createType("tmp", map[string]string{"a": "b"})
		e.MustJSON(202, e.Do("admin", "DELETE", base+"/"+other+"/extra_specs/a", nil))
		if r := e.Do("admin", "DELETE", base+"/"+other+"/extra_specs/a", nil); r.Code != 404 {
			t.Errorf("second spec delete %d", r.Code)
		}
		e.MustJSON(202, e.Do("admin", "DELETE", base+"/"+other, nil))
		if r := e.Do("admin", "DELETE", base+"/"+other, nil); r.Code != 404 {
			t.Errorf("second type delete %d", r.Code)
		}
		// Private type: invisible and unusable for projects without access.
		priv := e.MustJSON(200, e.Do("admin", "POST", base, map[string]any{"volume_type": map[string]any{"name": "priv", "os-volume-type-access:is_public": false}}))["volume_type"].(map[string]any)["id"].(string)
		if r := e.Do("memberB", "POST", "/v3/"+projB+"/volumes", map[string]any{"volume": map[string]any{"size": 1, "volume_type": priv}}); r.Code != 404 {
			t.Errorf("private type by other project: %d %s", r.Code, r.Body)
		}
		e.MustJSON(202, e.Do("admin", "POST", base+"/"+priv+"/action", map[string]any{"addProjectAccess": map[string]any{"project": projB}}))
		acc := e.MustJSON(200, e.Do("admin", "GET", base+"/"+priv+"/os-volume-type-access", nil))["volume_type_access"].([]any)
		if len(acc) != 1 {
			t.Errorf("access %v", acc)
		}
		e.MustJSON(200, e.Do("memberB", "GET", "/v3/"+projB+"/types/"+priv, nil))
		names := func(token, project, query string) map[string]bool {
			out := map[string]bool{}
			for _, ty := range e.MustJSON(200, e.Do(token, "GET", "/v3/"+project+"/types"+query, nil))["volume_types"].([]any) {
				out[ty.(map[string]any)["name"].(string)] = true
			}
			return out
		}
		if !names("memberB", projB, "")["priv"] || names("member", projA, "")["priv"] || names("admin", projA, "")["priv"] {
			t.Errorf("private type visibility in lists")
		}
		if got := names("admin", projA, "?is_public=false"); !got["priv"] || got["gold"] {
			t.Errorf("admin is_public=false: %v", got)
		}
		if got := names("admin", projA, "?is_public=none"); !got["priv"] || !got["gold"] {
			t.Errorf("admin is_public=none: %v", got)
		}
	})
}

// wantKeys fails unless m has exactly keys (response schemas forbid extras).
func wantKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(keys)
	if strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Errorf("%s keys:\n got %v\nwant %v", what, got, keys)
	}
}

// An unscoped token (no project) on the project-less URLs of 3.67 is
// refused as Cinder refuses it, by the action's policy (403), or not found
// for one volume; it is never redirected (it was a 307 to the same URL: a
// loop). On a project URL it is Cinder's "Malformed request url".
func TestUnscopedTokenOnProjectlessURLs(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		id := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		for _, c := range []struct {
			method, path string
			body         any
			code         int
			msg          string
		}{
			{"GET", "/v3/volumes", nil, 403, "Policy doesn't allow volume:get_all to be performed."},
			{"GET", "/v3/volumes/detail", nil, 403, "Policy doesn't allow volume:get_all to be performed."},
			{"POST", "/v3/volumes", map[string]any{"volume": map[string]any{"size": 1}}, 403, "Policy doesn't allow volume:create to be performed."},
			{"GET", "/v3/volumes/" + id, nil, 404, "Volume " + id + " could not be found."},
			{"GET", "/v3/types", nil, 403, "Policy doesn't allow volume_extension:type_get_all to be performed."},
			{"GET", "/v3/os-availability-zone", nil, 403, "Policy doesn't allow volume_extension:availability_zone_list to be performed."},
			{"GET", "/v3/" + projA + "/volumes", nil, 400, "Malformed request url"},
		} {
			r := e.Do("unscoped", c.method, c.path, c.body, "OpenStack-API-Version", "volume 3.67")
			if r.Code != c.code {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.Code, r.Body, c.code)
			} else if _, msg := errMessage(t, r); msg != c.msg {
				t.Errorf("%s %s: message %q, want %q", c.method, c.path, msg, c.msg)
			}
		}
	})
}

// TestPolicyMatrix checks role x operation x own/other project. Expected
// codes: readers read, members write their project's volumes, admins do
// everything; other projects' volumes are not found for non-admins.
func TestPolicyMatrix(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		typeID := e.createType("matrix", nil)
		// One volume per project; operations that consume it get a fresh one.
		fresh := func(project string) string {
			token := "member"
			if project == projB {
				token = "memberB"
			}
			return e.createVolume(token, project, map[string]any{}, "available")["id"].(string)
		}
		type op struct {
			name   string
			method string
			path   string // %v is replaced by the volume id, %t by the type id
			body   any
			// consumes: the op changes the volume so each run needs a fresh one.
			consumes bool
		}
		ops := []op{
			{"show", "GET", "/volumes/%v", nil, false},
			{"update", "PUT", "/volumes/%v", map[string]any{"volume": map[string]any{"name": "n"}}, false},
			{"metadata", "POST", "/volumes/%v/metadata", map[string]any{"metadata": map[string]any{"a": "b"}}, false},
			{"bootable", "POST", "/volumes/%v/action", map[string]any{"os-set_bootable": map[string]any{"bootable": true}}, false},
			{"reset", "POST", "/volumes/%v/action", map[string]any{"os-reset_status": map[string]any{"status": "available"}}, false},
			{"delete", "DELETE", "/volumes/%v", nil, true},
			{"type create", "POST", "/types", map[string]any{"volume_type": map[string]any{"name": "n-%r"}}, false},
			{"type show", "GET", "/types/%t", nil, false},
			{"spec set", "POST", "/types/%t/extra_specs", map[string]any{"extra_specs": map[string]any{"k": "v"}}, false},
			{"spec list", "GET", "/types/%t/extra_specs", nil, false},
		}
		// want[op][token] for own-project volumes (admin row: admin of projA).
		want := map[string]map[string]int{
			"show":        {"admin": 200, "member": 200, "reader": 200, "memberB": 404, "adminB": 200},
			"update":      {"admin": 200, "member": 200, "reader": 403, "memberB": 404, "adminB": 200},
			"metadata":    {"admin": 200, "member": 200, "reader": 403, "memberB": 404, "adminB": 200},
			"bootable":    {"admin": 200, "member": 200, "reader": 403, "memberB": 404, "adminB": 200},
			"reset":       {"admin": 202, "member": 403, "reader": 403, "memberB": 404, "adminB": 202},
			"delete":      {"admin": 202, "member": 202, "reader": 403, "memberB": 404, "adminB": 202},
			"type create": {"admin": 200, "member": 403, "reader": 403, "memberB": 403, "adminB": 200},
			"type show":   {"admin": 200, "member": 200, "reader": 200, "memberB": 200, "adminB": 200},
			"spec set":    {"admin": 200, "member": 403, "reader": 403, "memberB": 403, "adminB": 200},
			"spec list":   {"admin": 200, "member": 200, "reader": 200, "memberB": 200, "adminB": 200},
		}
		shared := fresh(projA)
		projectOf := map[string]string{"admin": projA, "member": projA, "reader": projA, "memberB": projB, "adminB": projB}
		n := 0
		for _, o := range ops {
			for _, token := range []string{"admin", "member", "reader", "memberB", "adminB"} {
				vol := shared
				if o.consumes {
					vol = fresh(projA)
				}
				n++
				path := "/v3/" + projectOf[token] + replaceAll(o.path, map[string]string{"%v": vol, "%t": typeID})
				body := o.body
				if o.name == "type create" {
					body = map[string]any{"volume_type": map[string]any{"name": "n-" + token}}
				}
				r := e.Do(token, o.method, path, body)
				if r.Code != want[o.name][token] {
					t.Errorf("%s as %s: %d, want %d (%s)", o.name, token, r.Code, want[o.name][token], r.Body)
				}
			}
		}
		// Lists only show the caller's project: projA keeps the shared volume and
		// the two the reader and memberB failed to delete.
		fresh(projB)
		for token, wantN := range map[string]int{"member": 3, "reader": 3, "memberB": 1} {
			got := e.MustJSON(200, e.Do(token, "GET", "/v3/volumes", nil))["volumes"].([]any)
			if len(got) != wantN {
				t.Errorf("%s lists %d volumes, want %d", token, len(got), wantN)
			}
		}
		if n == 0 {
			t.Fatal("no checks ran")
		}
	})
}

func replaceAll(s string, m map[string]string) string {
	for k, v := range m {
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

// get_pools reports capabilities with Cinder's JSON types (issue 17):
// numbers as numbers and booleans as booleans, so gophercloud's typed
// StoragePool decodes them, and the file backend can multiattach.
func TestGetPoolsTypedCapabilities(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.createVolume("member", projA, map[string]any{"size": 2}, "available")
		r := e.Must(200, e.Do("admin", "GET", "/v3/"+projA+"/scheduler-stats/get_pools?detail=true", nil))

		var raw struct {
			Pools []struct {
				Capabilities map[string]any `json:"capabilities"`
			} `json:"pools"`
		}
		if err := json.Unmarshal(r.Body, &raw); err != nil || len(raw.Pools) != 1 {
			t.Fatalf("pools %s: %v", r.Body, err)
		}
		caps := raw.Pools[0].Capabilities
		for _, k := range []string{"multiattach", "thin_provisioning_support", "thick_provisioning_support", "QoS_support"} {
			if _, ok := caps[k].(bool); !ok {
				t.Errorf("%s = %#v, want a boolean", k, caps[k])
			}
		}
		for _, k := range []string{"total_capacity_gb", "free_capacity_gb", "provisioned_capacity_gb", "reserved_percentage"} {
			if _, ok := caps[k].(float64); !ok {
				t.Errorf("%s = %#v, want a number", k, caps[k])
			}
		}

		var pools struct {
			Pools []schedulerstats.StoragePool `json:"pools"`
		}
		if err := json.Unmarshal(r.Body, &pools); err != nil {
			t.Fatalf("gophercloud cannot decode get_pools: %v\n%s", err, r.Body)
		}
		c := pools.Pools[0].Capabilities
		if !c.Multiattach || !c.ThinProvisioningSupport || c.ThickProvisioningSupport || c.ProvisionedCapacityGB != 2 ||
			c.TotalCapacityGB <= 0 || c.StorageProtocol != "file" || c.VendorName != "Ashlar" || c.VolumeBackendName != "local" {
			t.Errorf("decoded capabilities %+v", c)
		}
	})
}
