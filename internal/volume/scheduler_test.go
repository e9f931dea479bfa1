package volume

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

func TestMatchSpec(t *testing.T) {
	tests := []struct {
		value any
		req   string
		want  bool
	}{
		{"local", "local", true},
		{"local", "other", false},
		{"100", ">= 50", true},
		{"10", ">= 50", false},
		{"10", "= 10", true},
		{"10", "== 11", false},
		{"10", "<= 10", true},
		{"True", "<is> True", true},
		{"False", "<is> True", false},
		{"iSCSI", "<or> FC <or> iSCSI", true},
		{"NFS", "<or> FC <or> iSCSI", false},
		{"abcdef", "<in> cde", true},
		{"abc", "s== abc", true},
		{"abc", "s!= abc", false},
		{"abc", "s< abd", true},
		// Typed capabilities, with Cinder's (Python's) semantics.
		{true, "<is> True", true},
		{true, "<is> true", true},
		{false, "<is> True", false},
		{true, "<is> False", false},
		{false, "<is> False", true},
		{"yes", "<is> True", true},
		{true, "True", false}, // plain equality: a boolean is no string
		{100.0, ">= 50", true},
		{10.5, "<= 10", false},
		{true, "== 1", true}, // Python's float(True)
		{2.0, "s== 2", false},
		{2.0, "s!= 2", true},
		{true, "<in> rue", false},
		{"abc def", "<in> def ghi", true}, // only the first word counts
		{"b", "<or> a b <or> c", false},   // "b" stands where <or> belongs,
		{"c", "<or> a b <or> c", false},   // so the candidates are a and <or>
		{"c", "<or> a <or> c", true},
		{"x", "<or>", false},
	}
	for _, tt := range tests {
		if got := matchSpec(tt.value, tt.req); got != tt.want {
			t.Errorf("matchSpec(%#v, %q) = %v", tt.value, tt.req, got)
		}
	}
}

func TestSchedulerSpecs(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		// Namespaced keys other than capabilities: are ignored; the
		// defaults tempest puts in types match.
		caps, _, err := e.svc.backends[0].capabilities(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		e.createType("ok", map[string]string{StoreSpec: "cheap", "foo:bar": "x", "capabilities:volume_backend_name": "local",
			"storage_protocol": caps["storage_protocol"].(string), "vendor_name": caps["vendor_name"].(string), "volume_backend_name": "local"})
		e.createVolume("member", projA, map[string]any{"volume_type": "ok"}, "available")
		// Unscoped keys must match a capability.
		for name, specs := range map[string]map[string]string{
			"unscoped store": {"store_id": "cheap"},
			"backend name":   {"volume_backend_name": "elsewhere"},
			"capability":     {"capabilities:storage_protocol": "FC"},
		} {
			e.createType(name, specs)
			v := e.createVolume("member", projA, map[string]any{"volume_type": name}, "error")
			if m := e.oneMessage(v["id"].(string)); m["user_message"] != "schedule allocate volume:Could not find any available weighted backend." {
				t.Errorf("%s: message %v", name, m)
			}
			// An errored volume can be deleted.
			e.MustJSON(202, e.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+v["id"].(string), nil))
		}
	})
}

// TestRecovery kills the worker with work outstanding and checks that a
// new process finishes it: no volume stays creating or uploading.
func TestRecovery(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.stop()
		ctx := context.Background()
		// A create recorded but never run (the process died after the 202).
		r := e.Do("member", "POST", "/v3/"+projA+"/volumes", map[string]any{"volume": map[string]any{"size": 1}})
		created := e.MustJSON(202, r)["volume"].(map[string]any)["id"].(string)
		// Work leased by another live process is left alone until the lease
		// expires (the other process died without releasing it).
		leased := e.createVolumeNoWorker("member", projA)
		if _, err := d.ExecContext(ctx, `UPDATE volumes SET status = 'creating' WHERE id = ?`, leased); err != nil {
			t.Fatal(err)
		}
		leaseEnd := time.Now().Add(3 * time.Second)
		addTask(t, d, workCreate, leased, workPayload{}, 1, "other", leaseEnd)

		// An upload whose process died mid-way: volume uploading, image queued.
		up := e.createVolumeNoWorker("member", projA)
		e.start()
		e.waitStatus("member", projA, up, "available")
		e.stop()
		gc, err := e.svc.glance(e.glance.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		img, err := gc.CreateImage(ctx, "member", map[string]any{"name": "resumed", "disk_format": "qcow2", "container_format": "bare"})
		if err != nil {
			t.Fatal(err)
		}
		if err := setStatus(ctx, d, up, "uploading", "available"); err != nil {
			t.Fatal(err)
		}
		addTask(t, d, workUpload, up, workPayload{ImageID: img.ID, Token: "member", DiskFormat: "qcow2",
			ContainerFormat: "bare", PreviousStatus: "available"}, 1, "dead", time.Now().Add(-time.Second))
		// An upload whose process died between recording the upload and
		// making its image (issue 13's chaos run): no image to upload into,
		// so the volume goes back to available with a user message.
		early := e.createVolumeNoWorker("member", projA)
		if err := setStatus(ctx, d, early, "uploading", "available"); err != nil {
			t.Fatal(err)
		}
		addTask(t, d, workUpload, early, workPayload{ImageID: uuid.NewString(), Token: "member", DiskFormat: "qcow2",
			ContainerFormat: "bare", PreviousStatus: "available", ProjectID: projA}, 1, "dead", time.Now().Add(-time.Second))
		// Work that already failed too often is given up, not retried forever.
		stuck := e.createVolumeNoWorker("member", projA)
		if _, err := d.ExecContext(ctx, `UPDATE volumes SET status = 'creating' WHERE id = ?`, stuck); err != nil {
			t.Fatal(err)
		}
		addTask(t, d, workCreate, stuck, workPayload{}, maxAttempts, "dead", time.Now().Add(-time.Second))

		// A new service on the same database resumes everything.
		e2 := newEnvOn(t, d, e)
		e2.waitStatus("member", projA, created, "available")
		e2.waitStatus("member", projA, up, "available")
		e2.waitImage(img.ID, "active")
		e2.waitStatus("member", projA, stuck, "error")
		e2.waitStatus("member", projA, early, "available")
		msgs := e2.MustJSON(200, e2.Do("member", "GET", "/v3/"+projA+"/messages?resource_uuid="+early, nil,
			"OpenStack-API-Version", "volume 3.3"))["messages"].([]any)
		if len(msgs) != 1 {
			t.Errorf("upload that died before its image: %d user messages, want 1", len(msgs))
		}
		e2.waitStatus("member", projA, leased, "available")
		if d.Postgres() && time.Now().Before(leaseEnd) {
			// SQLite takes a dead process's leases over at start instead.
			t.Errorf("leased work ran before the lease expired")
		}
		waitTasksDone(t, d)
	})
}

// addTask records a volume task as a process left it: claimed attempts
// times by owner, whose lease ends at leaseUntil.
func addTask(t *testing.T, d *db.DB, kind, volumeID string, p workPayload, attempts int, owner string, leaseUntil time.Time) {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(context.Background(), `INSERT INTO tasks (id, kind, subject, payload, state, attempts, epoch,
not_before, lease_owner, lease_until, created_at, updated_at) VALUES (?, ?, ?, ?, 'running', ?, 1, ?, ?, ?, ?, ?)`,
		uuid.NewString(), kind, volumeID, string(b), attempts, db.Now(), owner, db.Timestamp{Time: leaseUntil}, db.Now(), db.Now()); err != nil {
		t.Fatal(err)
	}
}

// createVolumeNoWorker creates an available volume while the worker is
// stopped, by running the worker briefly.
func (e *env) createVolumeNoWorker(token, project string) string {
	e.t.Helper()
	r := e.Do(token, "POST", "/v3/"+project+"/volumes", map[string]any{"volume": map[string]any{"size": 1}})
	id := e.MustJSON(202, r)["volume"].(map[string]any)["id"].(string)
	e.start()
	e.waitStatus(token, project, id, "available")
	e.stop()
	return id
}

// A type with multiattach "<is> True" makes multiattach volumes that
// schedule to the file backend, which reports the capability (issue 17);
// retyping follows the new type's spec, as in Cinder.
func TestMultiattachType(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.createType("multi", map[string]string{"multiattach": "<is> True"})
		e.createType("plain", nil)
		created := e.MustJSON(202, e.Do("member", "POST", "/v3/"+projA+"/volumes",
			map[string]any{"volume": map[string]any{"size": 1, "volume_type": "multi"}}))["volume"].(map[string]any)
		if created["multiattach"] != true {
			t.Errorf("create answered multiattach %v", created["multiattach"])
		}
		id := created["id"].(string)
		if v := e.waitStatus("member", projA, id, "available"); v["multiattach"] != true {
			t.Errorf("show: multiattach %v", v["multiattach"])
		}
		if v := e.createVolume("member", projA, map[string]any{"volume_type": "plain"}, "available"); v["multiattach"] != false {
			t.Errorf("plain type: multiattach %v", v["multiattach"])
		}
		if v := e.createVolume("member", projA, map[string]any{"source_volid": id}, "available"); v["multiattach"] != true {
			t.Errorf("clone of a multiattach volume: multiattach %v", v["multiattach"])
		}
		act := "/v3/" + projA + "/volumes/" + id + "/action"
		e.Must(202, e.Do("member", "POST", act, map[string]any{"os-retype": map[string]any{"new_type": "plain"}}))
		if v := e.waitStatus("member", projA, id, "available"); v["multiattach"] != false || v["volume_type"] != "plain" {
			t.Errorf("retyped to plain: multiattach %v, type %v", v["multiattach"], v["volume_type"])
		}
		e.Must(202, e.Do("member", "POST", act, map[string]any{"os-retype": map[string]any{"new_type": "multi"}}))
		if v := e.waitStatus("member", projA, id, "available"); v["multiattach"] != true {
			t.Errorf("retyped to multi: multiattach %v", v["multiattach"])
		}
	})
}

// An extend whose node died after the volume went extending (gigabytes
// reserved, task held) is finished by another node: the volume grows, the
// reservation is taken into use, nothing stays extending.
func TestExtendRecovered(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		ctx := context.Background()
		id := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		e.stop()
		v, err := getVolume(ctx, d, id)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := e.svc.beginExtend(ctx, v, 3, "available")
		if err != nil {
			t.Fatal(err)
		}
		if u := e.usage(projA)["gigabytes"].(map[string]any); u["reserved"] != float64(2) {
			t.Fatalf("extend begun: gigabytes %v, want 2 reserved", u)
		}
		tk.Release() // the node dies: nothing renews the lease, which runs out
		if _, err := d.ExecContext(ctx, `UPDATE tasks SET lease_until = ? WHERE id = ?`,
			db.Timestamp{Time: time.Now().Add(-time.Second)}, tk.ID); err != nil {
			t.Fatal(err)
		}
		e2 := newEnvOn(t, d, e)
		got := e2.waitStatus("member", projA, id, "available")
		if got["size"] != float64(3) {
			t.Errorf("recovered extend: size %v, want 3", got["size"])
		}
		if u := e2.usage(projA)["gigabytes"].(map[string]any); u["in_use"] != float64(3) || u["reserved"] != float64(0) {
			t.Errorf("recovered extend: gigabytes %v, want 3 in use, 0 reserved", u)
		}
		waitTasksDone(t, d)
	})
}
