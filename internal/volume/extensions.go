package volume

import "net/http"

// extensions are the API extensions listed by GET /extensions: the ones
// whose behaviour this service implements.
var extensions = []struct{ alias, name, description, updated string }{
	{"os-types-manage", "TypesManage", "Types manage support.", "2011-08-24T00:00:00+00:00"},
	{"os-types-extra-specs", "TypesExtraSpecs", "Type extra specs support.", "2011-08-24T00:00:00+00:00"},
	{"os-volume-type-access", "VolumeTypeAccess", "Volume type access support.", "2014-06-26T00:00:00Z"},
	{"os-volume-actions", "VolumeActions", "Enable volume actions.", "2012-05-31T00:00:00+00:00"},
	{"os-availability-zone", "AvailabilityZones", "Describe Availability Zones.", "2013-06-27T00:00:00+00:00"},
	{"os-vol-image-meta", "VolumeImageMetadata", "Show image metadata associated with the volume.", "2012-12-07T00:00:00+00:00"},
	{"backups", "Backups", "Backups support.", "2012-12-12T00:00:00+00:00"},
	{"os-admin-actions", "AdminActions", "Enable admin actions.", "2012-08-25T00:00:00+00:00"},
	{"os-volume-transfer", "VolumeTransfer", "Volume transfer management support.", "2013-05-29T00:00:00+00:00"},
	{"encryption", "VolumeTypeEncryption", "Encryption support for volume types.", "2013-07-01T00:00:00+00:00"},
	{"os-volume-encryption-metadata", "VolumeEncryptionMetadata", "Volume encryption metadata retrieval support.", "2013-07-10T00:00:00+00:00"},
	{"os-services", "Services", "Services support.", "2012-10-28T00:00:00-00:00"},
	{"os-extended-services", "ExtendedServices", "Extended services support.", "2014-01-10T00:00:00-00:00"},
	{"os-hosts", "Hosts", "Admin-only host administration.", "2011-06-29T00:00:00+00:00"},
	{"capabilities", "Capabilities", "Capabilities support.", "2015-08-31T00:00:00+00:00"},
	{"scheduler-stats", "Scheduler_stats", "Scheduler stats support.", "2014-09-07T00:00:00+00:00"},
	{"os-vol-host-attr", "VolumeHostAttribute", "Expose host as an attribute of a volume.", "2011-11-03T00:00:00+00:00"},
	{"os-vol-mig-status-attr", "VolumeMigStatusAttribute", "Expose migration_status as an attribute of a volume.", "2013-08-08T00:00:00+00:00"},
	{"os-vol-tenant-attr", "VolumeTenantAttribute", "Expose the internal project_id as an attribute of a volume.", "2011-11-03T00:00:00+00:00"},
}

func (s *Service) listExtensions(w http.ResponseWriter, r *http.Request) error {
	out := make([]any, 0, len(extensions))
	for _, e := range extensions {
		out = append(out, map[string]any{"alias": e.alias, "name": e.name, "description": e.description,
			"links": []any{}, "updated": e.updated})
	}
	return reply(w, http.StatusOK, map[string]any{"extensions": out})
}
