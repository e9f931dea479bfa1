//go:build ceph

package interop

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/testenv"
)

// The suite built with the Ceph drivers runs an ashlar built with them.
func init() { ashlarTags = "ceph,pacific" }

// TestTempestRBD runs tempest's volume lists against an Ashlar whose first
// volume backend is rbd, in the suite's one-node Ceph cluster, and where
// volumes of no particular backend go (the second stays a file backend:
// retype with migration moves volumes between rbd and files, both ways).
// The rbd backend flattens volumes made from snapshots
// (rbd_flatten_volume_from_snapshot): tempest deletes a snapshot a volume
// was just made from, which Cinder's RBD driver, like Ashlar's, refuses
// as busy while the volume is its clone.
func TestTempestRBD(t *testing.T) {
	requireInterop(t)
	requireTools(t, "tempest", "stestr", "python3")
	c := testenv.SharedCeph(t)
	defer logTook(t, time.Now())
	t.Setenv("ASHLAR_TEMPEST_LISTS", "volume-core,volume-later")
	a := startAshlar(t, "tempest-rbd", ashlarOpts{postgres: true, backends: tempestBackends, rbdConf: c.Conf,
		rbdOptions: "rbd_flatten_volume_from_snapshot = true\n"})
	checkUntypedOnRBD(t, a)
	runTempest(t, a)
}

// checkUntypedOnRBD checks that a volume of no particular backend (as
// tempest's core tests make) lands on the rbd backend.
func checkUntypedOnRBD(t *testing.T, a *ashlar) {
	t.Helper()
	admin, ti, err := login(context.Background(), a.authURL(), "admin", adminPassword, "admin")
	if err != nil {
		t.Fatal(err)
	}
	base := a.volumeURL + "/v3/" + ti.Token.Project.ID + "/volumes"
	hdr := map[string]string{"Content-Type": "application/json"}
	code, body := rawRequest(t, admin.token, "POST", base, hdr, []byte(`{"volume": {"size": 1, "name": "where-untyped"}}`))
	var v struct{ Volume map[string]any }
	if code != 202 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("creating an untyped volume: %d %.300s", code, body)
	}
	id, _ := v.Volume["id"].(string)
	deadline := time.Now().Add(2 * time.Minute)
	for v.Volume["status"] != "available" {
		if time.Now().After(deadline) {
			t.Fatalf("untyped volume %s: %v", id, v.Volume["status"])
		}
		time.Sleep(200 * time.Millisecond)
		code, body = rawRequest(t, admin.token, "GET", base+"/"+id, nil, nil)
		if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
			t.Fatalf("showing volume %s: %d %.300s", id, code, body)
		}
	}
	if host, _ := v.Volume["os-vol-host-attr:host"].(string); !strings.Contains(host, "@"+tempestBackends[0]+"#") {
		t.Fatalf("an untyped volume went to %q, not the rbd backend %s", host, tempestBackends[0])
	}
	if code, body := rawRequest(t, admin.token, "DELETE", base+"/"+id, nil, nil); code != 202 {
		t.Fatalf("deleting volume %s: %d %.300s", id, code, body)
	}
}
