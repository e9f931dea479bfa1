package volume

// Moving a volume between backends: a retype whose new type the volume's
// backend does not satisfy (migration_policy on-demand), and an admin's
// os-migrate_volume to a named backend. The volume keeps its id: its data
// is copied to the target backend under the same id (driver.Copy), then
// one transaction switches the volume's host (and type) and ends the task,
// and the source's copy is deleted.
//
// The move is a durable task (volume.migrate). A volume moving is
// "starting", then "migrating" (migration_status); retype shows status
// retyping meanwhile, a locked migration maintenance, a plain one keeps
// the volume's status, and setStatus refuses every other transition of a
// moving volume, so its data does not change under the copy. The outcome
// is migration_status success (on the target) or error (still on the
// source, usable, nothing left on the target).
//
// A node that dies mid-copy leaves a task whose lease runs out: the next
// claim (attempt > 1) rolls the move back instead of trusting a copy it
// did not see finish. A node stopping cleanly hands the task back without
// counting the attempt, and the next claim copies again from the start.
// The source's copy left by a node that died right after the switch is
// removed by the orphan sweep at the next start (sweepOrphans).

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// workMigrate is the task kind that moves a volume between backends.
const workMigrate = "volume.migrate"

// mvMigrateCluster is the microversion from which os-migrate_volume may
// name a cluster instead of a host.
const mvMigrateCluster = 16

// migratePayload is a migration task's payload.
type migratePayload struct {
	// Target is the backend the volume moves to.
	Target string `json:"target"`
	// NewTypeID is the type a retype gives the volume when it has moved.
	NewTypeID   string `json:"new_type_id,omitempty"`
	Multiattach bool   `json:"multiattach,omitempty"`
	// Reserved is what the retype reserved of the new type's quota when
	// it began (startMove): the move takes it into use or gives it back,
	// in the transaction that ends the task. Nil for a plain migration
	// (and for a task recorded before moves reserved).
	Reserved *moveReservation `json:"reserved,omitempty"`
}

// moveReservation is a retype's reservation of its new type's per-type
// quota: one volume of Size GiB in Project.
type moveReservation struct {
	Project string `json:"project"`
	Size    int64  `json:"size"`
}

// parseRetype reads os-retype's new type and migration policy ("never"
// when absent or null).
func parseRetype(arg any) (newType, policy string, err error) {
	m, err := argObject("os-retype", arg)
	if err != nil {
		return "", "", err
	}
	if err := checkAllowed("os-retype", m, "new_type", "migration_policy"); err != nil {
		return "", "", err
	}
	raw, ok := m["new_type"]
	if !ok {
		return "", "", invalidInput("os-retype", m, "'new_type' is a required property")
	}
	if newType, ok = raw.(string); !ok {
		return "", "", invalidInput("new_type", raw, "%s is not of type 'string'", pyRepr(raw, true))
	}
	policy = "never"
	if p := m["migration_policy"]; p != nil {
		if policy, err = oneOf("migration_policy", p, []string{"on-demand", "never"}); err != nil {
			return "", "", err
		}
	}
	return newType, policy, nil
}

// migrationStatuses are the values os-reset_status may give
// migration_status (Cinder's VolumeMigrationStatus).
var migrationStatuses = []string{"migrating", "error", "success", "completing", "none", "starting"}

// parseMigrationStatus reads os-reset_status's migration_status, lower
// case; nil when absent, null or empty (Cinder then leaves it).
func parseMigrationStatus(m map[string]any) (*string, error) {
	st, err := optString(m, "migration_status", 0)
	if err != nil || st == nil || *st == "" {
		return nil, err
	}
	low := strings.ToLower(*st)
	if !slices.Contains(migrationStatuses, low) {
		return nil, errs.E(errs.Invalid, "Volume migration status: %s is invalid, valid statuses are: ('migrating', 'error', 'success', 'completing', 'none', 'starting').", *st)
	}
	return &low, nil
}

// errRetypeState is Cinder's refusal of a retype for the volume's state.
var errRetypeState = errs.E(errs.Invalid, "Invalid volume: Retype needs volume to be in available or in-use state, not be part of an active migration or a consistency group, requested type has to be different that the one from the volume, and for in-use volumes front-end qos specs cannot change.")

// actRetype changes a volume's type. When the volume's backend satisfies
// the new type the change is made at once; otherwise the volume must move
// to a backend that does, which migration_policy on-demand allows (202,
// the move runs as a task) and never refuses (400, as are types no backend
// satisfies). The volume becomes multiattach exactly when the new type is.
func (s *Service) actRetype(w http.ResponseWriter, r *http.Request, arg any) error {
	name, policy, err := parseRetype(arg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume:retype")
	if err != nil {
		return err
	}
	t, err := s.getType(ctx, s.deps.DB, r, name, true)
	if err != nil {
		return errs.E(errs.NotFound, "Volume type with name %s could not be found.", name)
	}
	if v.Multiattach != t.multiattach() && v.Status != "available" {
		return errs.E(errs.Invalid, "Invalid input received: Invalid volume_type passed, retypes affecting multiattach are only allowed on available volumes, the specified volume however currently has a status of: %s.", v.Status)
	}
	if v.Status != "available" && v.Status != "in-use" || migrating(v) || v.TypeID != nil && *v.TypeID == t.ID {
		return errRetypeState
	}
	target, err := s.retypeTarget(ctx, v, t, policy)
	if err != nil {
		return err
	}
	if target == nil {
		changed, err := s.retypeInPlace(ctx, v.ID, t)
		if err == nil && !changed {
			err = errRetypeState
		}
		if err != nil {
			return err
		}
		return replyEmpty(w, http.StatusAccepted)
	}
	start := migrationStart{ID: v.ID, Host: target.cfg.Name, Status: "retyping", NotTypeID: t.ID}
	if err := s.startMove(ctx, start, &migratePayload{Target: target.cfg.Name, NewTypeID: t.ID, Multiattach: t.multiattach()}, errRetypeState,
		errs.E(errs.Invalid, "Invalid volume: Volume must not have snapshots.")); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// retypeTarget is where a retype puts the volume: nil when it stays on its
// backend (which satisfies the new type, or it has none), else the
// backend the scheduler picks among those that satisfy it, in the volume's
// availability zone (Cinder's find_retype_backend, with its messages).
func (s *Service) retypeTarget(ctx context.Context, v *vol, t *volType, policy string) (*backend, error) {
	cur := s.backendOf(v)
	if cur == nil {
		return nil, nil
	}
	if _, ok := s.passes(ctx, cur, t.ExtraSpecs, v.AZ, 0); ok {
		return nil, nil
	}
	target, err := s.schedule(ctx, t.ExtraSpecs, v.AZ, v.Size)
	if err != nil {
		return nil, errs.E(errs.Invalid, "No valid backend was found. No valid backends for volume %s with type %s", v.ID, t.Name)
	}
	if policy != "on-demand" {
		return nil, errs.E(errs.Invalid, "No valid backend was found. Current backend not valid for volume %s with type %s, migration not allowed", v.ID, t.Name)
	}
	return target, nil
}

// startMove records, in one transaction, that the volume starts moving and
// the task that moves it; refused is the error when the volume is not in
// a state to move, snapshotted when it has snapshots (which stay on their
// backend: Cinder moves no volume that has any; they are looked for after
// the volume's row is locked, so a snapshot being made now, under
// lockVolumeIn, is either seen or refused). With p nil the target was refused by the scheduler
// after the volume's checks passed: the move is recorded as failed at once
// (migration_status error), as Cinder's scheduler does after its 202.
func (s *Service) startMove(ctx context.Context, m migrationStart, p *migratePayload, refused, snapshotted error) error {
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		started, err := startMigration(ctx, tx, m)
		if err != nil {
			return err
		}
		if !started {
			return refused
		}
		// Cinder moves an attached volume with the compute service's
		// swap_volume; without one, the host would keep writing the data
		// the move leaves behind.
		if atts, err := attachmentsOf(ctx, tx, []string{m.ID}); err != nil || len(atts[m.ID]) > 0 {
			if err == nil {
				err = errs.E(errs.Invalid, "Invalid volume: Volume %s has attachments: moving it needs a compute service to swap it, and there is none.", m.ID)
			}
			return err
		}
		if has, err := volumeHasSnapshots(ctx, tx, m.ID); err != nil || has {
			if err == nil {
				err = snapshotted
			}
			return err
		}
		if p == nil {
			_, err = abortMigration(ctx, tx, m.ID)
			return err
		}
		if err := s.reserveMove(ctx, tx, m.ID, p); err != nil {
			return err
		}
		_, err = s.tasks.Add(ctx, tx, task.Spec{Kind: workMigrate, Subject: m.ID, Payload: *p, RequestID: api.RequestID(ctx)})
		return err
	})
	if err == nil && p != nil {
		s.wake()
	}
	return err
}

// migrateRequest is a validated os-migrate_volume argument.
type migrateRequest struct {
	Host, Cluster *string
	Lock          bool
}

func parseMigrate(arg any, mv microversion) (*migrateRequest, error) {
	m, err := argObject("os-migrate_volume", arg)
	if err != nil {
		return nil, err
	}
	allowedKeys := []string{"host", "force_host_copy", "lock_volume"}
	if mv >= mvMigrateCluster {
		allowedKeys = append(allowedKeys, "cluster")
	}
	if err := checkAllowed("os-migrate_volume", m, allowedKeys...); err != nil {
		return nil, err
	}
	if _, ok := m["host"]; !ok && mv < mvMigrateCluster {
		return nil, invalidInput("os-migrate_volume", m, "'host' is a required property")
	}
	req := &migrateRequest{}
	if v, ok := m["host"]; ok && v == nil && mv < mvMigrateCluster {
		return nil, invalidInput("host", v, "None is not of type 'string'")
	}
	if req.Host, err = optString(m, "host", 255); err != nil {
		return nil, err
	}
	if req.Cluster, err = optString(m, "cluster", 255); err != nil {
		return nil, err
	}
	// force_host_copy is accepted and moot: every move copies the data.
	for _, k := range []string{"force_host_copy", "lock_volume"} {
		if v, ok := m[k]; ok {
			b, err := parseBool(k, v)
			if err != nil {
				return nil, err
			}
			req.Lock = req.Lock || k == "lock_volume" && b
		}
	}
	hasHost, hasCluster := req.Host != nil && *req.Host != "", req.Cluster != nil && *req.Cluster != ""
	switch {
	case mv >= mvMigrateCluster && hasHost == hasCluster:
		return nil, errs.E(errs.Invalid, "Invalid input received: One and only one of cluster and host must be set.")
	case mv < mvMigrateCluster && !hasHost:
		return nil, errs.E(errs.Invalid, "Invalid input received: Host field is missing.")
	}
	return req, nil
}

// errMigrateState is Cinder's refusal of a migration for the volume's state.
func errMigrateState(id string) error {
	return errs.E(errs.Invalid, "Invalid volume: Volume %s status must be available or in-use, must not be migrating, have snapshots, be replicated, be part of a group and destination host/cluster must be different than the current one", id)
}

// actMigrate serves the admin's os-migrate_volume: the volume moves to the
// named backend (host <hostname>@<backend>[#<pool>]) if that backend's
// service is enabled. As in Cinder, a target that does not suit the
// volume (its type, its zone, a wrong pool) is found out after the 202:
// the migration ends in error at once.
func (s *Service) actMigrate(w http.ResponseWriter, r *http.Request, arg any) error {
	req, err := parseMigrate(arg, versionOf(r))
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_admin_actions:migrate_volume")
	if err != nil {
		return err
	}
	name := deref(req.Host)
	if req.Cluster != nil && *req.Cluster != "" {
		name = *req.Cluster // Ashlar's services are in no cluster: never found
	}
	backendHost, pool, _ := strings.Cut(name, "#")
	var target *backend
	if req.Host != nil {
		if target, err = s.enabledBackend(ctx, backendHost); err != nil {
			return err
		}
	}
	if target == nil {
		return errs.E(errs.Invalid, "Invalid host: No available service named '%s'", name)
	}
	start := migrationStart{ID: v.ID, Host: target.cfg.Name}
	if req.Lock && v.Status == "available" {
		start.Status = "maintenance"
	}
	var p *migratePayload
	if s.suits(ctx, v, target, pool) {
		p = &migratePayload{Target: target.cfg.Name}
	}
	if err := s.startMove(ctx, start, p, errMigrateState(v.ID), errMigrateState(v.ID)); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// suits reports whether the volume may live on b (in pool, when one is
// named): the scheduler's filters for the volume's type, zone and size.
func (s *Service) suits(ctx context.Context, v *vol, b *backend, pool string) bool {
	if pool != "" && pool != b.cfg.VolumeBackendName {
		return false
	}
	specs := map[string]string{}
	if v.TypeID != nil {
		if t, err := typeByID(ctx, s.deps.DB, *v.TypeID); err == nil {
			specs = t.ExtraSpecs
		}
	}
	_, ok := s.passes(ctx, b, specs, v.AZ, v.Size)
	return ok
}

// runMigrate runs (or, giving up, rolls back) one claimed move.
func (s *Service) runMigrate(ctx context.Context, t *task.Task, giveUp bool) error {
	var p migratePayload
	if err := t.Decode(&p); err != nil {
		return err
	}
	w := &work{VolumeID: t.Subject, Kind: t.Kind, RequestID: t.RequestID, t: t}
	// off ends a move that no longer has a volume to move.
	off := func() error {
		return s.settle(ctx, w, nil, func(tx *db.Tx) error { return s.releaseMove(ctx, tx, &p) })
	}
	v, err := getVolume(ctx, s.deps.DB, w.VolumeID)
	if errs.KindOf(err) == errs.NotFound {
		// Gone (an admin's force-delete of a failed move): whatever an
		// earlier attempt copied is an orphan now.
		s.dropCopy(ctx, s.backendNamed(p.Target), w.VolumeID)
		return off()
	}
	if err != nil {
		return task.Retry(err)
	}
	target := s.backendNamed(p.Target)
	switch {
	case !migrating(v):
		return off() // reset by an admin meanwhile
	case giveUp || t.Attempt > 1:
		// An earlier attempt's node died (or lost its lease) mid-move:
		// what it left on the target cannot be trusted.
		return s.failMove(ctx, w, v, target, &p, errs.E(errs.Other, "volume migration interrupted"))
	}
	source := s.backendOf(v)
	if source == nil || target == nil || source == target {
		return s.failMove(ctx, w, v, target, &p, errs.E(errs.Unavailable, "volume migration: backend %q or %q not configured", deref(v.Host), p.Target))
	}
	if _, err := setMigrationStatus(ctx, s.deps.DB, v.ID, migStarting, migMigrating); err != nil {
		return task.Retry(err)
	}
	// A copy on the target is left over from an attempt of this task that
	// stopped after its copy (the task is this volume's only move).
	s.dropCopy(ctx, target, v.ID)
	if err := driver.Copy(ctx, source.drv, v.ID, target.drv, v.ID, v.Size*gib); err != nil {
		if ctx.Err() != nil {
			return err // stopping or lease lost: the next claim decides
		}
		return s.failMove(ctx, w, v, target, &p, err)
	}
	var switched bool
	err = s.settle(ctx, w, nil, func(tx *db.Tx) error {
		cur, err := getVolumeRow(ctx, tx, v.ID)
		if errs.KindOf(err) == errs.NotFound {
			return s.releaseMove(ctx, tx, &p) // deleted while copying (after a reset): not switched
		}
		if err != nil {
			return err
		}
		switched, err = finishMigration(ctx, tx, migrationSwitch{ID: v.ID, Host: target.cfg.Name, AZ: target.az,
			TypeID: p.NewTypeID, Multiattach: p.Multiattach})
		if err == nil {
			err = s.releaseMove(ctx, tx, &p)
		}
		if err != nil || !switched || p.NewTypeID == "" {
			return err
		}
		return s.charge(ctx, tx, opCommit, false, retypeCharge(cur, nil, p.NewTypeID)...)
	})
	if err != nil {
		return err
	}
	if !switched {
		// Reset, or reset and deleted, while copying: the copy is not wanted.
		s.dropCopy(ctx, target, v.ID)
		return nil
	}
	s.dropCopy(ctx, source, v.ID)
	return nil
}

// failMove ends a move as failed: the target's copy is deleted, and the
// volume, still on its backend, gets its status back with migration_status
// error, and the retype's reservation is given back, in one transaction
// with the task's end. Cinder records no user message for a failed
// migration; the migration status is the outcome.
func (s *Service) failMove(ctx context.Context, w *work, v *vol, target *backend, p *migratePayload, cause error) error {
	if target != nil && deref(v.Host) != target.cfg.Name {
		if err := target.drv.Delete(context.WithoutCancel(ctx), v.ID); err != nil && errs.KindOf(err) != errs.NotFound {
			return task.Retry(err) // keep the move open until the target is clean
		}
	}
	if err := s.settle(ctx, w, cause, func(tx *db.Tx) error {
		if _, err := abortMigration(ctx, tx, v.ID); err != nil {
			return err
		}
		return s.releaseMove(ctx, tx, p)
	}); err != nil {
		return err
	}
	return cause
}

// dropCopy deletes a volume's data on b, if there is any; failures are
// logged (the orphan sweep retries at the next start).
func (s *Service) dropCopy(ctx context.Context, b *backend, id string) {
	if b == nil {
		return
	}
	if err := b.drv.Delete(context.WithoutCancel(ctx), id); err != nil && errs.KindOf(err) != errs.NotFound {
		s.deps.Logger.Error("deleting a moved volume's other copy", "backend", b.cfg.Name, "volume", id, "err", err)
	}
}

// actMigrateCompletion serves os-migrate_volume_completion, which Nova
// calls when it has swapped an attached volume for another. Ashlar's moves
// keep the volume's id and never make a "target:<id>" volume, so the swap
// Cinder completes here cannot be asked for; what remains is Cinder's
// answer for volumes that are not mid-migration: a plain swap (neither
// migrating) saves the new volume's id, and the checks refuse the rest.
func (s *Service) actMigrateCompletion(w http.ResponseWriter, r *http.Request, arg any) error {
	m, err := argObject("os-migrate_volume_completion", arg)
	if err != nil {
		return err
	}
	if err := checkAllowed("os-migrate_volume_completion", m, "new_volume", "error"); err != nil {
		return err
	}
	raw, ok := m["new_volume"]
	if !ok {
		return invalidInput("os-migrate_volume_completion", m, "'new_volume' is a required property")
	}
	newID, ok := raw.(string)
	if !ok || !isUUID(newID) {
		return invalidInput("new_volume", raw, "%s is not a 'uuid'", pyRepr(raw, true))
	}
	switch e := m["error"].(type) {
	case nil, string, bool:
	default:
		return invalidInput("error", e, "%s is not of type 'string', 'null', 'boolean'", pyRepr(e, true))
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_admin_actions:migrate_volume_completion")
	if err != nil {
		return err
	}
	nv, err := getVolume(ctx, s.deps.DB, newID)
	if err == nil && !visible(r, nv) {
		err = volumeNotFound(newID)
	}
	if err != nil {
		return err
	}
	switch {
	case v.MigrationStatus == nil && nv.MigrationStatus == nil:
		return reply(w, http.StatusOK, map[string]any{"save_volume_id": nv.ID})
	case v.MigrationStatus == nil:
		return errs.E(errs.Invalid, "Invalid volume: Source volume not mid-migration.")
	case nv.MigrationStatus == nil:
		return errs.E(errs.Invalid, "Invalid volume: Destination volume not mid-migration.")
	}
	return errs.E(errs.Invalid, "Invalid volume: Destination has migration_status %s, expected target:%s.", *nv.MigrationStatus, v.ID)
}
