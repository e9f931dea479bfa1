package volume

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/policy"
)

// Policy is the volume service's policy table, after Cinder's Zed defaults:
// types and extra specs are admin-only to write; volumes belong to their
// project's members; readers read.
var Policy = policy.Table{
	// Snapshots, their metadata and actions, revert.
	"volume:create_snapshot":                                     policy.Member,
	"volume:get_snapshot":                                        policy.Reader,
	"volume:get_all_snapshots":                                   policy.Reader,
	"volume:update_snapshot":                                     policy.Member,
	"volume:delete_snapshot":                                     policy.Member,
	"volume_extension:extended_snapshot_attributes":              policy.Reader,
	"volume:get_snapshot_metadata":                               policy.Reader,
	"volume:update_snapshot_metadata":                            policy.Member,
	"volume:delete_snapshot_metadata":                            policy.Member,
	"volume_extension:snapshot_admin_actions:reset_status":       policy.Admin,
	"volume_extension:snapshot_admin_actions:force_delete":       policy.Admin,
	"snapshot_extension:snapshot_actions:update_snapshot_status": policy.Member,
	"volume:revert_to_snapshot":                                  policy.Member,

	// Backups, their admin actions, export and import of records.
	"backup:create":                   policy.Member,
	"backup:get":                      policy.Reader,
	"backup:get_all":                  policy.Reader,
	"backup:update":                   policy.Member,
	"backup:delete":                   policy.Member,
	"backup:restore":                  policy.Member,
	"backup:backup-import":            policy.Admin,
	"backup:export-import":            policy.Admin,
	"backup:backup_project_attribute": policy.Admin,
	"volume_extension:backup_admin_actions:reset_status": policy.Admin,
	"volume_extension:backup_admin_actions:force_delete": policy.Admin,

	"volume_extension:types_manage":                           policy.Admin,
	"volume_extension:type_get":                               policy.Reader,
	"volume_extension:type_get_all":                           policy.Reader,
	"volume_extension:access_types_extra_specs":               policy.Reader,
	"volume_extension:access_types_qos_specs_id":              policy.Admin,
	"volume_extension:types_extra_specs:index":                policy.Reader,
	"volume_extension:types_extra_specs:show":                 policy.Reader,
	"volume_extension:types_extra_specs:create":               policy.Admin,
	"volume_extension:types_extra_specs:update":               policy.Admin,
	"volume_extension:types_extra_specs:delete":               policy.Admin,
	"volume_extension:types_extra_specs:read_sensitive":       policy.Admin,
	"volume_extension:volume_type_access":                     policy.Admin,
	"volume_extension:volume_type_access:addProjectAccess":    policy.Admin,
	"volume_extension:volume_type_access:removeProjectAccess": policy.Admin,

	"volume:create":                                      policy.Member,
	"volume:get":                                         policy.Reader,
	"volume:get_all":                                     policy.Reader,
	"volume:update":                                      policy.Member,
	"volume:delete":                                      policy.Member,
	"volume:extend":                                      policy.Member,
	"volume:get_volume_metadata":                         policy.Reader,
	"volume:create_volume_metadata":                      policy.Member,
	"volume:update_volume_metadata":                      policy.Member,
	"volume:delete_volume_metadata":                      policy.Member,
	"volume:update_readonly_flag":                        policy.Member,
	"volume_extension:volume_actions:upload_image":       policy.Member,
	"volume_extension:volume_actions:upload_public":      policy.Admin,
	"volume_extension:volume_actions:reserve":            policy.Member,
	"volume_extension:volume_actions:unreserve":          policy.Member,
	"volume_extension:volume_actions:set_bootable":       policy.Member,
	"volume_extension:volume_image_metadata:show":        policy.Reader,
	"volume_extension:volume_image_metadata:set":         policy.Member,
	"volume_extension:volume_image_metadata:remove":      policy.Member,
	"volume_extension:volume_admin_actions:reset_status": policy.Admin,
	"volume_extension:volume_admin_actions:force_delete": policy.Admin,
	"volume_extension:volume_host_attribute":             policy.Admin,
	"volume_extension:volume_mig_status_attribute":       policy.Admin,
	"volume_extension:volume_tenant_attribute":           policy.Reader,
	"volume:retype":                                      policy.Member,
	"volume_extension:availability_zone_list":            policy.Reader,
	"message:get":                                        policy.Reader,
	"message:get_all":                                    policy.Reader,
	"scheduler_extension:scheduler_stats:get_pools":      policy.Admin,
	"message:delete":                                     policy.Member,

	"volume:create_transfer":                                          policy.Member,
	"volume:accept_transfer":                                          policy.Member,
	"volume:delete_transfer":                                          policy.Member,
	"volume:get_transfer":                                             policy.Reader,
	"volume:get_all_transfers":                                        policy.Reader,
	"volume_extension:volume_admin_actions:migrate_volume":            policy.Admin,
	"volume_extension:volume_admin_actions:migrate_volume_completion": policy.Admin,
	"volume_extension:volume_type_encryption:create":                  policy.Admin,
	"volume_extension:volume_type_encryption:get":                     policy.Admin,
	"volume_extension:volume_type_encryption:update":                  policy.Admin,
	"volume_extension:volume_type_encryption:delete":                  policy.Admin,
	"volume_extension:volume_encryption_metadata":                     policy.Reader,
	"volume_extension:services:index":                                 policy.Admin,
	"volume_extension:services:update":                                policy.Admin,
	"volume:freeze_host":                                              policy.Admin,
	"volume:thaw_host":                                                policy.Admin,
	"volume_extension:hosts":                                          policy.Admin,
	"volume_extension:capabilities":                                   policy.Admin,

	// Quotas and limits.
	"volume_extension:quotas:show":          policy.Reader,
	"volume_extension:quotas:update":        policy.Admin,
	"volume_extension:quotas:delete":        policy.Admin,
	"volume_extension:quota_classes:get":    policy.Admin,
	"volume_extension:quota_classes:update": policy.Admin,
	"limits_extension:used_limits":          policy.Reader,

	// Attachments and the legacy attach actions (Cinder's Zed defaults:
	// the project's members; force_detach is the admin's).
	"volume:attachment_create":                              policy.Member,
	"volume:attachment_update":                              policy.Member,
	"volume:attachment_delete":                              policy.Member,
	"volume:attachment_complete":                            policy.Member,
	"volume:multiattach_bootable_volume":                    policy.Member,
	"volume:extend_attached_volume":                         policy.Member,
	"volume_extension:volume_actions:attach":                policy.Member,
	"volume_extension:volume_actions:detach":                policy.Member,
	"volume_extension:volume_actions:begin_detaching":       policy.Member,
	"volume_extension:volume_actions:roll_detaching":        policy.Member,
	"volume_extension:volume_actions:initialize_connection": policy.Member,
	"volume_extension:volume_actions:terminate_connection":  policy.Member,
	"volume_extension:volume_admin_actions:force_detach":    policy.Admin,
}

// enforce checks action against the table for the request's caller on a
// resource owned by project ("" for the caller's own project).
func enforce(r *http.Request, action, project string) error {
	return Policy.Enforce(caller(r), action, policy.Target{ProjectID: project})
}

// allowed is enforce as a boolean, for view decisions.
func allowed(r *http.Request, action, project string) bool {
	return enforce(r, action, project) == nil
}

// owned is a row that belongs to a project: a volume, snapshot, backup,
// attachment or message.
type owned interface {
	// projectID is the project the row belongs to.
	projectID() string
}

func (v *vol) projectID() string        { return v.ProjectID }
func (sn *snapshot) projectID() string  { return sn.ProjectID }
func (b *backupRow) projectID() string  { return b.ProjectID }
func (a *attachment) projectID() string { return a.ProjectID }
func (m *message) projectID() string    { return m.ProjectID }

// loadOwned loads row id through get for a request: another project's row
// is notFound for non-admins (Cinder does not tell them it exists), then
// action is enforced against the row's project. Every handler that names a
// row of a project's loads it so.
func loadOwned[T owned](ctx context.Context, q db.Querier, r *http.Request, id, action string,
	get func(context.Context, db.Querier, string) (T, error), notFound func(string) error) (T, error) {
	var none T
	row, err := get(ctx, q, id)
	if err != nil {
		return none, err
	}
	if !visible(r, row) {
		return none, notFound(id)
	}
	if err := enforce(r, action, row.projectID()); err != nil {
		return none, err
	}
	return row, nil
}
