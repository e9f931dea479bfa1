package volume

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// A migration's process is killed (SIGKILL: no clean-up runs) in the middle
// of the copy. The process is this test binary run again as a child, on
// the same database and backend directories; the next process must find
// the volume on its source backend, usable, with migration_status error,
// and nothing of it on the target.

// killChildEnv carries the child's killSetup.
const killChildEnv = "ASHLAR_VOLUME_MIGRATE_CHILD"

// killSetup is what parent and child share.
type killSetup struct {
	Conn, Dir, Volume string
}

// killTest is a test that kills a process mid-work: in that child
// process (env holds its spec) child starts the work on the killSetup and
// database of the spec, and the process waits to be killed; in the
// parent, test runs on every engine with a fresh killSetup and its
// database.
func killTest(t *testing.T, env string, child func(t *testing.T, k killSetup, d *db.DB), test func(t *testing.T, k *killSetup, d *db.DB)) {
	if spec := os.Getenv(env); spec != "" {
		k, d := childSetup(t, spec)
		child(t, k, d)
		time.Sleep(10 * time.Minute) // the parent kills us long before
		t.Fatal("not killed")
	}
	for _, engine := range dbtest.Engines {
		t.Run(engine, func(t *testing.T) {
			k := &killSetup{Conn: dbtest.Connection(t, engine), Dir: t.TempDir()}
			test(t, k, k.openDB(t))
		})
	}
}

// config is the service's configuration: two file backends under Dir and
// a short task lease, so that on PostgreSQL the next process takes the
// dead one's task over soon.
func (k killSetup) config(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("[DEFAULT]\ntask_lease = 2\n\n[volume]\nenabled_backends = local, remote\n\n"+
		"[backend:local]\nvolume_driver = file\nvolumes_dir = "+filepath.Join(k.Dir, "local")+"\n\n"+
		twoBackendSection(filepath.Join(k.Dir, "remote")), k.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// marker is the file the child's copy creates once it has written data.
func (k killSetup) marker() string { return filepath.Join(k.Dir, "copying") }

// openDB opens the setup's database and migrates it: the parent's side.
func (k killSetup) openDB(t *testing.T) *db.DB {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, k.Conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// childSetup is the start of the child's side: the killSetup its parent
// passed in spec, and the database, locked as the one node.
func childSetup(t *testing.T, spec string) (killSetup, *db.DB) {
	var k killSetup
	if err := json.Unmarshal([]byte(spec), &k); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(context.Background(), k.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LockSingleNode(); err != nil {
		t.Fatal(err)
	}
	return k, d
}

// runChild runs this test binary again as a child, with k in the
// environment variable env (the test's top-level function then does the
// child's side), and waits until the child has created k.marker(); what
// names the child's work in the failure that it never did. It returns the
// function that kills the child (SIGKILL: no clean-up runs) and waits for
// it; the test's end calls it too.
func (k killSetup) runChild(t *testing.T, env, what string) (kill func()) {
	t.Helper()
	spec, _ := json.Marshal(k)
	cmd := exec.Command(os.Args[0], "-test.run=^"+strings.Split(t.Name(), "/")[0]+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+string(spec))
	logPath := filepath.Join(k.Dir, "child.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill = func() {
		if !killed {
			killed = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(kill)
	apitest.Eventually(t, 60*time.Second, func() bool {
		_, err := os.Stat(k.marker())
		return err == nil
	}, func() string {
		b, _ := os.ReadFile(logPath)
		return "the child's " + what + " never got going; its log:\n" + string(b)
	})
	return kill
}

// start runs the service on the setup's database and directories, with
// the remote backend's driver wrapped by wrapRemote when not nil.
func (k killSetup) start(t *testing.T, d *db.DB, wrapRemote func(driver.Driver) driver.Driver) *twoBackends {
	t.Helper()
	return k.startWith(t, d, wrapRemote, Options{})
}

// startWith is start with the service's further options o (its Drivers
// are the setup's).
func (k killSetup) startWith(t *testing.T, d *db.DB, wrapRemote func(driver.Driver) driver.Driver, o Options) *twoBackends {
	t.Helper()
	cfg := k.config(t)
	tb := &twoBackends{dirs: map[string]string{}, drv: map[string]driver.Driver{}}
	o.Drivers = tb.openDrivers(t, cfg, func(name string, drv driver.Driver) driver.Driver {
		if name == "remote" && wrapRemote != nil {
			return wrapRemote(drv)
		}
		return drv
	})
	svc, err := NewWithOptions(context.Background(), testDeps(cfg, d, testTokens), o)
	if err != nil {
		t.Fatal(err)
	}
	tb.env = newEnvFor(t, svc, nil, d, k.Dir)
	return tb
}

// slowCopy is a driver whose CreateFrom reads its source slowly and
// creates marker once it has read what it will have written.
type slowCopy struct {
	driver.Driver
	marker string
}

func (s slowCopy) CreateFrom(ctx context.Context, id string, size int64, r io.Reader) error {
	return s.Driver.CreateFrom(ctx, id, size, &slowReader{r: r, marker: s.marker})
}

type slowReader struct {
	r      io.Reader
	marker string
	read   int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond)
	n, err := s.r.Read(p[:min(len(p), 256<<10)])
	s.read += int64(n)
	// The file driver writes in 1 MiB chunks: past 8 MiB, data of the
	// volume's first (random) 3 MiB is in the target's file.
	if s.read >= 8<<20 && s.read-int64(n) < 8<<20 {
		_ = os.WriteFile(s.marker, nil, 0o644)
	}
	return n, err
}

// migrateInChild is the child's side: it starts the move of the volume to
// the remote backend through a slow copy.
func migrateInChild(t *testing.T, k killSetup, d *db.DB) {
	tb := k.start(t, d, func(drv driver.Driver) driver.Driver { return slowCopy{Driver: drv, marker: k.marker()} })
	tb.Must(202, tb.action("member", k.Volume, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
}

func TestMigrationKilledMidCopy(t *testing.T) {
	killTest(t, killChildEnv, migrateInChild, func(t *testing.T, k *killSetup, d *db.DB) {
		// The volume, on local, with data.
		tb := k.start(t, d, nil)
		tb.createType("on-local", map[string]string{"volume_backend_name": "local"})
		tb.createType("on-remote", map[string]string{"volume_backend_name": "remote"})
		k.Volume = tb.createVolume("member", projA, map[string]any{"volume_type": "on-local"}, "available")["id"].(string)
		data := tb.fill(t, "local", k.Volume, 1)
		tb.stop()

		// The child moves it, and is killed mid-copy.
		kill := k.runChild(t, killChildEnv, "copy")
		if mid := tb.show(k.Volume); mid["status"] != "retyping" || mid["migration_status"] != "migrating" {
			t.Errorf("mid-copy: status %v migration %v", mid["status"], mid["migration_status"])
		}
		kill()
		if partial := allocatedTemp(t, tb.dirs["remote"], k.Volume); partial == 0 {
			t.Fatalf("the kill left no partial copy on the target: the test proves nothing")
		}

		// The next process: the volume is back on local, usable.
		if err := d.LockSingleNode(); err != nil {
			t.Fatal(err)
		}
		next := k.start(t, d, nil)
		after := next.waitMigration(k.Volume, "error")
		if after["status"] != "available" || after["volume_type"] != "on-local" || !strings.HasSuffix(after["os-vol-host-attr:host"].(string), "@local#local") {
			t.Errorf("after the kill: status %v type %v host %v", after["status"], after["volume_type"], after["os-vol-host-attr:host"])
		}
		next.holds(t, "local", k.Volume, data)
		next.absent(t, "remote", k.Volume)
		next.Must(202, next.action("member", k.Volume, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
		next.waitMigration(k.Volume, "success")
		next.holds(t, "remote", k.Volume, data)
		next.absent(t, "local", k.Volume)
	})
}

// allocatedTemp returns the bytes of disk the temporary files of volume
// id in dir occupy: a copy in progress.
func allocatedTemp(t *testing.T, dir, id string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if !strings.Contains(e.Name(), id) || strings.HasPrefix(e.Name(), "volume-") {
			continue
		}
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		n += st.Sys().(*syscall.Stat_t).Blocks * 512
	}
	return n
}
