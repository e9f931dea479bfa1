package image

import (
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

func TestVersionsAndInfo(t *testing.T) {
	e := newEnv(t, dbtest.Open(t, "sqlite"), "")
	r := e.Must(300, e.Do("", "GET", "/", nil))
	vs := r.JSON(t)["versions"].([]any)
	if vs[0].(map[string]any)["status"] != "CURRENT" || !strings.Contains(string(r.Body), `"v2.12"`) {
		t.Errorf("versions: %s", r.Body)
	}
	e.Must(200, e.Do("", "GET", "/versions", nil))
	e.Must(401, e.Do("", "GET", "/v2/images", nil))

	got := string(e.Must(200, e.Do("reader", "GET", "/v2/info/stores", nil)).Body)
	want := `{"stores":[{"id":"fast","description":"Fast store","default":"true"},{"id":"cheap","description":"Cheap store"},{"id":"reliable"},{"id":"flaky"},{"id":"web","description":"Read-only store","read-only":"true"}]}`
	if got != want {
		t.Errorf("stores info\n got %s\nwant %s", got, want)
	}
	e.Must(403, e.Do("alice", "GET", "/v2/info/stores/detail", nil))
	d := e.Must(200, e.Do("admin", "GET", "/v2/info/stores/detail", nil)).JSON(t)
	first := d["stores"].([]any)[0].(map[string]any)
	if first["type"] != "file" || first["properties"] == nil {
		t.Errorf("detail: %v", first)
	}
	imp := e.Must(200, e.Do("alice", "GET", "/v2/info/import", nil)).JSON(t)
	if v := imp["import-methods"].(map[string]any)["value"].([]any); len(v) != 3 {
		t.Errorf("import info: %v", imp)
	}
	e.Must(200, e.Do("alice", "GET", "/v2/info/usage", nil))
	for _, s := range []string{"image", "images", "member", "members", "task", "tasks"} {
		e.Must(200, e.Do("alice", "GET", "/v2/schemas/"+s, nil))
	}
}

func TestCreateShowPolicy(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		r := e.Must(201, e.Do("alice", "POST", "/v2/images", `{"name":"t1","disk_format":"raw","container_format":"bare","foo":"bar","tags":["a"]}`))
		im := r.JSON(t)
		if im["visibility"] != "shared" || im["foo"] != "bar" || im["status"] != "queued" || im["owner"] != "p1" || im["size"] != nil {
			t.Errorf("created: %s", r.Body)
		}
		if _, ok := im["stores"]; ok {
			t.Errorf("stores present before data: %s", r.Body)
		}
		if r.Header.Get("OpenStack-image-store-ids") != "fast,cheap,reliable,flaky,web" || r.Header.Get("OpenStack-image-import-methods") != "glance-direct,web-download,copy-image" {
			t.Errorf("headers: %v", r.Header)
		}
		if !strings.HasPrefix(string(r.Body), `{"foo":"bar","name":"t1"`) {
			t.Errorf("custom properties should come first: %s", r.Body)
		}
		id := im["id"].(string)
		for _, c := range []struct {
			body string
			code int
			msg  string
		}{
			{`{"status":"active"}`, 403, "Attribute 'status' is read-only."},
			{`{"stores":"fast"}`, 403, "Attribute 'stores' is read-only."},
			{`{"locations":[]}`, 403, "Attribute 'locations' is reserved."},
			{`{"os_glance_foo":"y"}`, 403, "Attribute 'os_glance_foo' is reserved."},
			{`{"disk_format":"foo"}`, 400, "is not one of"},
			{`{"id":"not-a-uuid"}`, 400, "does not match"},
			{`{"id":"` + id + `"}`, 409, "already exists"},
			{`{"name": "bad"`, 400, "Malformed JSON"},
			{`[]`, 400, "Malformed JSON"},
			{`{"foo": 5}`, 400, "is not of type 'string'"},
			{`{"visibility":"public"}`, 403, "publicize_image"},
		} {
			r := e.Do("alice", "POST", "/v2/images", c.body)
			if r.Code != c.code || !strings.Contains(string(r.Body), c.msg) {
				t.Errorf("create %s: %d %s, want %d %q", c.body, r.Code, r.Body, c.code, c.msg)
			}
		}
		e.Must(403, e.Do("reader", "POST", "/v2/images", `{"name":"x"}`))
		e.Must(200, e.Do("reader", "GET", "/v2/images/"+id, nil))
		// Another project's shared (not shared with it) image is invisible.
		e.Must(404, e.Do("bob", "GET", "/v2/images/"+id, nil))
		e.Must(200, e.Do("admin", "GET", "/v2/images/"+id, nil))
		e.Must(404, e.Do("bob", "DELETE", "/v2/images/"+id, nil))
		e.Must(403, e.Do("reader", "DELETE", "/v2/images/"+id, nil))

		pub := e.create("admin", `{"name":"pub","visibility":"public"}`)
		e.Must(200, e.Do("bob", "GET", "/v2/images/"+pub, nil))
		e.Must(403, e.Do("bob", "PATCH", "/v2/images/"+pub, `[]`, "Content-Type", patchV21))
	})
}

func TestPatchTagsDelete(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		id := e.create("alice", `{"name":"p","foo":"bar"}`)
		patch := func(body string) apitest.Resp {
			return e.Do("alice", "PATCH", "/v2/images/"+id, body, "Content-Type", patchV21)
		}
		e.Must(415, e.Do("alice", "PATCH", "/v2/images/"+id, `[]`))
		im := e.Must(200, patch(`[{"op":"replace","path":"/name","value":"q"},{"op":"add","path":"/baz","value":"1"},
			{"op":"remove","path":"/foo"},{"op":"replace","path":"/min_ram","value":512},{"op":"replace","path":"/protected","value":true}]`)).JSON(t)
		if im["name"] != "q" || im["baz"] != "1" || im["foo"] != nil || im["min_ram"] != float64(512) || im["protected"] != true {
			t.Errorf("patched: %v", im)
		}
		e.Must(409, patch(`[{"op":"replace","path":"/stores","value":"x"}]`))
		e.Must(409, patch(`[{"op":"replace","path":"/nosuch","value":"x"}]`))
		e.Must(403, patch(`[{"op":"replace","path":"/status","value":"active"}]`))
		e.Must(403, patch(`[{"op":"add","path":"/os_glance_x","value":"x"}]`))
		e.Must(400, patch(`[{"op":"move","path":"/name"}]`))
		// draft 4 (v2.0 content type), as tempest sends it
		im = e.Must(200, e.Do("alice", "PATCH", "/v2/images/"+id, `[{"replace":"/name","value":"d4"},{"add":"/x","value":"y"}]`, "Content-Type", patchV20)).JSON(t)
		if im["name"] != "d4" || im["x"] != "y" {
			t.Errorf("draft 4 patch: %v", im)
		}
		e.Must(400, e.Do("alice", "PATCH", "/v2/images/"+id, `[{"op":"replace","path":"/name","value":"d4"}]`, "Content-Type", patchV20))
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/tags/t1", nil))
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/tags/t1", nil))
		if tags := e.image(id)["tags"].([]any); len(tags) != 1 || tags[0] != "t1" {
			t.Errorf("tags %v", tags)
		}
		e.Must(204, e.Do("alice", "DELETE", "/v2/images/"+id+"/tags/t1", nil))
		e.Must(404, e.Do("alice", "DELETE", "/v2/images/"+id+"/tags/t1", nil))
		e.Must(403, e.Do("alice", "DELETE", "/v2/images/"+id, nil))
		e.Must(200, patch(`[{"op":"replace","path":"/protected","value":false}]`))
		e.Must(204, e.Do("alice", "DELETE", "/v2/images/"+id, nil))
		r := e.Must(404, e.Do("alice", "DELETE", "/v2/images/"+id, nil))
		if !strings.Contains(string(r.Body), "Failed to find image") {
			t.Errorf("second delete: %s", r.Body)
		}
	})
}

func TestListPaging(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		var ids []string
		for i := range 7 {
			ids = append(ids, e.create("alice", `{"name":"img`+string(rune('a'+i))+`","disk_format":"raw","container_format":"bare"}`))
		}
		e.create("bob", `{"name":"bobs"}`)
		e.create("admin", `{"name":"hidden","os_hidden":true,"visibility":"public"}`)
		// Walk the default order (created_at desc) with next links.
		var seen []string
		next := "/v2/images?limit=3"
		for next != "" {
			m := e.Must(200, e.Do("alice", "GET", next, nil)).JSON(t)
			for _, im := range m["images"].([]any) {
				seen = append(seen, im.(map[string]any)["id"].(string))
			}
			next, _ = m["next"].(string)
		}
		if len(seen) != 7 {
			t.Fatalf("paged %d images, want 7: %v", len(seen), seen)
		}
		for i := range seen {
			if seen[i] != ids[6-i] {
				t.Errorf("order %d: %s, want %s", i, seen[i], ids[6-i])
			}
		}
		m := e.Must(200, e.Do("alice", "GET", "/v2/images?sort=name:asc&limit=2&marker="+ids[1], nil)).JSON(t)
		if got := m["images"].([]any); len(got) != 2 || got[0].(map[string]any)["name"] != "imgc" {
			t.Errorf("sorted page: %v", got)
		}
		if m["first"] != "/v2/images?limit=2&sort=name%3Aasc" {
			t.Errorf("first = %v", m["first"])
		}
		for q, n := range map[string]int{"name=imgb": 1, "visibility=public": 0, "os_hidden=true": 1, "status=queued": 7} {
			if got := len(e.Must(200, e.Do("alice", "GET", "/v2/images?"+q, nil)).JSON(t)["images"].([]any)); got != n {
				t.Errorf("%s: %d images, want %d", q, got, n)
			}
		}
		if got := len(e.Must(200, e.Do("admin", "GET", "/v2/images", nil)).JSON(t)["images"].([]any)); got != 8 {
			t.Errorf("admin sees %d, want 8", got)
		}
		// Keyset paging over ties and NULLs of a non-unique sort key.
		for range 3 {
			e.create("alice", `{"name":"dup"}`)
		}
		e.create("alice", `{}`)
		got := map[string]bool{}
		next = "/v2/images?sort=name:asc,size:desc&limit=2"
		for next != "" {
			m := e.Must(200, e.Do("alice", "GET", next, nil)).JSON(t)
			for _, im := range m["images"].([]any) {
				id := im.(map[string]any)["id"].(string)
				if got[id] {
					t.Errorf("image %s listed twice", id)
				}
				got[id] = true
			}
			next, _ = m["next"].(string)
		}
		if len(got) != 11 {
			t.Errorf("paged %d images by name, want 11", len(got))
		}
		e.Must(400, e.Do("alice", "GET", "/v2/images?limit=-1", nil))
		e.Must(400, e.Do("alice", "GET", "/v2/images?marker=00000000-0000-0000-0000-000000000000", nil))
		r := e.Must(400, e.Do("alice", "GET", "/v2/images?sort=bogus:asc", nil))
		if !strings.Contains(string(r.Body), "Invalid sort key: bogus") {
			t.Errorf("sort error: %s", r.Body)
		}
	})
}

func TestMembers(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		id := e.create("alice", `{"name":"shared"}`)
		e.Must(404, e.Do("bob", "GET", "/v2/images/"+id, nil))
		m := e.Must(200, e.Do("alice", "POST", "/v2/images/"+id+"/members", `{"member":"p2"}`)).JSON(t)
		if m["status"] != "pending" || m["member_id"] != "p2" {
			t.Errorf("member: %v", m)
		}
		e.Must(409, e.Do("alice", "POST", "/v2/images/"+id+"/members", `{"member":"p2"}`))
		e.Must(200, e.Do("bob", "GET", "/v2/images/"+id, nil))
		if n := len(e.Must(200, e.Do("bob", "GET", "/v2/images", nil)).JSON(t)["images"].([]any)); n != 0 {
			t.Errorf("pending shared image listed: %d", n)
		}
		e.Must(403, e.Do("alice", "PUT", "/v2/images/"+id+"/members/p2", `{"status":"accepted"}`))
		e.Must(200, e.Do("bob", "PUT", "/v2/images/"+id+"/members/p2", `{"status":"accepted"}`))
		if n := len(e.Must(200, e.Do("bob", "GET", "/v2/images", nil)).JSON(t)["images"].([]any)); n != 1 {
			t.Errorf("accepted shared image not listed: %d", n)
		}
		ms := e.Must(200, e.Do("alice", "GET", "/v2/images/"+id+"/members", nil)).JSON(t)["members"].([]any)
		if len(ms) != 1 {
			t.Errorf("members: %v", ms)
		}
		e.Must(403, e.Do("bob", "DELETE", "/v2/images/"+id+"/members/p2", nil))
		e.Must(204, e.Do("alice", "DELETE", "/v2/images/"+id+"/members/p2", nil))
		e.Must(404, e.Do("bob", "GET", "/v2/images/"+id, nil))
		priv := e.create("alice", `{"name":"priv","visibility":"private"}`)
		e.Must(403, e.Do("alice", "POST", "/v2/images/"+priv+"/members", `{"member":"p2"}`))
	})
}

func TestLongPropertyValue(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		long := strings.Repeat("v", 60000)
		id := e.create("alice", `{"name":"long","description":"`+long+`"}`)
		if got := e.image(id)["description"]; got != long {
			t.Errorf("description of %d bytes came back as %d", len(long), len(got.(string)))
		}
	})
}
