package volume

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivers"
)

// showKeys30 are the keys of a volume shown to an admin at 3.0 (tempest's
// common_show_volume, additionalProperties false).
var showKeys30 = []string{"attachments", "availability_zone", "bootable", "consistencygroup_id", "created_at",
	"description", "encrypted", "id", "links", "metadata", "migration_status", "multiattach", "name",
	"os-vol-host-attr:host", "os-vol-mig-status-attr:migstat", "os-vol-mig-status-attr:name_id",
	"os-vol-tenant-attr:tenant_id", "replication_status", "size", "snapshot_id", "source_volid", "status",
	"updated_at", "user_id", "volume_type"}

// createKeys30 are the keys of a volume shown to a member at 3.0, in the
// create and update responses too: without the os-vol-* attributes, and
// without migration_status, which Cinder shows admins only.
var createKeys30 = []string{"attachments", "availability_zone", "bootable", "consistencygroup_id", "created_at",
	"description", "encrypted", "id", "links", "metadata", "multiattach", "name",
	"replication_status", "size", "snapshot_id", "source_volid", "status", "updated_at", "user_id", "volume_type"}

func TestVolumeLifecycle(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		base := "/v3/" + projA + "/volumes"
		r := e.Do("member", "POST", base, map[string]any{"volume": map[string]any{"size": 1, "name": "v1", "metadata": map[string]any{"Type": "work"}}})
		created := e.MustJSON(202, r)["volume"].(map[string]any)
		wantKeys(t, "create", created, createKeys30...)
		id := created["id"].(string)
		v := e.waitStatus("member", projA, id, "available")
		// Members see the volume's project (Cinder's tenant attribute
		// policy is the project's readers), not its host or migration.
		wantKeys(t, "member show", v, append(createKeys30, "os-vol-tenant-attr:tenant_id")...)
		if v["volume_type"] != "__DEFAULT__" || v["bootable"] != "false" || v["size"] != float64(1) {
			t.Errorf("show %v", v)
		}
		adminView := e.MustJSON(200, e.Do("admin", "GET", base+"/"+id, nil))["volume"].(map[string]any)
		wantKeys(t, "admin show", adminView, showKeys30...)
		if host, _ := adminView["os-vol-host-attr:host"].(string); !regexp.MustCompile(`^.+@local#local$`).MatchString(host) {
			t.Errorf("host %v", adminView["os-vol-host-attr:host"])
		}
		// Microversion-dependent fields.
		v63 := e.MustJSON(200, e.Do("member", "GET", base+"/"+id, nil, "OpenStack-API-Version", "volume 3.63"))["volume"].(map[string]any)
		if _, ok := v63["volume_type_id"]; !ok {
			t.Errorf("3.63 lacks volume_type_id")
		}
		if v69 := e.MustJSON(200, e.Do("member", "GET", base+"/"+id, nil, "OpenStack-API-Version", "volume 3.69"))["volume"].(map[string]any); v69["shared_targets"] != nil {
			t.Errorf("3.69 shared_targets %v", v69["shared_targets"])
		}

		// Negative creates.
		for _, bad := range []any{"#$%", "", "0", "-1", 0} {
			if r := e.Do("member", "POST", base, map[string]any{"volume": map[string]any{"size": bad}}); r.Code != 400 {
				t.Errorf("size %v: %d", bad, r.Code)
			}
		}
		for name, body := range map[string]map[string]any{
			"type":     {"size": 1, "volume_type": "nope"},
			"snapshot": {"size": 1, "snapshot_id": "0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e"},
			"source":   {"size": 1, "source_volid": "0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e"},
			"image":    {"size": 1, "imageRef": "0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e"},
		} {
			if r := e.Do("member", "POST", base, map[string]any{"volume": body}); r.Code != 404 {
				t.Errorf("unknown %s: %d %s", name, r.Code, r.Body)
			}
		}
		if r := e.Do("member", "POST", base, map[string]any{"volume": map[string]any{"size": 1, "availability_zone": "mars"}}); r.Code != 400 {
			t.Errorf("bad az: %d", r.Code)
		}
		for _, p := range []string{"/0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e", "/x", "/"} {
			for _, m := range []string{"GET", "PUT", "DELETE"} {
				if r := e.Do("member", m, base+p, map[string]any{"volume": map[string]any{"name": "n"}}); r.Code != 404 && !(p == "/" && m == "GET" && r.Code == 200) {
					t.Errorf("%s %s: %d", m, p, r.Code)
				}
			}
		}

		// Update.
		upd := e.MustJSON(200, e.Do("member", "PUT", base+"/"+id, map[string]any{"volume": map[string]any{"name": "v1b", "description": "d"}}))["volume"].(map[string]any)
		wantKeys(t, "update", upd, createKeys30...)
		if upd["name"] != "v1b" || upd["description"] != "d" {
			t.Errorf("update %v", upd)
		}

		// Metadata.
		md := e.MustJSON(200, e.Do("member", "POST", base+"/"+id+"/metadata", map[string]any{"metadata": map[string]any{"k1": "v1"}}))["metadata"].(map[string]any)
		if md["Type"] != "work" || md["k1"] != "v1" {
			t.Errorf("metadata merge %v", md)
		}
		e.MustJSON(200, e.Do("member", "PUT", base+"/"+id+"/metadata/k1", map[string]any{"meta": map[string]any{"k1": "v2"}}))
		if item := e.MustJSON(200, e.Do("member", "GET", base+"/"+id+"/metadata/k1", nil))["meta"].(map[string]any); item["k1"] != "v2" {
			t.Errorf("item %v", item)
		}
		e.MustJSON(200, e.Do("member", "DELETE", base+"/"+id+"/metadata/k1", nil))
		rep := e.MustJSON(200, e.Do("member", "PUT", base+"/"+id+"/metadata", map[string]any{"metadata": map[string]any{"Type": "work", "x": "y"}}))["metadata"].(map[string]any)
		if len(rep) != 2 {
			t.Errorf("replace %v", rep)
		}

		// Actions.
		act := func(token string, body any) apitest.Resp { return e.Do(token, "POST", base+"/"+id+"/action", body) }
		e.MustJSON(200, act("member", map[string]any{"os-set_bootable": map[string]any{"bootable": true}}))
		e.MustJSON(202, act("member", map[string]any{"os-update_readonly_flag": map[string]any{"readonly": true}}))
		v = e.waitStatus("member", projA, id, "available")
		if v["bootable"] != "true" || v["metadata"].(map[string]any)["readonly"] != "True" {
			t.Errorf("bootable/readonly %v %v", v["bootable"], v["metadata"])
		}
		e.MustJSON(202, act("member", map[string]any{"os-reserve": nil}))
		e.waitStatus("member", projA, id, "attaching")
		if r := act("member", map[string]any{"os-reserve": nil}); r.Code != 400 {
			t.Errorf("reserve twice: %d", r.Code)
		}
		e.MustJSON(202, act("member", map[string]any{"os-unreserve": nil}))
		e.waitStatus("member", projA, id, "available")
		for _, bad := range []any{nil, "abc", 1} {
			if r := act("member", map[string]any{"os-extend": map[string]any{"new_size": bad}}); r.Code != 400 {
				t.Errorf("extend %v: %d %s", bad, r.Code, r.Body)
			}
		}
		e.MustJSON(202, act("member", map[string]any{"os-extend": map[string]any{"new_size": 2}}))
		if v := e.waitStatus("member", projA, id, "available"); v["size"] != float64(2) {
			t.Errorf("extended size %v", v["size"])
		}
		if r := e.Do("member", "POST", base+"/0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e/action", map[string]any{"os-extend": map[string]any{"new_size": 3}}); r.Code != 404 {
			t.Errorf("extend unknown %d", r.Code)
		}
		if r := act("member", map[string]any{"os-reset_status": map[string]any{"status": "error"}}); r.Code != 403 {
			t.Errorf("member reset-status %d", r.Code)
		}
		e.MustJSON(202, act("admin", map[string]any{"os-reset_status": map[string]any{"status": "error"}}))
		e.waitStatus("member", projA, id, "error")
		e.MustJSON(202, act("admin", map[string]any{"os-reset_status": map[string]any{"status": "available"}}))

		// Image metadata actions.
		im := e.MustJSON(200, act("member", map[string]any{"os-set_image_metadata": map[string]any{"metadata": map[string]any{"image_id": "i", "kernel_id": "k"}}}))["metadata"].(map[string]any)
		if im["kernel_id"] != "k" {
			t.Errorf("set image metadata %v", im)
		}
		e.MustJSON(200, act("member", map[string]any{"os-unset_image_metadata": map[string]any{"key": "kernel_id"}}))
		if im := e.MustJSON(200, act("member", map[string]any{"os-show_image_metadata": nil}))["metadata"].(map[string]any); len(im) != 1 {
			t.Errorf("show image metadata %v", im)
		}
		if v := e.MustJSON(200, e.Do("admin", "GET", base+"/"+id, nil))["volume"].(map[string]any); v["volume_image_metadata"] == nil {
			t.Errorf("volume_image_metadata missing")
		}

		// Availability zones.
		az := e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/os-availability-zone", nil))["availabilityZoneInfo"].([]any)
		if len(az) != 1 || az[0].(map[string]any)["zoneName"] != "nova" {
			t.Errorf("az %v", az)
		}

		// Pools: admin only, with the matched capabilities.
		if r := e.Do("member", "GET", "/v3/"+projA+"/scheduler-stats/get_pools", nil); r.Code != 403 {
			t.Errorf("member get_pools: %d", r.Code)
		}
		pools := e.MustJSON(200, e.Do("admin", "GET", "/v3/"+projA+"/scheduler-stats/get_pools?detail=true", nil))["pools"].([]any)
		if len(pools) != 1 || pools[0].(map[string]any)["capabilities"].(map[string]any)["volume_backend_name"] != "local" {
			t.Errorf("pools %v", pools)
		}

		// Delete.
		e.MustJSON(202, e.Do("member", "DELETE", base+"/"+id, nil))
		if r := e.Do("member", "GET", base+"/"+id, nil); r.Code != 404 {
			t.Errorf("after delete %d", r.Code)
		}
	})
}

func TestVolumeListing(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		var ids []string
		for i := range 5 {
			md := map[string]any{"Type": "work"}
			if i%2 == 1 {
				md = map[string]any{"Type": "play"}
			}
			v := e.createVolume("member", projA, map[string]any{"name": fmt.Sprintf("v%d", i), "metadata": md}, "available")
			ids = append(ids, v["id"].(string))
		}
		e.createVolume("memberB", projB, map[string]any{"name": "other"}, "available")
		list := func(token, q string) []any {
			t.Helper()
			return e.MustJSON(200, e.Do(token, "GET", "/v3/"+projA+"/volumes/detail?"+q, nil))["volumes"].([]any)
		}
		if got := list("member", ""); len(got) != 5 {
			t.Errorf("own list %d", len(got))
		}
		if got := list("member", "name=v3"); len(got) != 1 || got[0].(map[string]any)["id"] != ids[3] {
			t.Errorf("name filter %v", got)
		}
		if got := list("member", "name=nothing"); len(got) != 0 {
			t.Errorf("unknown name %d", len(got))
		}
		if got := list("member", "status=invalid"); len(got) != 0 {
			t.Errorf("invalid status %d", len(got))
		}
		if got := list("member", "metadata="+url.QueryEscape("{'Type': 'work'}")); len(got) != 3 {
			t.Errorf("metadata filter %d", len(got))
		}
		if got := list("member", "bootable=false&availability_zone=nova"); len(got) != 5 {
			t.Errorf("bootable/az filter %d", len(got))
		}
		if got := list("admin", "all_tenants=1"); len(got) != 6 {
			t.Errorf("all tenants %d", len(got))
		}
		// Pagination by id ascending follows volumes_links.
		var seen []string
		next := "/v3/" + projA + "/volumes?limit=2&sort_key=id&sort_dir=asc"
		for next != "" {
			m := e.MustJSON(200, e.Do("member", "GET", next, nil))
			for _, v := range m["volumes"].([]any) {
				vv := v.(map[string]any)
				wantKeys(t, "summary list", vv, "id", "links", "name")
				seen = append(seen, vv["id"].(string))
			}
			next = ""
			if links, ok := m["volumes_links"].([]any); ok {
				u, _ := url.Parse(links[0].(map[string]any)["href"].(string))
				next = u.RequestURI()
			}
		}
		if len(seen) != 5 {
			t.Fatalf("paged %d", len(seen))
		}
		for i := 1; i < len(seen); i++ {
			if seen[i-1] >= seen[i] {
				t.Errorf("order %v", seen)
			}
		}
		if got := list("member", "sort=id:desc&limit=1"); got[0].(map[string]any)["id"] != seen[4] {
			t.Errorf("sort desc")
		}
		if r := e.Do("member", "GET", "/v3/"+projA+"/volumes?marker=0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e", nil); r.Code != 404 {
			t.Errorf("bad marker %d", r.Code)
		}
		if r := e.Do("member", "GET", "/v3/"+projA+"/volumes?sort_key=bogus", nil); r.Code != 400 {
			t.Errorf("bad sort key %d", r.Code)
		}
		// Summary needs 3.12.
		if r := e.Do("member", "GET", "/v3/"+projA+"/volumes/summary", nil); r.Code != 404 {
			t.Errorf("summary at 3.0: %d", r.Code)
		}
		sum := e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/volumes/summary", nil, "OpenStack-API-Version", "volume 3.12"))["volume-summary"].(map[string]any)
		wantKeys(t, "summary", sum, "total_count", "total_size")
		if sum["total_count"] != float64(5) || sum["total_size"] != float64(5) {
			t.Errorf("summary %v", sum)
		}
	})
}

func TestCreateFromImageAndClone(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		data := bytes.Repeat([]byte("ashlar!\n"), 1<<17) // 1 MiB
		img := e.glance.addImage(map[string]any{"name": "anchor", "hw_disk_bus": "scsi", "min_ram": 64}, data)
		v := e.createVolume("member", projA, map[string]any{"imageRef": img}, "available")
		if v["bootable"] != "true" {
			t.Errorf("bootable %v", v["bootable"])
		}
		im := v["volume_image_metadata"].(map[string]any)
		if im["image_id"] != img || im["image_name"] != "anchor" || im["hw_disk_bus"] != "scsi" || im["min_ram"] != "64" {
			t.Errorf("volume_image_metadata %v", im)
		}
		got := e.readVolume(v["id"].(string), int64(len(data)))
		if !bytes.Equal(got, data) {
			t.Errorf("volume data differs from the image")
		}
		// Image too big for the requested size / inactive image.
		big := e.glance.addImage(map[string]any{"min_disk": 5}, data)
		if r := e.Do("member", "POST", "/v3/"+projA+"/volumes", map[string]any{"volume": map[string]any{"size": 1, "imageRef": big}}); r.Code != 400 {
			t.Errorf("min_disk: %d", r.Code)
		}
		inactive := e.glance.addImage(map[string]any{"status": "deactivated"}, data)
		if r := e.Do("member", "POST", "/v3/"+projA+"/volumes", map[string]any{"volume": map[string]any{"size": 1, "imageRef": inactive}}); r.Code != 400 {
			t.Errorf("deactivated: %d", r.Code)
		}
		// Clone keeps data and image metadata.
		c := e.createVolume("member", projA, map[string]any{"source_volid": v["id"]}, "available")
		if c["source_volid"] != v["id"] || c["bootable"] != "true" {
			t.Errorf("clone %v", c)
		}
		if !bytes.Equal(e.readVolume(c["id"].(string), int64(len(data))), data) {
			t.Errorf("clone data differs")
		}
	})
}

// readVolume reads the first n bytes of a volume through its driver.
func (e *env) readVolume(id string, n int64) []byte {
	e.t.Helper()
	dv, err := e.svc.backends[0].drv.Open(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	defer dv.Close()
	buf := make([]byte, n)
	if _, err := dv.ReadAt(buf, 0); err != nil {
		e.t.Fatal(err)
	}
	return buf
}

func TestDetachUnknownVolume(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		for _, a := range []string{"os-detach", "os-attach", "os-begin_detaching"} {
			arg := map[string]any{}
			if a == "os-attach" { // Cinder validates the body first
				arg = map[string]any{"host_name": "h", "mountpoint": "/dev/vdb"}
			}
			if r := e.Do("member", "POST", "/v3/"+projA+"/volumes/xxx/action", map[string]any{a: arg}); r.Code != 404 {
				t.Errorf("%s unknown volume: %d %s", a, r.Code, r.Body)
			}
		}
		// Detaching a volume that is not attached changes nothing (Cinder
		// answers 202 and leaves it available).
		id := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		if r := e.Do("member", "POST", "/v3/"+projA+"/volumes/"+id+"/action", map[string]any{"os-detach": map[string]any{}}); r.Code != 202 {
			t.Errorf("detach unattached: %d", r.Code)
		}
		e.waitStatus("member", projA, id, "available")
	})
}

// limit and offset are validated as Cinder's get_pagination_params does
// (issue 17: offset=-1 was accepted), and a valid offset skips volumes
// after the marker, in the database on both engines.
func TestVolumeListPaginationParams(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		base := "/v3/" + projA + "/volumes"
		for _, c := range []struct{ query, msg string }{
			{"offset=-1", "offset must be >= 0"},
			{"offset=abc", "offset must be an integer"},
			{"offset=1.5", "offset must be an integer"},
			{"offset=", "offset must be an integer"},
			{"offset=2147483648", "offset must be <= 2147483647"},
			{"limit=abc", "limit param must be an integer"},
			{"limit=-1", "limit param must be positive"},
			{"limit=-1&offset=-1", "limit param must be positive"},
		} {
			for _, path := range []string{base, base + "/detail"} {
				r := e.Do("member", "GET", path+"?"+c.query, nil)
				if fault, msg := errMessage(t, r); r.Code != 400 || fault != "badRequest" || msg != c.msg {
					t.Errorf("%s?%s: %d %s, want 400 %q", path, c.query, r.Code, r.Body, c.msg)
				}
			}
		}
		var ids []string
		for range 4 {
			ids = append(ids, e.createVolume("member", projA, map[string]any{}, "available")["id"].(string))
		}
		sort.Strings(ids)
		page := func(query string) []string {
			t.Helper()
			var got []string
			for _, v := range e.MustJSON(200, e.Do("member", "GET", base+"?sort=id:asc&"+query, nil))["volumes"].([]any) {
				got = append(got, v.(map[string]any)["id"].(string))
			}
			return got
		}
		for query, want := range map[string][]string{
			"offset=0":                             ids,
			"offset=+1":                            ids[1:],
			"offset=%201":                          ids[1:],
			"offset=2&limit=1":                     ids[2:3],
			"offset=1&marker=" + ids[0]:            ids[2:],
			"offset=9":                             nil,
			"limit=99999999999999999999999":        ids,
			"limit=0":                              nil,
			"limit=%202&offset=1&marker=" + ids[0]: ids[2:4],
		} {
			if got := page(query); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: %v, want %v", query, got, want)
			}
		}
	})
}

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
		apitest.Eventually(t, 5*time.Second, func() bool {
			var err error
			entries, err = os.ReadDir(dir)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return len(entries) == 0
		}, func() string { return fmt.Sprintf("left in the backend after force-delete during create: %v", entries) })
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
		apitest.Eventually(t, 5*time.Second, func() bool {
			v, err := fd.Open(context.Background(), orphan)
			if err == nil {
				v.Close()
			}
			return err != nil
		}, func() string { return "orphaned volume data still there after a restart" })
		v, err := fd.Open(context.Background(), kept)
		if err != nil {
			t.Fatalf("the known volume's data was swept: %v", err)
		}
		v.Close()
	})
}
