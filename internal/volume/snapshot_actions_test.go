package volume

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/file"
)

// snapAction posts a snapshot action as token.
func (e *env) snapAction(token, project, id string, body any) apitest.Resp {
	return e.Do(token, "POST", snapBase(project)+"/"+id+"/action", body)
}

// volAction posts a volume action as token.
func (e *env) volAction(token, project, id string, body any, hdr ...string) apitest.Resp {
	return e.Do(token, "POST", "/v3/"+project+"/volumes/"+id+"/action", body, hdr...)
}

// TestSnapshotAdminActions: os-reset_status and os-force_delete are the
// admin's, os-update_snapshot_status the project's (as tempest's
// SnapshotsActionsTest uses them), with Cinder's checks.
func TestSnapshotAdminActions(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		id := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
		reset := func(token, status string) apitest.Resp {
			return e.snapAction(token, projectOfToken(token), id, map[string]any{"os-reset_status": map[string]any{"status": status}})
		}
		e.Must(202, reset("admin", "CREATING"))
		e.waitSnapshot("member", projA, id, "creating")
		wantError(t, "member reset", reset("member", "available"), 403, "Policy doesn't allow volume_extension:snapshot_admin_actions:reset_status to be performed.")
		wantError(t, "other project reset", reset("memberB", "available"), 404, "Snapshot "+id+" could not be found.")
		e.Must(202, reset("adminB", "creating"))
		wantError(t, "bad status", reset("admin", "nope"), 400,
			"Snapshot status: nope is invalid, valid statuses are: ('error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'error_deleting', 'unmanaging', 'backing-up', 'restoring').")
		wantError(t, "no status", e.snapAction("admin", projA, id, map[string]any{"os-reset_status": map[string]any{}}), 400,
			"Invalid input for field/attribute os-reset_status. Value: {}. 'status' is a required property")
		wantError(t, "unknown action", e.snapAction("admin", projA, id, map[string]any{"os-nope": nil}), 400, "There is no such action: os-nope")

		// os-update_snapshot_status: creating -> error with progress.
		upd := func(body map[string]any) apitest.Resp {
			return e.snapAction("member", projA, id, map[string]any{"os-update_snapshot_status": body})
		}
		wantError(t, "bad progress", upd(map[string]any{"status": "error", "progress": "lots"}), 400, "Invalid input received: progress must be an integer percentage")
		wantError(t, "progress range", upd(map[string]any{"status": "error", "progress": "180%"}), 400, "Invalid input received: progress must be an integer percentage between 0 and 100")
		wantError(t, "bad move", upd(map[string]any{"status": "deleting"}), 400, "Provided snapshot status deleting not allowed for snapshot with status creating.")
		e.Must(202, upd(map[string]any{"status": "error", "progress": "80%"}))
		sn := e.MustJSON(200, e.Do("admin", "GET", snapBase(projA)+"/"+id, nil))["snapshot"].(map[string]any)
		if sn["status"] != "error" || sn["os-extended-snapshot-attributes:progress"] != "80%" {
			t.Errorf("after update_snapshot_status: %v", sn)
		}
		wantError(t, "from error", upd(map[string]any{"status": "available"}), 400, "Snapshot status error not allowed for update_snapshot_status")
		if r := e.snapAction("reader", projA, id, map[string]any{"os-update_snapshot_status": map[string]any{"status": "error"}}); r.Code != 403 {
			t.Errorf("reader update_snapshot_status: %d", r.Code)
		}

		// os-force_delete from every status tempest tries.
		for _, status := range []string{"creating", "deleting", "error", "error_deleting"} {
			tmp := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
			e.Must(202, e.snapAction("admin", projA, tmp, map[string]any{"os-reset_status": map[string]any{"status": status}}))
			if r := e.snapAction("member", projA, tmp, map[string]any{"os-force_delete": map[string]any{}}); r.Code != 403 {
				t.Errorf("member force_delete: %d", r.Code)
			}
			e.Must(202, e.snapAction("admin", projA, tmp, map[string]any{"os-force_delete": map[string]any{}}))
			e.waitSnapshot("member", projA, tmp, "gone")
		}
	})
}

// TestVolumeDeleteWithSnapshots: a volume with snapshots is not deleted
// (nor force-deleted) unless cascade=true, which deletes its snapshots and
// then the volume, and needs them all available or error.
func TestVolumeDeleteWithSnapshots(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		base := "/v3/" + projA + "/volumes/"
		vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		s1 := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
		s2 := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
		refused := "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
		wantError(t, "delete", e.Do("member", "DELETE", base+vol, nil), 400, refused)
		wantError(t, "force delete", e.volAction("admin", projA, vol, map[string]any{"os-force_delete": nil}), 400,
			"Invalid volume: Volume  must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.")
		wantError(t, "cascade=maybe", e.Do("member", "DELETE", base+vol+"?cascade=maybe", nil), 400, "Value 'maybe' for 'cascade' is not a boolean.")
		if v := e.waitStatus("member", projA, vol, "available"); v["status"] != "available" {
			t.Errorf("refused deletes changed the volume: %v", v)
		}
		// A snapshot being made blocks the cascade.
		e.Must(202, e.snapAction("admin", projA, s2, map[string]any{"os-reset_status": map[string]any{"status": "creating"}}))
		wantError(t, "cascade with a creating snapshot", e.Do("member", "DELETE", base+vol+"?cascade=true", nil), 400, refused)
		e.Must(202, e.snapAction("admin", projA, s2, map[string]any{"os-reset_status": map[string]any{"status": "error"}}))

		// A volume made from a snapshot outlives the cascade.
		fromSnap := e.createVolume("member", projA, map[string]any{"snapshot_id": s1}, "available")["id"].(string)
		e.Must(202, e.Do("member", "DELETE", base+vol+"?cascade=true", nil))
		apitest.Eventually(t, 30*time.Second, func() bool { return e.Do("member", "GET", base+vol, nil).Code == 404 }, func() string { return "volume not deleted" })
		for _, s := range []string{s1, s2} {
			wantError(t, "snapshot after cascade", e.Do("member", "GET", snapBase(projA)+"/"+s, nil), 404, "Snapshot "+s+" could not be found.")
		}
		e.waitStatus("member", projA, fromSnap, "available")
		if files := volumeFiles(t, e); len(files) != 1 {
			t.Errorf("backend after the cascade: %v, want only the volume made from the snapshot", files)
		}
		// Without snapshots, cascade is a plain delete.
		e.Must(202, e.Do("member", "DELETE", base+fromSnap+"?cascade=true", nil))
		e.Must(404, e.Do("member", "GET", base+fromSnap, nil))
	})
}

// volumeFiles lists the backend's files (volumes and snapshots).
func volumeFiles(t *testing.T, e *env) []string {
	t.Helper()
	ents, err := os.ReadDir(e.svc.backends[0].cfg.Options["volumes_dir"])
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ent := range ents {
		out = append(out, ent.Name())
	}
	return out
}

// TestVolumeFromSnapshotAndClone: a volume made from a snapshot (or cloned)
// holds its source's bytes, may be larger, and is bootable with the image
// metadata of its source as it was when snapshotted.
func TestVolumeFromSnapshotAndClone(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		data := bytes.Repeat([]byte("snapshot"), 1<<15) // 256 KiB
		img := e.glance.addImage(map[string]any{"name": "boot", "hw_disk_bus": "scsi"}, data)
		src := e.createVolume("member", projA, map[string]any{"imageRef": img}, "available")
		srcID := src["id"].(string)
		sn := e.createSnapshot("member", projA, srcID, nil, "available")["id"].(string)
		// The source's image metadata changes after the snapshot; volumes
		// from the snapshot keep what it had.
		e.MustJSON(200, e.volAction("member", projA, srcID, map[string]any{"os-set_image_metadata": map[string]any{"metadata": map[string]any{"hw_disk_bus": "virtio"}}}))

		v := e.createVolume("member", projA, map[string]any{"snapshot_id": sn, "size": 3}, "available")
		if v["snapshot_id"] != sn || v["size"] != float64(3) || v["bootable"] != "true" || v["source_volid"] != nil {
			t.Errorf("volume from snapshot: %v", v)
		}
		im, _ := v["volume_image_metadata"].(map[string]any)
		if im["image_id"] != img || im["hw_disk_bus"] != "scsi" {
			t.Errorf("volume from snapshot: image metadata %v, want the snapshot's", im)
		}
		if got := e.readVolume(v["id"].(string), int64(len(data))); !bytes.Equal(got, data) {
			t.Errorf("volume from snapshot holds other bytes")
		}
		if r := e.Do("member", "GET", "/v3/"+projA+"/volumes/"+v["id"].(string), nil, "OpenStack-API-Version", "volume 3.70"); r.Code != 200 {
			t.Errorf("show at 3.70: %d", r.Code)
		}
		c := e.createVolume("member", projA, map[string]any{"source_volid": srcID, "size": 2}, "available")
		if c["source_volid"] != srcID || c["size"] != float64(2) || c["bootable"] != "true" || c["volume_image_metadata"].(map[string]any)["hw_disk_bus"] != "virtio" {
			t.Errorf("clone: %v", c)
		}
		if got := e.readVolume(c["id"].(string), int64(len(data))); !bytes.Equal(got, data) {
			t.Errorf("clone holds other bytes")
		}

		// A snapshot of a volume that is not bootable makes volumes that are not.
		plain := e.createVolume("member", projA, map[string]any{"size": 2}, "available")["id"].(string)
		plainSnap := e.createSnapshot("member", projA, plain, nil, "available")["id"].(string)
		// Without a size, the snapshot's.
		r := e.Do("member", "POST", "/v3/"+projA+"/volumes", map[string]any{"volume": map[string]any{"snapshot_id": plainSnap}})
		noSize := e.MustJSON(202, r)["volume"].(map[string]any)["id"].(string)
		if v := e.waitStatus("member", projA, noSize, "available"); v["bootable"] != "false" || v["size"] != float64(2) || v["volume_image_metadata"] != nil {
			t.Errorf("volume from a plain snapshot: %v", v)
		}

		base := "/v3/" + projA + "/volumes"
		for _, tc := range []struct {
			what string
			body map[string]any
			code int
			msg  string
		}{
			{"smaller than the snapshot", map[string]any{"snapshot_id": plainSnap, "size": 1}, 400,
				"Invalid input received: Volume size '1'GB cannot be smaller than the snapshot size 2GB. They must be >= original snapshot size."},
			{"smaller than the source", map[string]any{"source_volid": plain, "size": 1}, 400,
				"Invalid input received: Volume size '1'GB cannot be smaller than original volume size  2GB. They must be >= original volume size."},
			{"unknown snapshot", map[string]any{"snapshot_id": "0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e"}, 404,
				"Snapshot 0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e could not be found."},
			{"another zone", map[string]any{"snapshot_id": plainSnap, "availability_zone": "mars"}, 400,
				"Invalid input received: Availability zone 'mars' is invalid."},
		} {
			wantError(t, tc.what, e.Do("member", "POST", base, map[string]any{"volume": tc.body}), tc.code, tc.msg)
		}
		if r := e.Do("memberB", "POST", "/v3/"+projB+"/volumes", map[string]any{"volume": map[string]any{"snapshot_id": sn}}); r.Code != 404 {
			t.Errorf("volume from another project's snapshot: %d", r.Code)
		}
		e.Must(202, e.snapAction("admin", projA, plainSnap, map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		wantError(t, "snapshot in error", e.Do("member", "POST", base, map[string]any{"volume": map[string]any{"snapshot_id": plainSnap}}), 400,
			"Invalid snapshot: Originating snapshot status must be one of 'available' values")
		e.Must(202, e.volAction("admin", projA, plain, map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		wantError(t, "source in error", e.Do("member", "POST", base, map[string]any{"volume": map[string]any{"source_volid": plain}}), 400,
			"Invalid volume: Originating source volume status must be one of 'available, in-use' values")
	})
}

// writeVolume overwrites the start of a volume's file, through a file
// driver of its own on the backend's directory (no compute service writes
// volumes here).
func writeVolume(t *testing.T, e *env, id string, data []byte) {
	t.Helper()
	fd, err := file.New(e.svc.backends[0].cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := openVolumeFile(t, fd, id)
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
}

// TestRevertToSnapshot: the revert action (3.40) restores the latest
// snapshot's bytes, with Cinder's checks and status moves.
func TestRevertToSnapshot(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		mv := []string{"OpenStack-API-Version", "volume 3.40"}
		revert := func(token string, snap any, hdr ...string) apitest.Resp {
			return e.volAction(token, projectOfToken(token), vol, map[string]any{"revert": map[string]any{"snapshot_id": snap}}, hdr...)
		}
		wantError(t, "no snapshots", revert("member", "x", mv...), 400, "Volume "+vol+" doesn't have any snapshots.")
		writeVolume(t, e, vol, []byte("first"))
		s1 := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
		writeVolume(t, e, vol, []byte("second"))
		s2 := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
		writeVolume(t, e, vol, []byte("third!"))

		wantError(t, "before 3.40", revert("member", s2), 404, "The resource could not be found.")
		wantError(t, "not the latest", revert("member", s1, mv...), 400, "Specified snapshot "+s1+" is None or not the latest one of volume "+vol+".")
		wantError(t, "none", revert("member", nil, mv...), 400, "Specified snapshot None is None or not the latest one of volume "+vol+".")
		wantError(t, "no body", e.volAction("member", projA, vol, map[string]any{"revert": nil}, mv...), 400, "Missing required element 'revert' in request body.")
		wantError(t, "reader", revert("reader", s2, mv...), 403, "Policy doesn't allow volume:revert_to_snapshot to be performed.")
		if r := revert("memberB", s2, mv...); r.Code != 404 {
			t.Errorf("another project reverts: %d", r.Code)
		}
		e.Must(202, e.snapAction("admin", projA, s2, map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		wantError(t, "snapshot in error", revert("member", s2, mv...), 409,
			"Invalid snapshot: Can't revert volume "+vol+" to its latest snapshot "+s2+". Snapshot's status must be 'available'.")
		if v := e.waitStatus("member", projA, vol, "available"); v["status"] != "available" {
			t.Errorf("a refused revert left the volume %v", v["status"])
		}
		e.Must(202, e.snapAction("admin", projA, s2, map[string]any{"os-reset_status": map[string]any{"status": "available"}}))

		e.Must(202, revert("member", s2, mv...))
		e.waitStatus("member", projA, vol, "available")
		e.waitSnapshot("member", projA, s2, "available")
		if got := e.readVolume(vol, 6); string(got) != "second" {
			t.Errorf("reverted volume starts %q, want the snapshot's %q", got, "second")
		}
		e.MustJSON(202, e.volAction("admin", projA, vol, map[string]any{"os-reset_status": map[string]any{"status": "in-use"}}))
		wantError(t, "volume in-use", revert("member", s2, mv...), 409,
			"Invalid volume: Can't revert volume "+vol+" to its latest snapshot "+s2+". Volume's status must be 'available'.")
		e.MustJSON(202, e.volAction("admin", projA, vol, map[string]any{"os-reset_status": map[string]any{"status": "available"}}))

		// Extending works with snapshots; a revert then needs equal sizes.
		e.Must(202, e.volAction("member", projA, vol, map[string]any{"os-extend": map[string]any{"new_size": 2}}))
		if v := e.waitStatus("member", projA, vol, "available"); v["size"] != float64(2) {
			t.Errorf("extended volume: %v", v["size"])
		}
		// No extend while a snapshot or a clone of the volume is being made.
		extend := map[string]any{"os-extend": map[string]any{"new_size": 3}}
		e.Must(202, e.snapAction("admin", projA, s1, map[string]any{"os-reset_status": map[string]any{"status": "creating"}}))
		wantError(t, "extend while snapshotted", e.volAction("member", projA, vol, extend), 400,
			"Invalid volume: Volume "+vol+" has a snapshot or clone being created.")
		e.Must(202, e.snapAction("admin", projA, s1, map[string]any{"os-reset_status": map[string]any{"status": "available"}}))
		clone := e.createVolume("member", projA, map[string]any{"source_volid": vol, "size": 2}, "available")["id"].(string)
		e.Must(202, e.volAction("admin", projA, clone, map[string]any{"os-reset_status": map[string]any{"status": "creating"}}))
		wantError(t, "extend while cloned", e.volAction("member", projA, vol, extend), 400,
			"Invalid volume: Volume "+vol+" has a snapshot or clone being created.")
		if v := e.waitStatus("member", projA, vol, "available"); v["size"] != float64(2) {
			t.Errorf("refused extends changed the volume: %v", v)
		}
		wantError(t, "size changed", revert("member", s2, mv...), 400,
			"Can't revert volume "+vol+" to its latest snapshot "+s2+". The volume size must be equal to the snapshot size.")
		if sn := e.waitSnapshot("member", projA, s2, "available"); sn["size"] != float64(1) {
			t.Errorf("snapshot size after extend: %v", sn["size"])
		}
	})
}

// TestSnapshotPolicyMatrix: role x own/other project for every snapshot
// operation, as Cinder's defaults (readers read, members write, admins do
// all; other projects' snapshots are not found).
func TestSnapshotPolicyMatrix(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		fresh := func() string { return e.createSnapshot("member", projA, vol, nil, "available")["id"].(string) }
		shared := fresh()
		ops := []struct {
			name, method, path string
			body               any
			consumes           bool
			want               map[string]int // by token
		}{
			{"show", "GET", "/snapshots/%s", nil, false, map[string]int{"admin": 200, "member": 200, "reader": 200, "memberB": 404, "adminB": 200}},
			{"update", "PUT", "/snapshots/%s", map[string]any{"snapshot": map[string]any{"name": "n"}}, false, map[string]int{"admin": 200, "member": 200, "reader": 403, "memberB": 404, "adminB": 200}},
			{"metadata", "GET", "/snapshots/%s/metadata", nil, false, map[string]int{"admin": 200, "member": 200, "reader": 200, "memberB": 404, "adminB": 200}},
			{"reset", "POST", "/snapshots/%s/action", map[string]any{"os-reset_status": map[string]any{"status": "available"}}, false, map[string]int{"admin": 202, "member": 403, "reader": 403, "memberB": 404, "adminB": 202}},
			{"delete", "DELETE", "/snapshots/%s", nil, true, map[string]int{"admin": 202, "member": 202, "reader": 403, "memberB": 404, "adminB": 202}},
			{"force delete", "POST", "/snapshots/%s/action", map[string]any{"os-force_delete": nil}, true, map[string]int{"admin": 202, "member": 403, "reader": 403, "memberB": 404, "adminB": 202}},
			{"create", "POST", "/snapshots", map[string]any{"snapshot": map[string]any{"volume_id": vol}}, false, map[string]int{"admin": 202, "member": 202, "reader": 403, "memberB": 404, "adminB": 202}},
		}
		for _, o := range ops {
			for _, token := range []string{"admin", "member", "reader", "memberB", "adminB"} {
				id := shared
				if o.consumes {
					id = fresh()
				}
				path := "/v3/" + projectOfToken(token) + strings.Replace(o.path, "%s", id, 1)
				if r := e.Do(token, o.method, path, o.body); r.Code != o.want[token] {
					t.Errorf("%s as %s: %d, want %d (%s)", o.name, token, r.Code, o.want[token], r.Body)
				}
			}
		}
		// Lists show the caller's project only (admins: all_tenants).
		for token, want := range map[string]bool{"member": true, "reader": true, "memberB": false} {
			body := e.Must(200, e.Do(token, "GET", "/v3/snapshots", nil)).Body
			if got := strings.Contains(string(body), shared); got != want {
				t.Errorf("%s lists the shared snapshot: %v, want %v", token, got, want)
			}
		}
	})
}
