package volume

import "net/http"

// listAZs serves os-availability-zone: the zones of the backends, or the
// default zone when no backend is configured.
func (s *Service) listAZs(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:availability_zone_list", ""); err != nil {
		return err
	}
	seen := map[string]bool{}
	out := []any{}
	add := func(az string) {
		if !seen[az] {
			seen[az] = true
			out = append(out, map[string]any{"zoneName": az, "zoneState": map[string]bool{"available": true}})
		}
	}
	for _, b := range s.backends {
		add(b.az)
	}
	if len(out) == 0 {
		add(s.deps.Config.Volume.DefaultAvailabilityZone)
	}
	return reply(w, http.StatusOK, map[string]any{"availabilityZoneInfo": out})
}

// knownAZ reports whether az is the default zone or a backend's.
func (s *Service) knownAZ(az string) bool {
	if az == s.deps.Config.Volume.DefaultAvailabilityZone {
		return true
	}
	for _, b := range s.backends {
		if b.az == az {
			return true
		}
	}
	return false
}
