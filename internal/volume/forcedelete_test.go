package volume

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivers"
)

// holdingDriver holds Create until release is closed, so a test can act
// while a volume is being created.
type holdingDriver struct {
	driver.Driver
	once                       sync.Once
	started, release, finished chan struct{}
}

func (h *holdingDriver) Create(ctx context.Context, id string, size int64) error {
	h.once.Do(func() { close(h.started) })
	<-h.release
	defer close(h.finished)
	return h.Driver.Create(ctx, id, size)
}

// A volume force-deleted while its create is still running leaves no
// volume data behind once the create finishes.
func TestForceDeleteDuringCreateLeavesNothing(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var dir string
		h := &holdingDriver{started: make(chan struct{}), release: make(chan struct{}), finished: make(chan struct{})}
		e := newEnvWith(t, d, func(t *testing.T, cfg *config.Config) Options {
			dir = cfg.Backends[0].Options["volumes_dir"]
			fd, err := drivers.New(cfg.Backends[0])
			if err != nil {
				t.Fatal(err)
			}
			h.Driver = fd
			return Options{Drivers: map[string]driver.Driver{"local": h}}
		})
		m := e.MustJSON(202, e.Do("admin", "POST", "/v3/"+projA+"/volumes", map[string]any{"volume": map[string]any{"size": 1}}))
		id := m["volume"].(map[string]any)["id"].(string)
		select {
		case <-h.started:
		case <-time.After(10 * time.Second):
			t.Fatal("create never started")
		}
		e.MustJSON(202, e.Do("admin", "POST", "/v3/"+projA+"/volumes/"+id+"/action", map[string]any{"os-force_delete": nil}))
		close(h.release)

		// The create finishes writing; then nothing of the volume may remain.
		<-h.finished
		var entries []os.DirEntry
		for deadline := time.Now().Add(5 * time.Second); ; {
			var err error
			entries, err = os.ReadDir(dir)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if len(entries) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, en := range entries {
			t.Errorf("left in the backend after force-delete during create: %s", en.Name())
		}
		if r := e.Do("admin", "GET", "/v3/"+projA+"/volumes/"+id, nil); r.Code != 404 {
			t.Errorf("force-deleted volume: GET = %d, want 404", r.Code)
		}
	})
}

// At start the volume service removes backend data that has no volume row
// and keeps the data of every volume it knows.
func TestStartSweepsVolumeDataWithoutRow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var fd driver.Driver
		e := newEnvWith(t, d, func(t *testing.T, cfg *config.Config) Options {
			var err error
			if fd, err = drivers.New(cfg.Backends[0]); err != nil {
				t.Fatal(err)
			}
			return Options{Drivers: map[string]driver.Driver{"local": fd}}
		})
		kept := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		const orphan = "0badc0de-0000-4000-8000-000000000001"
		if err := fd.Create(context.Background(), orphan, 1<<20); err != nil {
			t.Fatal(err)
		}
		e.stop()
		e.start() // a restart: Run sweeps before taking work
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := fd.Open(context.Background(), orphan)
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("orphaned volume data still there after a restart")
			}
			time.Sleep(20 * time.Millisecond)
		}
		v, err := fd.Open(context.Background(), kept)
		if err != nil {
			t.Fatalf("the known volume's data was swept: %v", err)
		}
		v.Close()
	})
}
