package volume

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/posix"
)

// A backup's process is killed (SIGKILL: no clean-up runs) after it stored
// some chunks. The process is this test binary run again as a child, on
// the same database, backends and backup directory; the next process
// takes the task over (at once on SQLite, after the 2 s lease on
// PostgreSQL), removes what the dead attempt stored and makes the backup.

const backupKillChildEnv = "ASHLAR_VOLUME_BACKUP_CHILD"

// slowStore stores slowly and creates marker after its second object.
type slowStore struct {
	backup.Store
	marker string
	puts   int
}

func (s *slowStore) Put(ctx context.Context, key string, data []byte) error {
	time.Sleep(100 * time.Millisecond)
	if err := s.Store.Put(ctx, key, data); err != nil {
		return err
	}
	if s.puts++; s.puts == 2 {
		_ = os.WriteFile(s.marker, nil, 0o644)
	}
	return nil
}

// startWithBackups is killSetup.start with a posix backup store under
// Dir/backups, wrapped by wrap when not nil.
func (k killSetup) startWithBackups(t *testing.T, d *db.DB, wrap func(backup.Store) backup.Store) *twoBackends {
	t.Helper()
	st, err := posix.New(filepath.Join(k.Dir, "backups"))
	if err != nil {
		t.Fatal(err)
	}
	var s backup.Store = st
	if wrap != nil {
		s = wrap(st)
	}
	eng, err := backup.New(s, backup.Options{ChunkSize: 1 << 20, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	return k.startWith(t, d, nil, Options{Backup: eng})
}

// backupInChild is the child's side: it starts a backup of the volume
// through a slow store.
func backupInChild(t *testing.T, k killSetup, d *db.DB) {
	tb := k.startWithBackups(t, d, func(s backup.Store) backup.Store { return &slowStore{Store: s, marker: k.marker()} })
	tb.Must(202, tb.Do("member", "POST", "/v3/"+projA+"/backups", map[string]any{"backup": map[string]any{"volume_id": k.Volume, "name": "killed"}}))
}

func TestBackupProcessKilled(t *testing.T) {
	killTest(t, backupKillChildEnv, backupInChild, func(t *testing.T, k *killSetup, d *db.DB) {
		tb := k.startWithBackups(t, d, nil)
		tb.createType("on-remote", map[string]string{"volume_backend_name": "remote"})
		k.Volume = tb.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		data := tb.fill(t, "local", k.Volume, 1)
		tb.stop()

		kill := k.runChild(t, backupKillChildEnv, "backup")
		kill()

		if err := d.LockSingleNode(); err != nil {
			t.Fatal(err)
		}
		next := k.startWithBackups(t, d, nil)
		be := &backupEnv{twoBackends: next}
		be.store, _ = posix.New(filepath.Join(k.Dir, "backups"))
		var bid string
		l := be.MustJSON(200, be.Do("member", "GET", "/v3/"+projA+"/backups?name=killed", nil))["backups"].([]any)
		if len(l) != 1 {
			t.Fatalf("backups named killed: %v", l)
		}
		bid = l[0].(map[string]any)["id"].(string)
		b := be.waitBackup("member", bid, "available")
		be.waitStatus("member", projA, k.Volume, "available")
		if n := len(be.objects("volumebackups", bid)); float64(n) != b["object_count"].(float64) {
			t.Errorf("%d objects stored, object_count %v: leftovers of the killed attempt", n, b["object_count"])
		}
		target := be.createVolume("member", projA, map[string]any{"volume_type": "on-remote"}, "available")["id"].(string)
		be.MustJSON(202, be.Do("member", "POST", "/v3/"+projA+"/backups/"+bid+"/restore",
			map[string]any{"restore": map[string]any{"volume_id": target}}))
		be.waitStatus("member", projA, target, "available")
		be.holds(t, "remote", target, data)
	})
}
