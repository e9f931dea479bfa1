package volume

import "net/http"

// extensions are the API extensions listed by GET /extensions: the ones
// whose behaviour this service implements.
var extensions = []struct{ alias, name, description string }{
	{"os-types-manage", "TypesManage", "Types manage support."},
	{"os-types-extra-specs", "TypesExtraSpecs", "Type extra specs support."},
	{"os-volume-type-access", "VolumeTypeAccess", "Volume type access support."},
	{"os-volume-actions", "VolumeActions", "Enable volume actions."},
	{"os-availability-zone", "AvailabilityZones", "Describe Availability Zones."},
	{"os-vol-image-meta", "VolumeImageMetadata", "Show image metadata associated with the volume."},
}

func (s *Service) listExtensions(w http.ResponseWriter, r *http.Request) error {
	out := make([]any, 0, len(extensions))
	for _, e := range extensions {
		out = append(out, map[string]any{"alias": e.alias, "name": e.name, "description": e.description,
			"links": []any{}, "updated": "2013-02-19T00:00:00+00:00"})
	}
	return reply(w, http.StatusOK, map[string]any{"extensions": out})
}
