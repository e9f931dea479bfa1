package volume

// The attachments API (microversion 3.27; os-complete 3.44; mode 3.54):
// how a consumer (Nova, or anything with os-brick) reserves a volume, hands
// in its connector to get the connection_info, marks the attach complete
// and detaches. A volume's status follows its attachments:
// available → reserved → attaching → in-use → (detaching) → available.

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// The microversions of the attachments API.
const (
	mvAttachments    = 27
	mvAttachComplete = 44
	mvAttachMode     = 54
	// mvExtendInUse lets os-extend grow an in-use volume.
	mvExtendInUse = 42
)

// attachmentRoutes registers the attachments API.
func (s *Service) attachmentRoutes(m *api.Mux, p string) {
	m.Handle("GET "+p+"/attachments", lister(s.listAttachments, false))
	m.Handle("GET "+p+"/attachments/detail", lister(s.listAttachments, true))
	m.Handle("POST "+p+"/attachments", handler(s.createAttachment))
	m.Handle("GET "+p+"/attachments/{attachment_id}", handler(s.showAttachment))
	m.Handle("PUT "+p+"/attachments/{attachment_id}", handler(s.updateAttachment))
	m.Handle("DELETE "+p+"/attachments/{attachment_id}", handler(s.deleteAttachment))
	m.Handle("POST "+p+"/attachments/{attachment_id}/action", handler(s.attachmentAction))
}

// attachmentSummary is Cinder's summary view of an attachment.
func attachmentSummary(a *attachment) map[string]any {
	return map[string]any{"id": a.ID, "status": a.AttachStatus, "instance": a.InstanceUUID, "volume_id": a.VolumeID}
}

// attachmentDetail is Cinder's detailed view: detached_at is always ""
// because a detached attachment is gone.
func attachmentDetail(a *attachment) map[string]any {
	m := attachmentSummary(a)
	attachedAt := any("")
	if !a.AttachTime.IsZero() {
		attachedAt = fmtTime(a.AttachTime)
	}
	var info any
	if a.ConnectionInfo != nil {
		info = a.ConnectionInfo
	}
	m["attached_at"], m["detached_at"], m["attach_mode"], m["connection_info"] = attachedAt, "", a.AttachMode, info
	return m
}

// volumeAttachmentsView is a volume's "attachments" field: its attached
// attachments, the host shown to admins only, as Cinder's volume view.
func volumeAttachmentsView(r *http.Request, v *vol) []any {
	out := []any{}
	for _, a := range v.Attachments {
		if a.AttachStatus != "attached" {
			continue
		}
		var host any
		if caller(r).IsAdmin() && a.AttachedHost != nil {
			host = *a.AttachedHost
		}
		var at any
		if !a.AttachTime.IsZero() {
			at = fmtTime(a.AttachTime)
		}
		out = append(out, map[string]any{"id": a.VolumeID, "attachment_id": a.ID, "volume_id": a.VolumeID,
			"server_id": a.InstanceUUID, "host_name": host, "device": a.Mountpoint, "attached_at": at})
	}
	return out
}

// attachmentFor loads the request's attachment: another project's is not
// found for non-admins; then action is enforced against its project.
func (s *Service) attachmentFor(ctx context.Context, q db.Querier, r *http.Request, action string) (*attachment, error) {
	return loadOwned(ctx, q, r, r.PathValue("attachment_id"), action, getAttachment, attachmentNotFound)
}

// attachmentCreate is a validated attachment create body.
type attachmentCreate struct {
	VolumeID     string
	InstanceUUID *string
	Connector    map[string]any
	Mode         string // "" when not given
}

func parseAttachmentCreate(r *http.Request, mv microversion) (*attachmentCreate, error) {
	m, err := decodeEntity(r, "attachment")
	if err != nil {
		return nil, err
	}
	allowed := []string{"instance_uuid", "connector", "volume_uuid"}
	if mv >= mvAttachMode {
		allowed = append(allowed, "mode")
	}
	if err := checkAllowed("attachment", m, allowed...); err != nil {
		return nil, err
	}
	c := &attachmentCreate{}
	vid, ok := m["volume_uuid"]
	if !ok {
		return nil, invalidInput("attachment", m, "'volume_uuid' is a required property")
	}
	if c.VolumeID, err = uuidField("volume_uuid", vid); err != nil {
		return nil, err
	}
	if iu, ok := m["instance_uuid"]; ok {
		id, err := uuidField("instance_uuid", iu)
		if err != nil {
			return nil, err
		}
		c.InstanceUUID = &id
	}
	switch conn := m["connector"].(type) {
	case nil:
	case map[string]any:
		c.Connector = conn
	default:
		return nil, invalidInput("connector", conn, "%s is not of type 'object', 'null'", pyRepr(conn, true))
	}
	if mode, ok := m["mode"]; ok {
		s, _ := mode.(string)
		if s != "rw" && s != "ro" {
			return nil, invalidInput("mode", mode, "%s is not one of ['rw', 'ro']", pyRepr(mode, true))
		}
		c.Mode = s
	}
	return c, nil
}

// uuidField reads a string field that must be a UUID (jsonschema's
// format check, as Cinder's parameter_types.uuid).
func uuidField(field string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", invalidInput(field, v, "%s is not of type 'string'", pyRepr(v, true))
	}
	if !isUUID(s) {
		return "", invalidInput(field, v, "%s is not a 'uuid'", pyRepr(v, true))
	}
	return s, nil
}

// createAttachment reserves the volume for a new attachment and, given a
// connector, connects it at once (the attachment is then attaching).
func (s *Service) createAttachment(w http.ResponseWriter, r *http.Request) error {
	mv := versionOf(r)
	if mv < mvAttachments {
		return errResourceNotFound
	}
	req, err := parseAttachmentCreate(r, mv)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := loadOwned(ctx, s.deps.DB, r, req.VolumeID, "volume:attachment_create", getVolume, volumeNotFound)
	if err != nil {
		return err
	}
	if strings.Contains(v.Status, "error") {
		return errs.E(errs.Invalid, "Invalid volume: Volume attachments can not be created if the volume is in an error state. The Volume %s currently has a status of: %s ", v.ID, v.Status)
	}
	if v.Multiattach && v.Status == "in-use" && v.Bootable {
		if err := enforce(r, "volume:multiattach_bootable_volume", v.ProjectID); err != nil {
			return err
		}
	}
	a := &attachment{ID: uuid.NewString(), VolumeID: v.ID, ProjectID: v.ProjectID, InstanceUUID: req.InstanceUUID,
		AttachStatus: "reserved", AttachMode: "null", ConnectionInfo: map[string]any{}, CreatedAt: db.Now()}
	switch {
	case v.Readonly: // Cinder's deprecated readonly flag overrides the mode
		a.AttachMode = "ro"
	case req.Mode != "":
		a.AttachMode = req.Mode
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := reserveForAttachment(ctx, tx, v, req.InstanceUUID); err != nil {
			return err
		}
		return insertAttachment(ctx, tx, a)
	})
	if err != nil {
		return err
	}
	if len(req.Connector) > 0 { // cinderclient sends {} for none
		if err := s.connect(ctx, v, a, req.Connector); err != nil {
			// Cinder leaves the reservation behind; undo it so the
			// volume is as it was and nothing is orphaned.
			bg := context.WithoutCancel(ctx)
			_ = s.deps.DB.InTx(bg, func(tx *db.Tx) error { return finishDetach(bg, tx, v.ID, a.ID) })
			if errs.KindOf(err) == errs.NotFound {
				return err
			}
			return errs.Wrap(errs.Other, err, fmt.Sprintf("Unable to create attachment for volume (%s).", errs.Message(err)))
		}
	}
	return reply(w, http.StatusOK, map[string]any{"attachment": attachmentDetail(a)})
}

// reserveForAttachment moves v to reserved (Cinder's _attachment_reserve):
// from available or downloading, or in-use too when it is multiattach. A
// volume already attached to instance may be reserved again for it (an
// instance moving between hosts).
func reserveForAttachment(ctx context.Context, tx *db.Tx, v *vol, instance *string) error {
	statuses := []string{"available", "downloading"}
	if v.Multiattach {
		statuses = []string{"available", "in-use", "downloading"}
	}
	if setStatus(ctx, tx, v.ID, "reserved", statuses...) == nil {
		return nil
	}
	cur, err := getVolumeRow(ctx, tx, v.ID)
	if err != nil {
		return err
	}
	if instance != nil && (cur.Status == "in-use" || cur.Status == "reserved") {
		atts, err := attachmentsOf(ctx, tx, []string{v.ID})
		if err != nil {
			return err
		}
		for _, a := range atts[v.ID] {
			if a.InstanceUUID != nil && *a.InstanceUUID == *instance {
				return nil
			}
		}
	}
	return errs.E(errs.Invalid, "Invalid volume: Volume %s status must be %s to reserve, but the current status is %s.",
		v.ID, strings.Join(statuses, " or "), cur.Status)
}

// connect asks v's driver for the connection_info of connector and records
// it on a, which becomes attaching, as does the volume (Cinder's manager
// attachment_update). The attachment's connection_info is Cinder's flat
// form: the driver's data with driver_volume_type and attachment_id.
func (s *Service) connect(ctx context.Context, v *vol, a *attachment, connector map[string]any) error {
	connector = maps.Clone(connector)
	mode, _ := connector["mode"].(string)
	if mode == "" {
		mode = "rw"
	}
	if a.AttachMode != "null" {
		mode = a.AttachMode
		connector["mode"] = mode
	}
	ci, err := s.initializeConnection(ctx, v, connector, mode)
	if err != nil {
		return err
	}
	flat := maps.Clone(ci.Data)
	flat["driver_volume_type"] = ci.DriverVolumeType
	flat["attachment_id"] = a.ID
	host, _ := connector["host"].(string)
	mountpoint, _ := connector["mountpoint"].(string)
	if mountpoint == "" {
		mountpoint = "na"
	}
	a.Connector, a.ConnectionInfo, a.AttachStatus, a.AttachMode = connector, flat, "attaching", mode
	a.AttachedHost, a.Mountpoint, a.AttachTime = &host, &mountpoint, db.Now()
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := mustLockVolume(ctx, tx, v.ID); err != nil {
			return err
		}
		if _, err := getAttachment(ctx, tx, a.ID); err != nil {
			return err // deleted meanwhile
		}
		if err := saveAttachment(ctx, tx, a); err != nil {
			return err
		}
		return setAttachStatus(ctx, tx, v.ID, "attaching", "attaching")
	})
}

// initializeConnection is the driver's connection_info for connector with
// what Cinder's volume manager adds to every driver's
// (_parse_connection_options): qos_specs, access_mode, encrypted and, for
// a typed volume, cacheable.
func (s *Service) initializeConnection(ctx context.Context, v *vol, connector map[string]any, mode string) (driver.ConnectionInfo, error) {
	b := s.backendOf(v)
	if b == nil {
		return driver.ConnectionInfo{}, errs.E(errs.Invalid, "Invalid volume: Volume %s is on no volume backend.", v.ID)
	}
	att, ok := b.drv.(driver.Attacher)
	if !ok {
		return driver.ConnectionInfo{}, errs.E(errs.Invalid, "Invalid volume: The backend of volume %s does not serve connections.", v.ID)
	}
	ci, err := att.InitializeConnection(ctx, v.ID, connector)
	if err != nil {
		if errs.KindOf(err) == errs.Invalid {
			return driver.ConnectionInfo{}, errs.E(errs.Invalid, "Invalid input received: %s", errs.Message(err))
		}
		return driver.ConnectionInfo{}, errs.Wrap(errs.Other, err, fmt.Sprintf("Bad or unexpected response from the storage volume backend API: Driver initialize connection failed (error: %s).", err))
	}
	if !slices.Contains(att.Protocols(), ci.DriverVolumeType) {
		return driver.ConnectionInfo{}, errs.E(errs.Other, "driver answered protocol %q, not one it declares", ci.DriverVolumeType)
	}
	data := maps.Clone(ci.Data)
	if data == nil {
		data = map[string]any{}
	}
	data["qos_specs"] = nil
	data["access_mode"] = "rw"
	if v.Readonly || mode == "ro" {
		data["access_mode"] = "ro"
	}
	if _, ok := data["encrypted"]; !ok {
		data["encrypted"] = false
	}
	if v.TypeID != nil {
		t, err := typeByID(ctx, s.deps.DB, *v.TypeID)
		if err != nil && errs.KindOf(err) != errs.NotFound {
			return driver.ConnectionInfo{}, err
		}
		data["cacheable"] = t != nil && t.ExtraSpecs["cacheable"] == "<is> True"
	}
	ci.Data = data
	return ci, nil
}

// terminateConnection tells v's driver that connector is done with it.
func (s *Service) terminateConnection(ctx context.Context, v *vol, connector map[string]any) error {
	b := s.backendOf(v)
	if b == nil {
		return nil
	}
	att, ok := b.drv.(driver.Attacher)
	if !ok {
		return nil
	}
	if err := att.TerminateConnection(ctx, v.ID, connector); err != nil {
		return errs.Wrap(errs.Other, err, fmt.Sprintf("Bad or unexpected response from the storage volume backend API: Terminate volume connection failed: %s", err))
	}
	return nil
}

func (s *Service) showAttachment(w http.ResponseWriter, r *http.Request) error {
	if versionOf(r) < mvAttachments {
		return errResourceNotFound
	}
	a, err := s.attachmentFor(r.Context(), s.deps.DB, r, "volume:get")
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"attachment": attachmentDetail(a)})
}

// parseConnectorUpdate reads an attachment update body: a connector of at
// least one property.
func parseConnectorUpdate(r *http.Request) (map[string]any, error) {
	m, err := decodeEntity(r, "attachment")
	if err != nil {
		return nil, err
	}
	if err := checkAllowed("attachment", m, "connector"); err != nil {
		return nil, err
	}
	raw, ok := m["connector"]
	if !ok {
		return nil, invalidInput("attachment", m, "'connector' is a required property")
	}
	conn, ok := raw.(map[string]any)
	if !ok {
		return nil, invalidInput("connector", raw, "%s is not of type 'object'", pyRepr(raw, true))
	}
	if len(conn) == 0 {
		return nil, invalidInput("connector", raw, "{} does not have enough properties")
	}
	return conn, nil
}

// updateAttachment connects a reserved attachment (or reconnects one) with
// the caller's connector. Cinder answers its refusals here with 500.
func (s *Service) updateAttachment(w http.ResponseWriter, r *http.Request) error {
	if versionOf(r) < mvAttachments {
		return errResourceNotFound
	}
	connector, err := parseConnectorUpdate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	a, err := s.attachmentFor(ctx, s.deps.DB, r, "volume:attachment_update")
	if err != nil {
		return err
	}
	v, err := getVolume(ctx, s.deps.DB, a.VolumeID)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		return errs.Wrap(errs.Other, err, fmt.Sprintf("Unable to update attachment.(%s).", errs.Message(err)))
	}
	if strings.Contains(v.Status, "error") {
		return fail(errs.E(errs.Invalid, "Invalid volume: Volume attachments can not be updated if the volume is in an error state. The Volume %s currently has a status of: %s ", v.ID, v.Status))
	}
	if len(v.Attachments) > 1 && !v.Multiattach {
		for _, o := range v.Attachments {
			if o.ConnectionInfo != nil && len(o.ConnectionInfo) > 0 && o.ID != a.ID {
				return fail(errs.E(errs.Invalid, "Invalid volume: duplicate connectors detected on volume %s", v.ID))
			}
		}
	}
	if err := s.connect(ctx, v, a, connector); err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return err
		}
		return fail(err)
	}
	return reply(w, http.StatusOK, map[string]any{"attachment": attachmentDetail(a)})
}

// attachmentAction serves POST /attachments/{id}/action: os-complete.
func (s *Service) attachmentAction(w http.ResponseWriter, r *http.Request) error {
	if versionOf(r) < mvAttachComplete {
		return errResourceNotFound
	}
	return dispatchAction(w, r, map[string]actionHandler{"os-complete": s.completeAttachment})
}

// completeAttachment marks the attach done: the attachment attached, the
// volume in-use (Cinder checks no state here, nor do we).
func (s *Service) completeAttachment(w http.ResponseWriter, r *http.Request, _ any) error {
	ctx := r.Context()
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		a, err := s.attachmentFor(ctx, tx, r, "volume:attachment_complete")
		if err != nil {
			return err
		}
		if err := mustLockVolume(ctx, tx, a.VolumeID); err != nil {
			return err
		}
		a.AttachStatus = "attached"
		if err := saveAttachment(ctx, tx, a); err != nil {
			return err
		}
		return setAttachStatus(ctx, tx, a.VolumeID, "in-use", "attached")
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusNoContent)
}

// deleteAttachment detaches: the driver forgets the connector, the
// attachment goes, and the volume's status follows the attachments left,
// which the answer lists.
func (s *Service) deleteAttachment(w http.ResponseWriter, r *http.Request) error {
	if versionOf(r) < mvAttachments {
		return errResourceNotFound
	}
	ctx := r.Context()
	a, err := s.attachmentFor(ctx, s.deps.DB, r, "volume:attachment_delete")
	if err != nil {
		return err
	}
	v, err := getVolumeRow(ctx, s.deps.DB, a.VolumeID)
	if err != nil {
		return err
	}
	if a.AttachStatus != "reserved" && a.Connector != nil {
		if err := s.terminateConnection(ctx, v, a.Connector); err != nil {
			return err // the attachment stays, so the caller can retry
		}
	}
	var left []*attachment
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := finishDetach(ctx, tx, a.VolumeID, a.ID); err != nil {
			return err
		}
		m, err := attachmentsOf(ctx, tx, []string{a.VolumeID})
		left = m[a.VolumeID]
		return err
	})
	if err != nil {
		return err
	}
	out := []any{}
	for _, o := range left {
		out = append(out, attachmentSummary(o))
	}
	return reply(w, http.StatusOK, map[string]any{"attachments": out})
}

// listAttachments lists the caller's project's attachments (every
// project's for admins with all_tenants), filtered by volume_id,
// status/attach_status and instance_id, paged by keyset. Cinder's view
// has no links.
func (s *Service) listAttachments(w http.ResponseWriter, r *http.Request, detail bool) error {
	if versionOf(r) < mvAttachments {
		return errResourceNotFound
	}
	if err := enforce(r, "volume:get_all", ""); err != nil {
		return err
	}
	var f attachmentFilter
	page, sc, err := parseListQuery(r, func(key, val string) error {
		switch key {
		case "volume_id":
			f.VolumeID = &val
		case "status", "attach_status":
			f.Status = &val
		case "instance_id":
			f.InstanceUUID = &val
		}
		return nil
	})
	if err != nil {
		return err
	}
	f.scope = sc
	if _, ok := attachmentSortColumns[page.SortKey]; !ok {
		return errs.E(errs.Invalid, "Invalid input received: Invalid sort key %s.", page.SortKey)
	}
	// A marker that is no attachment is Cinder's marker 404 too.
	get := func(ctx context.Context, q db.Querier, id string) (*attachment, error) {
		a, err := getAttachment(ctx, q, id)
		if errs.KindOf(err) == errs.NotFound {
			return nil, markerNotFound(id)
		}
		return a, err
	}
	rows, _, err := readOwnedPage(r, s.deps.DB, page, get, markerNotFound, listAttachments, f, nil)
	if err != nil {
		return err
	}
	out := []any{}
	for _, a := range rows {
		if detail {
			out = append(out, attachmentDetail(a))
		} else {
			out = append(out, attachmentSummary(a))
		}
	}
	return reply(w, http.StatusOK, map[string]any{"attachments": out})
}

// mustLockVolume is lockVolumeRow for a volume that must exist.
func mustLockVolume(ctx context.Context, tx *db.Tx, id string) error {
	ok, err := lockVolumeRow(ctx, tx, id)
	if err == nil && !ok {
		err = volumeNotFound(id)
	}
	return err
}
