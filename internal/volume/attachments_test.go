package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivers"
)

// timeRE matches a time as Cinder prints it, in JSON.
var timeRE = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}"`)

// attBase is the attachments collection of project.
func attBase(project string) string { return "/v3/" + project + "/attachments" }

// mvHdr is the microversion header for volume 3.<minor>.
func mvHdr(minor int) []string {
	return []string{"OpenStack-API-Version", fmt.Sprintf("volume 3.%d", minor)}
}

// testConnector is an os-brick connector of a host that is not this one.
var testConnector = map[string]any{"host": "compute-1", "ip": "10.0.0.5", "initiator": "iqn.1993-08.org.debian:01:abc",
	"platform": "x86_64", "os_type": "linux", "multipath": false, "mountpoint": "/dev/vdb"}

// createAttachment creates an attachment of volume as token at 3.54 and
// returns it.
func (e *env) createAttachment(token, project, volume string, fields map[string]any) map[string]any {
	e.t.Helper()
	if fields == nil {
		fields = map[string]any{}
	}
	fields["volume_uuid"] = volume
	return e.MustJSON(200, e.Do(token, "POST", attBase(project), map[string]any{"attachment": fields}, mvHdr(54)...))["attachment"].(map[string]any)
}

// volumeState is a volume's status and attach_status as admin sees them.
func (e *env) volumeState(project, id string) (status, attachStatus string, v map[string]any) {
	e.t.Helper()
	v = e.MustJSON(200, e.Do("admin", "GET", "/v3/"+project+"/volumes/"+id, nil, mvHdr(54)...))["volume"].(map[string]any)
	var as string
	row, err := getVolumeRow(context.Background(), e.db, id)
	if err != nil {
		e.t.Fatal(err)
	}
	as = row.AttachStatus
	return v["status"].(string), as, v
}

// wantState fails unless the volume has status and attach_status.
func (e *env) wantState(project, id, status, attachStatus string) map[string]any {
	e.t.Helper()
	st, as, v := e.volumeState(project, id)
	if st != status || as != attachStatus {
		e.t.Fatalf("volume %s: status %s/%s, want %s/%s", id, st, as, status, attachStatus)
	}
	return v
}

// wantErrorPart fails unless r is code with a message containing want.
func wantErrorPart(t *testing.T, r apitest.Resp, code int, want string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("got %d %s, want %d", r.Code, r.Body, code)
	}
	if _, msg := errMessage(t, r); !strings.Contains(msg, want) {
		t.Fatalf("message %q does not contain %q", msg, want)
	}
}

// TestAttachmentLifecycle walks the attachments API's status machine:
// available → reserved → attaching → in-use → available, with the rules
// an in-use volume obeys on the way.
func TestAttachmentLifecycle(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		vbase := "/v3/" + projA + "/volumes/" + vol
		act := func(mv int, body any) apitest.Resp {
			return e.Do("member", "POST", vbase+"/action", body, mvHdr(mv)...)
		}

		// Before 3.27 the API is not there.
		if r := e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": vol}}, mvHdr(26)...); r.Code != 404 {
			t.Fatalf("create at 3.26: %d", r.Code)
		}
		// Bad bodies.
		wantErrorPart(t, e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{}}, mvHdr(27)...), 400, "'volume_uuid' is a required property")
		wantErrorPart(t, e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": vol, "mode": "rw"}}, mvHdr(53)...), 400, "Additional properties are not allowed")
		wantErrorPart(t, e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": vol, "mode": "rx"}}, mvHdr(54)...), 400, "is not one of ['rw', 'ro']")
		if r := e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": "0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e"}}, mvHdr(27)...); r.Code != 404 {
			t.Fatalf("unknown volume: %d", r.Code)
		}

		// Reserve without a connector.
		const instance = "4b3f5f0c-9a44-4fb4-9d4c-7c5e8d0f0a11"
		a := e.createAttachment("member", projA, vol, map[string]any{"instance_uuid": instance})
		id := a["id"].(string)
		if a["status"] != "reserved" || a["instance"] != instance || a["attach_mode"] != "null" || a["attached_at"] != "" {
			t.Fatalf("reserved attachment %v", a)
		}
		e.wantState(projA, vol, "reserved", "detached")
		// A second attachment of a volume that is not multiattach is refused.
		wantErrorPart(t, e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": vol}}, mvHdr(27)...), 400,
			"Invalid volume: Volume "+vol+" status must be available or downloading to reserve, but the current status is reserved.")
		// The same instance may reserve again (a move between hosts).
		again := e.createAttachment("member", projA, vol, map[string]any{"instance_uuid": instance})
		e.MustJSON(200, e.Do("member", "DELETE", attBase(projA)+"/"+again["id"].(string), nil, mvHdr(27)...))

		// Update with a connector: connection_info, attaching.
		wantErrorPart(t, e.Do("member", "PUT", attBase(projA)+"/"+id, map[string]any{"attachment": map[string]any{"connector": map[string]any{}}}, mvHdr(27)...), 400, "does not have enough properties")
		u := e.MustJSON(200, e.Do("member", "PUT", attBase(projA)+"/"+id, map[string]any{"attachment": map[string]any{"connector": testConnector}}, mvHdr(27)...))["attachment"].(map[string]any)
		ci := u["connection_info"].(map[string]any)
		path := filepath.Join(e.dir, "vols", "volume-"+vol)
		if ci["driver_volume_type"] != "local" || ci["device_path"] != path || ci["attachment_id"] != id ||
			ci["access_mode"] != "rw" || ci["encrypted"] != false || ci["cacheable"] != false || u["status"] != "attaching" || u["attach_mode"] != "rw" {
			t.Fatalf("updated attachment %v", u)
		}
		e.wantState(projA, vol, "attaching", "attaching")

		// Complete (3.44): in-use, attached, shown in the volume.
		if r := e.Do("member", "POST", attBase(projA)+"/"+id+"/action", map[string]any{"os-complete": nil}, mvHdr(43)...); r.Code != 404 {
			t.Fatalf("complete at 3.43: %d", r.Code)
		}
		e.Must(204, e.Do("member", "POST", attBase(projA)+"/"+id+"/action", map[string]any{"os-complete": nil}, mvHdr(44)...))
		v := e.wantState(projA, vol, "in-use", "attached")
		atts := v["attachments"].([]any)
		if len(atts) != 1 {
			t.Fatalf("attachments %v", atts)
		}
		at := atts[0].(map[string]any)
		if at["attachment_id"] != id || at["server_id"] != instance || at["host_name"] != "compute-1" || at["device"] != "/dev/vdb" || at["id"] != vol {
			t.Fatalf("volume attachment (admin) %v", at)
		}
		mv := e.MustJSON(200, e.Do("member", "GET", vbase, nil))["volume"].(map[string]any)
		if h := mv["attachments"].([]any)[0].(map[string]any)["host_name"]; h != nil {
			t.Fatalf("member sees host_name %v", h)
		}
		if s := e.MustJSON(200, e.Do("member", "GET", attBase(projA)+"/"+id, nil, mvHdr(27)...))["attachment"].(map[string]any); s["status"] != "attached" || s["attached_at"] == "" {
			t.Fatalf("show %v", s)
		}

		// An in-use volume: not deleted, extended only from 3.42, no
		// snapshot without force, no upload (force is off by default).
		wantErrorPart(t, e.Do("member", "DELETE", vbase, nil), 400, "must not be migrating, attached")
		wantErrorPart(t, e.Do("admin", "POST", vbase+"/action", map[string]any{"os-force_delete": nil}), 400, "must not be migrating, attached")
		wantErrorPart(t, act(41, map[string]any{"os-extend": map[string]any{"new_size": 2}}), 400, "status must be available")
		e.Must(202, act(42, map[string]any{"os-extend": map[string]any{"new_size": 2}}))
		if v := e.waitStatus("member", projA, vol, "in-use"); v["size"] != float64(2) {
			t.Fatalf("extended in-use volume: %v", v["size"])
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != 2<<30 {
			t.Fatalf("extended file: %v %v", fi, err)
		}
		if r := e.Do("member", "POST", snapBase(projA), map[string]any{"snapshot": map[string]any{"volume_id": vol}}); r.Code != 400 {
			t.Fatalf("snapshot of in-use without force: %d", r.Code)
		}
		wantErrorPart(t, act(0, map[string]any{"os-volume_upload_image": map[string]any{"image_name": "x", "force": true}}), 400, "status must be available")
		e.wantState(projA, vol, "in-use", "attached")

		// Delete: the volume is available again.
		left := e.MustJSON(200, e.Do("member", "DELETE", attBase(projA)+"/"+id, nil, mvHdr(27)...))
		if fmt.Sprint(left) != "map[attachments:[]]" {
			t.Fatalf("delete answered %v", left)
		}
		e.wantState(projA, vol, "available", "detached")
		if r := e.Do("member", "GET", attBase(projA)+"/"+id, nil, mvHdr(27)...); r.Code != 404 {
			t.Fatalf("deleted attachment: %d", r.Code)
		}
		// A volume in error cannot be attached.
		e.MustJSON(202, e.Do("admin", "POST", vbase+"/action", map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		wantErrorPart(t, e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": vol}}, mvHdr(27)...), 400,
			"Volume attachments can not be created if the volume is in an error state")
	})
}

// TestAttachmentCreateWithConnector: one call reserves and connects; a
// reserved attachment deleted returns the volume to available.
func TestAttachmentCreateWithConnector(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		a := e.createAttachment("member", projA, vol, map[string]any{"connector": testConnector, "mode": "ro"})
		ci := a["connection_info"].(map[string]any)
		if a["status"] != "attaching" || a["attach_mode"] != "ro" || ci["access_mode"] != "ro" || ci["driver_volume_type"] != "local" {
			t.Fatalf("attachment %v", a)
		}
		e.wantState(projA, vol, "attaching", "attaching")
		e.MustJSON(200, e.Do("member", "DELETE", attBase(projA)+"/"+a["id"].(string), nil, mvHdr(27)...))
		e.wantState(projA, vol, "available", "detached")

		r := e.createAttachment("member", projA, vol, nil)
		e.MustJSON(200, e.Do("member", "DELETE", attBase(projA)+"/"+r["id"].(string), nil, mvHdr(27)...))
		e.wantState(projA, vol, "available", "detached")
	})
}

// TestMultiattach: a volume of a multiattach type takes several
// attachments and stays in-use until the last goes; a volume of another
// type takes one; the old request flag is refused.
func TestMultiattach(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.createType("multi", map[string]string{"multiattach": "<is> True"})
		wantErrorPart(t, e.Do("member", "POST", "/v3/"+projA+"/volumes", map[string]any{"volume": map[string]any{"size": 1, "multiattach": true}}), 400,
			"multiattach parameter has been removed")
		vol := e.createVolume("member", projA, map[string]any{"size": 1, "volume_type": "multi"}, "available")["id"].(string)
		var ids []string
		for i, host := range []string{"compute-1", "compute-2"} {
			c := map[string]any{"host": host, "mountpoint": "/dev/vdb"}
			a := e.createAttachment("member", projA, vol, map[string]any{"connector": c, "instance_uuid": fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i)})
			ids = append(ids, a["id"].(string))
			e.Must(204, e.Do("member", "POST", attBase(projA)+"/"+a["id"].(string)+"/action", map[string]any{"os-complete": nil}, mvHdr(50)...))
		}
		if v := e.wantState(projA, vol, "in-use", "attached"); len(v["attachments"].([]any)) != 2 {
			t.Fatalf("attachments %v", v["attachments"])
		}
		left := e.MustJSON(200, e.Do("member", "DELETE", attBase(projA)+"/"+ids[0], nil, mvHdr(50)...))["attachments"].([]any)
		if len(left) != 1 || left[0].(map[string]any)["id"] != ids[1] {
			t.Fatalf("left %v", left)
		}
		e.wantState(projA, vol, "in-use", "attached")
		// Legacy detach without an id is ambiguous only with several.
		e.MustJSON(200, e.Do("member", "DELETE", attBase(projA)+"/"+ids[1], nil, mvHdr(50)...))
		e.wantState(projA, vol, "available", "detached")

		single := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		a := e.createAttachment("member", projA, single, map[string]any{"connector": testConnector})
		e.Must(204, e.Do("member", "POST", attBase(projA)+"/"+a["id"].(string)+"/action", map[string]any{"os-complete": nil}, mvHdr(50)...))
		wantErrorPart(t, e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": single}}, mvHdr(50)...), 400,
			"status must be available or downloading to reserve, but the current status is in-use")
	})
}

// TestAttachmentPolicy: attachments are their project's; readers cannot
// attach; force_detach is the admin's.
func TestAttachmentPolicy(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		if r := e.Do("memberB", "POST", attBase(projB), map[string]any{"attachment": map[string]any{"volume_uuid": vol}}, mvHdr(27)...); r.Code != 404 {
			t.Fatalf("other project's create: %d", r.Code)
		}
		if r := e.Do("reader", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": vol}}, mvHdr(27)...); r.Code != 403 {
			t.Fatalf("reader's create: %d", r.Code)
		}
		a := e.createAttachment("member", projA, vol, map[string]any{"connector": testConnector})
		id := a["id"].(string)
		for _, c := range []struct{ method, path string }{{"GET", ""}, {"PUT", ""}, {"DELETE", ""}, {"POST", "/action"}} {
			body := any(nil)
			if c.method == "PUT" {
				body = map[string]any{"attachment": map[string]any{"connector": testConnector}}
			} else if c.method == "POST" {
				body = map[string]any{"os-complete": nil}
			}
			if r := e.Do("memberB", c.method, attBase(projB)+"/"+id+c.path, body, mvHdr(44)...); r.Code != 404 {
				t.Fatalf("other project's %s: %d %s", c.method, r.Code, r.Body)
			}
		}
		if r := e.Do("reader", "DELETE", attBase(projA)+"/"+id, nil, mvHdr(27)...); r.Code != 403 {
			t.Fatalf("reader's delete: %d", r.Code)
		}
		if l := e.MustJSON(200, e.Do("memberB", "GET", attBase(projB), nil, mvHdr(27)...))["attachments"].([]any); len(l) != 0 {
			t.Fatalf("other project lists %v", l)
		}
		if l := e.MustJSON(200, e.Do("adminB", "GET", attBase(projB)+"?all_tenants=1", nil, mvHdr(27)...))["attachments"].([]any); len(l) != 1 {
			t.Fatalf("admin all_tenants lists %v", l)
		}
		e.Must(204, e.Do("member", "POST", attBase(projA)+"/"+id+"/action", map[string]any{"os-complete": nil}, mvHdr(44)...))
		fd := map[string]any{"os-force_detach": map[string]any{"attachment_id": id, "connector": testConnector}}
		if r := e.Do("member", "POST", "/v3/"+projA+"/volumes/"+vol+"/action", fd); r.Code != 403 {
			t.Fatalf("member force_detach: %d", r.Code)
		}
		e.Must(202, e.Do("admin", "POST", "/v3/"+projA+"/volumes/"+vol+"/action", fd))
		e.wantState(projA, vol, "available", "detached")
	})
}

// TestAttachmentListPaging pages attachments by keyset and filters them.
func TestAttachmentListPaging(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		var vols []string
		want := map[string]bool{}
		for range 5 {
			vol := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
			vols = append(vols, vol)
			want[e.createAttachment("member", projA, vol, nil)["id"].(string)] = true
		}
		seen := map[string]bool{}
		marker, pages := "", 0
		for {
			q := "?limit=2&sort=id:asc"
			if marker != "" {
				q += "&marker=" + marker
			}
			page := e.MustJSON(200, e.Do("member", "GET", attBase(projA)+"/detail"+q, nil, mvHdr(27)...))["attachments"].([]any)
			pages++
			prev := marker
			for _, it := range page {
				a := it.(map[string]any)
				id := a["id"].(string)
				if seen[id] || id <= prev {
					t.Fatalf("page %d: %s repeated or out of order", pages, id)
				}
				seen[id], marker = true, id
				if _, ok := a["connection_info"]; !ok {
					t.Fatalf("detail without connection_info: %v", a)
				}
			}
			if len(page) < 2 {
				break
			}
		}
		if len(seen) != 5 || pages != 3 {
			t.Fatalf("paged %d attachments in %d pages", len(seen), pages)
		}
		one := e.MustJSON(200, e.Do("member", "GET", attBase(projA)+"?volume_id="+vols[2], nil, mvHdr(27)...))["attachments"].([]any)
		if len(one) != 1 || one[0].(map[string]any)["volume_id"] != vols[2] || len(one[0].(map[string]any)) != 4 {
			t.Fatalf("filtered summary %v", one)
		}
		if l := e.MustJSON(200, e.Do("member", "GET", attBase(projA)+"?status=attached", nil, mvHdr(27)...))["attachments"].([]any); len(l) != 0 {
			t.Fatalf("status filter %v", l)
		}
		if r := e.Do("member", "GET", attBase(projA)+"?marker=0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e", nil, mvHdr(27)...); r.Code != 404 {
			t.Fatalf("unknown marker %d", r.Code)
		}
		if r := e.Do("member", "GET", attBase(projA)+"?sort=size", nil, mvHdr(27)...); r.Code != 400 {
			t.Fatalf("bad sort key %d", r.Code)
		}
	})
}

// TestLegacyAttachActions: the pre-3.27 flow, its undo actions, and the
// refusals Cinder makes.
func TestLegacyAttachActions(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		act := func(body any) apitest.Resp {
			return e.Do("member", "POST", "/v3/"+projA+"/volumes/"+vol+"/action", body)
		}
		wantErrorPart(t, act(map[string]any{"os-begin_detaching": nil}), 400, "Volume status must be 'in-use' and attach_status must be 'attached' to detach.")
		e.Must(202, act(map[string]any{"os-reserve": nil}))
		e.wantState(projA, vol, "attaching", "detached")
		wantErrorPart(t, act(map[string]any{"os-reserve": nil}), 400, "Volume status must be available to reserve, but the status is attaching.")
		wantErrorPart(t, act(map[string]any{"os-initialize_connection": map[string]any{}}), 400, "'connector' is a required property")
		ci := e.MustJSON(200, act(map[string]any{"os-initialize_connection": map[string]any{"connector": testConnector}}))["connection_info"].(map[string]any)
		data := ci["data"].(map[string]any)
		if ci["driver_volume_type"] != "local" || data["device_path"] != filepath.Join(e.dir, "vols", "volume-"+vol) || data["access_mode"] != "rw" {
			t.Fatalf("connection_info %v", ci)
		}
		const inst = "4b3f5f0c-9a44-4fb4-9d4c-7c5e8d0f0a11"
		wantErrorPart(t, act(map[string]any{"os-attach": map[string]any{"mountpoint": "/dev/vdb"}}), 400, "is not valid under any of the given schemas")
		e.Must(202, act(map[string]any{"os-attach": map[string]any{"instance_uuid": inst, "mountpoint": "/dev/vdb"}}))
		v := e.wantState(projA, vol, "in-use", "attached")
		if at := v["attachments"].([]any)[0].(map[string]any); at["server_id"] != inst || at["device"] != "/dev/vdb" {
			t.Fatalf("attachment %v", at)
		}
		// Again for the same instance: nothing changes; another: refused.
		e.Must(202, act(map[string]any{"os-attach": map[string]any{"instance_uuid": inst, "mountpoint": "/dev/vdb"}}))
		wantErrorPart(t, act(map[string]any{"os-attach": map[string]any{"host_name": "other", "mountpoint": "/dev/vdc"}}), 400,
			"Error attaching volume - InvalidVolume: Invalid volume: volume is already attached and multiple attachments are not enabled")
		e.Must(202, act(map[string]any{"os-begin_detaching": nil}))
		e.wantState(projA, vol, "detaching", "attached")
		e.Must(202, act(map[string]any{"os-roll_detaching": nil}))
		e.wantState(projA, vol, "in-use", "attached")
		e.Must(202, act(map[string]any{"os-begin_detaching": nil}))
		e.Must(202, act(map[string]any{"os-terminate_connection": map[string]any{"connector": testConnector}}))
		e.wantState(projA, vol, "detaching", "attached")
		e.Must(202, act(map[string]any{"os-detach": map[string]any{}}))
		e.wantState(projA, vol, "available", "detached")

		// os-unreserve undoes a reserve; readonly volumes attach ro only.
		e.Must(202, act(map[string]any{"os-reserve": nil}))
		e.Must(202, act(map[string]any{"os-unreserve": nil}))
		e.wantState(projA, vol, "available", "detached")
		e.Must(202, act(map[string]any{"os-update_readonly_flag": map[string]any{"readonly": true}}))
		wantErrorPart(t, act(map[string]any{"os-attach": map[string]any{"host_name": "h", "mountpoint": "/dev/vdb"}}), 400,
			"Invalid attaching mode 'rw' for volume "+vol+".")
		e.Must(202, act(map[string]any{"os-attach": map[string]any{"host_name": "h", "mountpoint": "/dev/vdb", "mode": "ro"}}))
		e.wantState(projA, vol, "in-use", "attached")
		e.Must(202, act(map[string]any{"os-detach": nil}))
		e.wantState(projA, vol, "available", "detached")

		// Unknown volumes are 404 for every action.
		for _, a := range []string{"os-attach", "os-detach", "os-begin_detaching", "os-roll_detaching", "os-reserve", "os-unreserve"} {
			body := map[string]any{a: map[string]any{}}
			if a == "os-attach" {
				body[a] = map[string]any{"host_name": "h", "mountpoint": "/dev/vdb"}
			}
			if r := e.Do("member", "POST", "/v3/"+projA+"/volumes/0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e/action", body); r.Code != 404 {
				t.Fatalf("%s of an unknown volume: %d %s", a, r.Code, r.Body)
			}
		}
	})
}

// TestForceUploadInUse: with enable_force_upload, force uploads an in-use
// volume, which is in-use again afterwards.
func TestForceUploadInUse(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnvConfig(t, d, "enable_force_upload = true", nil)
		vol := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		act := func(body any) apitest.Resp {
			return e.Do("member", "POST", "/v3/"+projA+"/volumes/"+vol+"/action", body)
		}
		e.Must(202, act(map[string]any{"os-attach": map[string]any{"host_name": "h", "mountpoint": "/dev/vdb"}}))
		wantErrorPart(t, act(map[string]any{"os-volume_upload_image": map[string]any{"image_name": "x"}}), 400, "status must be available")
		e.Must(202, act(map[string]any{"os-volume_upload_image": map[string]any{"image_name": "x", "force": true}}))
		e.waitStatus("member", projA, vol, "in-use")
		e.wantState(projA, vol, "in-use", "attached")
	})
}

// failingAttacher is a backend whose connections fail.
type failingAttacher struct{ driver.Driver }

func (failingAttacher) Protocols() []string { return []string{driver.ProtocolLocal} }

func (failingAttacher) InitializeConnection(context.Context, string, map[string]any) (driver.ConnectionInfo, error) {
	return driver.ConnectionInfo{}, errs.E(errs.Other, "target daemon is down")
}

func (failingAttacher) TerminateConnection(context.Context, string, map[string]any) error {
	return errs.E(errs.Other, "target daemon is down")
}

// TestAttachmentDriverFailure: a connection the driver cannot make leaves
// no attachment and the volume as it was; one it cannot end leaves the
// attachment for a retry.
func TestAttachmentDriverFailure(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, func(t *testing.T, cfg *config.Config) Options {
			fd, err := drivers.New(cfg.Backends[0])
			if err != nil {
				t.Fatal(err)
			}
			return Options{Drivers: map[string]driver.Driver{"local": failingAttacher{fd}}}
		})
		vol := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		r := e.Do("member", "POST", attBase(projA), map[string]any{"attachment": map[string]any{"volume_uuid": vol, "connector": testConnector}}, mvHdr(27)...)
		wantErrorPart(t, r, 500, "Unable to create attachment for volume (Bad or unexpected response from the storage volume backend API: Driver initialize connection failed")
		e.wantState(projA, vol, "available", "detached")
		if l := e.MustJSON(200, e.Do("member", "GET", attBase(projA), nil, mvHdr(27)...))["attachments"].([]any); len(l) != 0 {
			t.Fatalf("left attachments %v", l)
		}
		a := e.createAttachment("member", projA, vol, nil)
		wantErrorPart(t, e.Do("member", "PUT", attBase(projA)+"/"+a["id"].(string), map[string]any{"attachment": map[string]any{"connector": testConnector}}, mvHdr(27)...), 500,
			"Unable to update attachment.(Bad or unexpected response")
		e.wantState(projA, vol, "reserved", "detached")
		wantErrorPart(t, e.Do("member", "POST", "/v3/"+projA+"/volumes/"+vol+"/action", map[string]any{"os-initialize_connection": map[string]any{"connector": testConnector}}), 500,
			"Unable to fetch connection information from backend.")
	})
}

// TestAttachmentViewGolden pins the attachment bodies and a volume's
// attachments field, ids and times replaced; -update rewrites them.
func TestAttachmentViewGolden(t *testing.T) {
	d := dbtest.Open(t, "sqlite")
	e := newEnv(t, d)
	vol := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
	const inst = "4b3f5f0c-9a44-4fb4-9d4c-7c5e8d0f0a11"
	created := e.createAttachment("member", projA, vol, map[string]any{"instance_uuid": inst})
	id := created["id"].(string)
	updated := e.MustJSON(200, e.Do("member", "PUT", attBase(projA)+"/"+id, map[string]any{"attachment": map[string]any{"connector": testConnector}}, mvHdr(54)...))
	e.Must(204, e.Do("member", "POST", attBase(projA)+"/"+id+"/action", map[string]any{"os-complete": nil}, mvHdr(54)...))
	bodies := map[string]any{
		"create": map[string]any{"attachment": created},
		"update": updated,
		"show":   e.MustJSON(200, e.Do("member", "GET", attBase(projA)+"/"+id, nil, mvHdr(54)...)),
		"list":   e.MustJSON(200, e.Do("member", "GET", attBase(projA), nil, mvHdr(54)...)),
		"volume": map[string]any{"attachments": e.MustJSON(200, e.Do("admin", "GET", "/v3/"+projA+"/volumes/"+vol, nil))["volume"].(map[string]any)["attachments"]},
	}
	mask := strings.NewReplacer(id, "<attachment>", vol, "<volume>", e.dir, "<dir>")
	for shape, body := range bodies {
		b, err := json.MarshalIndent(body, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		goldenText(t, "attachment-"+shape, timeRE.ReplaceAllString(mask.Replace(string(b)), `"<time>"`)+"\n")
	}
}

// TestAttachedVolumeStays: a volume with attachments is not moved to
// another backend (no compute service would swap it under its host), not
// even reserved; force-deleting a reserved volume takes its attachment
// with it.
func TestAttachedVolumeStays(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		tb := newTwoBackends(t, d, nil)
		id := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local"}, "available")["id"].(string)
		from := tb.show(id)["os-vol-host-attr:host"].(string)
		hostname := strings.TrimSuffix(from, "@local#local")
		a := tb.createAttachment("member", projA, id, nil)
		wantErrorPart(t, tb.action("admin", id, map[string]any{"os-migrate_volume": map[string]any{"host": hostname + "@remote"}}), 400,
			"status must be available or in-use")
		wantErrorPart(t, tb.action("member", id, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}), 400, "")
		if got := tb.show(id); got["os-vol-host-attr:host"] != from || got["status"] != "reserved" || got["os-vol-mig-status-attr:migstat"] != nil {
			t.Fatalf("after refused moves: %v %v %v", got["os-vol-host-attr:host"], got["status"], got["os-vol-mig-status-attr:migstat"])
		}
		tb.Must(202, tb.action("admin", id, map[string]any{"os-force_delete": nil}))
		if r := tb.Do("admin", "GET", "/v3/"+projA+"/volumes/"+id, nil); r.Code != 404 {
			t.Fatalf("force-deleted volume: %d", r.Code)
		}
		if r := tb.Do("admin", "GET", attBase(projA)+"/"+a["id"].(string), nil, mvHdr(27)...); r.Code != 404 {
			t.Fatalf("attachment of a deleted volume: %d", r.Code)
		}
		// A legacy attach (in-use, no reservation) is refused a move too.
		id2 := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local"}, "available")["id"].(string)
		tb.Must(202, tb.action("member", id2, map[string]any{"os-attach": map[string]any{"host_name": "h", "mountpoint": "/dev/vdb"}}))
		wantErrorPart(t, tb.action("admin", id2, map[string]any{"os-migrate_volume": map[string]any{"host": hostname + "@remote"}}), 400,
			"has attachments: moving it needs a compute service")
		wantErrorPart(t, tb.action("member", id2, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}), 400,
			"has attachments")
		if got := tb.show(id2); got["os-vol-host-attr:host"] != from || got["status"] != "in-use" || got["os-vol-mig-status-attr:migstat"] != nil {
			t.Fatalf("after refused moves: %v %v %v", got["os-vol-host-attr:host"], got["status"], got["os-vol-mig-status-attr:migstat"])
		}
	})
}
