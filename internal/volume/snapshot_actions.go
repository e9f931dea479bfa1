package volume

// Snapshot actions (POST /snapshots/{id}/action), and what snapshots
// change in volume actions: revert to the latest snapshot, and the delete
// of a volume that has snapshots (refused, or cascaded to them).

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// snapshotAction dispatches POST /snapshots/{id}/action on the body's key.
func (s *Service) snapshotAction(w http.ResponseWriter, r *http.Request) error {
	return dispatchAction(w, r, map[string]actionHandler{
		"os-reset_status":           s.actSnapshotResetStatus,
		"os-force_delete":           s.actSnapshotForceDelete,
		"os-update_snapshot_status": s.actUpdateSnapshotStatus,
	})
}

// snapshotStatuses are Cinder's SnapshotStatus.ALL, in its order.
var snapshotStatuses = []string{"error", "available", "creating", "deleting", "deleted", "updating",
	"error_deleting", "unmanaging", "backing-up", "restoring"}

// snapshotStatusArg reads the required string status of a snapshot
// action's argument m; allowed are the other keys it may have.
func snapshotStatusArg(action string, arg any, allowed ...string) (map[string]any, string, error) {
	m, err := argObject(action, arg)
	if err != nil {
		return nil, "", err
	}
	if err := checkAllowed(action, m, append(allowed, "status")...); err != nil {
		return nil, "", err
	}
	raw, ok := m["status"]
	if !ok {
		return nil, "", invalidInput(action, m, "'status' is a required property")
	}
	st, ok := raw.(string)
	if !ok {
		return nil, "", invalidInput("status", raw, "%s is not of type 'string'", pyRepr(raw, true))
	}
	return m, st, nil
}

func (s *Service) actSnapshotResetStatus(w http.ResponseWriter, r *http.Request, arg any) error {
	_, st, err := snapshotStatusArg("os-reset_status", arg)
	if err != nil {
		return err
	}
	st = strings.ToLower(st)
	if !slices.Contains(snapshotStatuses, st) {
		quoted := make([]string, len(snapshotStatuses))
		for i, v := range snapshotStatuses {
			quoted[i] = "'" + v + "'"
		}
		return errs.E(errs.Invalid, "Snapshot status: %s is invalid, valid statuses are: (%s).", st, strings.Join(quoted, ", "))
	}
	ctx := r.Context()
	sn, err := s.snapshotFor(ctx, s.deps.DB, r, "volume_extension:snapshot_admin_actions:reset_status")
	if err != nil {
		return err
	}
	if _, err := setSnapshotStatus(ctx, s.deps.DB, sn.ID, st); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

func (s *Service) actSnapshotForceDelete(w http.ResponseWriter, r *http.Request, _ any) error {
	return forceDeleteOf(w, r, s.deps.DB, s.snapshotFor, s.beginSnapshotDelete,
		"volume:get_snapshot", "volume_extension:snapshot_admin_actions:force_delete", "volume:delete_snapshot")
}

// snapshotStatusMoves are the moves os-update_snapshot_status allows: a
// snapshot being made or deleted by something else reports its progress.
var snapshotStatusMoves = map[string][]string{
	"creating": {"creating", "available", "error"},
	"deleting": {"deleting", "error_deleting"},
}

func (s *Service) actUpdateSnapshotStatus(w http.ResponseWriter, r *http.Request, arg any) error {
	m, st, err := snapshotStatusArg("os-update_snapshot_status", arg, "progress")
	if err != nil {
		return err
	}
	progress, err := parseProgress(m["progress"])
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		sn, err := s.snapshotFor(ctx, tx, r, "snapshot_extension:snapshot_actions:update_snapshot_status")
		if err != nil {
			return err
		}
		allowed, ok := snapshotStatusMoves[sn.Status]
		if !ok {
			return errs.E(errs.Invalid, "Snapshot status %s not allowed for update_snapshot_status", sn.Status)
		}
		if !slices.Contains(allowed, st) {
			return errs.E(errs.Invalid, "Provided snapshot status %s not allowed for snapshot with status %s.", st, sn.Status)
		}
		if _, err := setSnapshotStatus(ctx, tx, sn.ID, st); err != nil {
			return err
		}
		if progress == "" {
			return nil
		}
		return setSnapshotProgress(ctx, tx, sn.ID, progress)
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// parseProgress reads an integer percentage ("80%") as Cinder's progress
// format does; "" when absent.
func parseProgress(raw any) (string, error) {
	if raw == nil || raw == "" {
		return "", nil
	}
	p, ok := raw.(string)
	runes := []rune(p)
	n, err := strconv.Atoi(strings.TrimSpace(string(runes[:max(len(runes)-1, 0)])))
	if !ok || err != nil {
		return "", errs.E(errs.Invalid, "Invalid input received: progress must be an integer percentage")
	}
	if n < 0 || n > 100 || runes[len(runes)-1] != '%' {
		return "", errs.E(errs.Invalid, "Invalid input received: progress must be an integer percentage between 0 and 100")
	}
	return p, nil
}

// actRevert reverts a volume to its latest snapshot (3.40): both must be
// available and the volume still of the snapshot's size; a task copies
// the data while the volume is reverting and the snapshot restoring.
func (s *Service) actRevert(w http.ResponseWriter, r *http.Request, arg any) error {
	if versionOf(r) < mvRevert {
		return errResourceNotFound
	}
	m, ok := arg.(map[string]any)
	if !ok {
		return errs.E(errs.Invalid, "%s", missingElement("revert"))
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume:get")
	if err != nil {
		return err
	}
	latest, err := latestSnapshot(ctx, s.deps.DB, v.ID)
	if errs.KindOf(err) == errs.NotFound {
		return errs.E(errs.Invalid, "Volume %s doesn't have any snapshots.", v.ID)
	}
	if err != nil {
		return err
	}
	if id, _ := m["snapshot_id"].(string); id != latest.ID {
		return errs.E(errs.Invalid, "Specified snapshot %s is None or not the latest one of volume %s.", pyRepr(m["snapshot_id"], false), v.ID)
	}
	if v.Size != latest.VolumeSize {
		return errs.E(errs.Invalid, "Can't revert volume %s to its latest snapshot %s. The volume size must be equal to the snapshot size.", v.ID, latest.ID)
	}
	if err := enforce(r, "volume:revert_to_snapshot", v.ProjectID); err != nil {
		return err
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if setStatus(ctx, tx, v.ID, "reverting", "available") != nil {
			return errs.E(errs.Conflict, "Invalid volume: Can't revert volume %s to its latest snapshot %s. Volume's status must be 'available'.", v.ID, latest.ID)
		}
		if ok, err := setSnapshotStatus(ctx, tx, latest.ID, "restoring", "available"); err != nil || !ok {
			if err == nil {
				err = errs.E(errs.Conflict, "Invalid snapshot: Can't revert volume %s to its latest snapshot %s. Snapshot's status must be 'available'.", v.ID, latest.ID)
			}
			return err
		}
		return s.addWork(ctx, tx, v.ID, workRevert, workPayload{SnapshotID: latest.ID})
	})
	if err != nil {
		return err
	}
	s.wake()
	return replyEmpty(w, http.StatusAccepted)
}

// extendWhileCopied reports whether v, just moved to extending, is having
// a snapshot or clone made: its extend is refused then (the caller moves
// it back), since the driver must not change a volume it copies and the
// copy would not have the size recorded for it. A snapshot or clone asked
// for later sees the volume extending and is refused; one recorded before
// is seen here (each locks the volume in its status, lockVolumeIn).
func (s *Service) extendWhileCopied(ctx context.Context, v *vol) (bool, error) {
	return volumeBeingCopied(ctx, s.deps.DB, v.ID)
}

// errNotDeletable is Cinder's refusal of a volume delete (without force,
// the statuses it may be deleted from are named).
func errNotDeletable(force bool) error {
	status := "status must be available or error or error_restoring or error_extending or error_managing and"
	if force {
		status = ""
	}
	return errs.E(errs.Invalid, "Invalid volume: Volume %s must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.", status)
}

// beginVolumeDelete moves v to deleting, from a deletable status unless
// force, in one transaction with the check of its snapshots: a volume with
// snapshots is refused unless cascade, and then its snapshots must be
// available or error (and, for non-admins, of its project); they become
// deleting and a task deletes them, then the volume: queued reports that.
// Without snapshots the caller deletes the volume itself, under the task
// returned, held by this node (finishVolumeDelete): a node that dies
// first leaves it to another node, which deletes the data and the row, so
// a volume never stays deleting. A snapshot recorded meanwhile locks the
// volume in a status it is leaving, so one of the two transactions sees
// the other (lockVolumeIn).
func (s *Service) beginVolumeDelete(ctx context.Context, r *http.Request, v *vol, cascade, force bool) (tk *task.Task, queued bool, err error) {
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if force {
			if err := forceStatus(ctx, tx, v.ID, "deleting"); err != nil {
				return err
			}
		} else if setStatus(ctx, tx, v.ID, "deleting", deletableStatuses...) != nil {
			return errNotDeletable(false)
		}
		snaps, err := volumeSnapshots(ctx, tx, v.ID)
		if err != nil {
			return err
		}
		if len(snaps) == 0 {
			tk, err = s.tasks.Begin(context.WithoutCancel(ctx), tx, task.Spec{Kind: workDeleteCascade, Subject: v.ID,
				RequestID: api.RequestID(ctx), ProjectID: v.ProjectID})
			return err
		}
		if !cascade {
			return errNotDeletable(force)
		}
		for _, sn := range snaps {
			if !slices.Contains(deletableSnapshotStatuses, sn.Status) || sn.ProjectID != v.ProjectID && !caller(r).IsAdmin() {
				return errNotDeletable(force)
			}
		}
		for _, sn := range snaps {
			if _, err := setSnapshotStatus(ctx, tx, sn.ID, "deleting"); err != nil {
				return err
			}
		}
		queued = true
		return s.addWork(ctx, tx, v.ID, workDeleteCascade, workPayload{})
	})
	if err != nil {
		if tk != nil {
			tk.Release()
		}
		return nil, false, err
	}
	if queued {
		s.wake()
	}
	return tk, queued, nil
}

// finishVolumeDelete deletes v's data and row under tk, the delete task
// beginVolumeDelete left held by this node, and finishes tk in the row's
// transaction. A failure leaves v in error_deleting, tk failed with it.
func (s *Service) finishVolumeDelete(ctx context.Context, v *vol, tk *task.Task) error {
	defer tk.Release()
	var err error
	if b := s.backendOf(v); b != nil {
		if err = b.drv.Delete(ctx, v.ID); errs.KindOf(err) == errs.NotFound {
			err = nil
		}
	}
	if err == nil {
		if err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
			if err := s.dropVolumeRow(ctx, tx, v.ID); err != nil {
				return err
			}
			return tk.Complete(ctx, tx)
		}); err == nil {
			return nil
		}
	}
	bg := context.WithoutCancel(ctx)
	cause := err
	if ferr := s.deps.DB.InTx(bg, func(tx *db.Tx) error {
		if err := forceStatus(bg, tx, v.ID, "error_deleting"); err != nil {
			return err
		}
		return tk.Fail(bg, tx, cause)
	}); ferr != nil {
		// The task stays leased until Release: another node deletes then.
		s.deps.Logger.Warn("recording a failed volume delete", "volume", v.ID, "err", ferr)
	}
	return err
}

// boolQuery reads an optional boolean query parameter as Cinder's
// get_bool_param (false when absent).
func boolQuery(r *http.Request, name string) (bool, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return false, nil
	}
	b, err := parseBool(name, q.Get(name))
	if err != nil {
		return false, errs.E(errs.Invalid, "Value '%s' for '%s' is not a boolean.", q.Get(name), name)
	}
	return b, nil
}
