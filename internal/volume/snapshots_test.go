package volume

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// snapshotKeys30 are tempest's common_snapshot_schema (create, update and
// the list without detail; additionalProperties false, all required);
// snapshotShowKeys30 its common_snapshot_detail_schema (show, detail list).
var (
	snapshotKeys30     = []string{"created_at", "description", "id", "metadata", "name", "size", "status", "updated_at", "volume_id"}
	snapshotShowKeys30 = append(append([]string{}, snapshotKeys30...),
		"os-extended-snapshot-attributes:progress", "os-extended-snapshot-attributes:project_id")
)

// snapBase is the snapshots collection of project.
func snapBase(project string) string { return "/v3/" + project + "/snapshots" }

// createSnapshot creates a snapshot of volume as token and waits for
// status want ("" for no wait); it returns the snapshot as last shown.
func (e *env) createSnapshot(token, project, volume string, fields map[string]any, want string, hdr ...string) map[string]any {
	e.t.Helper()
	if fields == nil {
		fields = map[string]any{}
	}
	fields["volume_id"] = volume
	m := e.MustJSON(202, e.Do(token, "POST", snapBase(project), map[string]any{"snapshot": fields}, hdr...))
	sn := m["snapshot"].(map[string]any)
	if want == "" {
		return sn
	}
	return e.waitSnapshot(token, project, sn["id"].(string), want)
}

// waitSnapshot waits for a snapshot's status want ("gone": 404).
func (e *env) waitSnapshot(token, project, id, want string) map[string]any {
	e.t.Helper()
	var last apitest.Resp
	var sn map[string]any
	apitest.Eventually(e.t, 60*time.Second, func() bool {
		last = e.Do(token, "GET", snapBase(project)+"/"+id, nil)
		if want == "gone" {
			return last.Code == 404
		}
		if last.Code != 200 {
			return false
		}
		sn, _ = last.JSON(e.t)["snapshot"].(map[string]any)
		return sn["status"] == want
	}, func() string {
		return fmt.Sprintf("snapshot %s: %d %s, want status %s", id, last.Code, last.Body, want)
	})
	return sn
}

// wantError fails unless r is the Cinder error code with message msg.
func wantError(t *testing.T, what string, r apitest.Resp, code int, msg string) {
	t.Helper()
	if _, got := errMessage(t, r); r.Code != code || got != msg {
		t.Errorf("%s: %d %s\nwant %d %q", what, r.Code, r.Body, code, msg)
	}
}

func TestSnapshotLifecycle(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{"size": 2}, "available")["id"].(string)
		created := e.createSnapshot("member", projA, vol, map[string]any{"display_name": " s1 ", "description": "d",
			"metadata": map[string]any{"k1": "v1"}}, "")
		wantKeys(t, "create", created, snapshotKeys30...)
		if created["status"] != "creating" || created["name"] != "s1" || created["size"] != float64(2) || created["volume_id"] != vol {
			t.Errorf("created %v", created)
		}
		id := created["id"].(string)
		sn := e.waitSnapshot("member", projA, id, "available")
		wantKeys(t, "show", sn, snapshotShowKeys30...)
		if sn["os-extended-snapshot-attributes:progress"] != "100%" || sn["os-extended-snapshot-attributes:project_id"] != projA ||
			sn["metadata"].(map[string]any)["k1"] != "v1" {
			t.Errorf("show %v", sn)
		}
		for _, tc := range []struct {
			path string
			keys []string
		}{{"", snapshotKeys30}, {"/detail", snapshotShowKeys30}} {
			m := e.MustJSON(200, e.Do("reader", "GET", snapBase(projA)+tc.path, nil))
			wantKeys(t, "list"+tc.path+" body", m, "snapshots")
			list := m["snapshots"].([]any)
			if len(list) != 1 {
				t.Fatalf("list%s: %v", tc.path, list)
			}
			wantKeys(t, "list"+tc.path, list[0].(map[string]any), tc.keys...)
		}

		// Update: name wins over display_name, description over
		// display_description, both stripped.
		upd := e.MustJSON(200, e.Do("member", "PUT", snapBase(projA)+"/"+id, map[string]any{"snapshot": map[string]any{
			"display_name": "x", "name": " s2", "display_description": "y", "description": "d2 "}}))["snapshot"].(map[string]any)
		wantKeys(t, "update", upd, snapshotKeys30...)
		if upd["name"] != "s2" || upd["description"] != "d2" || upd["updated_at"] == nil {
			t.Errorf("update %v", upd)
		}
		if sn := e.waitSnapshot("member", projA, id, "available"); sn["name"] != "s2" || sn["description"] != "d2" {
			t.Errorf("after update %v", sn)
		}
		for name, body := range map[string]any{
			"empty":      map[string]any{"snapshot": map[string]any{}},
			"unexpected": map[string]any{"snapshot": map[string]any{"name": "n", "size": 3}},
			"too long":   map[string]any{"snapshot": map[string]any{"name": strings.Repeat("n", 256)}},
			"no entity":  map[string]any{"name": "n"},
		} {
			if r := e.Do("member", "PUT", snapBase(projA)+"/"+id, body); r.Code != 400 {
				t.Errorf("update %s: %d %s", name, r.Code, r.Body)
			}
		}

		// Create refusals.
		bad := func(what string, body any, code int, msg string) {
			t.Helper()
			wantError(t, what, e.Do("member", "POST", snapBase(projA), body), code, msg)
		}
		unknown := "0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e"
		bad("unknown volume", map[string]any{"snapshot": map[string]any{"volume_id": unknown}}, 404, "Volume "+unknown+" could not be found.")
		bad("null volume", map[string]any{"snapshot": map[string]any{"volume_id": nil, "display_name": "n"}}, 404, "Volume None could not be found.")
		bad("no volume_id", map[string]any{"snapshot": map[string]any{"name": "n"}}, 400,
			"Invalid input for field/attribute snapshot. Value: {'name': 'n'}. 'volume_id' is a required property")
		bad("bad volume_id", map[string]any{"snapshot": map[string]any{"volume_id": "xyz"}}, 400,
			"Invalid input for field/attribute volume_id. Value: xyz. 'xyz' is not valid under any of the given schemas")
		bad("extra", map[string]any{"snapshot": map[string]any{"volume_id": vol, "size": 1}}, 400,
			"Invalid input for field/attribute snapshot. Value: {'size': 1, 'volume_id': '"+vol+"'}. Additional properties are not allowed ('size' was unexpected)")
		bad("force", map[string]any{"snapshot": map[string]any{"volume_id": vol, "force": "maybe"}}, 400,
			"Invalid input for field/attribute force. Value: maybe. 'maybe' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f']")
		if r := e.Do("memberB", "POST", snapBase(projB), map[string]any{"snapshot": map[string]any{"volume_id": vol}}); r.Code != 404 {
			t.Errorf("snapshot of another project's volume: %d", r.Code)
		}
		if r := e.Do("reader", "POST", snapBase(projA), map[string]any{"snapshot": map[string]any{"volume_id": vol}}); r.Code != 403 {
			t.Errorf("reader creates a snapshot: %d", r.Code)
		}

		// An in-use volume needs force before 3.66; from 3.66 force=false
		// is refused and force is not needed.
		e.MustJSON(202, e.Do("admin", "POST", "/v3/"+projA+"/volumes/"+vol+"/action", map[string]any{"os-reset_status": map[string]any{"status": "in-use"}}))
		bad("in-use", map[string]any{"snapshot": map[string]any{"volume_id": vol}}, 400,
			"Invalid volume: Volume "+vol+" status must be available, but current status is: in-use.")
		forced := e.createSnapshot("member", projA, vol, map[string]any{"force": true}, "available")
		e.createSnapshot("member", projA, vol, nil, "available", "OpenStack-API-Version", "volume 3.66")
		wantError(t, "force=false at 3.66", e.Do("member", "POST", snapBase(projA),
			map[string]any{"snapshot": map[string]any{"volume_id": vol, "force": false}}, "OpenStack-API-Version", "volume 3.66"),
			400, snapshotInUseFlag)
		e.MustJSON(202, e.Do("admin", "POST", "/v3/"+projA+"/volumes/"+vol+"/action", map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		bad("error volume", map[string]any{"snapshot": map[string]any{"volume_id": vol, "force": true}}, 400,
			"Invalid volume: The snapshot cannot be created when the volume is in error status.")
		e.MustJSON(202, e.Do("admin", "POST", "/v3/"+projA+"/volumes/"+vol+"/action", map[string]any{"os-reset_status": map[string]any{"status": "available"}}))

		// Delete.
		e.Must(202, e.Do("member", "DELETE", snapBase(projA)+"/"+forced["id"].(string), nil))
		e.waitSnapshot("member", projA, forced["id"].(string), "gone")
		e.MustJSON(202, e.Do("admin", "POST", snapBase(projA)+"/"+id+"/action", map[string]any{"os-reset_status": map[string]any{"status": "creating"}}))
		wantError(t, "delete creating", e.Do("member", "DELETE", snapBase(projA)+"/"+id, nil), 400,
			"Invalid snapshot: Snapshot status must be available or error and must not be part of a group.")
		e.MustJSON(202, e.Do("admin", "POST", snapBase(projA)+"/"+id+"/action", map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		e.Must(202, e.Do("member", "DELETE", snapBase(projA)+"/"+id, nil))
		e.waitSnapshot("member", projA, id, "gone")
		wantError(t, "show deleted", e.Do("member", "GET", snapBase(projA)+"/"+id, nil), 404, "Snapshot "+id+" could not be found.")
	})
}

// TestSnapshotMetadata: every form of the metadata API, with Cinder's
// checks (check_metadata_properties: 413 beyond 255 characters).
func TestSnapshotMetadata(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		id := e.createSnapshot("member", projA, vol, map[string]any{"metadata": map[string]any{"a": "1"}}, "available")["id"].(string)
		md := snapBase(projA) + "/" + id + "/metadata"
		got := func(r apitest.Resp, member string) map[string]any {
			t.Helper()
			m := e.MustJSON(200, r)
			wantKeys(t, member, m, member)
			return m[member].(map[string]any)
		}
		if m := got(e.Do("member", "POST", md, map[string]any{"metadata": map[string]any{"b": "2"}}), "metadata"); len(m) != 2 || m["a"] != "1" || m["b"] != "2" {
			t.Errorf("merge: %v", m)
		}
		if m := got(e.Do("member", "PUT", md, map[string]any{"metadata": map[string]any{"c": "3"}}), "metadata"); len(m) != 1 || m["c"] != "3" {
			t.Errorf("replace: %v", m)
		}
		if m := got(e.Do("member", "PUT", md+"/c", map[string]any{"meta": map[string]any{"c": "4"}}), "meta"); len(m) != 1 || m["c"] != "4" {
			t.Errorf("item update: %v", m)
		}
		if m := got(e.Do("reader", "GET", md+"/c", nil), "meta"); m["c"] != "4" {
			t.Errorf("item show: %v", m)
		}
		e.Must(200, e.Do("member", "DELETE", md+"/c", nil))
		if m := got(e.Do("reader", "GET", md, nil), "metadata"); len(m) != 0 {
			t.Errorf("after delete: %v", m)
		}
		for _, tc := range []struct {
			what, method, path string
			body               any
			code               int
			msg                string
		}{
			{"item missing", "GET", md + "/nokey", nil, 404, "Snapshot " + id + " has no metadata with key nokey."},
			{"delete missing", "DELETE", md + "/nokey", nil, 404, "Snapshot " + id + " has no metadata with key nokey."},
			{"no metadata", "POST", md, map[string]any{"meta": map[string]any{}}, 400, "Missing required element 'metadata' in request body."},
			{"not a dict", "PUT", md, map[string]any{"metadata": []any{"x"}}, 400, "Missing required element 'metadata' in request body."},
			{"no meta", "PUT", md + "/k", map[string]any{"metadata": map[string]any{"k": "v"}}, 400, "Missing required element 'meta' in request body."},
			{"mismatch", "PUT", md + "/k", map[string]any{"meta": map[string]any{"j": "v"}}, 400, "Request body and URI mismatch"},
			{"too many", "PUT", md + "/k", map[string]any{"meta": map[string]any{"k": "v", "j": "w"}}, 400, "Request body contains too many items"},
			{"empty key", "POST", md, map[string]any{"metadata": map[string]any{"": "v"}}, 400,
				"Invalid metadata: Invalid input received: Metadata key:  has 0 characters, less than 1."},
			{"number", "POST", md, map[string]any{"metadata": map[string]any{"k": 5}}, 400,
				"Invalid metadata: Invalid input received: Value for metadata key: k is not a string or unicode"},
			{"long key", "POST", md, map[string]any{"metadata": map[string]any{strings.Repeat("k", 256): "v"}}, 413,
				"Invalid metadata size: Metadata property key " + strings.Repeat("k", 256) + " greater than 255 characters."},
			{"long value", "POST", md, map[string]any{"metadata": map[string]any{"k": strings.Repeat("v", 256)}}, 413,
				"Invalid metadata size: Metadata property key k value greater than 255 characters."},
			{"unknown snapshot", "GET", snapBase(projA) + "/nope/metadata", nil, 404, "Snapshot nope could not be found."},
		} {
			wantError(t, tc.what, e.Do("member", tc.method, tc.path, tc.body), tc.code, tc.msg)
		}
		for token, want := range map[string]int{"reader": 403, "memberB": 404, "adminB": 200} {
			path := strings.Replace(md, projA, projectOfToken(token), 1)
			if r := e.Do(token, "POST", path, map[string]any{"metadata": map[string]any{"x": "y"}}); r.Code != want {
				t.Errorf("metadata write as %s: %d, want %d", token, r.Code, want)
			}
		}
	})
}

// projectOfToken is the project of a test token.
func projectOfToken(token string) string {
	c, _ := testTokens.Validate(context.Background(), token)
	return c.ProjectID
}

// TestSnapshotViewGolden pins the snapshot bodies per microversion
// (group_snapshot_id 3.14, user_id 3.41, consumes_quota 3.65) for each
// shape, ids and times replaced; -update rewrites testdata/golden.
func TestSnapshotViewGolden(t *testing.T) {
	d := dbtest.Open(t, "sqlite")
	e := newEnv(t, d)
	vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
	sn := e.createSnapshot("member", projA, vol, map[string]any{"name": "golden", "metadata": map[string]any{"k": "v"}}, "available")
	id := sn["id"].(string)
	e.Must(200, e.Do("member", "PUT", snapBase(projA)+"/"+id, map[string]any{"snapshot": map[string]any{"description": "pinned"}}))
	mask := strings.NewReplacer(id, "<snapshot>", vol, "<volume>", projA, "<project>")
	for _, mv := range []string{"3.0", "3.14", "3.41", "3.65", "3.70"} {
		hdr := []string{"OpenStack-API-Version", "volume " + mv}
		bodies := map[string]map[string]any{
			"create": e.createSnapshot("member", projA, vol, map[string]any{"name": "golden-new", "metadata": map[string]any{"k": "v"}}, "", hdr...),
			"show":   e.MustJSON(200, e.Do("member", "GET", snapBase(projA)+"/"+id, nil, hdr...))["snapshot"].(map[string]any),
			"update": e.MustJSON(200, e.Do("member", "PUT", snapBase(projA)+"/"+id, map[string]any{"snapshot": map[string]any{"description": "pinned"}}, hdr...))["snapshot"].(map[string]any),
			"list":   e.MustJSON(200, e.Do("member", "GET", snapBase(projA)+"?name=golden&limit=1&sort=id:asc", nil, hdr...))["snapshots"].([]any)[0].(map[string]any),
		}
		for shape, body := range bodies {
			for _, k := range []string{"created_at", "updated_at"} {
				if body[k] != nil {
					body[k] = "<time>"
				}
			}
			if shape == "create" {
				body["id"] = id // a new snapshot: pin its id as the others'
			}
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(body); err != nil {
				t.Fatal(err)
			}
			goldenText(t, "snapshot-"+shape+"-"+mv, mask.Replace(b.String()))
		}
	}
}

func TestSnapshotListing(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		v1 := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		v2 := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		var ids []string
		for i, v := range []string{v1, v1, v2, v2, v2} {
			md := map[string]any{"kind": "even"}
			if i%2 == 1 {
				md = map[string]any{"kind": "odd"}
			}
			ids = append(ids, e.createSnapshot("member", projA, v, map[string]any{"name": fmt.Sprintf("s%d", i), "metadata": md}, "available")["id"].(string))
		}
		vb := e.createVolume("memberB", projB, map[string]any{}, "available")["id"].(string)
		e.createSnapshot("memberB", projB, vb, map[string]any{"name": "other"}, "available")
		list := func(token, q string, hdr ...string) []string {
			t.Helper()
			var out []string
			for _, s := range e.MustJSON(200, e.Do(token, "GET", snapBase(projectOfToken(token))+"/detail?"+q, nil, hdr...))["snapshots"].([]any) {
				out = append(out, s.(map[string]any)["id"].(string))
			}
			return out
		}
		sorted := append([]string{}, ids...)
		sort.Strings(sorted)
		mv22 := []string{"OpenStack-API-Version", "volume 3.22"}
		for _, tc := range []struct {
			token, query string
			hdr          []string
			want         []string
		}{
			{"member", "", nil, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}}, // newest first
			{"member", "name=s3", nil, ids[3:4]},
			{"member", "display_name=s3", nil, ids[3:4]},
			{"member", "volume_id=" + v1 + "&sort=id:asc", nil, sortedOf(ids[:2])},
			{"member", "status=error", nil, nil},
			{"member", "status=available&limit=2&offset=1&sort_key=id&sort_dir=asc", nil, sorted[1:3]},
			{"member", "availability_zone=nova&sort=created_at:asc", nil, ids},
			{"member", "availability_zone=mars", nil, nil},
			// metadata filters from 3.22; before, the parameter is ignored
			{"member", "metadata=" + url.QueryEscape("{'kind': 'odd'}") + "&sort=id:asc", mv22, sortedOf([]string{ids[1], ids[3]})},
			{"member", "metadata=" + url.QueryEscape("{'kind': 'odd'}") + "&sort=id:asc", nil, sorted},
			{"member", "metadata=notadict", mv22, nil},
			{"member", "sort=display_name:desc", nil, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}},
			{"member", "sort=name:asc", []string{"OpenStack-API-Version", "volume 3.30"}, ids},
			{"member", "consumes_quota=false", []string{"OpenStack-API-Version", "volume 3.65"}, nil},
			{"member", "consumes_quota=true&sort=id:asc", []string{"OpenStack-API-Version", "volume 3.65"}, sorted},
			{"member", "all_tenants=1", nil, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}}, // not for members
			{"admin", "all_tenants=1&project_id=" + projB, nil, list("memberB", "")},
		} {
			if got := list(tc.token, tc.query, tc.hdr...); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s ?%s %v:\n got %v\nwant %v", tc.token, tc.query, tc.hdr, got, tc.want)
			}
		}
		if got := list("admin", "all_tenants=1"); len(got) != 6 {
			t.Errorf("admin all_tenants: %d snapshots, want 6", len(got))
		}
		// Paging by links, ascending ids, as a client follows them.
		var seen []string
		next := snapBase(projA) + "?limit=2&sort=id:asc"
		for pages := 0; next != ""; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			m := e.MustJSON(200, e.Do("member", "GET", next, nil))
			for _, s := range m["snapshots"].([]any) {
				seen = append(seen, s.(map[string]any)["id"].(string))
			}
			next = ""
			if links, ok := m["snapshots_links"].([]any); ok {
				u, err := url.Parse(links[0].(map[string]any)["href"].(string))
				if err != nil || !strings.HasSuffix(u.Path, "/v3/"+projA+"/snapshots") {
					t.Fatalf("next link %v", links)
				}
				next = u.RequestURI()
			}
		}
		if strings.Join(seen, ",") != strings.Join(sorted, ",") {
			t.Errorf("paged %v, want %v", seen, sorted)
		}
		for _, tc := range []struct {
			query string
			hdr   []string
			code  int
			msg   string
		}{
			{"limit=invalid", nil, 400, "limit param must be an integer"},
			{"sort_key=invalid", nil, 400, "Invalid input received: Invalid sort key"},
			{"sort=name", nil, 400, "Invalid input received: Invalid sort key"},
			{"sort_dir=up", nil, 400, "Invalid input received: Invalid sort direction: up."},
			{"marker=0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e", nil, 404, "Snapshot 0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e could not be found."},
			{"consumes_quota=maybe", []string{"OpenStack-API-Version", "volume 3.65"}, 400, "Value 'maybe' for 'consumes_quota' is not a boolean."},
		} {
			wantError(t, tc.query, e.Do("member", "GET", snapBase(projA)+"?"+tc.query, nil, tc.hdr...), tc.code, tc.msg)
		}
		// Another project's snapshot is no marker for a member.
		other := list("memberB", "")[0]
		wantError(t, "foreign marker", e.Do("member", "GET", snapBase(projA)+"?marker="+other, nil), 404, "Snapshot "+other+" could not be found.")
	})
}

func sortedOf(ids []string) []string {
	out := append([]string{}, ids...)
	sort.Strings(out)
	return out
}

// TestSnapshotOddInputs sends malformed bodies and queries to every
// snapshot route: each is a 4xx with a Cinder error body, never a 5xx.
func TestSnapshotOddInputs(t *testing.T) {
	d := dbtest.Open(t, "sqlite")
	e := newEnv(t, d)
	vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
	sn := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
	base := snapBase(projA)
	type req struct {
		method, path string
		body         any
	}
	var reqs []req
	for _, b := range []any{nil, []any{}, "x", 5, map[string]any{"snapshot": nil}, map[string]any{"snapshot": []any{}},
		map[string]any{"snapshot": map[string]any{"volume_id": 5}},
		map[string]any{"snapshot": map[string]any{"volume_id": vol, "metadata": "x"}},
		map[string]any{"snapshot": map[string]any{"volume_id": vol, "metadata": map[string]any{"k": 1}}},
		map[string]any{"snapshot": map[string]any{"volume_id": vol, "name": 5}},
		map[string]any{"snapshot": map[string]any{"volume_id": vol, "force": nil}},
		map[string]any{"snapshot": map[string]any{"volume_id": vol, "description": []any{}}},
	} {
		reqs = append(reqs, req{"POST", base, b}, req{"PUT", base + "/" + sn, b})
	}
	for _, b := range []any{nil, map[string]any{}, map[string]any{"os-reset_status": nil},
		map[string]any{"os-reset_status": map[string]any{"status": 5}},
		map[string]any{"os-reset_status": map[string]any{"status": "available", "x": 1}},
		map[string]any{"os-update_snapshot_status": nil},
		map[string]any{"os-update_snapshot_status": map[string]any{"status": "error", "progress": 5}},
		map[string]any{"os-update_snapshot_status": map[string]any{"status": "error", "progress": "%"}},
		map[string]any{"os-update_snapshot_status": map[string]any{"status": "error", "progress": "ü%"}},
		map[string]any{"os-update_snapshot_status": map[string]any{"status": []any{}}},
		map[string]any{"os-nope": "x", "os-reset_status": map[string]any{"status": "nope"}},
	} {
		reqs = append(reqs, req{"POST", base + "/" + sn + "/action", b})
	}
	for _, b := range []any{nil, map[string]any{"metadata": nil}, map[string]any{"meta": "x"}, map[string]any{"metadata": map[string]any{"k": nil}}} {
		reqs = append(reqs, req{"POST", base + "/" + sn + "/metadata", b}, req{"PUT", base + "/" + sn + "/metadata", b},
			req{"PUT", base + "/" + sn + "/metadata/k", b})
	}
	for _, b := range []any{"x", 5, []any{}, map[string]any{"snapshot_id": 5}, map[string]any{"snapshot_id": []any{}}} {
		reqs = append(reqs, req{"POST", "/v3/" + projA + "/volumes/" + vol + "/action", map[string]any{"revert": b}})
	}
	for _, q := range []string{"limit=", "offset=x", "sort=:", "sort=,", "sort_key=", "metadata={", "marker=", "name=&status=",
		"all_tenants=maybe", "consumes_quota=", "sort=display_name:sideways", "with_count=true"} {
		reqs = append(reqs, req{"GET", base + "?" + q, nil}, req{"GET", base + "/detail?" + q, nil})
	}
	reqs = append(reqs, req{"DELETE", "/v3/" + projA + "/volumes/" + vol + "?cascade=", nil},
		req{"POST", "/v3/" + projA + "/volumes", map[string]any{"volume": map[string]any{"snapshot_id": 5}}},
		req{"POST", "/v3/" + projA + "/volumes", map[string]any{"volume": map[string]any{"snapshot_id": sn, "size": "x"}}})
	for _, mv := range []string{"3.0", "3.66", "3.70"} {
		for _, rq := range reqs {
			r := e.Do("admin", rq.method, rq.path, rq.body, "OpenStack-API-Version", "volume "+mv)
			if r.Code >= 500 {
				t.Errorf("%s %s %v at %s: %d %s", rq.method, rq.path, rq.body, mv, r.Code, r.Body)
			}
			if r.Code >= 400 {
				if fault, msg := errMessage(t, r); fault == "" || msg == "" {
					t.Errorf("%s %s %v at %s: %d without a Cinder error body: %s", rq.method, rq.path, rq.body, mv, r.Code, r.Body)
				}
			}
		}
	}
}
