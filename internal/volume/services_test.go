package volume

import (
	"sort"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// services lists os-services as the admin at version, with query.
func (tb *twoBackends) services(query, version string) []map[string]any {
	tb.t.Helper()
	r := tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/os-services"+query, nil, mv(version)...))
	var out []map[string]any
	for _, s := range r["services"].([]any) {
		out = append(out, s.(map[string]any))
	}
	return out
}

func hostsOf(svcs []map[string]any) []string {
	var out []string
	for _, s := range svcs {
		out = append(out, s["binary"].(string)+" "+s["host"].(string))
	}
	sort.Strings(out)
	return out
}

// TestServicesList: the scheduler and one cinder-volume per backend, with
// the fields of each microversion, filtered by host as Cinder filters.
func TestServicesList(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		tb := newTwoBackends(t, d, nil)
		h := tb.svc.hostname
		all := tb.services("", "3.0")
		want := []string{"cinder-scheduler " + h, "cinder-volume " + h + "@local", "cinder-volume " + h + "@remote"}
		if got := hostsOf(all); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("services %v, want %v", got, want)
		}
		for _, s := range all {
			keys := []string{"binary", "disabled_reason", "host", "state", "status", "updated_at", "zone"}
			if s["binary"] == "cinder-volume" {
				keys = append(keys, "active_backend_id", "frozen", "replication_status")
			}
			wantKeys(t, "3.0 "+s["host"].(string), s, keys...)
			if s["state"] != "up" || s["status"] != "enabled" || s["zone"] != "nova" {
				t.Errorf("service %v", s)
			}
		}
		for _, s := range tb.services("", "3.49") {
			_, hasCluster := s["cluster"]
			_, hasState := s["backend_state"]
			if !hasCluster || hasState != (s["binary"] == "cinder-volume") {
				t.Errorf("3.49 service %v", s)
			}
		}
		for q, want := range map[string][]string{
			"?host=" + h:                              want,
			"?host=" + h + "@remote":                  want[2:],
			"?host=" + h + "@remote%23remote":         nil,
			"?binary=cinder-volume":                   want[1:],
			"?host=" + h + "&binary=cinder-scheduler": want[:1],
			"?host=elsewhere":                         nil,
		} {
			if got := hostsOf(tb.services(q, "3.0")); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: %v, want %v", q, got, want)
			}
		}
		tb.Must(403, tb.Do("member", "GET", "/v3/"+projA+"/os-services", nil))
	})
}

// TestServicesUpdate: a disabled backend takes no new volume and is no
// migration target; freeze refuses deleting its volumes.
func TestServicesUpdate(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		tb := newTwoBackends(t, d, nil)
		h := tb.svc.hostname
		put := func(token, action string, body any) apitest.Resp {
			return tb.Do(token, "PUT", "/v3/"+projA+"/os-services/"+action, body)
		}
		for _, c := range []struct {
			name, action string
			body         map[string]any
			code         int
			msg          string
		}{
			{"invalid host", "enable", map[string]any{"host": "invalid_host", "binary": "cinder-volume"}, 404,
				"Service cinder-volume could not be found on host invalid_host."},
			{"invalid binary", "disable", map[string]any{"host": h + "@remote", "binary": "invalid_binary"}, 404,
				"Service invalid_binary could not be found on host " + h + "@remote."},
			{"null reason", "disable-log-reason", map[string]any{"host": h + "@remote", "binary": "cinder-volume", "disabled_reason": nil}, 400,
				"Invalid input for field/attribute disabled_reason. Value: None. None is not of type 'string'"},
			{"blank reason", "disable-log-reason", map[string]any{"host": h + "@remote", "binary": "cinder-volume", "disabled_reason": "  "}, 400,
				"Invalid input received: disabled_reason has 0 characters, less than 1."},
			{"no host", "enable", map[string]any{"binary": "cinder-volume"}, 400, "Invalid input received: Host field is missing."},
			{"unknown action", "failover_host", map[string]any{"host": h + "@remote"}, 400, "Invalid input received: Unknown action"},
			{"freeze invalid host", "freeze", map[string]any{"host": "invalid_host"}, 400, "Invalid input received: No service found with host=invalid_host"},
			{"thaw invalid host", "thaw", map[string]any{"host": "invalid_host"}, 400, "Invalid input received: No service found with host=invalid_host"},
			{"freeze two backends", "freeze", map[string]any{"host": h}, 400, "Services from different clusters found."},
			{"thaw unfrozen", "thaw", map[string]any{"host": h + "@local"}, 400,
				"Invalid input received: No service could be changed: frozen in ['" + h + "@local'] must be True to failover."},
		} {
			r := put("admin", c.action, c.body)
			if _, msg := errMessage(t, r); r.Code != c.code || msg != c.msg {
				t.Errorf("%s: %d %q, want %d %q", c.name, r.Code, msg, c.code, c.msg)
			}
		}
		tb.Must(403, put("member", "disable", map[string]any{"host": h + "@remote", "binary": "cinder-volume"}))

		got := tb.MustJSON(200, put("admin", "disable-log-reason", map[string]any{"host": h + "@remote", "binary": "cinder-volume", "disabled_reason": "maintenance"}))
		wantKeys(t, "disable-log-reason", got, "binary", "disabled", "disabled_reason", "host", "service", "status")
		if got["disabled"] != true || got["status"] != "disabled" || got["disabled_reason"] != "maintenance" {
			t.Errorf("disable-log-reason: %v", got)
		}
		remote := tb.services("?host="+h+"@remote", "3.0")[0]
		if remote["status"] != "disabled" || remote["disabled_reason"] != "maintenance" {
			t.Errorf("disabled service %v", remote)
		}
		// Nothing goes to a disabled backend: not new volumes, not moves.
		v := tb.createVolume("member", projA, map[string]any{"volume_type": "on-remote"}, "error")
		id := tb.createVolume("member", projA, map[string]any{"volume_type": "on-local"}, "available")["id"].(string)
		r := tb.action("admin", id, map[string]any{"os-migrate_volume": map[string]any{"host": h + "@remote"}})
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid host: No available service named '"+h+"@remote'" {
			t.Errorf("migrate to a disabled backend: %d %q", r.Code, msg)
		}
		hosts := tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/os-hosts", nil))["hosts"].([]any)
		if len(hosts) != 2 {
			t.Errorf("os-hosts lists %v: a disabled service is not a host", hosts)
		}
		tb.Must(404, tb.Do("admin", "GET", "/v3/"+projA+"/os-hosts/"+h+"@remote", nil))
		got = tb.MustJSON(200, put("admin", "enable", map[string]any{"host": h + "@remote", "service": "cinder-volume"}))
		if got["disabled"] != false || got["status"] != "enabled" || got["service"] != "cinder-volume" || got["binary"] != "" {
			t.Errorf("enable: %v", got)
		}
		tb.Must(202, tb.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+v["id"].(string), nil))
		tb.createVolume("member", projA, map[string]any{"volume_type": "on-remote"}, "available")

		// Freeze: the backend's volumes are not deleted until thawed.
		tb.Must(200, put("admin", "freeze", map[string]any{"host": h + "@local"}))
		if s := tb.services("?host="+h+"@local", "3.0")[0]; s["frozen"] != true {
			t.Errorf("frozen service %v", s)
		}
		tb.Must(400, put("admin", "freeze", map[string]any{"host": h + "@local"}))
		r = tb.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+id, nil)
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid input received: Modification operations are not allowed on frozen storage backends." {
			t.Errorf("delete on a frozen backend: %d %q", r.Code, msg)
		}
		tb.Must(400, tb.action("admin", id, map[string]any{"os-force_delete": nil}))
		r = put("admin", "thaw", map[string]any{"host": h + "@local"})
		tb.Must(200, r)
		if len(r.Body) != 0 {
			t.Errorf("thaw answered %q", r.Body)
		}
		tb.Must(202, tb.Do("member", "DELETE", "/v3/"+projA+"/volumes/"+id, nil))
		// From 3.26 freeze names a host or a cluster, not both.
		r = tb.Do("admin", "PUT", "/v3/"+projA+"/os-services/freeze", map[string]any{"host": h + "@local", "cluster": "c"}, mv("3.26")...)
		if _, msg := errMessage(t, r); r.Code != 400 || msg != "Invalid input received: One and only one of cluster and host must be set." {
			t.Errorf("freeze host and cluster: %d %q", r.Code, msg)
		}
	})
}

// TestHostsAndCapabilities: os-hosts lists the enabled services and shows
// a backend's volumes per project; capabilities/{host} reports what
// get_pools reports for the backend.
func TestHostsAndCapabilities(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		tb := newTwoBackends(t, d, nil)
		h := tb.svc.hostname
		tb.createVolume("member", projA, map[string]any{"volume_type": "on-remote", "size": 2}, "available")
		tb.createVolume("member", projA, map[string]any{"volume_type": "on-remote", "size": 3}, "available")
		tb.createVolume("memberB", projB, map[string]any{"volume_type": "on-remote"}, "available")

		hosts := tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/os-hosts", nil))["hosts"].([]any)
		if len(hosts) != 3 {
			t.Fatalf("hosts %v", hosts)
		}
		wantKeys(t, "host", hosts[1].(map[string]any), "host_name", "last-update", "service", "service-state", "service-status", "zone")
		if len(tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/os-hosts?zone=elsewhere", nil))["hosts"].([]any)) != 0 {
			t.Errorf("hosts of another zone listed")
		}
		tb.Must(403, tb.Do("member", "GET", "/v3/"+projA+"/os-hosts", nil))

		got := tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/os-hosts/"+h+"@remote", nil))["host"].([]any)
		var rows []string
		for _, x := range got {
			r := x.(map[string]any)["resource"].(map[string]any)
			rows = append(rows, r["project"].(string)+":"+r["volume_count"].(string)+":"+r["total_volume_gb"].(string)+":"+r["snapshot_count"].(string))
			if r["host"] != h+"@remote" {
				t.Errorf("host row %v", r)
			}
		}
		if want := []string{"(total):3:6:0", projA + ":2:5:0", projB + ":1:1:0"}; strings.Join(rows, ",") != strings.Join(want, ",") {
			t.Errorf("host usage %v, want %v", rows, want)
		}
		if got := tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/os-hosts/"+h+"@local", nil))["host"].([]any); len(got) != 1 {
			t.Errorf("empty backend: %v", got)
		}
		tb.Must(404, tb.Do("admin", "GET", "/v3/"+projA+"/os-hosts/nohost", nil))

		pools := tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/scheduler-stats/get_pools?detail=true", nil))["pools"].([]any)
		for _, p := range pools {
			pool := p.(map[string]any)
			// A client asks for the pool's name; its "#pool" is a fragment
			// no request carries.
			host, _, _ := strings.Cut(pool["name"].(string), "#")
			c := tb.MustJSON(200, tb.Do("admin", "GET", "/v3/"+projA+"/capabilities/"+host, nil))
			wantKeys(t, "capabilities", c, "description", "display_name", "driver_version", "namespace", "pool_name", "properties",
				"replication_targets", "storage_protocol", "vendor_name", "visibility", "volume_backend_name")
			pc := pool["capabilities"].(map[string]any)
			for _, k := range []string{"vendor_name", "volume_backend_name", "storage_protocol", "driver_version"} {
				if c[k] != pc[k] {
					t.Errorf("%s: capabilities %s %v, get_pools %v", host, k, c[k], pc[k])
				}
			}
			if c["namespace"] != "OS::Storage::Capabilities::"+host {
				t.Errorf("namespace %v", c["namespace"])
			}
		}
		tb.Must(404, tb.Do("admin", "GET", "/v3/"+projA+"/capabilities/nohost", nil))
		tb.Must(403, tb.Do("member", "GET", "/v3/"+projA+"/capabilities/"+h+"@local", nil))
	})
}
