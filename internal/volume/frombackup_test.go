package volume

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
)

// mv347 is the header of the first microversion creating volumes from
// backups.
var mv347 = []string{"OpenStack-API-Version", "volume 3.47"}

// gatedGetStore, once armed, holds every chunk Get until released and
// signals the first one held: a restore caught in the middle.
type gatedGetStore struct {
	backup.Store
	mu       sync.Mutex
	gate     chan struct{} // nil: not armed
	held     chan struct{}
	signaled bool
}

// arm makes the next chunk Gets wait for release; held is closed when the
// first of them waits.
func (g *gatedGetStore) arm() (held <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate, g.held, g.signaled = make(chan struct{}), make(chan struct{}), false
	gate := g.gate
	return g.held, func() { close(gate) }
}

func (g *gatedGetStore) Get(ctx context.Context, key string) ([]byte, error) {
	g.mu.Lock()
	gate := g.gate
	if gate != nil && !g.signaled && !strings.HasSuffix(key, "/manifest") {
		g.signaled = true
		close(g.held)
	}
	g.mu.Unlock()
	if gate != nil && !strings.HasSuffix(key, "/manifest") {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.Get(ctx, key)
}

// TestVolumeFromBackup: a volume created with backup_id stays creating
// while its backup is restoring into it, then both are available; the
// volume holds the backup's bytes and volume metadata (and src_backup_id),
// is the backup's size when none is asked and is charged to the quota
// like any volume. backup_id works before 3.47 too, as in Cinder.
func TestVolumeFromBackup(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		gate := &gatedGetStore{}
		be := newBackupEnv(t, d, func(s backup.Store) backup.Store { gate.Store = s; return gate })
		vid := be.createVolume("member", projA, map[string]any{"size": 1, "volume_type": "on-local",
			"metadata": map[string]any{"k": "v"}}, "available")["id"].(string)
		data := be.fill(t, "local", vid, 1)
		bid := be.backup("member", map[string]any{"volume_id": vid}, "available")["id"].(string)
		usedBefore := inUse(be.usage(projA), "gigabytes")

		for _, tc := range []struct {
			name    string
			size    any // nil: not given
			hold    bool
			version string
			want    content
		}{
			{"backup's size, held mid-restore", nil, true, "3.47", data},
			{"larger", 2, false, "3.47", content{size: 2 * gib, chunks: data.chunks}},
			{"before 3.47", nil, false, "3.46", data},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var held <-chan struct{}
				var release func()
				if tc.hold {
					held, release = gate.arm()
				}
				body := map[string]any{"backup_id": bid, "name": "from-" + tc.name, "volume_type": "on-remote"}
				if tc.size != nil {
					body["size"] = tc.size
				}
				v := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/volumes", map[string]any{"volume": body},
					"OpenStack-API-Version", "volume "+tc.version))["volume"].(map[string]any)
				id := v["id"].(string)
				wantSize := float64(tc.want.size / gib)
				if v["size"] != wantSize || v["status"] != "creating" {
					t.Errorf("created: size %v status %v, want %v creating", v["size"], v["status"], wantSize)
				}
				if tc.hold {
					<-held
					be.waitBackup("member", bid, "restoring")
					if st := be.show(id)["status"]; st != "creating" {
						t.Errorf("volume status %v while restored into, want creating", st)
					}
					// The held backup cannot be deleted or restored meanwhile.
					be.Must(400, be.Do("member", "DELETE", "/v3/"+projA+"/backups/"+bid, nil))
					release()
				}
				nv := be.waitStatus("member", projA, id, "available")
				be.waitBackup("member", bid, "available")
				be.holds(t, "remote", id, tc.want)
				if md := nv["metadata"].(map[string]any); md["k"] != "v" || md["src_backup_id"] != bid {
					t.Errorf("metadata %v, want the backed-up volume's and src_backup_id %s", md, bid)
				}
			})
		}
		if got := inUse(be.usage(projA), "gigabytes"); got != usedBefore+4 {
			t.Errorf("gigabytes in use %v, want %v", got, usedBefore+4)
		}
		checkUsage(t, be.env, projA)
	})
}

// TestVolumeFromBackupRefused: the requests Cinder refuses; none of them
// leaves the backup held.
func TestVolumeFromBackupRefused(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		vid, _, bid := be.backedUp(2)
		inErr := be.backup("member", map[string]any{"volume_id": vid}, "available")["id"].(string)
		be.Must(202, be.Do("admin", "POST", "/v3/"+projA+"/backups/"+inErr+"/action",
			map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		unknown := "11111111-2222-3333-4444-555555555555"
		for _, tc := range []struct {
			name, token string
			body        map[string]any
			version     string
			code        int
			msg         string
		}{
			{"smaller than the backup", "member", map[string]any{"backup_id": bid, "size": 1}, "3.47", 400,
				"Invalid input received: Volume size 1GB cannot be smaller than the backup size 2GB. It must be >= backup size."},
			{"backup in error", "member", map[string]any{"backup_id": inErr}, "3.47", 400,
				"Invalid backup: Originating backup status must be one of 'available' values"},
			{"unknown backup", "member", map[string]any{"backup_id": unknown}, "3.47", 404,
				"Backup " + unknown + " could not be found."},
			{"another project's backup", "memberB", map[string]any{"backup_id": bid}, "3.47", 404,
				"Backup " + bid + " could not be found."},
			{"not a uuid", "member", map[string]any{"backup_id": "nope"}, "3.47", 400,
				"Invalid input for field/attribute backup_id. Value: nope. 'nope' is not valid under any of the given schemas"},
			{"not a uuid before 3.47", "member", map[string]any{"backup_id": "nope"}, "3.46", 404,
				"Backup nope could not be found."},
			{"reader", "reader", map[string]any{"backup_id": bid}, "3.47", 403, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				project := projA
				if tc.token == "memberB" {
					project = projB
				}
				r := be.Do(tc.token, "POST", "/v3/"+project+"/volumes", map[string]any{"volume": tc.body},
					"OpenStack-API-Version", "volume "+tc.version)
				if r.Code != tc.code {
					t.Fatalf("%d %s, want %d", r.Code, r.Body, tc.code)
				}
				if _, msg := errMessage(t, r); tc.msg != "" && msg != tc.msg {
					t.Fatalf("message %q, want %q", msg, tc.msg)
				}
			})
		}
		be.createVolume("member", projA, map[string]any{"size": 2}, "available")
		// Over the gigabytes quota: 413, nothing charged, the backup free.
		be.setQuota(projA, map[string]any{"gigabytes": 5})
		r := be.Do("member", "POST", "/v3/"+projA+"/volumes", map[string]any{"volume": map[string]any{"backup_id": bid}}, mv347...)
		if _, msg := errMessage(t, r); r.Code != 413 || msg != "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 2G, quota is 5G and 4G has been consumed." {
			t.Errorf("over quota: %d %s", r.Code, r.Body)
		}
		checkUsage(t, be.env, projA)
		if b := be.waitBackup("member", bid, "available"); b["status"] != "available" {
			t.Errorf("backup left %v", b["status"])
		}
	})
}

// TestVolumeFromBackupUnplaceable: a volume from a backup that no backend
// can take ends in error with the scheduler's user message, and its
// backup, held from the request, is available again.
func TestVolumeFromBackupUnplaceable(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		be.createType("on-nowhere", map[string]string{"volume_backend_name": "nosuch"})
		_, _, bid := be.backedUp(1)
		v := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/volumes",
			map[string]any{"volume": map[string]any{"backup_id": bid, "volume_type": "on-nowhere"}}, mv347...))["volume"].(map[string]any)
		id := v["id"].(string)
		be.waitStatus("member", projA, id, "error")
		be.waitBackup("member", bid, "available")
		if m := be.oneMessage(id); m["user_message"] != msgNoBackend {
			t.Errorf("user message = %v", m)
		}
		// The backup can be used again.
		be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/volumes",
			map[string]any{"volume": map[string]any{"backup_id": bid}}, mv347...))
		be.waitBackup("member", bid, "available")
		waitTasksDone(t, d)
		checkUsage(t, be.env, projA)
	})
}

// TestVolumeFromBackupCorrupt: a restore into a new volume that finds a
// damaged chunk puts the volume in error (not error_restoring) and the
// backup back to available, with the restore's user message.
func TestVolumeFromBackupCorrupt(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be := newBackupEnv(t, d, nil)
		_, _, bid := be.backedUp(1)
		keys := be.objects("volumebackups", bid)
		slices.Sort(keys)
		if err := be.store.Put(context.Background(), keys[0], []byte("not a chunk")); err != nil {
			t.Fatal(err)
		}
		v := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/volumes",
			map[string]any{"volume": map[string]any{"backup_id": bid}}, mv347...))["volume"].(map[string]any)
		be.waitStatus("member", projA, v["id"].(string), "error")
		be.waitBackup("member", bid, "available")
		if m := be.oneMessage(bid); m["user_message"] != msgBackupRestore {
			t.Errorf("user message = %v", m)
		}
		// A volume in error is deleted like any other, and gives its quota back.
		be.Must(202, be.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+v["id"].(string), nil))
		waitTasksDone(t, d)
		checkUsage(t, be.env, projA)
	})
}

// TestVolumeFromBackupKilledMidway: the process restoring a backup into a
// new volume stops mid-way; a new process on the same database takes the
// restore over, and the volume becomes available with the backup's bytes.
func TestVolumeFromBackupKilledMidway(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		be, hold := newHoldingBackupEnv(t, d)
		_, data, bid := be.backedUp(1)
		close(hold.armed)
		v := be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/volumes",
			map[string]any{"volume": map[string]any{"backup_id": bid, "volume_type": "on-remote"}}, mv347...))["volume"].(map[string]any)
		id := v["id"].(string)
		<-hold.held
		be.stop()

		nb := be.restartOn(t, d)
		nb.waitStatus("member", projA, id, "available")
		nb.waitBackup("member", bid, "available")
		nb.holds(t, "remote", id, data)
		checkUsage(t, nb.env, projA)
	})
}
