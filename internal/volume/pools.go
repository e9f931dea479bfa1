package volume

import (
	"maps"
	"net/http"
	"time"
)

// getPools serves GET /scheduler-stats/get_pools (admin): one pool per
// backend, with the capabilities the scheduler matches extra specs against,
// typed as Cinder reports them (numbers and booleans, not strings).
func (s *Service) getPools(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "scheduler_extension:scheduler_stats:get_pools", ""); err != nil {
		return err
	}
	detail, _ := parseBool("detail", r.URL.Query().Get("detail"))
	pools := []any{}
	now := time.Now().UTC().Format(timeFmt)
	for _, b := range s.backends {
		p := map[string]any{"name": s.hostString(b.cfg.Name)}
		if detail {
			p["capabilities"] = nil
			if caps, _, err := b.capabilities(r.Context()); err == nil {
				// What Cinder's scheduler adds to each pool's report,
				// unless the backend reports it itself.
				c := map[string]any{"updated": now, "timestamp": now, "QoS_support": false, "reserved_percentage": 0,
					"pool_name": b.cfg.VolumeBackendName}
				maps.Copy(c, caps)
				p["capabilities"] = c
			}
		}
		pools = append(pools, p)
	}
	return reply(w, http.StatusOK, map[string]any{"pools": pools})
}
