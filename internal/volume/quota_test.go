package volume

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// quotaPath is the os-quota-sets path of target, as project's caller.
func quotaPath(project, target string) string { return "/v3/" + project + "/os-quota-sets/" + target }

// setQuota sets project's limits as admin.
func (e *env) setQuota(project string, set map[string]any) map[string]any {
	e.t.Helper()
	return e.MustJSON(200, e.Do("admin", "PUT", quotaPath(projA, project), map[string]any{"quota_set": set}))["quota_set"].(map[string]any)
}

// usage is project's quota set with usage, by key.
func (e *env) usage(project string) map[string]any {
	e.t.Helper()
	return e.MustJSON(200, e.Do("admin", "GET", quotaPath(projA, project)+"?usage=True", nil))["quota_set"].(map[string]any)
}

// inUse is the in_use of key in a quota set with usage.
func inUse(set map[string]any, key string) float64 {
	u, _ := set[key].(map[string]any)
	f, _ := u["in_use"].(float64)
	return f
}

// checkUsage fails unless the stored usage of every project is what the
// registry's counters recount from the rows: nothing counted twice or
// lost, and nothing left reserved.
func checkUsage(t *testing.T, e *env, projects ...string) {
	t.Helper()
	ctx := context.Background()
	for _, p := range projects {
		want, err := recountUsage(ctx, e.db, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := projectUsages(ctx, e.db, p)
		if err != nil {
			t.Fatal(err)
		}
		for k, u := range got {
			if u.InUse != want[k] || u.Reserved != 0 {
				t.Errorf("project %s %s: stored in_use %d reserved %d, rows count %d", p[:4], k, u.InUse, u.Reserved, want[k])
			}
		}
		for k, n := range want {
			if _, ok := got[k]; !ok && n != 0 {
				t.Errorf("project %s %s: no stored usage, rows count %d", p[:4], k, n)
			}
		}
	}
}

func TestQuotaSetsAPI(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnvConfig(t, d, "quota_volumes = 7\nper_volume_size_limit = 50", nil)
		e.createType("gold", nil)
		set := e.MustJSON(200, e.Do("member", "GET", quotaPath(projA, projA), nil))["quota_set"].(map[string]any)
		want := map[string]float64{"volumes": 7, "snapshots": 10, "gigabytes": 1000, "backups": 10, "backup_gigabytes": 1000,
			"groups": 10, "per_volume_gigabytes": 50, "volumes_gold": -1, "gigabytes_gold": -1, "snapshots_gold": -1,
			"volumes___DEFAULT__": -1}
		for k, v := range want {
			if set[k] != v {
				t.Errorf("show %s = %v, want %v", k, set[k], v)
			}
		}
		if set["id"] != projA {
			t.Errorf("show id %v", set["id"])
		}
		// Policy: readers show their own project; only admins show
		// another project's, update and delete.
		e.Must(200, e.Do("reader", "GET", quotaPath(projA, projA), nil))
		wantError(t, "member shows B", e.Do("member", "GET", quotaPath(projA, projB), nil), 403,
			"Policy doesn't allow volume_extension:quotas:show to be performed.")
		wantError(t, "member updates", e.Do("member", "PUT", quotaPath(projA, projA), map[string]any{"quota_set": map[string]any{"volumes": 1}}), 403,
			"Policy doesn't allow volume_extension:quotas:update to be performed.")
		wantError(t, "member deletes", e.Do("member", "DELETE", quotaPath(projA, projA), nil), 403,
			"Policy doesn't allow volume_extension:quotas:delete to be performed.")
		e.Must(200, e.Do("admin", "GET", quotaPath(projA, projB), nil))

		for _, c := range []struct {
			name string
			body any
			msg  string
		}{
			{"bad key", map[string]any{"quota_set": map[string]any{"volumes": 1, "bogus": 2, "gigabytes_nosuch": 1}}, "Invalid input received: Bad key(s) in quota set: bogus, gigabytes_nosuch"},
			{"not integer", map[string]any{"quota_set": map[string]any{"volumes": "x"}}, "volumes must be an integer"},
			{"below -1", map[string]any{"quota_set": map[string]any{"volumes": -2}}, "volumes must be >= -1"},
			{"too big", map[string]any{"quota_set": map[string]any{"gigabytes": 2147483648}}, "gigabytes must be <= 2147483647"},
			{"empty", map[string]any{"quota_set": map[string]any{}}, "Invalid input for field/attribute quota_set. Value: {}. {} does not have enough properties"},
			{"no set", map[string]any{"foo": 1}, "Invalid input for field/attribute quota_set. Value: {'foo': 1}. 'quota_set' is a required property"},
		} {
			wantError(t, c.name, e.Do("admin", "PUT", quotaPath(projA, projB), c.body), 400, c.msg)
		}
		up := e.setQuota(projB, map[string]any{"volumes": "3", "gigabytes_gold": 20, "tenant_id": projB, "per_volume_gigabytes": 5})
		if up["volumes"] != float64(3) || up["gigabytes_gold"] != float64(20) || up["per_volume_gigabytes"] != float64(5) || up["id"] != nil {
			t.Errorf("update answered %v", up)
		}
		// Defaults do not change with the project's limits.
		def := e.MustJSON(200, e.Do("memberB", "GET", quotaPath(projB, projB)+"/defaults", nil))["quota_set"].(map[string]any)
		if def["volumes"] != float64(7) || def["gigabytes_gold"] != float64(-1) || def["id"] != projB {
			t.Errorf("defaults %v", def)
		}
		// Delete: back to the defaults.
		e.Must(200, e.Do("admin", "DELETE", quotaPath(projA, projB), nil))
		if set := e.MustJSON(200, e.Do("memberB", "GET", quotaPath(projB, projB), nil))["quota_set"].(map[string]any); set["volumes"] != float64(7) {
			t.Errorf("after delete %v", set)
		}

		// The default class overrides the configuration's defaults.
		cls := "/v3/" + projA + "/os-quota-class-sets/default"
		wantError(t, "member class", e.Do("member", "GET", cls, nil), 403, "Policy doesn't allow volume_extension:quota_classes:get to be performed.")
		wantError(t, "bad class key", e.Do("admin", "PUT", cls, map[string]any{"quota_class_set": map[string]any{"nope": 1}}), 400,
			"Invalid input received: Bad key(s) in quota class set: nope")
		// The body is checked before the policy (Cinder's schema runs
		// first): a member's bad body is 400, a good one 403.
		wantError(t, "member bad class key", e.Do("member", "PUT", cls, map[string]any{"quota_class_set": map[string]any{"nope": 1}}), 400,
			"Invalid input received: Bad key(s) in quota class set: nope")
		wantError(t, "member class update", e.Do("member", "PUT", cls, map[string]any{"quota_class_set": map[string]any{"volumes": 1}}), 403,
			"Policy doesn't allow volume_extension:quota_classes:update to be performed.")
		c := e.MustJSON(200, e.Do("admin", "PUT", cls, map[string]any{"quota_class_set": map[string]any{"volumes": 4, "snapshots_gold": 2}}))["quota_class_set"].(map[string]any)
		if c["volumes"] != float64(4) || c["snapshots_gold"] != float64(2) || c["gigabytes"] != float64(1000) {
			t.Errorf("class update %v", c)
		}
		if c := e.MustJSON(200, e.Do("admin", "GET", cls, nil))["quota_class_set"].(map[string]any); c["id"] != "default" || c["volumes"] != float64(4) {
			t.Errorf("class show %v", c)
		}
		if set := e.MustJSON(200, e.Do("memberB", "GET", quotaPath(projB, projB), nil))["quota_set"].(map[string]any); set["volumes"] != float64(4) || set["snapshots_gold"] != float64(2) {
			t.Errorf("after class update %v", set)
		}

		// Usage, and a limit below it refused where the project has its own.
		e.createVolume("memberB", projB, map[string]any{"size": 2}, "available")
		e.createVolume("memberB", projB, map[string]any{"size": 3}, "available")
		u := e.MustJSON(200, e.Do("memberB", "GET", quotaPath(projB, projB)+"?usage=true", nil))["quota_set"].(map[string]any)
		if g := u["gigabytes"].(map[string]any); g["in_use"] != float64(5) || g["reserved"] != float64(0) || g["limit"] != float64(1000) {
			t.Errorf("usage gigabytes %v", g)
		}
		if u["volumes"].(map[string]any)["in_use"] != float64(2) || u["volumes___DEFAULT__"].(map[string]any)["in_use"] != float64(2) {
			t.Errorf("usage %v", u)
		}
		wantError(t, "usage=maybe", e.Do("memberB", "GET", quotaPath(projB, projB)+"?usage=maybe", nil), 400, "Value 'maybe' for 'usage' is not a boolean.")
		e.setQuota(projB, map[string]any{"volumes": 1}) // no limit of its own yet: accepted, as Cinder
		wantError(t, "below usage", e.Do("admin", "PUT", quotaPath(projA, projB), map[string]any{"quota_set": map[string]any{"volumes": 1}}), 400,
			"Quota volumes limit must be equal or greater than existing resources. Current usage is 2 and the requested limit is 1.")
		e.setQuota(projB, map[string]any{"volumes": -1})

		// Limits.
		lim := e.MustJSON(200, e.Do("memberB", "GET", "/v3/"+projB+"/limits", nil))["limits"].(map[string]any)
		abs := lim["absolute"].(map[string]any)
		wantAbs := map[string]float64{"maxTotalVolumes": -1, "totalVolumesUsed": 2, "maxTotalVolumeGigabytes": 1000, "totalGigabytesUsed": 5,
			"maxTotalSnapshots": 10, "totalSnapshotsUsed": 0, "maxTotalBackups": 10, "totalBackupsUsed": 0,
			"maxTotalBackupGigabytes": 1000, "totalBackupGigabytesUsed": 0}
		if len(abs) != len(wantAbs) {
			t.Errorf("absolute %v", abs)
		}
		for k, v := range wantAbs {
			if abs[k] != v {
				t.Errorf("limits %s = %v, want %v", k, abs[k], v)
			}
		}
		if r, ok := lim["rate"].([]any); !ok || len(r) != 0 {
			t.Errorf("rate %v", lim["rate"])
		}
		// An admin names another project from 3.39.
		abs = e.MustJSON(200, e.Do("admin", "GET", "/v3/"+projA+"/limits?project_id="+projB, nil, mv("3.39")...))["limits"].(map[string]any)["absolute"].(map[string]any)
		if abs["totalVolumesUsed"] != float64(2) {
			t.Errorf("admin limits of B %v", abs)
		}
		checkUsage(t, e, projA, projB)
	})
}

func TestQuotaEnforcement(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		gold := e.createType("gold", nil)
		_ = gold
		vol := func(token, project string, fields map[string]any) apitest.Resp {
			return e.Do(token, "POST", "/v3/"+project+"/volumes", map[string]any{"volume": fields})
		}
		e.setQuota(projA, map[string]any{"volumes": 2, "gigabytes": 10, "snapshots": 1, "per_volume_gigabytes": 6, "volumes_gold": 1})
		r := vol("member", projA, map[string]any{"size": 7})
		wantError(t, "per volume", r, 413, "Requested volume size 7G is larger than maximum allowed limit 6G.")
		if r.Header.Get("Retry-After") != "0" || apitest.Dig(r.JSON(t), "overLimit", "retryAfter") != "0" {
			t.Errorf("413 without retry after: %v %s", r.Header, r.Body)
		}
		v1 := e.createVolume("member", projA, map[string]any{"size": 5, "volume_type": "gold"}, "available")["id"].(string)
		wantError(t, "type volumes", vol("member", projA, map[string]any{"size": 1, "volume_type": "gold"}), 413,
			"Maximum number of volumes allowed (1) exceeded for quota 'volumes_gold'.")
		wantError(t, "gigabytes", vol("member", projA, map[string]any{"size": 6}), 413,
			"Requested volume or snapshot exceeds allowed gigabytes quota. Requested 6G, quota is 10G and 5G has been consumed.")
		v2 := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		wantError(t, "volumes", vol("member", projA, map[string]any{"size": 1}), 413,
			"Maximum number of volumes allowed (2) exceeded for quota 'volumes'.")
		// A clone counts as a volume.
		wantError(t, "clone", vol("member", projA, map[string]any{"source_volid": v2}), 413,
			"Maximum number of volumes allowed (2) exceeded for quota 'volumes'.")

		// Snapshots: count and gigabytes.
		wantError(t, "snapshot gigabytes", e.Do("member", "POST", snapBase(projA), map[string]any{"snapshot": map[string]any{"volume_id": v1}}), 413,
			"Requested volume or snapshot exceeds allowed gigabytes quota. Requested 5G, quota is 10G and 6G has been consumed.")
		e.createSnapshot("member", projA, v2, nil, "available")
		wantError(t, "snapshots", e.Do("member", "POST", snapBase(projA), map[string]any{"snapshot": map[string]any{"volume_id": v2}}), 413,
			"Maximum number of snapshots allowed (1) exceeded")

		// Extend: over the total, over per_volume_gigabytes; the volume stays available.
		wantError(t, "extend", e.volAction("member", projA, v2, map[string]any{"os-extend": map[string]any{"new_size": 5}}), 413,
			"Requested volume or snapshot exceeds allowed gigabytes quota. Requested 4G, quota is 10G and 7G has been consumed.")
		wantError(t, "extend per volume", e.volAction("member", projA, v1, map[string]any{"os-extend": map[string]any{"new_size": 7}}), 413,
			"Requested volume size 7G is larger than maximum allowed limit 6G.")
		if v := e.waitStatus("member", projA, v1, "available"); v["size"] != float64(5) {
			t.Errorf("refused extend changed %v", v)
		}
		e.Must(202, e.volAction("member", projA, v2, map[string]any{"os-extend": map[string]any{"new_size": 3}}))
		e.waitStatus("member", projA, v2, "available")
		if u := e.usage(projA); inUse(u, "gigabytes") != 9 || inUse(u, "gigabytes___DEFAULT__") != 4 {
			t.Errorf("after extend %v", u)
		}

		// Retype: per-type keys move, refused when the new type is full.
		wantError(t, "retype full", e.volAction("member", projA, v2, map[string]any{"os-retype": map[string]any{"new_type": "gold"}}), 413,
			"Maximum number of volumes allowed (1) exceeded for quota 'volumes_gold'.")
		e.Must(202, e.volAction("member", projA, v1, map[string]any{"os-retype": map[string]any{"new_type": DefaultTypeForTest}}))
		e.Must(202, e.volAction("member", projA, v2, map[string]any{"os-retype": map[string]any{"new_type": "gold"}}))
		if u := e.usage(projA); inUse(u, "volumes_gold") != 1 || inUse(u, "gigabytes_gold") != 4 || inUse(u, "snapshots_gold") != 1 ||
			inUse(u, "snapshots___DEFAULT__") != 0 || inUse(u, "volumes___DEFAULT__") != 1 {
			t.Errorf("after retype %v", u)
		}
		checkUsage(t, e, projA, projB)
	})
}

// DefaultTypeForTest is the name of the type made at start.
const DefaultTypeForTest = "__DEFAULT__"

// TestQuotaConcurrentCreates sends 50 creates at once over real HTTP
// against a quota of 10 volumes: exactly 10 are accepted.
func TestQuotaConcurrentCreates(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.setQuota(projB, map[string]any{"volumes": 10})
		srv := httptest.NewServer(e.Handler)
		defer srv.Close()
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 50}}
		c := apitest.Client{T: t, URL: srv.URL, HTTP: hc}
		const n = 50
		codes := make([]int, n)
		msgs := make([]string, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := c.Do("memberB", "POST", "/v3/"+projB+"/volumes", map[string]any{"volume": map[string]any{"size": 1}})
				codes[i] = r.Code
				if r.Code == 413 {
					_, msgs[i] = errMessage(t, r)
				}
			}()
		}
		close(start)
		wg.Wait()
		count := map[int]int{}
		for i, code := range codes {
			count[code]++
			if code == 413 && msgs[i] != "Maximum number of volumes allowed (10) exceeded for quota 'volumes'." {
				t.Errorf("413 said %q", msgs[i])
			}
		}
		if count[202] != 10 || count[413] != 40 {
			t.Errorf("codes %v, want 10 × 202 and 40 × 413", count)
		}
		waitTasksDone(t, d)
		var rows int
		if err := d.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM volumes WHERE project_id = ?`, projB).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if u := e.usage(projB); rows != 10 || inUse(u, "volumes") != 10 || inUse(u, "gigabytes") != 10 {
			t.Errorf("%d volume rows, usage %v", rows, u["volumes"])
		}
		checkUsage(t, e, projB)
	})
}

// Extend fails while "Extend" is failing.
func (f *faultyDriver) Extend(ctx context.Context, id string, size int64) error {
	if err := f.failing("Extend"); err != nil {
		return err
	}
	return f.Driver.Extend(ctx, id, size)
}

// waitGone waits until project's volume or snapshot at path is deleted.
func (e *env) waitGone(token, path string) {
	e.t.Helper()
	var last apitest.Resp
	apitest.Eventually(e.t, 20*time.Second, func() bool {
		last = e.Do(token, "GET", path, nil)
		return last.Code == 404
	}, func() string { return fmt.Sprintf("%s still there: %d %s", path, last.Code, last.Body) })
}

// TestQuotaUsageMatchesRows runs creates, failures, deletes, extends,
// retypes and transfers, and after each step recounts the usage from the
// rows and compares it with the stored usage.
func TestQuotaUsageMatchesRows(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e, f := newFaultyEnv(t, d)
		e.createType("gold", nil)
		volPath := func(p, id string) string { return "/v3/" + p + "/volumes/" + id }
		check := func(step string) {
			t.Helper()
			waitTasksDone(t, d)
			t.Run(step, func(t *testing.T) { checkUsage(t, e, projA, projB) })
		}
		v1 := e.createVolume("member", projA, map[string]any{"size": 2}, "available")["id"].(string)
		v2 := e.createVolume("member", projA, map[string]any{"size": 3, "volume_type": "gold"}, "available")["id"].(string)
		s1 := e.createSnapshot("member", projA, v1, nil, "available")["id"].(string)
		check("created")

		// Failures: the clone and the snapshot end in error and still count.
		f.setFail("Clone", "CreateSnapshot")
		bad := e.createVolume("member", projA, map[string]any{"source_volid": v2, "size": 4}, "error")["id"].(string)
		badSnap := e.createSnapshot("member", projA, v2, nil, "error")["id"].(string)
		f.setFail()
		if u := e.usage(projA); inUse(u, "volumes") != 3 || inUse(u, "snapshots") != 2 || inUse(u, "gigabytes") != 2+3+4+2+3 {
			t.Errorf("after failures %v %v %v", u["volumes"], u["snapshots"], u["gigabytes"])
		}
		check("failures")
		// Deleting them gives their usage back.
		e.Must(202, e.Do("member", "DELETE", volPath(projA, bad), nil))
		e.Must(202, e.Do("member", "DELETE", snapBase(projA)+"/"+badSnap, nil))
		e.waitGone("member", volPath(projA, bad))
		e.waitGone("member", snapBase(projA)+"/"+badSnap)
		check("failed deleted")

		// A volume from a snapshot, an extend, a retype with a snapshot.
		v3 := e.createVolume("member", projA, map[string]any{"snapshot_id": s1, "size": 5}, "available")["id"].(string)
		e.Must(202, e.volAction("member", projA, v1, map[string]any{"os-extend": map[string]any{"new_size": 6}}))
		e.waitStatus("member", projA, v1, "available")
		// A failed extend gives its reservation back and keeps the size.
		v4 := e.createVolume("member", projA, map[string]any{"size": 1}, "available")["id"].(string)
		f.setFail("Extend")
		e.volAction("member", projA, v4, map[string]any{"os-extend": map[string]any{"new_size": 2}})
		f.setFail()
		e.waitStatus("member", projA, v4, "error_extending")
		check("extend failed")
		e.Must(202, e.Do("member", "DELETE", volPath(projA, v4), nil))
		e.waitGone("member", volPath(projA, v4))
		e.Must(202, e.volAction("member", projA, v1, map[string]any{"os-retype": map[string]any{"new_type": "gold"}}))
		if u := e.usage(projA); inUse(u, "snapshots_gold") != 1 || inUse(u, "volumes_gold") != 2 || inUse(u, "gigabytes_gold") != 6+2+3 {
			t.Errorf("after retype %v %v %v", u["snapshots_gold"], u["volumes_gold"], u["gigabytes_gold"])
		}
		check("extended and retyped")

		// A transfer with its snapshot moves the usage to projB.
		tr := e.MustJSON(202, e.Do("member", "POST", "/v3/"+projA+"/os-volume-transfer", map[string]any{"transfer": map[string]any{"volume_id": v1}}))["transfer"].(map[string]any)
		e.Must(202, e.Do("memberB", "POST", "/v3/"+projB+"/os-volume-transfer/"+tr["id"].(string)+"/accept",
			map[string]any{"accept": map[string]any{"auth_key": tr["auth_key"]}}))
		if u := e.usage(projB); inUse(u, "volumes") != 1 || inUse(u, "snapshots") != 1 || inUse(u, "gigabytes") != 6+2 {
			t.Errorf("projB after transfer %v %v %v", u["volumes"], u["snapshots"], u["gigabytes"])
		}
		check("transferred")
		// A transfer the receiver has no room for is refused and moves nothing.
		e.setQuota(projB, map[string]any{"volumes": 1})
		tr = e.MustJSON(202, e.Do("member", "POST", "/v3/"+projA+"/os-volume-transfer", map[string]any{"transfer": map[string]any{"volume_id": v3}}))["transfer"].(map[string]any)
		wantError(t, "accept over quota", e.Do("memberB", "POST", "/v3/"+projB+"/os-volume-transfer/"+tr["id"].(string)+"/accept",
			map[string]any{"accept": map[string]any{"auth_key": tr["auth_key"]}}), 413, "Maximum number of volumes allowed (1) exceeded for quota 'volumes'.")
		e.waitStatus("member", projA, v3, "awaiting-transfer")
		e.Must(202, e.Do("member", "DELETE", "/v3/"+projA+"/os-volume-transfer/"+tr["id"].(string), nil))
		check("transfer refused")

		// Cascade delete in projB; plain deletes in projA.
		e.Must(202, e.Do("memberB", "DELETE", volPath(projB, v1)+"?cascade=true", nil))
		e.waitGone("memberB", volPath(projB, v1))
		for _, id := range []string{v2, v3} {
			e.waitStatus("member", projA, id, "available")
			e.Must(202, e.Do("member", "DELETE", volPath(projA, id), nil))
			e.waitGone("member", volPath(projA, id))
		}
		for _, p := range []string{projA, projB} {
			u := e.usage(p)
			for _, k := range []string{"volumes", "snapshots", "gigabytes", "volumes_gold", "gigabytes_gold", "snapshots_gold"} {
				if inUse(u, k) != 0 {
					t.Errorf("project %s %s in use %v after every delete", p[:4], k, u[k])
				}
			}
		}
		check("all deleted")
	})
}

// TestQuotaRetypeMigration: a retype that moves the volume to another
// backend is refused when the new type is full, and moves the per-type
// usage when the data has moved.
func TestQuotaRetypeMigration(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		tb := newTwoBackends(t, d, nil)
		v := tb.createVolume("member", projA, map[string]any{"size": 1, "volume_type": "on-local"}, "available")["id"].(string)
		retype := map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}
		tb.setQuota(projA, map[string]any{"gigabytes_on-remote": 0})
		wantError(t, "full type", tb.volAction("member", projA, v, retype), 413,
			"Requested volume or snapshot exceeds allowed gigabytes_on-remote quota. Requested 1G, quota is 0G and 0G has been consumed.")
		if got := tb.waitStatus("member", projA, v, "available"); got["volume_type"] != "on-local" {
			t.Errorf("refused retype left %v", got)
		}
		tb.setQuota(projA, map[string]any{"gigabytes_on-remote": -1})
		tb.Must(202, tb.volAction("member", projA, v, retype))
		apitest.Eventually(t, 20*time.Second, func() bool {
			got := tb.waitStatus("member", projA, v, "available")
			return got["volume_type"] == "on-remote"
		}, func() string { return "volume not retyped" })
		waitTasksDone(t, d)
		if u := tb.usage(projA); inUse(u, "volumes_on-remote") != 1 || inUse(u, "volumes_on-local") != 0 || inUse(u, "gigabytes_on-remote") != 1 {
			t.Errorf("after move %v %v", u["volumes_on-remote"], u["volumes_on-local"])
		}
		checkUsage(t, tb.env, projA)
	})
}

// TestQuotaRetypeMigrationReserved: a retype that moves the volume
// reserves the new type's quota while the data moves, so a second retype
// that the limit has no room for is refused at once (413); the move that
// ends takes the reservation into use, and one that fails gives it back.
func TestQuotaRetypeMigrationReserved(t *testing.T) {
	retype := map[string]any{"os-retype": map[string]any{"new_type": "on-remote", "migration_policy": "on-demand"}}
	for name, fail := range map[string]error{"moved": nil, "failed": errs.E(errs.Unavailable, "target failed")} {
		t.Run(name, func(t *testing.T) {
			dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
				var g *gate
				tb := newTwoBackends(t, d, gateRemote(&g, fail))
				v1 := tb.createVolume("member", projA, map[string]any{"size": 2, "volume_type": "on-local"}, "available")["id"].(string)
				v2 := tb.createVolume("member", projA, map[string]any{"size": 1, "volume_type": "on-local"}, "available")["id"].(string)
				tb.setQuota(projA, map[string]any{"volumes_on-remote": 1})
				tb.Must(202, tb.volAction("member", projA, v1, retype))
				g.wait(t)
				u := tb.usage(projA)
				if reserved(u, "volumes_on-remote") != 1 || reserved(u, "gigabytes_on-remote") != 2 || inUse(u, "volumes_on-remote") != 0 {
					t.Errorf("fail=%v: mid-move usage %v %v", fail, u["volumes_on-remote"], u["gigabytes_on-remote"])
				}
				wantErrorPart(t, tb.volAction("member", projA, v2, retype), 413, "volumes_on-remote")
				close(g.release)
				want, wantType := "success", "on-remote"
				if fail != nil {
					want, wantType = "error", "on-local"
				}
				if got := tb.waitMigration(v1, want); got["volume_type"] != wantType {
					t.Errorf("fail=%v: after the move %v", fail, got["volume_type"])
				}
				waitTasksDone(t, d)
				u = tb.usage(projA)
				wantUse := 1.0
				if fail != nil {
					wantUse = 0
				}
				if reserved(u, "volumes_on-remote") != 0 || reserved(u, "gigabytes_on-remote") != 0 || inUse(u, "volumes_on-remote") != wantUse {
					t.Errorf("fail=%v: after the move %v %v", fail, u["volumes_on-remote"], u["gigabytes_on-remote"])
				}
				checkUsage(t, tb.env, projA)
			})
		})
	}
}

// reserved is the reserved count of key in a quota set shown with usage.
func reserved(set map[string]any, key string) float64 {
	u, _ := set[key].(map[string]any)
	f, _ := u["reserved"].(float64)
	return f
}

// TestQuotaKeys: keys as quota sets show them and as they are stored.
func TestQuotaKeys(t *testing.T) {
	k := quotaKeys{byID: map[string]string{"t1": "gold", "t2": "my_type"}, byName: map[string]string{"gold": "t1", "my_type": "t2"}}
	for _, c := range []struct {
		shown, stored string
		ok            bool
	}{
		{"volumes", "volumes", true},
		{"backup_gigabytes", "backup_gigabytes", true},
		{"per_volume_gigabytes", "per_volume_gigabytes", true},
		{"gigabytes_gold", "gigabytes/t1", true},
		{"snapshots_my_type", "snapshots/t2", true},
		{"volumes_nosuch", "", false},
		{"backups_gold", "", false}, // backups have no per-type keys
		{"groups_gold", "", false},
		{"bogus", "", false},
	} {
		got, ok := k.parse(c.shown)
		if got != c.stored || ok != c.ok {
			t.Errorf("parse(%q) = %q, %v; want %q, %v", c.shown, got, ok, c.stored, c.ok)
		}
		if ok && k.display(got) != c.shown {
			t.Errorf("display(%q) = %q, want %q", got, k.display(got), c.shown)
		}
	}
	if got := k.display("volumes/deleted-type"); got != "volumes_deleted-type" {
		t.Errorf("a deleted type's key shows as %q", got)
	}
	if n := len(k.all()); n != 7+3*2 {
		t.Errorf("all() has %d keys, want 13", n)
	}
}
