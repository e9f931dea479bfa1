package volume

import (
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

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
