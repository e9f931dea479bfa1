//go:build !ceph

package drivers

import (
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// TestRBDNotBuiltIn: a binary built without -tags ceph refuses an rbd
// backend, at config check and at start, saying how to build one.
func TestRBDNotBuiltIn(t *testing.T) {
	b := config.Backend{Name: "ceph", VolumeDriver: "rbd", Options: map[string]string{"rbd_pool": "volumes"}}
	if _, err := New(b); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "-tags ceph") {
		t.Fatalf("New = %v, want Invalid saying how to build with Ceph", err)
	}
	problems, _ := Check(&config.Config{Backends: []config.Backend{b}})
	if len(problems) != 1 || problems[0].Section != "backend:ceph" || !strings.Contains(problems[0].Msg, "not built in") {
		t.Fatalf("Check = %v", problems)
	}
	// Bad values are reported before the missing build.
	b.Options["rbd_max_clone_depth"] = "-1"
	if problems, _ = Check(&config.Config{Backends: []config.Backend{b}}); len(problems) != 1 || !strings.Contains(problems[0].Msg, "rbd_max_clone_depth") {
		t.Fatalf("Check with a bad value = %v", problems)
	}
}
