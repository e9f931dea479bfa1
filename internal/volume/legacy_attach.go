package volume

// The attach actions from before the attachments API, which Terraform's
// openstack_blockstorage_volume_attach_v3 and older Nova still use:
// os-reserve → os-initialize_connection → os-attach to attach,
// os-begin_detaching → os-terminate_connection → os-detach to detach
// (os-unreserve and os-roll_detaching undo the first steps), and the
// admin's os-force_detach. They share the attachments' rows and statuses.

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// actReserve moves an available volume (or an in-use multiattach one) to
// attaching, as Cinder's reserve_volume.
func (s *Service) actReserve(w http.ResponseWriter, r *http.Request, _ any) error {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:reserve")
	if err != nil {
		return err
	}
	expected := "available"
	statuses := []string{"available"}
	if v.Multiattach {
		expected, statuses = "available or in-use", []string{"available", "in-use"}
	}
	if err := setStatus(ctx, s.deps.DB, v.ID, "attaching", statuses...); err != nil {
		st := v.Status
		if cur, _ := getVolumeRow(ctx, s.deps.DB, v.ID); cur != nil {
			st = cur.Status
		}
		return errs.E(errs.Invalid, "Invalid volume: Volume status must be %s to reserve, but the status is %s.", expected, st)
	}
	return replyEmpty(w, http.StatusAccepted)
}

// actUnreserve moves an attaching volume back: to in-use when it has
// attachments, else available. Any other status is left alone (no error).
func (s *Service) actUnreserve(w http.ResponseWriter, r *http.Request, _ any) error {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:unreserve")
	if err != nil {
		return err
	}
	if err := unreserve(ctx, s.deps.DB, v.ID); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// unreserve is os-unreserve's status change.
func unreserve(ctx context.Context, d *db.DB, id string) error {
	return d.InTx(ctx, func(tx *db.Tx) error {
		if ok, err := lockIn(ctx, tx, "volumes", id, []string{"attaching"}, "TRUE"); err != nil || !ok {
			return err
		}
		atts, err := attachmentsOf(ctx, tx, []string{id})
		if err != nil {
			return err
		}
		to := "available"
		if len(atts[id]) > 0 {
			to = "in-use"
		}
		return setStatus(ctx, tx, id, to, "attaching")
	})
}

func (s *Service) actBeginDetaching(w http.ResponseWriter, r *http.Request, _ any) error {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:begin_detaching")
	if err != nil {
		return err
	}
	moved, err := beginDetaching(ctx, s.deps.DB, v.ID)
	if err != nil {
		return err
	}
	// A moving volume is not shown detaching, and not refused either.
	if !moved && !migrating(v) {
		return errs.E(errs.Invalid, "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.")
	}
	return replyEmpty(w, http.StatusAccepted)
}

func (s *Service) actRollDetaching(w http.ResponseWriter, r *http.Request, _ any) error {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:roll_detaching")
	if err != nil {
		return err
	}
	_ = setStatus(ctx, s.deps.DB, v.ID, "in-use", "detaching")
	return replyEmpty(w, http.StatusAccepted)
}

// connectorArg reads the connector of os-initialize_connection,
// os-terminate_connection and os-force_detach; nullable allows a missing
// (null) connector.
func connectorArg(action string, arg any, required, nullable bool, allowed ...string) (map[string]any, error) {
	m, err := argObject(action, arg)
	if err != nil {
		return nil, err
	}
	if err := checkAllowed(action, m, allowed...); err != nil {
		return nil, err
	}
	raw, ok := m["connector"]
	if !ok && required {
		return nil, invalidInput(action, m, "'connector' is a required property")
	}
	switch c := raw.(type) {
	case map[string]any:
		return c, nil
	case nil:
		if nullable || !ok {
			return nil, nil
		}
	}
	return nil, invalidInput("connector", raw, "%s is not of type 'object'", pyRepr(raw, true))
}

// actInitializeConnection answers the driver's connection_info for the
// connector (Cinder's nested form, driver_volume_type and data). No
// attachment is recorded: os-attach does that.
func (s *Service) actInitializeConnection(w http.ResponseWriter, r *http.Request, arg any) error {
	connector, err := connectorArg("os-initialize_connection", arg, true, false, "connector")
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:initialize_connection")
	if err != nil {
		return err
	}
	if v.Status == "maintenance" {
		return errs.E(errs.Invalid, "Invalid volume: The volume connection cannot be initialized in maintenance mode.")
	}
	ci, err := s.initializeConnection(ctx, v, connector, "")
	if err != nil {
		if errs.KindOf(err) == errs.Other {
			return errs.Wrap(errs.Other, err, "Unable to fetch connection information from backend.")
		}
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"connection_info": ci})
}

// actTerminateConnection tells the driver the connector is done, then
// unreserves the volume (an attach that did not happen).
func (s *Service) actTerminateConnection(w http.ResponseWriter, r *http.Request, arg any) error {
	connector, err := connectorArg("os-terminate_connection", arg, true, true, "connector")
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:terminate_connection")
	if err != nil {
		return err
	}
	if err := s.terminateConnection(ctx, v, connector); err != nil {
		return errs.Wrap(errs.Other, err, "Unable to terminate volume connection from backend.")
	}
	if err := unreserve(ctx, s.deps.DB, v.ID); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// attachRequest is a validated os-attach argument.
type attachRequest struct {
	InstanceUUID, HostName *string
	Mountpoint, Mode       string
}

func parseAttach(arg any) (*attachRequest, error) {
	m, err := argObject("os-attach", arg)
	if err != nil {
		return nil, err
	}
	if err := checkAllowed("os-attach", m, "instance_uuid", "mountpoint", "host_name", "mode"); err != nil {
		return nil, err
	}
	req := &attachRequest{Mode: "rw"}
	mp, ok := m["mountpoint"].(string)
	if _, present := m["mountpoint"]; !present {
		return nil, invalidInput("os-attach", m, "'mountpoint' is a required property")
	}
	if !ok || mp == "" || len([]rune(mp)) > 255 {
		return nil, invalidInput("mountpoint", m["mountpoint"], "%s is not a valid mountpoint", pyRepr(m["mountpoint"], true))
	}
	req.Mountpoint = mp
	_, hasInstance := m["instance_uuid"]
	_, hasHost := m["host_name"]
	if !hasInstance && !hasHost {
		return nil, invalidInput("os-attach", m, "%s is not valid under any of the given schemas", pyRepr(m, true))
	}
	if hasInstance {
		id, err := uuidField("instance_uuid", m["instance_uuid"])
		if err != nil {
			return nil, err
		}
		req.InstanceUUID = &id
	}
	if hasHost {
		if req.HostName, err = optString(m, "host_name", 255); err != nil {
			return nil, err
		}
	}
	if mode, ok := m["mode"]; ok {
		s, _ := mode.(string)
		if s != "rw" && s != "ro" {
			return nil, invalidInput("mode", mode, "%s is not one of ['rw', 'ro']", pyRepr(mode, true))
		}
		req.Mode = s
	}
	return req, nil
}

// attachableStatuses are the statuses os-attach accepts. Cinder's manager
// checks only in-use (without multiattach); a volume being created,
// uploaded or deleted cannot be attached here either.
var attachableStatuses = map[string]bool{"available": true, "attaching": true, "reserved": true, "in-use": true}

// actAttach records an attachment to an instance or host (Cinder's
// attach_volume): the volume becomes in-use and attached. Attaching the
// same instance (or host) again changes nothing. A volume moving between
// backends is not attached (Cinder lets Nova swap it; there is none).
func (s *Service) actAttach(w http.ResponseWriter, r *http.Request, arg any) error {
	req, err := parseAttach(arg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:attach")
	if err != nil {
		return err
	}
	if v.Status == "maintenance" {
		return errs.E(errs.Invalid, "Invalid volume: The volume cannot be attached in maintenance mode.")
	}
	if v.Readonly && req.Mode != "ro" {
		return errs.E(errs.Invalid, "Invalid attaching mode '%s' for volume %s.", req.Mode, v.ID)
	}
	refuse := func(msg string, args ...any) error {
		return errs.E(errs.Invalid, "Error attaching volume - InvalidVolume: Invalid volume: "+msg, args...)
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := mustLockVolume(ctx, tx, v.ID); err != nil {
			return err
		}
		cur, err := getVolumeRow(ctx, tx, v.ID)
		if err != nil {
			return err
		}
		atts, err := attachmentsOf(ctx, tx, []string{v.ID})
		if err != nil {
			return err
		}
		for _, a := range atts[v.ID] {
			sameInstance := req.InstanceUUID != nil && a.InstanceUUID != nil && *a.InstanceUUID == *req.InstanceUUID
			sameHost := req.InstanceUUID == nil && req.HostName != nil && a.AttachedHost != nil && *a.AttachedHost == *req.HostName
			if sameInstance || sameHost {
				return forceStatus(ctx, tx, v.ID, "in-use")
			}
		}
		if migrating(cur) {
			return refuse("Volume %s is being moved to another backend.", v.ID)
		}
		if cur.Status == "in-use" && !cur.Multiattach {
			return refuse("volume is already attached and multiple attachments are not enabled")
		}
		if !attachableStatuses[cur.Status] {
			return refuse("Volume %s status must be available, attaching, reserved or in-use to attach, but the status is %s.", v.ID, cur.Status)
		}
		mountpoint := req.Mountpoint
		a := &attachment{ID: uuid.NewString(), VolumeID: v.ID, ProjectID: v.ProjectID, InstanceUUID: req.InstanceUUID,
			AttachedHost: req.HostName, Mountpoint: &mountpoint, AttachStatus: "attached", AttachMode: req.Mode,
			AttachTime: db.Now(), CreatedAt: db.Now()}
		if err := insertAttachment(ctx, tx, a); err != nil {
			return err
		}
		return setAttachStatus(ctx, tx, v.ID, "in-use", "attached")
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// detachArg reads os-detach's (or os-force_detach's) attachment_id; ""
// when not given.
func detachArg(action string, arg any, allowed ...string) (string, error) {
	if arg == nil {
		return "", nil
	}
	m, err := argObject(action, arg)
	if err != nil {
		return "", err
	}
	if err := checkAllowed(action, m, allowed...); err != nil {
		return "", err
	}
	switch id := m["attachment_id"].(type) {
	case nil:
		return "", nil
	case string:
		return id, nil
	default:
		return "", invalidInput("attachment_id", id, "%s is not of type 'string', 'null'", pyRepr(id, true))
	}
}

func (s *Service) actDetach(w http.ResponseWriter, r *http.Request, arg any) error {
	id, err := detachArg("os-detach", arg, "attachment_id")
	if err != nil {
		return err
	}
	if id != "" && !isUUID(id) {
		return invalidInput("attachment_id", id, "%s is not a 'uuid'", pyRepr(id, true))
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:detach")
	if err != nil {
		return err
	}
	if v.Status == "maintenance" {
		return errs.E(errs.Invalid, "Invalid volume: The volume cannot be detached in maintenance mode.")
	}
	if err := s.detachVolume(ctx, v, id, "Error detaching volume"); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// detachVolume removes attachment id of v (Cinder's detach_volume): with
// no id, v's only attachment; a missing attachment only settles v's
// status. prefix starts the message of a refusal.
func (s *Service) detachVolume(ctx context.Context, v *vol, id, prefix string) error {
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := mustLockVolume(ctx, tx, v.ID); err != nil {
			return err
		}
		if id != "" {
			a, err := getAttachment(ctx, tx, id)
			if err == nil && a.VolumeID != v.ID {
				return errs.E(errs.Invalid, "Invalid input received: Mismatched volume and attachment")
			}
			if err != nil && errs.KindOf(err) != errs.NotFound {
				return err
			}
			return finishDetach(ctx, tx, v.ID, id)
		}
		atts, err := attachmentsOf(ctx, tx, []string{v.ID})
		if err != nil {
			return err
		}
		switch len(atts[v.ID]) {
		case 0:
			return markUnattached(ctx, tx, v.ID)
		case 1:
			return finishDetach(ctx, tx, v.ID, atts[v.ID][0].ID)
		}
		return errs.E(errs.Invalid, "%s - InvalidVolume: Invalid volume: Detach volume failed: More than one attachment, but no attachment_id provided.", prefix)
	})
}

// actForceDetach (admin) terminates the connector's connection and
// detaches, whatever state the attach was left in.
func (s *Service) actForceDetach(w http.ResponseWriter, r *http.Request, arg any) error {
	connector, err := connectorArg("os-force_detach", arg, false, true, "connector", "attachment_id")
	if err != nil {
		return err
	}
	id, err := detachArg("os-force_detach", arg, "connector", "attachment_id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_admin_actions:force_detach")
	if err != nil {
		return err
	}
	if err := s.terminateConnection(ctx, v, connector); err != nil {
		return errs.Wrap(errs.Other, err, "Unable to terminate volume connection from backend.")
	}
	if err := s.detachVolume(ctx, v, id, "Error force detaching volume"); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}
