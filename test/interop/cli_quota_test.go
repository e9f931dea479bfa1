package interop

import (
	"fmt"
	"strings"
	"testing"
)

// cliQuotaScenarios drive quotas and limits through cinderclient (Debian's
// openstack quota and limits commands look for a compute endpoint first)
// and the refusals through the openstack client.
func cliQuotaScenarios() []cliScenario {
	return []cliScenario{
		{name: "volume/quotas", needs: needMember, run: func(t *testing.T, s *cliState) {
			project := strings.TrimSpace(s.admin.ok(t, "openstack", "project", "show", "interop", "-f", "value", "-c", "id"))
			var vols []map[string]any
			s.member.json(t, &vols, "openstack", "volume", "list", "-f", "json")
			used := len(vols)

			def := parseTable(s.member.ok(t, "cinder", "quota-defaults", project))
			if def["volumes"] != "10" || def["gigabytes"] != "1000" || def["per_volume_gigabytes"] != "-1" || def["backups"] != "10" {
				t.Errorf("quota-defaults: %v", def)
			}
			s.member.refused(t, []string{"HTTP 403"}, "cinder", "quota-update", "--volumes", "50", project)
			up := parseTable(s.admin.ok(t, "cinder", "quota-update", "--volumes", fmt.Sprint(used+1), "--per-volume-gigabytes", "20", project))
			if up["volumes"] != fmt.Sprint(used+1) || up["per_volume_gigabytes"] != "20" {
				t.Errorf("quota-update: %v", up)
			}
			show := parseTable(s.member.ok(t, "cinder", "quota-show", project))
			if show["volumes"] != fmt.Sprint(used+1) || show["gigabytes"] != "1000" || show["snapshots"] != "10" {
				t.Errorf("quota-show: %v", show)
			}

			// A volume fills the quota; the next is refused (413), as is
			// one above per_volume_gigabytes.
			var v map[string]any
			s.member.json(t, &v, "openstack", "volume", "create", "--size", "1", "interop-quota", "-f", "json")
			id := fmt.Sprint(v["id"])
			waitVolume(t, s.member, id, "available")
			s.member.refused(t, []string{fmt.Sprintf("Maximum number of volumes allowed (%d) exceeded for quota 'volumes'.", used+1), "HTTP 413"},
				"openstack", "volume", "create", "--size", "1", "interop-over-quota")
			s.admin.ok(t, "cinder", "quota-update", "--volumes", "-1", project)
			s.member.refused(t, []string{"Requested volume size 21G is larger than maximum allowed limit 20G.", "HTTP 413"},
				"openstack", "volume", "create", "--size", "21", "interop-too-big")

			usage := parseTable(s.member.ok(t, "cinder", "quota-usage", project))
			vu := strings.Split(usage["volumes"], "|")
			if len(vu) < 3 || strings.TrimSpace(vu[0]) != fmt.Sprint(used+1) || strings.TrimSpace(vu[1]) != "0" || strings.TrimSpace(vu[2]) != "-1" {
				t.Errorf("quota-usage volumes %q (in use, reserved, limit), want %d, 0, -1; table %v", usage["volumes"], used+1, usage)
			}
			lim := parseTable(s.member.ok(t, "cinder", "absolute-limits"))
			if lim["totalVolumesUsed"] != fmt.Sprint(used+1) || lim["maxTotalVolumes"] != "-1" || lim["maxTotalVolumeGigabytes"] != "1000" ||
				lim["totalBackupsUsed"] != "0" || lim["maxTotalSnapshots"] != "10" {
				t.Errorf("absolute-limits: %v", lim)
			}

			// Delete resets the project to the defaults; the volume's
			// delete gives its usage back.
			s.admin.ok(t, "cinder", "quota-delete", project)
			if show := parseTable(s.member.ok(t, "cinder", "quota-show", project)); show["volumes"] != "10" || show["per_volume_gigabytes"] != "-1" {
				t.Errorf("quota-show after quota-delete: %v", show)
			}
			s.member.ok(t, "openstack", "volume", "delete", id)
			waitGone(t, s.member, "volume", id)
			lim = parseTable(s.member.ok(t, "cinder", "absolute-limits"))
			if lim["totalVolumesUsed"] != fmt.Sprint(used) {
				t.Errorf("absolute-limits after delete: %v, want %d volumes used", lim, used)
			}
		}},
	}
}
