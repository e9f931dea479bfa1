package interop

import (
	"strings"
	"testing"
)

// The parsers the scenarios assert through; these run without
// ASHLAR_INTEROP, so a harness bug shows in every test run.

func TestParseTable(t *testing.T) {
	out := `+----------+----------------------------------------------------------------------------------+
| Property | Value                                                                            |
+----------+----------------------------------------------------------------------------------+
| id       | 5f0e                                                                             |
| stores   | [{"id": "web", "description": "Read-only HTTP store", "read-   |
|          | only": "true"}, {"id": "fast", "description": "Fast   |
|          | store"}]                                                                  |
+----------+----------------------------------------------------------------------------------+
`
	m := parseTable(out)
	if m["id"] != "5f0e" {
		t.Errorf("id = %q", m["id"])
	}
	want := `[{"id": "web", "description": "Read-only HTTP store", "read-only": "true"}, {"id": "fast", "description": "Fast store"}]`
	if m["stores"] != want {
		t.Errorf("stores = %q\nwant     %q", m["stores"], want)
	}
	if _, ok := m["Property"]; ok {
		t.Error("header row parsed as a property")
	}
}

func TestRenderTemplate(t *testing.T) {
	src := "[a]\nx = ${X}\n# c = ${Y}\ny = ${Y}\n[b]\nz = 1"
	got := renderTemplate(t, src, map[string]string{"X": "1", "Y": ""})
	if want := "[a]\nx = 1\n# c = \n[b]\nz = 1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReadAccounts(t *testing.T) {
	accts := readAccounts(t)
	if len(accts) != 8 {
		t.Fatalf("%d accounts, want 8 (6 members, 2 admins)", len(accts))
	}
	admins := 0
	for _, a := range accts {
		if a.User == "" || a.Project == "" || a.Password == "" || a.Role == "" {
			t.Errorf("incomplete account %+v", a)
		}
		if a.Admin {
			admins++
			if a.Role != "admin" {
				t.Errorf("admin account %s has role %s", a.User, a.Role)
			}
		}
	}
	if admins != 2 {
		t.Errorf("%d admin accounts, want 2", admins)
	}
}

func TestImageField(t *testing.T) {
	img := map[string]any{"size": float64(1 << 30), "properties": map[string]any{"stores": "cheap,fast"}}
	if got := imageField(img, "size"); got != "1073741824" {
		t.Errorf("size = %q", got)
	}
	if got := imageField(img, "stores"); got != "cheap,fast" {
		t.Errorf("stores = %q", got)
	}
	if !sameSet("b,a", "a,b") || sameSet("a", "a,b") || strings.Contains(imageField(img, "nothing"), "nil") {
		t.Error("sameSet / missing field")
	}
}
