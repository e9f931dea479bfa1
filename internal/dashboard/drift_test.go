package dashboard

import "testing"

func TestDriftOf(t *testing.T) {
	store := func(id, def, ro, health string) apiStore {
		s := apiStore{ID: id, Default: def, ReadOnly: ro}
		s.Ashlar.Health = health
		return s
	}
	stores := []apiStore{store("fast", "true", "", "healthy"), store("web", "", "true", "unknown"),
		store("sick", "", "", "unhealthy"), store("new", "", "", "unknown")}
	spec := func(id string) map[string]string { return map[string]string{storeSpec: id} }
	types := []apiType{{Name: "a-default"}, {Name: "b-gone", ExtraSpecs: spec("old")}, {Name: "c-ro", ExtraSpecs: spec("web")},
		{Name: "d-sick", ExtraSpecs: spec("sick")}, {Name: "e-ok", ExtraSpecs: spec("fast")},
		{Name: "f-unchecked", ExtraSpecs: spec("new")}}
	want := []struct {
		store string
		def   bool
		drift Drift
	}{{"fast", true, DriftNone}, {"old", false, DriftGone}, {"web", false, DriftReadOnly}, {"sick", false, DriftUnhealthy},
		{"fast", false, DriftNone}, {"new", false, DriftNone}}
	rows := DriftOf(types, stores)
	for i, w := range want {
		r := rows[i]
		if r.Store != w.store || r.Default != w.def || r.Drift != w.drift || (r.Drift != DriftNone) != (r.Detail != "") {
			t.Errorf("%s: store %q default %v drift %q (%q), want %q %v %q", r.Name, r.Store, r.Default, r.Drift, r.Detail,
				w.store, w.def, w.drift)
		}
	}
	// With no stores known (a member's volumes page), nothing is judged.
	for _, r := range DriftOf(types[:1], nil) {
		if r.Drift != DriftNone || r.Store != "" {
			t.Errorf("without stores: %+v", r)
		}
	}
}
