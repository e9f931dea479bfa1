package policy

import (
	"fmt"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// TestRules is the matrix of the building blocks: who (role, or nobody)
// against which target (the caller's own project, another project, or a
// collection).
func TestRules(t *testing.T) {
	const own, other = "p-own", "p-other"
	callers := map[string]*auth.Caller{
		"admin":    {ProjectID: own, Roles: []string{"admin"}},
		"member":   {ProjectID: own, Roles: []string{"member"}},
		"reader":   {ProjectID: own, Roles: []string{"reader"}},
		"norole":   {ProjectID: own, Roles: []string{"something-else"}},
		"nil":      nil,
		"explicit": {ProjectID: own, Roles: []string{"member", "reader"}},
	}
	targets := map[string]Target{"own": {ProjectID: own}, "other": {ProjectID: other}, "collection": {}}
	rules := map[string]Rule{"Admin": Admin, "Anyone": Anyone, "Reader": Reader, "Member": Member}

	// want[rule][caller] lists the targets allowed.
	all := []string{"own", "other", "collection"}
	mine := []string{"own", "collection"}
	want := map[string]map[string][]string{
		"Admin":  {"admin": all},
		"Anyone": {"admin": all, "member": all, "reader": all, "norole": all, "explicit": all},
		"Reader": {"admin": all, "member": mine, "reader": mine, "explicit": mine},
		"Member": {"admin": all, "member": mine, "explicit": mine},
	}
	for rn, rule := range rules {
		for cn, c := range callers {
			for tn, tgt := range targets {
				allowed := false
				for _, x := range want[rn][cn] {
					allowed = allowed || x == tn
				}
				t.Run(fmt.Sprintf("%s/%s/%s", rn, cn, tn), func(t *testing.T) {
					if got := rule(c, tgt); got != allowed {
						t.Errorf("%s(%s, %s) = %v, want %v", rn, cn, tn, got, allowed)
					}
				})
			}
		}
	}
}

func TestEnforce(t *testing.T) {
	tb := Table{"volume:create": Member, "volume_extension:types_manage": Admin}
	member := &auth.Caller{ProjectID: "p", Roles: []string{"member"}}
	admin := &auth.Caller{ProjectID: "q", Roles: []string{"admin"}}
	tests := []struct {
		name   string
		c      *auth.Caller
		action string
		t      Target
		ok     bool
	}{
		{"member creates in own project", member, "volume:create", Target{}, true},
		{"member in another project", member, "volume:create", Target{ProjectID: "x"}, false},
		{"member manages types", member, "volume_extension:types_manage", Target{}, false},
		{"admin manages types", admin, "volume_extension:types_manage", Target{}, true},
		{"unknown action is denied, even to admins", admin, "volume:nope", Target{}, false},
		{"no caller", nil, "volume:create", Target{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tb.Enforce(tt.c, tt.action, tt.t)
			if (err == nil) != tt.ok || tb.Allowed(tt.c, tt.action, tt.t) != tt.ok {
				t.Fatalf("Enforce = %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok {
				if !errs.Is(err, errs.Forbidden) || errs.Message(err) != "Policy doesn't allow "+tt.action+" to be performed." {
					t.Errorf("error = %v (kind %v)", err, errs.KindOf(err))
				}
			}
		})
	}
}

func TestEnforceHidden(t *testing.T) {
	tb := Table{"volume:delete": Member, "volume:get": Reader}
	notFound := errs.E(errs.NotFound, "Volume v could not be found.")
	callers := map[string]*auth.Caller{
		"admin":  {ProjectID: "q", Roles: []string{"admin"}},
		"member": {ProjectID: "p", Roles: []string{"member"}},
		"reader": {ProjectID: "p", Roles: []string{"reader"}},
		"nil":    nil,
	}
	tests := []struct {
		caller, action, project string
		kind                    errs.Kind // -1: allowed
	}{
		{"member", "volume:delete", "p", -1},
		{"reader", "volume:get", "p", -1},
		{"reader", "volume:delete", "p", errs.Forbidden}, // visible, but not allowed
		{"member", "volume:get", "other", errs.NotFound},
		{"reader", "volume:delete", "other", errs.NotFound},
		{"admin", "volume:delete", "other", -1},
		{"nil", "volume:get", "p", errs.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.caller+"/"+tt.action+"/"+tt.project, func(t *testing.T) {
			err := tb.EnforceHidden(callers[tt.caller], tt.action, Target{ProjectID: tt.project}, notFound)
			if tt.kind == -1 {
				if err != nil {
					t.Errorf("denied: %v", err)
				}
				return
			}
			if errs.KindOf(err) != tt.kind {
				t.Errorf("err = %v (kind %v), want kind %v", err, errs.KindOf(err), tt.kind)
			}
		})
	}
}
