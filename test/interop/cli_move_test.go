package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// cliBackends are the volume backends of the CLI Ashlar: two, so volumes
// can be retyped and migrated between them.
var cliBackends = []string{"b1", "b2"}

// cliVolumeMoveScenarios drive retype with migration, migration and
// transfers through the openstack client, and check what it prints.
func cliVolumeMoveScenarios() []cliScenario {
	return []cliScenario{
		{name: "volume/service_list", run: func(t *testing.T, s *cliState) {
			var svcs []map[string]any
			s.admin.json(t, &svcs, "openstack", "volume", "service", "list", "-f", "json")
			hosts := map[string]string{}
			for _, svc := range svcs {
				hosts[fmt.Sprint(svc["Binary"])+" "+fmt.Sprint(svc["Host"])] = fmt.Sprint(svc["Status"]) + "/" + fmt.Sprint(svc["State"])
				if svc["Zone"] != "nova" {
					t.Errorf("service %v: zone %v", svc["Host"], svc["Zone"])
				}
			}
			for _, b := range cliBackends {
				found := false
				for k, st := range hosts {
					if strings.HasPrefix(k, "cinder-volume ") && strings.HasSuffix(k, "@"+b) {
						found = st == "enabled/up"
						s.backendHost = strings.TrimPrefix(strings.TrimSuffix(k, "@"+b), "cinder-volume ")
					}
				}
				if !found {
					t.Errorf("no enabled, up cinder-volume for backend %s in %v", b, hosts)
				}
			}
		}},
		{name: "volume/retype_on_demand", needs: needMember, run: func(t *testing.T, s *cliState) {
			for _, b := range cliBackends {
				s.admin.ok(t, "openstack", "volume", "type", "create", "--public", "--property", "volume_backend_name="+b, "interop-"+b)
			}
			var v map[string]any
			s.member.json(t, &v, "openstack", "volume", "create", "--size", "1", "--type", "interop-b1", "interop-mover", "-f", "json")
			id := fmt.Sprint(v["id"])
			waitVolume(t, s.member, id, "available")
			if h := volumeHost(t, s, id); !strings.HasSuffix(h, "@b1#b1") {
				t.Fatalf("interop-mover on %q, want @b1#b1", h)
			}
			s.member.refused(t, []string{"Failed to set volume type", "migration not allowed"},
				"openstack", "volume", "set", "--type", "interop-b2", "--retype-policy", "never", id)
			s.member.ok(t, "openstack", "volume", "set", "--type", "interop-b2", "--retype-policy", "on-demand", id)
			v = waitMoved(t, s, id, "@b2#b2")
			if v["type"] != "interop-b2" || v["status"] != "available" || v["id"] != id {
				t.Errorf("after retype: type %v status %v id %v", v["type"], v["status"], v["id"])
			}
			s.moved = id
		}},
		{name: "volume/migrate", needs: need("no retyped volume, or no backend host from the service list",
			func(s *cliState) bool { return s.moved != "" && s.backendHost != "" }), run: func(t *testing.T, s *cliState) {
			s.member.refused(t, []string{"HTTP 403"}, "openstack", "volume", "migrate", "--host", s.backendHost+"@b1", s.moved)
			s.admin.refused(t, []string{"HTTP 400", "No available service named"}, "openstack", "volume", "migrate", "--host", "nosuch@b1", s.moved)
			// The type names b2: a move to b1 fails after the 202, in place.
			s.admin.ok(t, "openstack", "volume", "migrate", "--host", s.backendHost+"@b1#b1", s.moved)
			eventually(t, 2*time.Minute, time.Second, "migration to b1 refused", func() (bool, string) {
				v := adminVolume(t, s, s.moved)
				return v["os-vol-mig-status-attr:migstat"] == "error", fmt.Sprint(v["os-vol-mig-status-attr:migstat"])
			})
			if h := volumeHost(t, s, s.moved); !strings.HasSuffix(h, "@b2#b2") {
				t.Errorf("after the refused migration: host %q", h)
			}
			// Untyped for the backends, it moves.
			s.member.ok(t, "openstack", "volume", "set", "--type", "__DEFAULT__", s.moved)
			s.admin.ok(t, "openstack", "volume", "migrate", "--host", s.backendHost+"@b1", "--lock-volume", s.moved)
			if v := waitMoved(t, s, s.moved, "@b1#b1"); v["status"] != "available" {
				t.Errorf("after migrate: status %v", v["status"])
			}
			s.member.ok(t, "openstack", "volume", "delete", s.moved)
		}},
		{name: "volume/transfer", needs: needMember, run: func(t *testing.T, s *cliState) {
			s.admin.ok(t, "openstack", "project", "create", "--domain", "default", "interop-alt")
			s.admin.ok(t, "openstack", "user", "create", "--domain", "default", "--project", "interop-alt",
				"--password", "interop-alt-pw", "interop-alt")
			s.admin.ok(t, "openstack", "role", "add", "--project", "interop-alt", "--user", "interop-alt", "member")
			alt := newCloud(s.dir, s.a.authURL(), "interop-alt", "interop-alt-pw", "interop-alt")

			var v map[string]any
			s.member.json(t, &v, "openstack", "volume", "create", "--size", "1", "interop-gift", "-f", "json")
			id := fmt.Sprint(v["id"])
			waitVolume(t, s.member, id, "available")
			var tr map[string]any
			s.member.json(t, &tr, "openstack", "volume", "transfer", "request", "create", "--name", "interop-gift", id, "-f", "json")
			key, tid := fmt.Sprint(tr["auth_key"]), fmt.Sprint(tr["id"])
			if len(key) != 16 || tr["volume_id"] != id || tr["name"] != "interop-gift" {
				t.Fatalf("transfer request create printed %v", tr)
			}
			waitVolume(t, s.member, id, "awaiting-transfer")
			var list []map[string]any
			s.member.json(t, &list, "openstack", "volume", "transfer", "request", "list", "-f", "json")
			if len(list) != 1 || list[0]["ID"] != tid || list[0]["Volume"] != id {
				t.Errorf("transfer request list: %v", list)
			}
			alt.refused(t, []string{"No volumetransfer with a name or ID"}, "openstack", "volume", "transfer", "request", "show", tid)
			alt.refused(t, []string{"HTTP 400", "Invalid auth key"}, "openstack", "volume", "transfer", "request", "accept", "--auth-key", "0123456789abcdef", tid)

			var acc map[string]any
			alt.json(t, &acc, "openstack", "volume", "transfer", "request", "accept", "--auth-key", key, tid, "-f", "json")
			if acc["id"] != tid || acc["volume_id"] != id {
				t.Errorf("transfer request accept printed %v", acc)
			}
			alt.json(t, &v, "openstack", "volume", "show", id, "-f", "json")
			if v["status"] != "available" || v["name"] != "interop-gift" {
				t.Errorf("accepted volume: %v", v)
			}
			s.member.refused(t, []string{"No volume with a name or ID"}, "openstack", "volume", "show", id)
			alt.ok(t, "openstack", "volume", "delete", id)
		}},
	}
}

// volumeHost is the volume's os-vol-host-attr:host, as the admin sees it.
func volumeHost(t *testing.T, s *cliState, id string) string {
	t.Helper()
	return fmt.Sprint(adminVolume(t, s, id)["os-vol-host-attr:host"])
}

func adminVolume(t *testing.T, s *cliState, id string) map[string]any {
	t.Helper()
	var v map[string]any
	s.admin.json(t, &v, "openstack", "volume", "show", id, "-f", "json")
	return v
}

// waitMoved waits until the volume has moved to the host ending in suffix,
// with migration status success, and returns it.
func waitMoved(t *testing.T, s *cliState, id, suffix string) map[string]any {
	t.Helper()
	var v map[string]any
	eventually(t, 2*time.Minute, time.Second, "volume "+id+" moved to "+suffix, func() (bool, string) {
		v = adminVolume(t, s, id)
		host := fmt.Sprint(v["os-vol-host-attr:host"])
		return strings.HasSuffix(host, suffix) && v["os-vol-mig-status-attr:migstat"] == "success",
			fmt.Sprintf("host %s migstat %v status %v", host, v["os-vol-mig-status-attr:migstat"], v["status"])
	})
	return v
}
