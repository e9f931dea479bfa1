package volume

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/posix"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/s3"
)

// backupEnv is two file backends (local, remote) and a posix backup store
// under a directory of its own, whose store the test may wrap.
type backupEnv struct {
	*twoBackends
	store    backup.Store
	storeDir string
}

// restartOn is a new process on d and the same backup store as be (with
// an engine of its own, so without any hold or fault be's store had).
func (be *backupEnv) restartOn(t *testing.T, d *db.DB) *backupEnv {
	t.Helper()
	eng, err := backup.New(be.store, backup.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return &backupEnv{twoBackends: newTwoBackendsOn(t, d, be.twoBackends, eng), store: be.store, storeDir: be.storeDir}
}

// newBackupEnv starts the service; wrap, when not nil, wraps the store.
func newBackupEnv(t *testing.T, d *db.DB, wrap func(backup.Store) backup.Store) *backupEnv {
	t.Helper()
	be := &backupEnv{storeDir: filepath.Join(t.TempDir(), "backups")}
	st, err := posix.New(be.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	be.store = st
	var svcStore backup.Store = st
	if wrap != nil {
		svcStore = wrap(st)
	}
	eng, err := backup.New(svcStore, backup.Options{ChunkSize: 1 << 20, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	be.twoBackends = newTwoBackendsWith(t, d, nil, eng)
	return be
}

// backedUp creates a volume of sizeGiB on local holding a GiB of data and
// an available backup of it: the volume's id and data and the backup's id.
func (be *backupEnv) backedUp(sizeGiB int) (vid string, data content, bid string) {
	be.t.Helper()
	vid = be.createVolume("member", projA, map[string]any{"size": sizeGiB}, "available")["id"].(string)
	data = be.fill(be.t, "local", vid, 1)
	bid = be.backup("member", map[string]any{"volume_id": vid}, "available")["id"].(string)
	return vid, data, bid
}

// backup creates a backup as token from body and waits for want.
func (be *backupEnv) backup(token string, body map[string]any, want string) map[string]any {
	be.t.Helper()
	m := be.MustJSON(202, be.Do(token, "POST", "/v3/"+projA+"/backups", map[string]any{"backup": body}))
	return be.waitBackup(token, m["backup"].(map[string]any)["id"].(string), want)
}

// waitBackup waits until the backup's status is want ("deleted": gone).
func (be *backupEnv) waitBackup(token, id, want string) map[string]any {
	be.t.Helper()
	var last apitest.Resp
	var b map[string]any
	apitest.Eventually(be.t, 60*time.Second, func() bool {
		last = be.Do(token, "GET", "/v3/"+projA+"/backups/"+id, nil)
		if want == "deleted" {
			return last.Code == 404
		}
		if last.Code != 200 {
			return false
		}
		b, _ = last.JSON(be.t)["backup"].(map[string]any)
		return b["status"] == want
	}, func() string { return fmt.Sprintf("backup %s: %d %s, want %s", id, last.Code, last.Body, want) })
	return b
}

// objects lists the store's objects under container/name.
func (be *backupEnv) objects(container, name string) []string {
	be.t.Helper()
	keys, err := be.store.List(context.Background(), backup.Prefix(container, name))
	if err != nil {
		be.t.Fatal(err)
	}
	return keys
}

func TestBackupLifecycle(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		v := be.createVolume("member", projA, map[string]any{"size": 1, "volume_type": "on-local",
			"metadata": map[string]any{"k": "v"}}, "available")
		vid := v["id"].(string)
		data := be.fill(t, "local", vid, 1)

		b := be.backup("member", map[string]any{"volume_id": vid, "name": "b1", "description": "first"}, "available")
		bid := b["id"].(string)
		be.waitStatus("member", projA, vid, "available")
		for k, want := range map[string]any{"name": "b1", "description": "first", "volume_id": vid, "size": 1.0,
			"container": "volumebackups", "is_incremental": false, "has_dependent_backups": false, "snapshot_id": nil,
			"fail_reason": nil, "availability_zone": "nova"} {
			if b[k] != want {
				t.Errorf("backup %s = %v, want %v", k, b[k], want)
			}
		}
		// 3 chunks of data (3 MiB islands at 1 MiB chunks: 3+1+3, split)
		// and the manifest; the zeros of the 1 GiB volume cost nothing.
		if n := b["object_count"].(float64); n < 4 || n > 12 {
			t.Errorf("object_count = %v for 9 MiB of data in 1 GiB", n)
		}

		// The list, the detail list and their fields by microversion.
		l := be.MustJSON(200, be.Do("member", "GET", "/v3/"+projA+"/backups", nil))
		wantKeys(t, "backup summary", l["backups"].([]any)[0].(map[string]any), "id", "links", "name")
		det := be.MustJSON(200, be.Do("member", "GET", "/v3/"+projA+"/backups/detail", nil, "OpenStack-API-Version", "volume "+"3.56"))
		if _, ok := det["backups"].([]any)[0].(map[string]any)["metadata"]; !ok {
			t.Error("detail at 3.56 has no metadata")
		}
		adm := be.MustJSON(200, be.Do("admin", "GET", "/v3/"+projA+"/backups/"+bid, nil, "OpenStack-API-Version", "volume "+"3.56"))["backup"].(map[string]any)
		if adm["os-backup-project-attr:project_id"] != projA || adm["user_id"] != "u-member" {
			t.Errorf("admin show at 3.56: project %v user %v", adm["os-backup-project-attr:project_id"], adm["user_id"])
		}

		// An incremental backup after a change: only the changed chunk.
		f := openVolumeFile(t, be.drv["local"], vid)
		if _, err := f.WriteAt([]byte("changed!"), 100); err != nil {
			t.Fatal(err)
		}
		f.Close()
		copy(data.chunks[0][100:], "changed!")
		inc := be.backup("member", map[string]any{"volume_id": vid, "incremental": true}, "available")
		if inc["is_incremental"] != true || inc["object_count"].(float64) != 2 {
			t.Errorf("incremental: is_incremental %v, object_count %v (want 2: one chunk and the manifest)", inc["is_incremental"], inc["object_count"])
		}
		if got := be.MustJSON(200, be.Do("member", "GET", "/v3/"+projA+"/backups/"+bid, nil))["backup"].(map[string]any); got["has_dependent_backups"] != true {
			t.Errorf("parent has_dependent_backups = %v", got["has_dependent_backups"])
		}
		// The usage backup quotas count: backups and their GiB.
		if u, err := countBackupUsage(context.Background(), d, projA); err != nil || u["backups"] != 2 || u["backup_gigabytes"] != 2 {
			t.Errorf("countBackupUsage = %v, %v; want 2 backups, 2 GiB", u, err)
		}
		r := be.Do("member", "DELETE", "/v3/"+projA+"/backups/"+bid, nil)
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid backup: Incremental backups exist for this backup." {
			t.Errorf("delete of a parent: %d %s", r.Code, r.Body)
		}

		// Restore the incremental into a new volume: its bytes are the
		// volume's, and it gets the volume's metadata.
		res := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/backups/"+inc["id"].(string)+"/restore",
			map[string]any{"restore": map[string]any{"name": "restored"}}))["restore"].(map[string]any)
		nv := be.waitStatus("member", projA, res["volume_id"].(string), "available")
		if res["volume_name"] != "restored" || nv["metadata"].(map[string]any)["k"] != "v" {
			t.Errorf("restore: %v, volume metadata %v", res, nv["metadata"])
		}
		be.waitBackup("member", inc["id"].(string), "available")
		be.holds(t, backendOfHost(be.show(nv["id"].(string))["os-vol-host-attr:host"]), nv["id"].(string), data)

		// Delete both: the child first; nothing is left in the store.
		for _, id := range []string{inc["id"].(string), bid} {
			be.Must(202, be.Do("member", "DELETE", "/v3/"+projA+"/backups/"+id, nil))
			be.waitBackup("member", id, "deleted")
		}
		if left, err := be.store.List(context.Background(), "volumebackups/"); err != nil || len(left) != 0 {
			t.Errorf("objects left after deleting every backup: %v", left)
		}
	})
}

// backendOfHost is the backend of an os-vol-host-attr:host value
// ("host@backend#pool").
func backendOfHost(v any) string {
	s, _ := v.(string)
	_, s, _ = strings.Cut(s, "@")
	s, _, _ = strings.Cut(s, "#")
	return s
}

// TestBackupSurvivesBackendLoss: a backup of a volume on one backend is
// restored into a volume on the other after the first backend lost it.
func TestBackupSurvivesBackendLoss(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		vid := be.createVolume("member", projA, map[string]any{"size": 1, "volume_type": "on-local"}, "available")["id"].(string)
		data := be.fill(t, "local", vid, 1)
		bid := be.backup("member", map[string]any{"volume_id": vid}, "available")["id"].(string)
		// The local backend loses everything.
		if err := os.RemoveAll(be.dirs["local"]); err != nil {
			t.Fatal(err)
		}
		target := be.createVolume("member", projA, map[string]any{"size": 2, "volume_type": "on-remote"}, "available")["id"].(string)
		be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/backups/"+bid+"/restore",
			map[string]any{"restore": map[string]any{"volume_id": target}}))
		be.waitStatus("member", projA, target, "available")
		be.waitBackup("member", bid, "available")
		want := content{size: 2 * gib, chunks: data.chunks}
		be.holds(t, "remote", target, want)
	})
}

func TestBackupCreateRefused(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		vid := be.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		other := be.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		snap := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/snapshots",
			map[string]any{"snapshot": map[string]any{"volume_id": other}}))["snapshot"].(map[string]any)["id"].(string)
		apitest.Eventually(t, 30*time.Second, func() bool {
			return be.MustJSON(200, be.Do("member", "GET", "/v3/"+projA+"/snapshots/"+snap, nil))["snapshot"].(map[string]any)["status"] == "available"
		}, func() string { return "snapshot not available" })
		inUse := be.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		be.Must(202, be.Do("admin", "POST", "/v3/"+projA+"/volumes/"+inUse+"/action",
			map[string]any{"os-reset_status": map[string]any{"status": "in-use"}}))
		for _, tc := range []struct {
			name, token string
			body        map[string]any
			code        int
			msg         string
		}{
			{"no volume_id", "member", map[string]any{"name": "x"}, 400, ""},
			{"unknown key", "member", map[string]any{"volume_id": vid, "bogus": 1}, 400, ""},
			{"missing volume", "member", map[string]any{"volume_id": "11111111-2222-3333-4444-555555555555"}, 404,
				"Volume 11111111-2222-3333-4444-555555555555 could not be found."},
			{"other project", "memberB", map[string]any{"volume_id": vid}, 404, "Volume " + vid + " could not be found."},
			{"reader", "reader", map[string]any{"volume_id": vid}, 403, ""},
			{"in-use without force", "member", map[string]any{"volume_id": inUse}, 400,
				"Invalid volume: Backing up an in-use volume must use the force flag."},
			{"snapshot of another volume", "member", map[string]any{"volume_id": vid, "snapshot_id": snap}, 400,
				"Invalid volume: Volume " + vid + " does not match with snapshot.volume_id " + other + "."},
			{"incremental without backups", "member", map[string]any{"volume_id": vid, "incremental": true}, 400,
				"Invalid backup: No backups available to do an incremental backup."},
		} {
			t.Run(tc.name, func(t *testing.T) {
				project := projA
				if tc.token == "memberB" {
					project = projB
				}
				r := be.Do(tc.token, "POST", "/v3/"+project+"/backups", map[string]any{"backup": tc.body})
				if r.Code != tc.code {
					t.Fatalf("%d %s, want %d", r.Code, r.Body, tc.code)
				}
				if _, msg := errMessage(t, r); tc.msg != "" && msg != tc.msg {
					t.Fatalf("message %q, want %q", msg, tc.msg)
				}
			})
		}
		// In-use with force works, and the volume goes back to in-use.
		be.backup("member", map[string]any{"volume_id": inUse, "force": true}, "available")
		be.waitStatus("member", projA, inUse, "in-use")
		// A backup of a snapshot leaves the snapshot available.
		b := be.backup("member", map[string]any{"volume_id": other, "snapshot_id": snap}, "available")
		if b["snapshot_id"] != snap {
			t.Errorf("snapshot_id = %v", b["snapshot_id"])
		}
		if st := be.MustJSON(200, be.Do("member", "GET", "/v3/"+projA+"/snapshots/"+snap, nil))["snapshot"].(map[string]any)["status"]; st != "available" {
			t.Errorf("snapshot status after its backup: %v", st)
		}
	})
}

// failingStore fails Puts after the first `after` while failing is set,
// with err (a full bucket, an unreachable server).
type failingStore struct {
	backup.Store
	mu      sync.Mutex
	after   int
	puts    int
	err     error
	corrupt bool
}

func (f *failingStore) Put(ctx context.Context, key string, data []byte) error {
	f.mu.Lock()
	f.puts++
	fail := f.err != nil && f.puts > f.after
	f.mu.Unlock()
	if fail {
		return f.err
	}
	return f.Store.Put(ctx, key, data)
}

func (f *failingStore) set(after int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.after, f.puts, f.err = after, 0, err
}

func TestBackupStoreFailure(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var fs *failingStore
		be := newBackupEnv(t, d, func(s backup.Store) backup.Store { fs = &failingStore{Store: s}; return fs })
		vid := be.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		be.fill(t, "local", vid, 1)
		for _, cause := range []error{
			errs.E(errs.TooLarge, "backup storage is full"),
			errs.E(errs.Unavailable, "S3 backup storage failed"),
		} {
			fs.set(2, cause)
			m := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/backups", map[string]any{"backup": map[string]any{"volume_id": vid}}))
			bid := m["backup"].(map[string]any)["id"].(string)
			b := be.waitBackup("member", bid, "error")
			if b["fail_reason"] != errs.Message(cause) {
				t.Errorf("fail_reason = %v, want %q", b["fail_reason"], errs.Message(cause))
			}
			be.waitStatus("member", projA, vid, "available")
			if left := be.objects("volumebackups", bid); len(left) != 0 {
				t.Errorf("a failed backup left %v", left)
			}
			if m := be.oneMessage(bid); m["user_message"] != msgBackupCreate || m["event_id"] != eventBackupCreate {
				t.Errorf("user message = %v", m)
			}
			// A backup in error is deleted like any other.
			be.Must(202, be.Do("member", "DELETE", "/v3/"+projA+"/backups/"+bid, nil))
			be.waitBackup("member", bid, "deleted")
		}
	})
}

func TestBackupRestoreCorrupt(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		_, _, bid := be.backedUp(1)
		target := be.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		before := be.fill(t, "local", target, 1)
		// Damage one chunk of the backup.
		keys := be.objects("volumebackups", bid)
		slices.Sort(keys)
		if len(keys) < 2 {
			t.Fatalf("objects %v", keys)
		}
		if err := be.store.Put(context.Background(), keys[0], []byte("not a chunk")); err != nil {
			t.Fatal(err)
		}
		be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/backups/"+bid+"/restore",
			map[string]any{"restore": map[string]any{"volume_id": target}}))
		be.waitStatus("member", projA, target, "error_restoring")
		be.waitBackup("member", bid, "available")
		// Nothing of the corrupt backup reached the volume.
		be.holds(t, "local", target, before)
		if m := be.oneMessage(bid); m["user_message"] != msgBackupRestore {
			t.Errorf("user message = %v", m)
		}
	})
}

func TestBackupAdminActionsAndRecords(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		vid := be.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		be.fill(t, "local", vid, 1)
		bid := be.backup("member", map[string]any{"volume_id": vid, "name": "orig"}, "available")["id"].(string)
		act := func(token string, body any) apitest.Resp {
			return be.Do(token, "POST", "/v3/"+projA+"/backups/"+bid+"/action", body)
		}
		be.Must(403, act("member", map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		r := act("admin", map[string]any{"os-reset_status": map[string]any{"status": "creating"}})
		if r.Code != 400 {
			t.Errorf("reset to creating: %d %s", r.Code, r.Body)
		}
		be.Must(202, act("admin", map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		be.waitBackup("member", bid, "error")
		r = be.Do("admin", "GET", "/v3/"+projA+"/backups/"+bid+"/export_record", nil)
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid backup: Backup status must be available and not error." {
			t.Errorf("export of a backup in error: %d %s", r.Code, r.Body)
		}
		be.Must(202, act("admin", map[string]any{"os-reset_status": map[string]any{"status": "available"}}))
		be.Must(403, be.Do("member", "GET", "/v3/"+projA+"/backups/"+bid+"/export_record", nil))
		rec := be.MustJSON(200, be.Do("admin", "GET", "/v3/"+projA+"/backups/"+bid+"/export_record", nil))["backup-record"].(map[string]any)
		if rec["backup_service"] != "cinder.backup.drivers.posix.PosixBackupDriver" {
			t.Errorf("backup_service = %v", rec["backup_service"])
		}
		// Importing the record as it is: the backup exists.
		r = be.Do("admin", "POST", "/v3/"+projA+"/backups/import_record", map[string]any{"backup-record": rec})
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid backup: Backup already exists in database." {
			t.Errorf("import of an existing backup: %d %s", r.Code, r.Body)
		}
		// The record under a new id (tempest's export/import test) names
		// the same objects: it restores.
		newID := "0a0b0c0d-1111-2222-3333-444455556666"
		url := modifyRecord(t, rec["backup_url"].(string), map[string]any{"id": newID})
		imp := be.MustJSON(201, be.Do("admin", "POST", "/v3/"+projA+"/backups/import_record",
			map[string]any{"backup-record": map[string]any{"backup_service": rec["backup_service"], "backup_url": url}}))
		if imp["backup"].(map[string]any)["id"] != newID {
			t.Errorf("imported %v", imp)
		}
		ib := be.waitBackup("admin", newID, "available")
		if ib["name"] != "orig" || ib["volume_id"] != importVolumeID {
			t.Errorf("imported backup: name %v volume_id %v", ib["name"], ib["volume_id"])
		}
		res := be.MustJSON(202, be.Do("admin", "POST", "/v3/"+projA+"/backups/"+newID+"/restore", map[string]any{"restore": nil}))
		be.waitStatus("admin", projA, res["restore"].(map[string]any)["volume_id"].(string), "available")
		// Force delete of a backup in any status.
		be.Must(202, act("admin", map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		be.Must(403, act("member", map[string]any{"os-force_delete": map[string]any{}}))
		be.Must(202, act("admin", map[string]any{"os-force_delete": map[string]any{}}))
		be.waitBackup("admin", bid, "deleted")
	})
}

// TestBackupKilledMidway: the process making a backup stops mid-way; a
// new process on the same database takes the work over and the backup
// completes, with no objects of the first attempt left over. The same for
// a restore.
func TestBackupKilledMidway(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		hold := &holdingStore{release: make(chan struct{}), held: make(chan struct{})}
		be := newBackupEnv(t, d, func(s backup.Store) backup.Store { hold.Store = s; return hold })
		vid := be.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		data := be.fill(t, "local", vid, 1)
		m := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/backups", map[string]any{"backup": map[string]any{"volume_id": vid}}))
		bid := m["backup"].(map[string]any)["id"].(string)
		<-hold.held // a chunk or two are stored, the next Put hangs
		be.stop()   // the process stops: its task is handed back
		close(hold.release)

		// A new process (on the same store, without the hold).
		nb := be.restartOn(t, d)
		b := nb.waitBackup("member", bid, "available")
		nb.waitStatus("member", projA, vid, "available")
		if n := len(nb.objects("volumebackups", bid)); float64(n) != b["object_count"].(float64) {
			t.Errorf("%d objects stored, object_count %v: leftovers of the first attempt", n, b["object_count"])
		}
		target := nb.createVolume("member", projA, map[string]any{"size": 1, "volume_type": "on-remote"}, "available")["id"].(string)
		nb.MustJSON(202, nb.Do("member", "POST", "/v3/"+projA+"/backups/"+bid+"/restore",
			map[string]any{"restore": map[string]any{"volume_id": target}}))
		nb.waitStatus("member", projA, target, "available")
		nb.holds(t, "remote", target, data)
	})
}

// holdingStore stores the first two Puts, then signals held and blocks
// every later Put until release (or its context ends).
type holdingStore struct {
	backup.Store
	mu      sync.Mutex
	puts    int
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *holdingStore) Put(ctx context.Context, key string, data []byte) error {
	h.mu.Lock()
	h.puts++
	n := h.puts
	h.mu.Unlock()
	if n > 2 {
		h.once.Do(func() { close(h.held) })
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.Store.Put(ctx, key, data)
}

// modifyRecord changes fields of an exported backup_url, as tempest does.
func modifyRecord(t *testing.T, url string, changes map[string]any) string {
	t.Helper()
	data, err := base64.StdEncoding.DecodeString(url)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	maps.Copy(rec, changes)
	out, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

// newTwoBackendsOn starts a second service (a restarted process) on the
// same database and backends as prev, with backup engine eng.
func newTwoBackendsOn(t *testing.T, d *db.DB, prev *twoBackends, eng *backup.Engine) *twoBackends {
	t.Helper()
	svc, err := NewWithOptions(context.Background(), prev.svc.deps, Options{Drivers: prev.drv, Backup: eng})
	if err != nil {
		t.Fatal(err)
	}
	return &twoBackends{env: newEnvFor(t, svc, prev.glance, d, prev.dir), dirs: prev.dirs, drv: prev.drv}
}

// newHoldingBackupEnv is newBackupEnv with a getHoldingStore, not armed
// yet.
func newHoldingBackupEnv(t *testing.T, d *db.DB) (*backupEnv, *getHoldingStore) {
	t.Helper()
	hold := &getHoldingStore{armed: make(chan struct{}), held: make(chan struct{})}
	return newBackupEnv(t, d, func(s backup.Store) backup.Store { hold.Store = s; return hold }), hold
}

// getHoldingStore blocks every Get, once armed, until its context ends:
// a restore that hangs in the store.
type getHoldingStore struct {
	backup.Store
	armed chan struct{}
	held  chan struct{}
	once  sync.Once
}

func (h *getHoldingStore) Get(ctx context.Context, key string) ([]byte, error) {
	select {
	case <-h.armed:
		if !strings.HasSuffix(key, "/manifest") {
			h.once.Do(func() { close(h.held) })
			<-ctx.Done()
			return nil, ctx.Err()
		}
	default:
	}
	return h.Store.Get(ctx, key)
}

// TestBackupRestoreKilledMidway: the process restoring a backup stops
// mid-way; the volume keeps its old bytes meanwhile, and a new process
// takes the restore over and completes it.
func TestBackupRestoreKilledMidway(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be, hold := newHoldingBackupEnv(t, d)
		_, data, bid := be.backedUp(1)
		target := be.createVolume("member", projA, map[string]any{"size": 1, "volume_type": "on-remote"}, "available")["id"].(string)
		before := be.fill(t, "remote", target, 1)
		close(hold.armed)
		be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/backups/"+bid+"/restore",
			map[string]any{"restore": map[string]any{"volume_id": target}}))
		<-hold.held
		be.stop()
		be.holds(t, "remote", target, before) // a cut-off restore changed nothing

		nb := be.restartOn(t, d)
		nb.waitStatus("member", projA, target, "available")
		nb.waitBackup("member", bid, "available")
		nb.holds(t, "remote", target, data)
	})
}

// TestBackupS3GoesAway: the S3 server of the backup store stops in the
// middle of a backup. The backup ends in error with a user message, the
// volume is back to available, and deleting the failed backup once the
// server is back removes every chunk it had stored.
func TestBackupS3GoesAway(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		mdir := t.TempDir()
		m := testenv.StartMinIOIn(t, mdir)
		st, err := s3.New(s3.Config{Endpoint: m.Endpoint, Bucket: "backups", AccessKey: m.AccessKey, SecretKey: m.SecretKey,
			Region: m.Region, MaxAttempts: 2, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		hold := &holdingStore{Store: st, release: make(chan struct{}), held: make(chan struct{})}
		eng, err := backup.New(hold, backup.Options{ChunkSize: 1 << 20, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		tb := newTwoBackendsWith(t, d, nil, eng)
		be := &backupEnv{twoBackends: tb, store: st}
		vid := be.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		be.fill(t, "local", vid, 1)
		r := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/backups", map[string]any{"backup": map[string]any{"volume_id": vid}}))
		bid := r["backup"].(map[string]any)["id"].(string)
		<-hold.held // two chunks are in the bucket
		m.Stop()
		close(hold.release)
		b := be.waitBackup("member", bid, "error")
		if b["fail_reason"] == nil || b["fail_reason"] == "" {
			t.Errorf("fail_reason = %v", b["fail_reason"])
		}
		be.waitStatus("member", projA, vid, "available")
		if m := be.oneMessage(bid); m["user_message"] != msgBackupCreate {
			t.Errorf("user message = %v", m)
		}
		// The server comes back (same data, new port): deleting the
		// failed backup removes what the cut-off backup had stored.
		m2 := testenv.StartMinIOIn(t, mdir)
		st2, err := s3.New(s3.Config{Endpoint: m2.Endpoint, Bucket: "backups", AccessKey: m2.AccessKey, SecretKey: m2.SecretKey, Region: m2.Region})
		if err != nil {
			t.Fatal(err)
		}
		eng2, err := backup.New(st2, backup.Options{ChunkSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		be.stop()
		next := newTwoBackendsOn(t, d, tb, eng2)
		nb := &backupEnv{twoBackends: next, store: st2}
		if len(nb.objects("volumebackups", bid)) == 0 {
			t.Fatal("no chunk of the cut-off backup in the bucket: the test did not stop S3 mid-backup")
		}
		nb.Must(202, nb.Do("member", "DELETE", "/v3/"+projA+"/backups/"+bid, nil))
		nb.waitBackup("member", bid, "deleted")
		if left := nb.objects("volumebackups", bid); len(left) != 0 {
			t.Errorf("objects left after deleting the failed backup: %v", left)
		}
	})
}

// TestBackupQuota: backups are charged to the backups and
// backup_gigabytes quotas when made and imported and given back when
// deleted; over either is Cinder's 413, and the stored usage always
// matches the rows.
func TestBackupQuota(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		vid := be.createVolume("member", projA, map[string]any{"size": 2, "volume_type": "on-local"}, "available")["id"].(string)
		be.setQuota(projA, map[string]any{"backups": 1, "backup_gigabytes": 10})

		b := be.backup("member", map[string]any{"volume_id": vid}, "available")
		if u := be.usage(projA); inUse(u, "backups") != 1 || inUse(u, "backup_gigabytes") != 2 {
			t.Errorf("after one backup: backups %v, backup_gigabytes %v", u["backups"], u["backup_gigabytes"])
		}
		over := func(want string) {
			t.Helper()
			r := be.Do("member", "POST", "/v3/"+projA+"/backups", map[string]any{"backup": map[string]any{"volume_id": vid}})
			if _, msg := errMessage(t, r); r.Code != 413 || msg != want {
				t.Errorf("over quota: %d %s, want 413 %q", r.Code, r.Body, want)
			}
		}
		over("Maximum number of backups allowed (1) exceeded")
		be.setQuota(projA, map[string]any{"backups": 5, "backup_gigabytes": 3})
		over("Requested backup exceeds allowed Backup gigabytes quota. Requested 2G, quota is 3G and 2G has been consumed.")
		if n := len(be.MustJSON(200, be.Do("member", "GET", "/v3/"+projA+"/backups", nil))["backups"].([]any)); n != 1 {
			t.Errorf("%d backups after the refusals, want 1", n)
		}
		checkUsage(t, be.env, projA)

		// The record imported under a new id is charged too; deletes give
		// everything back.
		be.setQuota(projA, map[string]any{"backup_gigabytes": 10})
		rec := be.MustJSON(200, be.Do("admin", "GET", "/v3/"+projA+"/backups/"+b["id"].(string)+"/export_record", nil))["backup-record"].(map[string]any)
		newID := "0a0b0c0d-1111-2222-3333-444455556666"
		url := modifyRecord(t, rec["backup_url"].(string), map[string]any{"id": newID})
		be.Must(201, be.Do("admin", "POST", "/v3/"+projA+"/backups/import_record",
			map[string]any{"backup-record": map[string]any{"backup_service": rec["backup_service"], "backup_url": url}}))
		if u := be.usage(projA); inUse(u, "backups") != 2 || inUse(u, "backup_gigabytes") != 4 {
			t.Errorf("after the import: backups %v, backup_gigabytes %v", u["backups"], u["backup_gigabytes"])
		}
		checkUsage(t, be.env, projA)
		for _, id := range []string{newID, b["id"].(string)} {
			be.Must(202, be.Do("admin", "DELETE", "/v3/"+projA+"/backups/"+id, nil))
			be.waitBackup("admin", id, "deleted")
		}
		if u := be.usage(projA); inUse(u, "backups") != 0 || inUse(u, "backup_gigabytes") != 0 {
			t.Errorf("after the deletes: backups %v, backup_gigabytes %v", u["backups"], u["backup_gigabytes"])
		}
		checkUsage(t, be.env, projA)
	})
}
