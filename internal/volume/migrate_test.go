package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivers"
)

// twoBackends is a service with two file backends, local and remote, each
// in its own directory, and the types on-local and on-remote that pick
// them (volume_backend_name).
type twoBackends struct {
	*env
	dirs map[string]string
	drv  map[string]driver.Driver
}

// twoBackendSection is the configuration of the second backend, in dir.
func twoBackendSection(dir string) string {
	return "[backend:remote]\nvolume_driver = file\nvolume_backend_name = remote\nvolumes_dir = " + dir + "\n"
}

// newTwoBackends starts the service; wrap, when not nil, wraps the drivers
// (by backend name) the service gets.
func newTwoBackends(t *testing.T, d *db.DB, wrap func(name string, drv driver.Driver) driver.Driver) *twoBackends {
	t.Helper()
	return newTwoBackendsWith(t, d, wrap, nil)
}

// newTwoBackendsWith is newTwoBackends with a backup engine (nil: the
// configured one).
func newTwoBackendsWith(t *testing.T, d *db.DB, wrap func(name string, drv driver.Driver) driver.Driver, eng *backup.Engine) *twoBackends {
	t.Helper()
	tb := &twoBackends{dirs: map[string]string{}, drv: map[string]driver.Driver{}}
	remote := filepath.Join(t.TempDir(), "remote")
	tb.env = newEnvConfig(t, d, "enabled_backends = local, remote", func(t *testing.T, cfg *config.Config) Options {
		return Options{Drivers: tb.openDrivers(t, cfg, wrap), Backup: eng}
	}, twoBackendSection(remote))
	tb.createType("on-local", map[string]string{"volume_backend_name": "local"})
	tb.createType("on-remote", map[string]string{"volume_backend_name": "remote"})
	return tb
}

// openDrivers opens the configured file drivers, keeping the plain ones
// for the test, and returns them wrapped for the service.
func (tb *twoBackends) openDrivers(t *testing.T, cfg *config.Config, wrap func(string, driver.Driver) driver.Driver) map[string]driver.Driver {
	out := map[string]driver.Driver{}
	for _, b := range cfg.Backends {
		fd, err := drivers.New(b)
		if err != nil {
			t.Fatal(err)
		}
		tb.dirs[b.Name], tb.drv[b.Name] = b.Options["volumes_dir"], fd
		out[b.Name] = fd
		if wrap != nil {
			out[b.Name] = wrap(b.Name, fd)
		}
	}
	return out
}

// content is what a test wrote into a volume: chunks by offset over
// zeros, of size bytes.
type content struct {
	size   int64
	chunks map[int64][]byte
}

// openVolumeFile opens the file of volume id on drv (a file driver) for
// writing, as an attached instance would write the volume.
func openVolumeFile(t *testing.T, drv driver.Driver, id string) *os.File {
	t.Helper()
	p, err := drv.(interface{ Path(string) (string, error) }).Path(id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fill writes random chunks (one at the start, one in the middle, one at
// the end, holes between them) into volume id on backend and returns what
// the volume holds now.
func (tb *twoBackends) fill(t *testing.T, backend, id string, sizeGiB int64) content {
	t.Helper()
	f := openVolumeFile(t, tb.drv[backend], id)
	defer f.Close()
	c := content{size: sizeGiB * gib, chunks: map[int64][]byte{}}
	for _, off := range []int64{0, c.size/2 + 12345, c.size - 3<<20} {
		b := make([]byte, 3<<20)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		c.chunks[off] = b
	}
	return c
}

// at is the expected content of [off, off+n).
func (c content) at(off int64, n int) []byte {
	out := make([]byte, n)
	for o, b := range c.chunks {
		lo, hi := max(o, off), min(o+int64(len(b)), off+int64(n))
		if lo < hi {
			copy(out[lo-off:hi-off], b[lo-o:hi-o])
		}
	}
	return out
}

// holds checks, byte for byte, that volume id on backend holds c: the same
// size, and every range the driver says may hold data (the rest reads as
// zeros, by the Extents contract) equal to c's bytes there.
func (tb *twoBackends) holds(t *testing.T, backend, id string, c content) {
	t.Helper()
	v, err := tb.drv[backend].Open(context.Background(), id)
	if err != nil {
		t.Fatalf("volume %s on %s: %v", id, backend, err)
	}
	defer v.Close()
	if v.Size() != c.size {
		t.Fatalf("volume %s on %s: %d bytes, want %d", id, backend, v.Size(), c.size)
	}
	ext, err := v.Extents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	covered := map[int64]bool{}
	buf := make([]byte, 1<<20)
	for _, e := range ext {
		for off := e.Offset; off < e.Offset+e.Length; off += int64(len(buf)) {
			n := int(min(int64(len(buf)), e.Offset+e.Length-off))
			if _, err := v.ReadAt(buf[:n], off); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], c.at(off, n)) {
				t.Fatalf("volume %s on %s differs in [%d, %d)", id, backend, off, off+int64(n))
			}
		}
		for o, b := range c.chunks {
			if e.Offset <= o && o+int64(len(b)) <= e.Offset+e.Length {
				covered[o] = true
			}
		}
	}
	if len(covered) != len(c.chunks) {
		t.Fatalf("volume %s on %s: the data written is not all in its extents %v", id, backend, ext)
	}
}

// absent checks that backend holds nothing of volume id, not even a
// temporary file.
func (tb *twoBackends) absent(t *testing.T, backend, id string) {
	t.Helper()
	entries, err := os.ReadDir(tb.dirs[backend])
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), id) {
			t.Errorf("backend %s still holds %s", backend, e.Name())
		}
	}
}

// show returns the volume as the admin sees it.
func (tb *twoBackends) show(id string) map[string]any {
	tb.t.Helper()
	return tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/volumes/"+id, nil))["volume"].(map[string]any)
}

// waitMigration waits until the volume's migration status is want.
func (tb *twoBackends) waitMigration(id, want string) map[string]any {
	tb.t.Helper()
	var v map[string]any
	apitest.Eventually(tb.t, 60*time.Second, func() bool {
		v = tb.show(id)
		return v["migration_status"] == want
	}, func() string {
		return fmt.Sprintf("volume %s: migration_status %v (status %v), want %s", id, v["migration_status"], v["status"], want)
	})
	return v
}

func (tb *twoBackends) action(token, id string, body any) apitest.Resp {
	project := projA
	if strings.HasSuffix(token, "B") {
		project = projB
	}
	return tb.Do(token, "POST", "/v3/"+project+"/volumes/"+id+"/action", body)
}

// gate holds a driver's CreateFrom (the copy's write side) until released,
// and can make it fail.
type gate struct {
	driver.Driver
	once             sync.Once
	entered, release chan struct{}
	fail             error
}

func newGate(d driver.Driver) *gate {
	return &gate{Driver: d, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) CreateFrom(ctx context.Context, id string, size int64, r io.Reader) error {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.fail != nil {
		return g.fail
	}
	return g.Driver.CreateFrom(ctx, id, size, r)
}

// gateRemote is a newTwoBackends wrap that puts a gate, failing with fail
// (when not nil), on the remote backend, and stores it in *g.
func gateRemote(g **gate, fail error) func(string, driver.Driver) driver.Driver {
	return func(name string, drv driver.Driver) driver.Driver {
		if name != "remote" {
			return drv
		}
		*g = newGate(drv)
		(*g).fail = fail
		return *g
	}
}

func (g *gate) wait(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the copy never started")
	}
}

// TestRetypeWithMigration: a retype to a type of the other backend is
// refused with migration_policy never, and with on-demand moves the data,
// byte for byte, keeping the volume's id; the volume is retyping and
// migrating meanwhile, and nothing may change it.
func TestRetypeWithMigration(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var g *gate
		tb := newTwoBackends(t, d, gateRemote(&g, nil))
		v := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local", "name": "mover"}, "available")
		id := v["id"].(string)
		data := tb.fill(t, "local", id, 1)
		before := tb.show(id)
		if !strings.HasSuffix(before["os-vol-host-attr:host"].(string), "@local#local") || before["migration_status"] != nil {
			t.Fatalf("before: host %v migration %v", before["os-vol-host-attr:host"], before["migration_status"])
		}

		for _, c := range []struct {
			name string
			arg  map[string]any
			code int
			msg  string
		}{
			{"default never", map[string]any{"new_type": "on-remote"}, 400,
				"No valid backend was found. Current backend not valid for volume " + id + " with type on-remote, migration not allowed"},
			{"never", map[string]any{"new_type": "on-remote", "migration_policy": "never"}, 400,
				"No valid backend was found. Current backend not valid for volume " + id + " with type on-remote, migration not allowed"},
			{"bad policy", map[string]any{"new_type": "on-remote", "migration_policy": "always"}, 400,
				"Invalid input for field/attribute migration_policy. Value: always. 'always' is not one of ['on-demand', 'never']"},
			{"same type", map[string]any{"new_type": "on-local", "migration_policy": "on-demand"}, 400, errs.Message(errRetypeState)},
			{"unknown type", map[string]any{"new_type": "nope"}, 404, "Volume type with name nope could not be found."},
		} {
			r := tb.action("member", id, map[string]any{"os-retype": c.arg})
			if _, msg := errMessage(t, r); r.Code != c.code || msg != c.msg {
				t.Errorf("%s: %d %q, want %d %q", c.name, r.Code, msg, c.code, c.msg)
			}
		}
		tb.createType("nowhere", map[string]string{"volume_backend_name": "elsewhere"})
		r := tb.action("member", id, map[string]any{"os-retype": map[string]any{"new_type": "nowhere", "migration_policy": "on-demand"}})
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "No valid backend was found. No valid backends for volume "+id+" with type nowhere" {
			t.Errorf("type no backend satisfies: %d %q", r.Code, msg)
		}

		tb.Must(202, tb.action("member", id, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
		g.wait(t)
		mid := tb.show(id)
		if mid["status"] != "retyping" || mid["migration_status"] != "migrating" || mid["volume_type"] != "on-local" {
			t.Errorf("mid-move: status %v migration %v type %v", mid["status"], mid["migration_status"], mid["volume_type"])
		}
		// Nothing may change the volume under the copy.
		for name, body := range map[string]any{
			"extend": map[string]any{"os-extend": map[string]any{"new_size": 2}},
			"upload": map[string]any{"os-volume_upload_image": map[string]any{"image_name": "x"}},
			"retype": map[string]any{"os-retype": map[string]any{"new_type": "on-local"}},
		} {
			if r := tb.action("member", id, body); r.Code != 400 {
				t.Errorf("%s while migrating: %d %s", name, r.Code, r.Body)
			}
		}
		tb.Must(400, tb.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+id, nil))
		tb.Must(400, tb.action("admin", id, map[string]any{"os-force_delete": nil}))
		tb.Must(400, tb.Do("member", "POST", "/v3/"+projA+"/os-volume-transfer", map[string]any{"transfer": map[string]any{"volume_id": id}}))
		close(g.release)

		after := tb.waitMigration(id, "success")
		if after["volume_type"] != "on-remote" || after["status"] != "available" || after["id"] != id ||
			!strings.HasSuffix(after["os-vol-host-attr:host"].(string), "@remote#remote") || after["os-vol-mig-status-attr:migstat"] != "success" {
			t.Errorf("after: %v", after)
		}
		for _, k := range []string{"size", "name", "user_id", "os-vol-tenant-attr:tenant_id", "availability_zone"} {
			if after[k] != before[k] {
				t.Errorf("%s changed: %v -> %v", k, before[k], after[k])
			}
		}
		tb.holds(t, "remote", id, data)
		tb.absent(t, "local", id)
		// Members do not see migration_status (Cinder shows it to admins).
		if m := tb.MustJSON(200, tb.Do("member", "GET", "/v3/"+projA+"/volumes/"+id, nil))["volume"].(map[string]any); m["migration_status"] != nil || m["os-vol-mig-status-attr:migstat"] != nil {
			t.Errorf("member view: %v", m)
		}
	})
}

// TestMigrateVolume covers the admin's os-migrate_volume: the target is a
// service host, the volume keeps its status (or is locked in maintenance),
// and a target that does not suit the volume fails the migration after
// the 202, leaving the volume where it is.
func TestMigrateVolume(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var g *gate
		tb := newTwoBackends(t, d, gateRemote(&g, nil))
		v := tb.createVolume("member", projA, map[string]any{}, "available")
		id := v["id"].(string)
		from := tb.show(id)["os-vol-host-attr:host"].(string)
		if !strings.HasSuffix(from, "@local#local") {
			t.Fatalf("created on %s", from)
		}
		data := tb.fill(t, "local", id, 1)
		hostname := strings.TrimSuffix(from, "@local#local")
		migrate := func(token string, arg map[string]any, version string) apitest.Resp {
			return tb.Do(token, "POST", "/v3/"+projA+"/volumes/"+id+"/action", map[string]any{"os-migrate_volume": arg}, mv(version)...)
		}
		for _, c := range []struct {
			name, token, version string
			arg                  map[string]any
			code                 int
			msg                  string
		}{
			{"member", "member", "3.0", map[string]any{"host": hostname + "@remote"}, 403,
				"Policy doesn't allow volume_extension:volume_admin_actions:migrate_volume to be performed."},
			{"no host", "admin", "3.0", map[string]any{}, 400,
				"Invalid input for field/attribute os-migrate_volume. Value: {}. 'host' is a required property"},
			{"cluster before 3.16", "admin", "3.15", map[string]any{"host": hostname + "@remote", "cluster": "c"}, 400,
				"Invalid input for field/attribute os-migrate_volume. Value: {'cluster': 'c', 'host': '" + hostname + "@remote'}. Additional properties are not allowed ('cluster' was unexpected)"},
			{"host and cluster", "admin", "3.16", map[string]any{"host": hostname + "@remote", "cluster": "c"}, 400,
				"Invalid input received: One and only one of cluster and host must be set."},
			{"cluster", "admin", "3.16", map[string]any{"cluster": "c"}, 400, "Invalid host: No available service named 'c'"},
			{"unknown host", "admin", "3.0", map[string]any{"host": "elsewhere@remote"}, 400, "Invalid host: No available service named 'elsewhere@remote'"},
			{"unknown backend", "admin", "3.0", map[string]any{"host": hostname + "@nope"}, 400, "Invalid host: No available service named '" + hostname + "@nope'"},
			{"same host", "admin", "3.0", map[string]any{"host": hostname + "@local"}, 400, errs.Message(errMigrateState(id))},
		} {
			r := migrate(c.token, c.arg, c.version)
			if _, msg := errMessage(t, r); r.Code != c.code || msg != c.msg {
				t.Errorf("%s: %d %q, want %d %q", c.name, r.Code, msg, c.code, c.msg)
			}
		}

		tb.Must(202, migrate("admin", map[string]any{"host": hostname + "@remote#remote", "force_host_copy": true}, "3.0"))
		g.wait(t)
		if mid := tb.show(id); mid["status"] != "available" || mid["migration_status"] != "migrating" {
			t.Errorf("unlocked mid-move: status %v migration %v", mid["status"], mid["migration_status"])
		}
		tb.Must(400, tb.action("member", id, map[string]any{"os-extend": map[string]any{"new_size": 2}}))
		tb.Must(400, migrate("admin", map[string]any{"host": hostname + "@remote"}, "3.0"))
		close(g.release)
		if after := tb.waitMigration(id, "success"); after["status"] != "available" || after["os-vol-host-attr:host"] != hostname+"@remote#remote" {
			t.Errorf("after: status %v host %v", after["status"], after["os-vol-host-attr:host"])
		}
		tb.holds(t, "remote", id, data)
		tb.absent(t, "local", id)

		// Back, locked: maintenance while it moves (the gate is open now).
		tb.Must(202, migrate("admin", map[string]any{"host": hostname + "@local", "lock_volume": true}, "3.16"))
		if after := tb.waitMigration(id, "success"); after["status"] != "available" || after["os-vol-host-attr:host"] != from {
			t.Errorf("back: status %v host %v", after["status"], after["os-vol-host-attr:host"])
		}
		tb.holds(t, "local", id, data)
		tb.absent(t, "remote", id)

		// A target the volume's type excludes, or a pool it has not: the
		// migration fails at once, nothing moves.
		tb.Must(202, tb.action("admin", id, map[string]any{"os-retype": map[string]any{"new_type": "on-local"}}))
		for _, host := range []string{hostname + "@remote", hostname + "@remote#other"} {
			tb.Must(202, migrate("admin", map[string]any{"host": host}, "3.0"))
			if after := tb.waitMigration(id, "error"); after["status"] != "available" || after["os-vol-host-attr:host"] != from {
				t.Errorf("%s refused: status %v host %v", host, after["status"], after["os-vol-host-attr:host"])
			}
			tb.holds(t, "local", id, data)
			tb.absent(t, "remote", id)
		}
	})
}

// TestMigrationCopyFails: a copy that fails leaves the volume on its
// backend, usable, with migration_status error, and nothing on the target.
func TestMigrationCopyFails(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var g *gate
		tb := newTwoBackends(t, d, gateRemote(&g, errs.E(errs.TooLarge, "no space left for volume")))
		v := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local"}, "available")
		id := v["id"].(string)
		data := tb.fill(t, "local", id, 1)
		close(g.release)
		tb.Must(202, tb.action("member", id, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
		after := tb.waitMigration(id, "error")
		if after["status"] != "available" || after["volume_type"] != "on-local" || !strings.HasSuffix(after["os-vol-host-attr:host"].(string), "@local#local") {
			t.Errorf("after a failed copy: %v", after)
		}
		tb.holds(t, "local", id, data)
		tb.absent(t, "remote", id)
		// Usable: extended, and retyped again once the target works.
		tb.Must(202, tb.action("member", id, map[string]any{"os-extend": map[string]any{"new_size": 2}}))
		tb.waitStatus("member", projA, id, "available")
		g.fail = nil
		tb.Must(202, tb.action("member", id, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
		tb.waitMigration(id, "success")
		data.size = 2 * gib
		tb.holds(t, "remote", id, data)
	})
}

// TestMigrateVolumeCompletion covers Cinder's answers for volumes that are
// not mid-migration: Nova's plain swap saves the new volume's id.
func TestMigrateVolumeCompletion(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		tb := newTwoBackends(t, d, nil)
		a := tb.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		b := tb.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		complete := func(token, id string, arg map[string]any) apitest.Resp {
			return tb.action(token, id, map[string]any{"os-migrate_volume_completion": arg})
		}
		if got := tb.MustJSON(200, complete("admin", a, map[string]any{"new_volume": b}))["save_volume_id"]; got != b {
			t.Errorf("save_volume_id %v, want %s", got, b)
		}
		tb.Must(403, complete("member", a, map[string]any{"new_volume": b}))
		tb.Must(404, complete("admin", a, map[string]any{"new_volume": "00000000-0000-0000-0000-000000000000"}))
		tb.Must(400, complete("admin", a, map[string]any{"new_volume": "x"}))
		tb.Must(400, complete("admin", a, map[string]any{}))

		// b moves (migration_status success): a swap with it is refused.
		tb.Must(202, tb.action("admin", b, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
		tb.waitMigration(b, "success")
		for _, c := range []struct{ src, dst, msg string }{
			{a, b, "Invalid volume: Source volume not mid-migration."},
			{b, a, "Invalid volume: Destination volume not mid-migration."},
			{b, b, "Invalid volume: Destination has migration_status success, expected target:" + b + "."},
		} {
			r := complete("admin", c.src, map[string]any{"new_volume": c.dst, "error": false})
			if _, msg := errMessage(t, r); r.Code != 400 || msg != c.msg {
				t.Errorf("complete %s with %s: %d %q, want %q", c.src, c.dst, r.Code, msg, c.msg)
			}
		}
	})
}

// TestSweepRemovesMovedSource: at start, a volume's data on a backend that
// is not the volume's (a move's source whose node stopped right after the
// switch) is removed, and the volume's own data is kept.
func TestSweepRemovesMovedSource(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		tb := newTwoBackends(t, d, nil)
		id := tb.createVolume("member", projA, map[string]any{"volume_type": "on-remote"}, "available")["id"].(string)
		data := tb.fill(t, "remote", id, 1)
		if err := tb.drv["local"].Create(context.Background(), id, gib); err != nil {
			t.Fatal(err)
		}
		tb.stop()
		tb.start()
		apitest.Eventually(t, 10*time.Second, func() bool {
			v, err := tb.drv["local"].Open(context.Background(), id)
			if err == nil {
				v.Close()
			}
			return errs.KindOf(err) == errs.NotFound
		}, func() string { return "the stale copy on local is still there after a restart" })
		tb.holds(t, "remote", id, data)
	})
}

// TestResetMigrationStatus: an admin's os-reset_status sets or clears
// (none) a volume's migration status; a move reset mid-copy is off, and
// its copy is dropped.
func TestResetMigrationStatus(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var g *gate
		tb := newTwoBackends(t, d, gateRemote(&g, nil))
		id := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local"}, "available")["id"].(string)
		data := tb.fill(t, "local", id, 1)
		reset := func(arg map[string]any) apitest.Resp {
			return tb.action("admin", id, map[string]any{"os-reset_status": arg})
		}
		r := reset(map[string]any{"migration_status": "flying"})
		if _, msg := errMessage(t, r); r.Code != 400 || !strings.HasPrefix(msg, "Volume migration status: flying is invalid") {
			t.Errorf("bad migration status: %d %q", r.Code, msg)
		}
		tb.Must(202, tb.action("member", id, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
		g.wait(t)
		tb.Must(202, reset(map[string]any{"status": "available", "migration_status": "ERROR"}))
		close(g.release)
		// The copy finishes, finds the move off, and drops what it wrote.
		apitest.Eventually(t, 30*time.Second, func() bool {
			entries, _ := os.ReadDir(tb.dirs["remote"])
			return len(entries) == 0
		}, func() string { return "the reset move's copy is still on remote" })
		v := tb.show(id)
		if v["migration_status"] != "error" || v["volume_type"] != "on-local" || !strings.HasSuffix(v["os-vol-host-attr:host"].(string), "@local#local") {
			t.Errorf("after the reset: %v", v)
		}
		tb.holds(t, "local", id, data)
		// The retype's reservation of the new type went with the move.
		waitTasksDone(t, d)
		if u := tb.usage(projA); reserved(u, "volumes_on-remote") != 0 || reserved(u, "gigabytes_on-remote") != 0 {
			t.Errorf("after the reset move: %v %v", u["volumes_on-remote"], u["gigabytes_on-remote"])
		}
		checkUsage(t, tb.env, projA)
		tb.Must(202, reset(map[string]any{"migration_status": "none"}))
		if v := tb.show(id); v["migration_status"] != nil {
			t.Errorf("migration_status after none: %v", v["migration_status"])
		}
	})
}

// TestMoveOfDeletedVolume: a move whose volume an admin reset and then
// force-deleted mid-copy ends without a volume to move: its copy on the
// target is dropped, the retype's reservation is given back and the task
// ends.
func TestMoveOfDeletedVolume(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var g *gate
		tb := newTwoBackends(t, d, gateRemote(&g, nil))
		id := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local"}, "available")["id"].(string)
		tb.fill(t, "local", id, 1)
		tb.Must(202, tb.action("member", id, map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}))
		g.wait(t)
		tb.Must(202, tb.action("admin", id, map[string]any{"os-reset_status": map[string]any{"status": "available", "migration_status": "error"}}))
		tb.Must(202, tb.action("admin", id, map[string]any{"os-force_delete": nil}))
		apitest.Eventually(t, 30*time.Second, func() bool {
			return tb.Do("admin", "GET", "/v3/"+projA+"/volumes/"+id, nil).Code == 404
		}, func() string { return "the volume is still there" })
		close(g.release)
		waitTasksDone(t, d)
		apitest.Eventually(t, 30*time.Second, func() bool {
			entries, _ := os.ReadDir(tb.dirs["remote"])
			return len(entries) == 0
		}, func() string { return "the deleted volume's copy is still on remote" })
		if u := tb.usage(projA); reserved(u, "volumes_on-remote") != 0 || reserved(u, "gigabytes_on-remote") != 0 {
			t.Errorf("after the move of a deleted volume: %v %v", u["volumes_on-remote"], u["gigabytes_on-remote"])
		}
		checkUsage(t, tb.env, projA)
	})
}
