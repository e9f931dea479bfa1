package volume

import (
	"context"
	"encoding/json"

	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// golden compares v, as indented JSON with the values of replace (value ->
// placeholder) put back as placeholders, with testdata/golden/<name>.json;
// with -update it writes the file instead.
func golden(t *testing.T, name string, v any, replace map[string]string) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for val, placeholder := range replace {
		got = strings.ReplaceAll(got, val, placeholder)
	}
	goldenText(t, name, got+"\n")
}

// goldenText compares got with testdata/golden/<name>.json; with -update
// it writes the file instead.
func goldenText(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n got %s\nwant %s", name, path, got, want)
	}
}

// mv is the microversion header of a request.
func mv(v string) []string { return []string{"OpenStack-API-Version", "volume " + v} }

// transferEnv is a service with one available volume of projA's member.
type transferEnv struct {
	*env
	vol string
}

func newTransferEnv(t *testing.T, d *db.DB) *transferEnv {
	e := newEnv(t, d)
	v := e.createVolume("member", projA, map[string]any{"name": "offered"}, "available")
	return &transferEnv{env: e, vol: v["id"].(string)}
}

// offer creates a transfer of te.vol through path at version and returns
// the response's transfer.
func (te *transferEnv) offer(path, version string, fields map[string]any) map[string]any {
	te.t.Helper()
	body := map[string]any{"volume_id": te.vol}
	for k, v := range fields {
		body[k] = v
	}
	r := te.Do("member", "POST", "/v3/"+projA+"/"+path, map[string]any{"transfer": body}, mv(version)...)
	return te.MustJSON(202, r)["transfer"].(map[string]any)
}

// placeholders are the generated values of a transfer's responses.
func (te *transferEnv) placeholders(tr map[string]any) map[string]string {
	m := map[string]string{te.vol: "<volume_id>", tr["id"].(string): "<transfer_id>"}
	if c, ok := tr["created_at"].(string); ok {
		m[c] = "<created_at>"
	}
	if k, ok := tr["auth_key"].(string); ok {
		m[k] = "<auth_key>"
	}
	return m
}

// TestTransferViews pins the shape of every transfer response at the
// microversions where it changes, on both paths (golden files).
func TestTransferViews(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		for _, c := range []struct{ path, version string }{
			{"os-volume-transfer", "3.0"}, {"volume-transfers", "3.0"}, {"volume-transfers", "3.55"},
			{"os-volume-transfer", "3.57"}, {"volume-transfers", "3.57"}, {"volume-transfers", "3.70"},
		} {
			t.Run(c.path+"@"+c.version, func(t *testing.T) {
				te := newTransferEnv(t, d)
				name := func(what string) string { return "transfer-" + c.path + "-" + c.version + "-" + what }
				fields := map[string]any{"name": "  gift  "}
				created := te.offer(c.path, c.version, fields)
				if k := created["auth_key"].(string); !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(k) {
					t.Errorf("auth_key %q", k)
				}
				ph := te.placeholders(created)
				golden(t, name("create"), created, ph)
				id := created["id"].(string)
				base := "/v3/" + projA + "/" + c.path
				golden(t, name("show"), te.MustJSON(200, te.Do("member", "GET", base+"/"+id, nil, mv(c.version)...)), ph)
				golden(t, name("list"), te.MustJSON(200, te.Do("member", "GET", base, nil, mv(c.version)...)), ph)
				golden(t, name("detail"), te.MustJSON(200, te.Do("member", "GET", base+"/detail", nil, mv(c.version)...)), ph)
				acc := te.Do("memberB", "POST", "/v3/"+projB+"/"+c.path+"/"+id+"/accept", map[string]any{"accept": map[string]any{"auth_key": created["auth_key"]}}, mv(c.version)...)
				golden(t, name("accept"), te.MustJSON(202, acc), ph)
			})
		}
	})
}

// TestTransferAccept: the volume changes owner, once, for the right key;
// the key is stored only hashed.
func TestTransferAccept(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		te := newTransferEnv(t, d)
		tr := te.offer("os-volume-transfer", "3.0", nil)
		id, key := tr["id"].(string), tr["auth_key"].(string)
		if v := te.waitStatus("member", projA, te.vol, "awaiting-transfer"); v["user_id"] != "u-member" {
			t.Errorf("offered volume %v", v)
		}
		var salt, hash string
		if err := d.QueryRowContext(context.Background(), `SELECT salt, crypt_hash FROM volume_transfers WHERE id = ?`, id).Scan(&salt, &hash); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(hash, key) || strings.Contains(salt, key) || hash != keyHash(salt, key) {
			t.Errorf("stored salt %q hash %q for key %q", salt, hash, key)
		}

		base := "/v3/" + projB + "/os-volume-transfer/" + id
		accept := func(token, project, key string) apitest.Resp {
			return te.Do(token, "POST", "/v3/"+project+"/os-volume-transfer/"+id+"/accept", map[string]any{"accept": map[string]any{"auth_key": key}})
		}
		// The other project sees neither the transfer nor the volume.
		te.Must(404, te.Do("memberB", "GET", base, nil))
		if l := te.MustJSON(200, te.Do("memberB", "GET", "/v3/"+projB+"/os-volume-transfer", nil))["transfers"].([]any); len(l) != 0 {
			t.Errorf("projB lists %v", l)
		}
		for _, c := range []struct {
			name, token, project, key string
			code                      int
			msg                       string
		}{
			{"wrong key", "memberB", projB, "0000000000000000", 400, "Invalid auth key: Attempt to transfer " + id + " with invalid auth key."},
			{"reader", "reader", projA, key, 403, "Policy doesn't allow volume:accept_transfer to be performed."},
			{"unknown", "memberB", projB, key, 404, "Transfer 00000000-0000-0000-0000-000000000000 could not be found."},
		} {
			path := id
			if c.name == "unknown" {
				path = "00000000-0000-0000-0000-000000000000"
			}
			r := te.Do(c.token, "POST", "/v3/"+c.project+"/os-volume-transfer/"+path+"/accept", map[string]any{"accept": map[string]any{"auth_key": c.key}})
			if _, msg := errMessage(t, r); r.Code != c.code || msg != c.msg {
				t.Errorf("%s: %d %q, want %d %q", c.name, r.Code, msg, c.code, c.msg)
			}
		}

		// Two accepts race: one gets the volume, the other a 404 or 400.
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i, tok := range []string{"memberB", "adminB"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = accept(tok, projB, key).Code
			}()
		}
		wg.Wait()
		if won := (codes[0] == 202) != (codes[1] == 202); !won {
			t.Fatalf("concurrent accepts: %v, want exactly one 202", codes)
		}
		v := te.MustJSON(200, te.Do("adminB", "GET", "/v3/"+projB+"/volumes/"+te.vol, nil))["volume"].(map[string]any)
		if v["status"] != "available" || v["os-vol-tenant-attr:tenant_id"] != projB || (v["user_id"] != "u-memberb" && v["user_id"] != "u-adminb") {
			t.Errorf("accepted volume: status %v project %v user %v", v["status"], v["os-vol-tenant-attr:tenant_id"], v["user_id"])
		}
		te.Must(404, te.Do("member", "GET", "/v3/"+projA+"/volumes/"+te.vol, nil))
		te.Must(404, te.Do("member", "GET", "/v3/"+projA+"/os-volume-transfer/"+id, nil))
		te.Must(404, accept("memberB", projB, key))
		// The record stays, accepted, for the operator; the API shows none.
		var accepted bool
		var dest string
		if err := d.QueryRowContext(context.Background(), `SELECT accepted, destination_project_id FROM volume_transfers WHERE id = ?`, id).Scan(&accepted, &dest); err != nil || !accepted || dest != projB {
			t.Errorf("transfer record: accepted %v destination %q (%v)", accepted, dest, err)
		}
	})
}

// TestTransferCreateDelete covers the refusals of create and delete, and
// delete making the volume available again.
func TestTransferCreateDelete(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		te := newTransferEnv(t, d)
		base := "/v3/" + projA + "/volume-transfers"
		for _, c := range []struct {
			name, token, version string
			body                 any
			code                 int
			msg                  string
		}{
			{"no volume_id", "member", "3.0", map[string]any{"transfer": map[string]any{}}, 400,
				"Invalid input for field/attribute transfer. Value: {}. 'volume_id' is a required property"},
			{"not a uuid", "member", "3.0", map[string]any{"transfer": map[string]any{"volume_id": "x"}}, 400,
				"Invalid input for field/attribute volume_id. Value: x. 'x' is not a 'uuid'"},
			{"no_snapshots before 3.55", "member", "3.54", map[string]any{"transfer": map[string]any{"volume_id": te.vol, "no_snapshots": true}}, 400,
				"Invalid input for field/attribute transfer. Value: {'no_snapshots': True, 'volume_id': '" + te.vol + "'}. Additional properties are not allowed ('no_snapshots' was unexpected)"},
			{"bad no_snapshots", "member", "3.55", map[string]any{"transfer": map[string]any{"volume_id": te.vol, "no_snapshots": "maybe"}}, 400, ""},
			{"unknown volume", "member", "3.0", map[string]any{"transfer": map[string]any{"volume_id": "00000000-0000-0000-0000-000000000000"}}, 404,
				"Volume 00000000-0000-0000-0000-000000000000 could not be found."},
			{"other project", "memberB", "3.0", map[string]any{"transfer": map[string]any{"volume_id": te.vol}}, 404,
				"Volume " + te.vol + " could not be found."},
			{"reader", "reader", "3.0", map[string]any{"transfer": map[string]any{"volume_id": te.vol}}, 403,
				"Policy doesn't allow volume:create_transfer to be performed."},
		} {
			project := projA
			if c.token == "memberB" {
				project = projB
			}
			r := te.Do(c.token, "POST", "/v3/"+project+"/volume-transfers", c.body, mv(c.version)...)
			if _, msg := errMessage(t, r); r.Code != c.code || c.msg != "" && msg != c.msg {
				t.Errorf("%s: %d %q, want %d %q", c.name, r.Code, msg, c.code, c.msg)
			}
		}
		// The old path knows no no_snapshots at any version.
		r := te.Do("member", "POST", "/v3/"+projA+"/os-volume-transfer", map[string]any{"transfer": map[string]any{"volume_id": te.vol, "no_snapshots": true}}, mv("3.70")...)
		te.Must(400, r)

		tr := te.offer("volume-transfers", "3.55", map[string]any{"no_snapshots": true})
		if tr["no_snapshots"] != true {
			t.Errorf("no_snapshots %v", tr["no_snapshots"])
		}
		// A volume awaiting a transfer is offered once, and not deleted.
		r = te.Do("member", "POST", base, map[string]any{"transfer": map[string]any{"volume_id": te.vol}})
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid volume: status must be available" {
			t.Errorf("second offer: %d %q", r.Code, msg)
		}
		te.Must(400, te.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+te.vol, nil))
		te.Must(404, te.Do("memberB", "DELETE", "/v3/"+projB+"/volume-transfers/"+tr["id"].(string), nil))
		te.Must(403, te.Do("reader", "DELETE", base+"/"+tr["id"].(string), nil))
		te.Must(202, te.Do("member", "DELETE", base+"/"+tr["id"].(string), nil))
		te.waitStatus("member", projA, te.vol, "available")
		te.Must(404, te.Do("member", "GET", base+"/"+tr["id"].(string), nil))
		te.Must(404, te.Do("member", "DELETE", base+"/"+tr["id"].(string), nil))
	})
}

// TestTransferList covers the scope (own project; all_tenants for admins),
// filters, and paging and sorting of the v3 path from 3.59.
func TestTransferList(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		var ids []string
		for _, name := range []string{"t0", "t1", "t2"} {
			v := e.createVolume("member", projA, map[string]any{"name": name}, "available")
			r := e.Do("member", "POST", "/v3/"+projA+"/os-volume-transfer", map[string]any{"transfer": map[string]any{"volume_id": v["id"], "name": name}})
			ids = append(ids, e.MustJSON(202, r)["transfer"].(map[string]any)["id"].(string))
		}
		vb := e.createVolume("memberB", projB, map[string]any{}, "available")
		e.MustJSON(202, e.Do("memberB", "POST", "/v3/"+projB+"/os-volume-transfer", map[string]any{"transfer": map[string]any{"volume_id": vb["id"]}}))

		list := func(token, project, query string, version string) []string {
			t.Helper()
			r := e.MustJSON(200, e.Do(token, "GET", "/v3/"+project+"/volume-transfers"+query, nil, mv(version)...))
			var out []string
			for _, x := range r["transfers"].([]any) {
				out = append(out, x.(map[string]any)["id"].(string))
			}
			return out
		}
		eq := func(what string, got, want []string) {
			t.Helper()
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: %v, want %v", what, got, want)
			}
		}
		eq("own, oldest first", list("member", projA, "", "3.0"), ids)
		eq("admin without all_tenants", list("admin", projA, "", "3.0"), ids)
		if all := list("admin", projA, "?all_tenants=1", "3.0"); len(all) != 4 {
			t.Errorf("all_tenants: %v", all)
		}
		eq("member all_tenants", list("member", projA, "?all_tenants=1", "3.0"), ids)
		eq("name filter", list("member", projA, "?name=t1", "3.0"), ids[1:2])
		eq("unknown filter matches nothing", list("member", projA, "?size=1", "3.0"), nil)
		eq("limit before 3.59 is a filter", list("member", projA, "?limit=1", "3.58"), nil)
		eq("3.59 newest first", list("member", projA, "", "3.59"), []string{ids[2], ids[1], ids[0]})
		eq("3.59 limit", list("member", projA, "?limit=2&sort=created_at:asc", "3.59"), ids[:2])
		eq("3.59 marker", list("member", projA, "?limit=2&sort_key=created_at&sort_dir=asc&marker="+ids[1], "3.59"), ids[2:])
		eq("3.59 offset", list("member", projA, "?offset=1&sort=created_at:asc", "3.59"), ids[1:])
		r := e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/volume-transfers?limit=2&sort=created_at:asc", nil, mv("3.59")...))
		next, _ := apitest.Dig(r, "transfers_links").([]any)
		if len(next) != 1 || !strings.Contains(next[0].(map[string]any)["href"].(string), "marker="+ids[1]) {
			t.Errorf("transfers_links %v", r["transfers_links"])
		}
		for q, code := range map[string]int{"?marker=" + ids[0][:8]: 404, "?sort_key=salt": 400, "?limit=x": 400, "?offset=-1": 400} {
			e.Must(code, e.Do("member", "GET", "/v3/"+projA+"/volume-transfers"+q, nil, mv("3.59")...))
		}
		// A marker of another project's transfer is not found.
		other := list("adminB", projB, "", "3.0")
		e.Must(404, e.Do("member", "GET", "/v3/"+projA+"/volume-transfers?marker="+other[0], nil, mv("3.59")...))
	})
}

// TestTransferAcceptCrossing accepts two transfers at once that cross:
// projA's volume to projB and projB's to projA. Each accept charges both
// projects' quotas; both must succeed, on PostgreSQL too, where two
// transactions that lock the same usage rows in different orders
// deadlock and one is aborted.
func TestTransferAcceptCrossing(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		for round := range 8 {
			va := e.createVolume("member", projA, map[string]any{"name": "a"}, "available")["id"].(string)
			vb := e.createVolume("memberB", projB, map[string]any{"name": "b"}, "available")["id"].(string)
			if round%2 == 1 { // the snapshots go with the volumes
				e.createSnapshot("member", projA, va, nil, "available")
				e.createSnapshot("memberB", projB, vb, nil, "available")
			}
			offer := func(token, project, vol string) (string, string) {
				r := e.Do(token, "POST", "/v3/"+project+"/volume-transfers", map[string]any{"transfer": map[string]any{"volume_id": vol}}, mv("3.55")...)
				tr := e.MustJSON(202, r)["transfer"].(map[string]any)
				return tr["id"].(string), tr["auth_key"].(string)
			}
			ida, keya := offer("member", projA, va)
			idb, keyb := offer("memberB", projB, vb)
			var wg sync.WaitGroup
			res := make([]apitest.Resp, 2)
			for i, a := range []struct{ token, project, id, key string }{{"memberB", projB, ida, keya}, {"member", projA, idb, keyb}} {
				wg.Go(func() {
					res[i] = e.Do(a.token, "POST", "/v3/"+a.project+"/volume-transfers/"+a.id+"/accept",
						map[string]any{"accept": map[string]any{"auth_key": a.key}}, mv("3.55")...)
				})
			}
			wg.Wait()
			for i, r := range res {
				if r.Code != 202 {
					t.Fatalf("round %d: accept %d: %d %s", round, i, r.Code, r.Body)
				}
			}
		}
	})
}
