package volume

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivers"
)

// faultyDriver fails the snapshot operations named in fail (while set) and
// can hold CreateSnapshot until release is closed.
type faultyDriver struct {
	driver.Driver
	mu   sync.Mutex
	fail map[string]bool
	// hold, when set, makes CreateSnapshot signal held and wait for release.
	hold          bool
	held, release chan struct{}
	// onDelete, when set, runs as Delete begins.
	onDelete func(id string)
}

func (f *faultyDriver) Delete(ctx context.Context, id string) error {
	if f.onDelete != nil {
		f.onDelete(id)
	}
	if err := f.failing("Delete"); err != nil {
		return err
	}
	return f.Driver.Delete(ctx, id)
}

func (f *faultyDriver) failing(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[op] {
		return errs.E(errs.Other, "injected %s failure", op)
	}
	return nil
}

func (f *faultyDriver) setFail(ops ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = map[string]bool{}
	for _, op := range ops {
		f.fail[op] = true
	}
}

func (f *faultyDriver) CreateSnapshot(ctx context.Context, vol, snap string) error {
	if f.hold {
		close(f.held)
		<-f.release
	}
	if err := f.failing("CreateSnapshot"); err != nil {
		return err
	}
	return f.Driver.CreateSnapshot(ctx, vol, snap)
}

func (f *faultyDriver) DeleteSnapshot(ctx context.Context, vol, snap string) error {
	if err := f.failing("DeleteSnapshot"); err != nil {
		return err
	}
	return f.Driver.DeleteSnapshot(ctx, vol, snap)
}

func (f *faultyDriver) Clone(ctx context.Context, src, id string, size int64) error {
	if err := f.failing("Clone"); err != nil {
		return err
	}
	return f.Driver.Clone(ctx, src, id, size)
}

func (f *faultyDriver) CreateFromSnapshot(ctx context.Context, vol, snap, id string, size int64) error {
	if err := f.failing("CreateFromSnapshot"); err != nil {
		return err
	}
	return f.Driver.CreateFromSnapshot(ctx, vol, snap, id, size)
}

func (f *faultyDriver) Revert(ctx context.Context, vol, snap string) error {
	if err := f.failing("Revert"); err != nil {
		return err
	}
	return f.Driver.Revert(ctx, vol, snap)
}

// newFaultyEnv runs the service on a faultyDriver over the file driver.
func newFaultyEnv(t *testing.T, d *db.DB) (*env, *faultyDriver) {
	t.Helper()
	f := &faultyDriver{}
	e := newEnvWith(t, d, func(t *testing.T, cfg *config.Config) Options {
		fd, err := drivers.New(cfg.Backends[0])
		if err != nil {
			t.Fatal(err)
		}
		f.Driver = fd
		return Options{Drivers: map[string]driver.Driver{"local": f}}
	})
	return e, f
}

// wantMessage fails unless resource has exactly one user message, of
// event with text. (The message is recorded right after the status
// change that the caller waited for.)
func wantMessage(t *testing.T, e *env, resource, resourceType, event, text string) {
	t.Helper()
	var msgs []any
	apitest.Eventually(t, 10*time.Second, func() bool {
		msgs = e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/messages?resource_uuid="+resource, nil,
			"OpenStack-API-Version", "volume 3.5"))["messages"].([]any)
		return len(msgs) > 0
	}, func() string { return "no user message about " + resource })
	if len(msgs) != 1 {
		t.Fatalf("messages of %s: %v, want one", resource, msgs)
	}
	m := msgs[0].(map[string]any)
	if m["resource_type"] != resourceType || m["event_id"] != event || m["user_message"] != text || m["message_level"] != "ERROR" {
		t.Errorf("message of %s: %v, want %s %s %q", resource, m, resourceType, event, text)
	}
}

// TestSnapshotWorkFailures: an operation that fails in the driver leaves
// its source untouched and the new object in error, with a user message.
func TestSnapshotWorkFailures(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e, f := newFaultyEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		writeVolume(t, e, vol, []byte("source"))
		unchanged := func(what string) {
			t.Helper()
			if v := e.waitStatus("member", projA, vol, "available"); v["status"] != "available" {
				t.Errorf("%s: source volume %v", what, v["status"])
			}
			if got := e.readVolume(vol, 6); string(got) != "source" {
				t.Errorf("%s: source volume holds %q", what, got)
			}
		}

		f.setFail("CreateSnapshot")
		bad := e.createSnapshot("member", projA, vol, nil, "error")["id"].(string)
		wantMessage(t, e, bad, "VOLUME_SNAPSHOT", eventSnapshotCreate, msgSnapshotCreate)
		unchanged("failed snapshot")

		f.setFail("Clone")
		clone := e.createVolume("member", projA, map[string]any{"source_volid": vol}, "error")["id"].(string)
		wantMessage(t, e, clone, "VOLUME", eventCreateFromBackend, msgCreateFromBackend)
		unchanged("failed clone")

		f.setFail()
		sn := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
		f.setFail("CreateFromSnapshot")
		fromSnap := e.createVolume("member", projA, map[string]any{"snapshot_id": sn}, "error")["id"].(string)
		wantMessage(t, e, fromSnap, "VOLUME", eventCreateFromBackend, msgCreateFromBackend)
		e.waitSnapshot("member", projA, sn, "available")

		f.setFail("Revert")
		writeVolume(t, e, vol, []byte("SOURCE"))
		e.Must(202, e.volAction("member", projA, vol, map[string]any{"revert": map[string]any{"snapshot_id": sn}}, "OpenStack-API-Version", "volume 3.40"))
		e.waitStatus("member", projA, vol, "error")
		e.waitSnapshot("member", projA, sn, "available")
		if got := e.readVolume(vol, 6); string(got) != "SOURCE" {
			t.Errorf("a failed revert changed the volume: %q", got)
		}
		e.Must(202, e.volAction("admin", projA, vol, map[string]any{"os-reset_status": map[string]any{"status": "available"}}))

		f.setFail("DeleteSnapshot")
		e.Must(202, e.Do("member", "DELETE", snapBase(projA)+"/"+sn, nil))
		e.waitSnapshot("member", projA, sn, "error_deleting")
		wantMessage(t, e, sn, "VOLUME_SNAPSHOT", eventSnapshotDelete, msgSnapshotDelete)
		f.setFail()
		e.Must(202, e.snapAction("admin", projA, sn, map[string]any{"os-force_delete": nil}))
		e.waitSnapshot("member", projA, sn, "gone")

		// A failed cascade leaves the volume and its snapshots in error_deleting.
		left := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
		e.Must(202, e.snapAction("admin", projA, bad, map[string]any{"os-reset_status": map[string]any{"status": "available"}}))
		f.setFail("DeleteSnapshot")
		e.Must(202, e.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+vol+"?cascade=true", nil))
		e.waitStatus("member", projA, vol, "error_deleting")
		e.waitSnapshot("member", projA, left, "error_deleting")
	})
}

// TestSnapshotWorkRecovery: snapshot work whose node died is resumed by
// another node, work begun by a node that died after the driver finished
// completes without redoing it, and work interrupted too often fails.
func TestSnapshotWorkRecovery(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.stop()
		ctx := context.Background()
		vol := e.createVolumeNoWorker("member", projA)
		reverted := e.createVolumeNoWorker("member", projA)
		writeVolume(t, e, reverted, []byte("before"))
		drv := e.svc.backends[0].drv

		// Recorded, never run: the process died after the 202.
		pending := e.createSnapshot("member", projA, vol, nil, "")["id"].(string)
		// Claimed by a node that died after the driver made the snapshot.
		made := e.createSnapshot("member", projA, reverted, nil, "")["id"].(string)
		if _, err := d.ExecContext(ctx, `DELETE FROM tasks WHERE subject = ?`, made); err != nil {
			t.Fatal(err)
		}
		if err := drv.CreateSnapshot(ctx, reverted, made); err != nil {
			t.Fatal(err)
		}
		addTask(t, d, workSnapshot, made, workPayload{}, 1, "dead", time.Now().Add(-time.Second))
		// Interrupted as often as allowed: given up, in error.
		stuck := e.createSnapshot("member", projA, vol, nil, "")["id"].(string)
		if _, err := d.ExecContext(ctx, `DELETE FROM tasks WHERE subject = ?`, stuck); err != nil {
			t.Fatal(err)
		}
		addTask(t, d, workSnapshot, stuck, workPayload{}, maxAttempts, "dead", time.Now().Add(-time.Second))
		// A revert to made whose node died mid-way (once made is
		// available: a revert needs its snapshot made).
		e2 := newEnvOn(t, d, e)
		e2.waitSnapshot("member", projA, made, "available")
		e2.stop()
		writeVolume(t, e, reverted, []byte("after!"))
		if _, err := d.ExecContext(ctx, `UPDATE volumes SET status = 'reverting' WHERE id = ?`, reverted); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, `UPDATE snapshots SET status = 'restoring' WHERE id = ?`, made); err != nil {
			t.Fatal(err)
		}
		addTask(t, d, workRevert, reverted, workPayload{SnapshotID: made}, 1, "dead", time.Now().Add(-time.Second))

		e2.start()
		e2.waitSnapshot("member", projA, pending, "available")
		e2.waitSnapshot("member", projA, stuck, "error")
		wantMessage(t, e2, stuck, "VOLUME_SNAPSHOT", eventSnapshotCreate, msgSnapshotCreate)
		e2.waitStatus("member", projA, reverted, "available")
		e2.waitSnapshot("member", projA, made, "available")
		if got := e2.readVolume(reverted, 6); string(got) != "before" {
			t.Errorf("resumed revert: volume holds %q, want %q", got, "before")
		}
		waitTasksDone(t, d)
	})
}

// A snapshot force-deleted while it is being made is deleted once the
// making ends, and leaves no data.
func TestForceDeleteSnapshotDuringCreate(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e, f := newFaultyEnv(t, d)
		vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		f.held, f.release, f.hold = make(chan struct{}), make(chan struct{}), true
		sn := e.createSnapshot("member", projA, vol, nil, "")["id"].(string)
		select {
		case <-f.held:
		case <-time.After(10 * time.Second):
			t.Fatal("snapshot creation never started")
		}
		e.Must(202, e.snapAction("admin", projA, sn, map[string]any{"os-force_delete": nil}))
		time.Sleep(3 * snapshotBusyPoll)
		if r := e.Do("member", "GET", snapBase(projA)+"/"+sn, nil); r.Code != 200 {
			t.Errorf("snapshot deleted while it was being made: %d", r.Code)
		}
		close(f.release)
		e.waitSnapshot("member", projA, sn, "gone")
		var files []string
		apitest.Eventually(t, 10*time.Second, func() bool {
			files = volumeFiles(t, e)
			return len(files) == 1
		}, func() string { return fmt.Sprintf("backend holds %v, want only the volume", files) })
	})
}

// At start the service removes snapshot data that has no row and keeps
// the data of the snapshots it knows.
func TestStartSweepsSnapshotsWithoutRow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		ctx := context.Background()
		vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		kept := e.createSnapshot("member", projA, vol, nil, "available")["id"].(string)
		drv := e.svc.backends[0].drv
		const orphan = "0badc0de-0000-4000-8000-000000000002"
		if err := drv.CreateSnapshot(ctx, vol, orphan); err != nil {
			t.Fatal(err)
		}
		e.stop()
		e.start()
		apitest.Eventually(t, 5*time.Second, func() bool {
			s, err := drv.OpenSnapshot(ctx, vol, orphan)
			if err == nil {
				s.Close()
			}
			return err != nil
		}, func() string { return "orphaned snapshot data still there after a restart" })
		s, err := drv.OpenSnapshot(ctx, vol, kept)
		if err != nil {
			t.Fatalf("the known snapshot's data was swept: %v", err)
		}
		s.Close()
	})
}

// TestSnapshotVersusVolumeDelete races snapshot creates against deletes of
// their volume: either the snapshot is made and the delete refused, or
// the volume goes and the snapshot is refused; never a snapshot of a
// deleted volume (the volume row lock of lockVolumeIn).
func TestSnapshotVersusVolumeDelete(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		for i := range 8 {
			vol := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
			var snap, del apitest.Resp
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				snap = e.Do("member", "POST", snapBase(projA), map[string]any{"snapshot": map[string]any{"volume_id": vol}})
			}()
			go func() {
				defer wg.Done()
				del = e.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+vol, nil)
			}()
			wg.Wait()
			switch {
			case snap.Code == 202 && del.Code == 400:
				e.waitSnapshot("member", projA, snap.JSON(t)["snapshot"].(map[string]any)["id"].(string), "available")
			case (snap.Code == 400 || snap.Code == 404) && del.Code == 202:
				e.Must(404, e.Do("member", "GET", "/v3/"+projA+"/volumes/"+vol, nil))
			default:
				t.Errorf("round %d: snapshot %d %s, delete %d %s", i, snap.Code, snap.Body, del.Code, del.Body)
			}
		}
		var orphans int
		if err := d.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM snapshots s WHERE NOT EXISTS
			(SELECT 1 FROM volumes v WHERE v.id = s.volume_id AND v.status = 'available')`).Scan(&orphans); err != nil {
			t.Fatal(err)
		}
		if orphans != 0 {
			t.Errorf("%d snapshots of volumes not available", orphans)
		}
	})
}

// A volume being deleted (its status deleting, its data going) has a task
// held by the deleting node, finished with the row: a node that dies in
// between leaves the delete to another node, never a volume stuck in
// deleting (the cluster chaos run found two). A failed delete leaves the
// volume in error_deleting and its task failed.
func TestDeleteUnderTask(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e, f := newFaultyEnv(t, d)
		ctx := context.Background()
		held := func(id string) (n int) {
			if err := d.QueryRowContext(ctx, `SELECT COUNT(*) FROM tasks WHERE subject = ? AND kind = ? AND state = 'running'`,
				id, workDeleteCascade).Scan(&n); err != nil {
				t.Error(err)
			}
			return n
		}
		for _, force := range []bool{false, true} {
			id := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
			var during []int
			f.onDelete = func(id string) { during = append(during, held(id)) }
			if force {
				e.Must(202, e.Do("admin", "POST", "/v3/"+projA+"/volumes/"+id+"/action", map[string]any{"os-force_delete": nil}))
			} else {
				e.Must(202, e.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+id, nil))
			}
			f.onDelete = nil
			if len(during) != 1 || during[0] != 1 {
				t.Errorf("force %v: delete tasks held while the data went: %v, want [1]", force, during)
			}
			if r := e.Do("member", "GET", "/v3/"+projA+"/volumes/"+id, nil); r.Code != 404 {
				t.Errorf("force %v: deleted volume answers %d", force, r.Code)
			}
		}
		f.onDelete = nil
		id := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		f.setFail("Delete")
		if r := e.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+id, nil); r.Code < 400 {
			t.Fatalf("delete with a failing driver: %d", r.Code)
		}
		e.waitStatus("member", projA, id, "error_deleting")
		if n := held(id); n != 0 {
			t.Errorf("a failed delete left %d running tasks", n)
		}
		waitTasksDone(t, d)
	})
}
