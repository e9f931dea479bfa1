package volume

import (
	"encoding/json"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/schedulerstats"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// get_pools reports capabilities with Cinder's JSON types (issue 17):
// numbers as numbers and booleans as booleans, so gophercloud's typed
// StoragePool decodes them, and the file backend can multiattach.
func TestGetPoolsTypedCapabilities(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.createVolume("member", projA, map[string]any{"size": 2}, "available")
		r := e.Must(200, e.Do("admin", "GET", "/v3/"+projA+"/scheduler-stats/get_pools?detail=true", nil))

		var raw struct {
			Pools []struct {
				Capabilities map[string]any `json:"capabilities"`
			} `json:"pools"`
		}
		if err := json.Unmarshal(r.Body, &raw); err != nil || len(raw.Pools) != 1 {
			t.Fatalf("pools %s: %v", r.Body, err)
		}
		caps := raw.Pools[0].Capabilities
		for _, k := range []string{"multiattach", "thin_provisioning_support", "thick_provisioning_support", "QoS_support"} {
			if _, ok := caps[k].(bool); !ok {
				t.Errorf("%s = %#v, want a boolean", k, caps[k])
			}
		}
		for _, k := range []string{"total_capacity_gb", "free_capacity_gb", "provisioned_capacity_gb", "reserved_percentage"} {
			if _, ok := caps[k].(float64); !ok {
				t.Errorf("%s = %#v, want a number", k, caps[k])
			}
		}

		var pools struct {
			Pools []schedulerstats.StoragePool `json:"pools"`
		}
		if err := json.Unmarshal(r.Body, &pools); err != nil {
			t.Fatalf("gophercloud cannot decode get_pools: %v\n%s", err, r.Body)
		}
		c := pools.Pools[0].Capabilities
		if !c.Multiattach || !c.ThinProvisioningSupport || c.ThickProvisioningSupport || c.ProvisionedCapacityGB != 2 ||
			c.TotalCapacityGB <= 0 || c.StorageProtocol != "file" || c.VendorName != "Ashlar" || c.VolumeBackendName != "local" {
			t.Errorf("decoded capabilities %+v", c)
		}
	})
}
