package volume

import (
	"net/http"
	"strconv"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api"
)

// getPools serves GET /scheduler-stats/get_pools (admin): one pool per
// backend, with the capabilities the scheduler matches extra specs against.
func (s *Service) getPools(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "scheduler_extension:scheduler_stats:get_pools", ""); err != nil {
		fail(w, r, err)
		return
	}
	detail, _ := parseBool("detail", r.URL.Query().Get("detail"))
	pools := []any{}
	now := time.Now().UTC().Format(timeFmt)
	for _, b := range s.backends {
		p := map[string]any{"name": s.hostString(b.cfg.Name)}
		if detail {
			caps, _, err := b.capabilities(r.Context())
			if err != nil {
				p["capabilities"] = nil
			} else {
				c := map[string]any{"updated": now, "timestamp": now, "QoS_support": false, "reserved_percentage": 0,
					"pool_name": b.cfg.VolumeBackendName}
				for k, v := range caps {
					c[k] = v
				}
				for _, k := range []string{"total_capacity_gb", "free_capacity_gb"} {
					if f, err := strconv.ParseFloat(caps[k], 64); err == nil {
						c[k] = f
					}
				}
				p["capabilities"] = c
			}
		}
		pools = append(pools, p)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"pools": pools})
}
