package volume

// Quotas: the resources a project's quota limits (a small registry, each
// resource saying how its usage is recounted from rows), the limits that
// apply to a project, and the charge that records a change of usage in the
// transaction that changes the rows, refusing with Cinder's 413 what would
// go over a limit. Cinder reserves in one transaction and commits in
// another; here the check and the charge are one atomic step with the row
// they count, so usage never drifts from the rows and concurrent creates
// cannot both take the last unit.

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// quotaCounter recounts a project's usage from the rows, by resource key
// (a counter may count several resources: volumes also counts gigabytes).
type quotaCounter func(ctx context.Context, q db.Querier, project string) (map[string]int64, error)

// quotaResource is one resource of Cinder's quota sets.
type quotaResource struct {
	// Name is the key in quota sets (volumes, gigabytes, ...).
	Name string
	// Default is the limit from the configuration (Cinder's quota_*
	// option) when neither the project nor the "default" class has one.
	Default func(config.VolumeQuota) int64
	// PerType resources also have a key per volume type, <name>_<type
	// name> (stored as <name>/<type id>), unlimited by default.
	PerType bool
	// LimitOnly resources are limits with no usage (per_volume_gigabytes).
	LimitOnly bool
	// Count recounts usage from the rows; nil when another resource's
	// counter counts it too, or nothing does yet (usage 0).
	Count quotaCounter
}

// quotaResources is the registry, in the order of Cinder's quota engine.
// A service that keeps new rows under quota (backups) gives its resources
// a Count and charges them where it inserts and deletes its rows.
func quotaResources() []quotaResource {
	return []quotaResource{
		{Name: "volumes", Default: func(q config.VolumeQuota) int64 { return q.Volumes }, PerType: true, Count: countVolumes},
		{Name: "per_volume_gigabytes", Default: func(q config.VolumeQuota) int64 { return q.PerVolumeSizeLimit }, LimitOnly: true},
		{Name: "snapshots", Default: func(q config.VolumeQuota) int64 { return q.Snapshots }, PerType: true, Count: countSnapshots},
		// gigabytes: volumes' sizes and their snapshots', counted by both.
		{Name: "gigabytes", Default: func(q config.VolumeQuota) int64 { return q.Gigabytes }, PerType: true},
		// backups and backup_gigabytes: a backup's gigabytes are its
		// volume's size, counted with the backups.
		{Name: "backups", Default: func(q config.VolumeQuota) int64 { return q.Backups }, Count: countBackupUsage},
		{Name: "backup_gigabytes", Default: func(q config.VolumeQuota) int64 { return q.BackupGigabytes }},
		{Name: "groups", Default: func(q config.VolumeQuota) int64 { return q.Groups }},
	}
}

// quotaResourceNamed is the registry's resource of that name.
func quotaResourceNamed(name string) (quotaResource, bool) {
	for _, r := range quotaResources() {
		if r.Name == name {
			return r, true
		}
	}
	return quotaResource{}, false
}

// defaultQuotaClass is the quota class whose limits are every project's
// defaults (Cinder's _DEFAULT_QUOTA_NAME).
const defaultQuotaClass = "default"

// typeKey is the stored key of resource for a volume type.
func typeKey(resource, typeID string) string { return resource + "/" + typeID }

// quotaKeys names resource keys as Cinder shows them and back.
type quotaKeys struct {
	byID   map[string]string // type id -> name
	byName map[string]string // type name -> id
}

func loadQuotaKeys(ctx context.Context, q db.Querier) (quotaKeys, error) {
	byID, err := typeNames(ctx, q)
	k := quotaKeys{byID: byID, byName: map[string]string{}}
	for id, n := range byID {
		k.byName[n] = id
	}
	return k, err
}

// display is the key as quota sets show it: per-type keys carry the type
// name (a deleted type's keys keep its id).
func (k quotaKeys) display(key string) string {
	res, id, ok := strings.Cut(key, "/")
	if !ok {
		return key
	}
	if n, ok := k.byID[id]; ok {
		return res + "_" + n
	}
	return res + "_" + id
}

// parse is the stored key of a key shown in quota sets; false when no
// resource has it.
func (k quotaKeys) parse(display string) (string, bool) {
	if _, ok := quotaResourceNamed(display); ok {
		return display, true
	}
	for _, r := range quotaResources() {
		if name, ok := strings.CutPrefix(display, r.Name+"_"); ok && r.PerType {
			if id, ok := k.byName[name]; ok {
				return typeKey(r.Name, id), true
			}
		}
	}
	return "", false
}

// all is every stored key of the quota sets, in the registry's order.
func (k quotaKeys) all() []string {
	ids := make([]string, 0, len(k.byID))
	for id := range k.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []string
	for _, r := range quotaResources() {
		out = append(out, r.Name)
	}
	for _, r := range quotaResources() {
		if r.PerType {
			for _, id := range ids {
				out = append(out, typeKey(r.Name, id))
			}
		}
	}
	return out
}

// limits resolves the limit of each key for one project or class: its
// own, else the "default" class's, else the configuration's.
type limits struct {
	own, class map[string]int64
	cfg        config.VolumeQuota
}

func (l limits) of(key string) int64 {
	if n, ok := l.own[key]; ok {
		return n
	}
	if n, ok := l.class[key]; ok {
		return n
	}
	if r, ok := quotaResourceNamed(key); ok {
		return r.Default(l.cfg)
	}
	return -1 // per-type keys are unlimited unless set
}

// limitsFor loads the limits of a project (class false) or a quota class.
func (s *Service) limitsFor(ctx context.Context, q db.Querier, class bool, owner string) (limits, error) {
	l := limits{cfg: s.deps.Config.Volume.Quota, own: map[string]int64{}}
	var err error
	if owner != "" {
		if l.own, err = limitsOf(ctx, q, class, owner); err != nil {
			return l, err
		}
	}
	l.class, err = limitsOf(ctx, q, true, defaultQuotaClass)
	return l, err
}

// quotaChange is a change of one project's usage of one resource key.
type quotaChange struct {
	Project, Key string
	Delta        int64
}

// quotaOp is what a charge is for; it decides Cinder's error when the
// charge would go over a limit.
type quotaOp int

const (
	opVolume   quotaOp = iota // a volume made, retyped or accepted
	opSnapshot                // a snapshot made or accepted
	opExtend                  // a volume grown
	opBackup                  // a backup made or imported
	// opCommit takes into use what was reserved or checked before (an
	// extend or a move that has ended): never refused.
	opCommit
)

// volumeCharge is what a volume of size GiB and type typeID (nil: none)
// uses, times sign (1 to take it, -1 to give it back).
func volumeCharge(project string, size int64, typeID *string, sign int64) []quotaChange {
	ch := []quotaChange{{project, "volumes", sign}, {project, "gigabytes", sign * size}}
	if typeID != nil {
		ch = append(ch, quotaChange{project, typeKey("volumes", *typeID), sign}, quotaChange{project, typeKey("gigabytes", *typeID), sign * size})
	}
	return ch
}

// backupCharge is what a backup of a volume of size GiB uses.
func backupCharge(project string, size int64, sign int64) []quotaChange {
	return []quotaChange{{project, "backups", sign}, {project, "backup_gigabytes", sign * size}}
}

// snapshotCharge is what a snapshot of a volume of size GiB uses.
func snapshotCharge(project string, size int64, typeID *string, sign int64) []quotaChange {
	ch := []quotaChange{{project, "snapshots", sign}, {project, "gigabytes", sign * size}}
	if typeID != nil {
		ch = append(ch, quotaChange{project, typeKey("snapshots", *typeID), sign}, quotaChange{project, typeKey("gigabytes", *typeID), sign * size})
	}
	return ch
}

// charge records changes of usage in tx: in_use, or reserved when reserve
// is set (an operation that ends later). A change that takes a usage
// (in_use + reserved) over its limit fails the whole charge with Cinder's
// 413 for op; releases are never refused. Rows are changed in (project,
// key) order, so concurrent charges lock them in one order; callers charge
// last in their transaction, after locking the rows they change.
func (s *Service) charge(ctx context.Context, tx *db.Tx, op quotaOp, reserve bool, changes ...quotaChange) error {
	sum := map[[2]string]int64{}
	for _, c := range changes {
		sum[[2]string{c.Project, c.Key}] += c.Delta
	}
	keys := make([][2]string, 0, len(sum))
	for k, d := range sum {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	var overs []over
	lims := map[string]limits{}
	for _, k := range keys {
		d := sum[k]
		inUse, reserved := d, int64(0)
		if reserve {
			inUse, reserved = 0, d
		}
		u, err := addUsage(ctx, tx, k[0], k[1], inUse, reserved)
		if err != nil || d < 0 || op == opCommit {
			if err != nil {
				return err
			}
			continue
		}
		l, ok := lims[k[0]]
		if !ok {
			if l, err = s.limitsFor(ctx, tx, false, k[0]); err != nil {
				return err
			}
			lims[k[0]] = l
		}
		if lim := l.of(k[1]); lim >= 0 && u.InUse+u.Reserved > lim {
			overs = append(overs, over{key: k[1], requested: d, consumed: u.InUse + u.Reserved - d, limit: lim})
		}
	}
	if len(overs) == 0 {
		return nil
	}
	names, err := loadQuotaKeys(ctx, tx)
	if err != nil {
		return err
	}
	return overQuota(op, overs, names, sum, lims)
}

// over is a usage a charge would take over its limit.
type over struct {
	key                        string
	requested, consumed, limit int64
}

// quotaError is a refusal for quota, which Cinder answers with a
// Retry-After header and retryAfter in its overLimit body.
type quotaError struct{ err error }

func (e *quotaError) Error() string { return e.err.Error() }
func (e *quotaError) Unwrap() error { return e.err }

func errQuota(format string, args ...any) error {
	return &quotaError{errs.E(errs.TooLarge, format, args...)}
}

// isQuotaError reports whether err is a refusal for quota.
func isQuotaError(err error) bool {
	var q *quotaError
	return errors.As(err, &q)
}

// overQuota is Cinder's error for the overs of a charge for op
// (quota_utils.process_reserve_over_quota and the extend's own message):
// the first over by shown name decides, gigabytes before counts.
func overQuota(op quotaOp, overs []over, names quotaKeys, sum map[[2]string]int64, lims map[string]limits) error {
	if op == opExtend {
		// Cinder reports the project's total gigabytes whichever key was over.
		o := overs[0]
		for _, x := range overs {
			if x.key == "gigabytes" {
				o = x
			}
		}
		return errQuota("Requested volume or snapshot exceeds allowed gigabytes quota. Requested %dG, quota is %dG and %dG has been consumed.",
			o.requested, o.limit, o.consumed)
	}
	sort.Slice(overs, func(i, j int) bool { return names.display(overs[i].key) < names.display(overs[j].key) })
	for _, o := range overs {
		name := names.display(o.key)
		switch {
		case op == opBackup && strings.Contains(name, "gigabytes"):
			return errQuota("Requested backup exceeds allowed Backup gigabytes quota. Requested %dG, quota is %dG and %dG has been consumed.",
				o.requested, o.limit, o.consumed)
		case strings.Contains(name, "gigabytes"):
			return errQuota("Requested volume or snapshot exceeds allowed %s quota. Requested %dG, quota is %dG and %dG has been consumed.",
				name, o.requested, o.limit, o.consumed)
		case op == opVolume && strings.Contains(name, "volumes"):
			return errQuota("Maximum number of volumes allowed (%d) exceeded for quota '%s'.", o.limit, name)
		case op == opSnapshot && strings.Contains(name, "snapshots"):
			return errQuota("Maximum number of snapshots allowed (%d) exceeded", o.limit)
		case op == opBackup && name == "backups":
			return errQuota("Maximum number of backups allowed (%d) exceeded", o.limit)
		}
	}
	var ns []string
	for _, o := range overs {
		ns = append(ns, names.display(o.key))
	}
	return errQuota("Unexpected over quota on %s.", strings.Join(ns, ", "))
}

// checkVolumeSize is Cinder's per_volume_gigabytes check of a volume of
// size GiB entering project.
func (s *Service) checkVolumeSize(ctx context.Context, q db.Querier, project string, size int64) error {
	l, err := s.limitsFor(ctx, q, false, project)
	if err != nil {
		return err
	}
	if lim := l.of("per_volume_gigabytes"); lim >= 0 && size > lim {
		return errQuota("Requested volume size %dG is larger than maximum allowed limit %dG.", size, lim)
	}
	return nil
}

// recountUsage recounts a project's usage of every resource from the
// rows, through the registry's counters: what the stored in_use must be.
func recountUsage(ctx context.Context, q db.Querier, project string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, r := range quotaResources() {
		if r.Count == nil {
			continue
		}
		m, err := r.Count(ctx, q, project)
		if err != nil {
			return nil, err
		}
		for k, n := range m {
			out[k] += n
		}
	}
	return out, nil
}

// dropVolumeRow deletes a volume's row and gives back what it used, in tx.
func (s *Service) dropVolumeRow(ctx context.Context, tx *db.Tx, id string) error {
	v, err := getVolumeRow(ctx, tx, id)
	if errs.KindOf(err) == errs.NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if err := deleteVolumeRow(ctx, tx, id); err != nil {
		return err
	}
	return s.charge(ctx, tx, opVolume, false, volumeCharge(v.ProjectID, v.Size, v.TypeID, -1)...)
}

// dropBackupRow deletes a backup's row and gives back what it used, in tx.
func (s *Service) dropBackupRow(ctx context.Context, tx *db.Tx, b *backupRow) error {
	if err := deleteBackupRow(ctx, tx, b.ID); err != nil {
		return err
	}
	return s.charge(ctx, tx, opBackup, false, backupCharge(b.ProjectID, b.Size, -1)...)
}

// dropSnapshotRow deletes a snapshot's row and gives back what it used, in tx.
func (s *Service) dropSnapshotRow(ctx context.Context, tx *db.Tx, id string) error {
	sn, err := getSnapshotRow(ctx, tx, id)
	if errs.KindOf(err) == errs.NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if err := deleteSnapshotRow(ctx, tx, id); err != nil {
		return err
	}
	return s.charge(ctx, tx, opSnapshot, false, snapshotCharge(sn.ProjectID, sn.VolumeSize, sn.TypeID, -1)...)
}

// retypeCharge moves a volume's per-type usage (its own and its
// snapshots', each charged to its own project) from its old type to
// typeID, as Cinder's retype does; the totals do not change.
func retypeCharge(v *vol, snaps []*snapshot, typeID string) []quotaChange {
	move := func(project, resource string, n int64) []quotaChange {
		ch := []quotaChange{{project, typeKey(resource, typeID), n}}
		if v.TypeID != nil {
			ch = append(ch, quotaChange{project, typeKey(resource, *v.TypeID), -n})
		}
		return ch
	}
	ch := append(move(v.ProjectID, "volumes", 1), move(v.ProjectID, "gigabytes", v.Size)...)
	for _, sn := range snaps {
		ch = append(ch, move(sn.ProjectID, "snapshots", 1)...)
		ch = append(ch, move(sn.ProjectID, "gigabytes", sn.VolumeSize)...)
	}
	return ch
}

// negated is changes given back.
func negated(changes []quotaChange) []quotaChange {
	out := make([]quotaChange, len(changes))
	for i, c := range changes {
		out[i] = quotaChange{c.Project, c.Key, -c.Delta}
	}
	return out
}

// retypeInPlace gives a volume at rest type t on its own backend, with its
// snapshots, and moves their per-type usage, in one transaction; false
// when the volume is not in a state to be retyped. The row is locked
// before its current type is read, so a concurrent retype cannot make the
// usage move from the wrong type.
func (s *Service) retypeInPlace(ctx context.Context, id string, t *volType) (bool, error) {
	var changed bool
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		ok, err := lockVolumeIn(ctx, tx, id, "available", "in-use")
		if err != nil || !ok {
			return err
		}
		cur, err := getVolumeRow(ctx, tx, id)
		if err != nil {
			return err
		}
		if changed, err = retypeInPlace(ctx, tx, id, t.ID, t.multiattach()); err != nil || !changed {
			return err
		}
		snaps, err := volumeSnapshots(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := retypeSnapshots(ctx, tx, id, t.ID); err != nil {
			return err
		}
		return s.charge(ctx, tx, opVolume, false, retypeCharge(cur, snaps, t.ID)...)
	})
	return changed && err == nil, err
}

// reserveMove reserves, for a retype that moves volume id to p.NewTypeID
// (none for a migration), the new type's per-type usage of the volume, in
// tx, refusing with Cinder's 413 when the type's quota has no room for
// it; p.Reserved records it for the task. The move takes it into use when
// the data has moved (runMigrate) or gives it back when it does not, so
// two retypes at once cannot both pass a limit with room for one.
func (s *Service) reserveMove(ctx context.Context, tx *db.Tx, id string, p *migratePayload) error {
	if p.NewTypeID == "" {
		return nil
	}
	cur, err := getVolumeRow(ctx, tx, id)
	if err != nil {
		return err
	}
	p.Reserved = &moveReservation{Project: cur.ProjectID, Size: cur.Size}
	return s.charge(ctx, tx, opVolume, true, p.Reserved.changes(p.NewTypeID)...)
}

// releaseMove gives back what a move reserved (reserveMove), in the
// transaction that ends its task; the move's usage, when it switched, is
// charged apart.
func (s *Service) releaseMove(ctx context.Context, tx *db.Tx, p *migratePayload) error {
	if p.Reserved == nil {
		return nil
	}
	return s.charge(ctx, tx, opCommit, true, negated(p.Reserved.changes(p.NewTypeID))...)
}

// changes are the reservation's usage of typeID's per-type quota.
func (r *moveReservation) changes(typeID string) []quotaChange {
	return []quotaChange{{r.Project, typeKey("volumes", typeID), 1}, {r.Project, typeKey("gigabytes", typeID), r.Size}}
}

// chargeNewVolume checks a new volume against per_volume_gigabytes and
// charges what it uses, in the transaction that inserts it. A volume whose
// creation fails later keeps its usage until it is deleted, as in Cinder.
func (s *Service) chargeNewVolume(ctx context.Context, tx *db.Tx, v *vol) error {
	if err := s.checkVolumeSize(ctx, tx, v.ProjectID, v.Size); err != nil {
		return err
	}
	return s.charge(ctx, tx, opVolume, false, volumeCharge(v.ProjectID, v.Size, v.TypeID, 1)...)
}

// extendCharge is what growing v to newSize GiB adds to its project's usage.
func extendCharge(v *vol, newSize int64, sign int64) []quotaChange {
	d := sign * (newSize - v.Size)
	ch := []quotaChange{{v.ProjectID, "gigabytes", d}}
	if v.TypeID != nil {
		ch = append(ch, quotaChange{v.ProjectID, typeKey("gigabytes", *v.TypeID), d})
	}
	return ch
}

// beginExtend moves a volume from status from (available, or in-use from
// 3.42) to extending, checks newSize against per_volume_gigabytes,
// reserves the added gigabytes and records the extend's task, held by this
// node, in one transaction: a refusal leaves the volume as it was, as in
// Cinder, and a node that dies before endExtend leaves the task to another
// node, which extends the volume or gives up (error_extending), never a
// volume stuck in extending with gigabytes reserved.
func (s *Service) beginExtend(ctx context.Context, v *vol, newSize int64, from string) (*task.Task, error) {
	var tk *task.Task
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := setStatus(ctx, tx, v.ID, "extending", from); err != nil {
			return err
		}
		if err := s.checkVolumeSize(ctx, tx, v.ProjectID, newSize); err != nil {
			return err
		}
		if err := s.charge(ctx, tx, opExtend, true, extendCharge(v, newSize, 1)...); err != nil {
			return err
		}
		var err error
		tk, err = s.tasks.Begin(context.WithoutCancel(ctx), tx, task.Spec{Kind: workExtend, Subject: v.ID,
			Payload: workPayload{Size: newSize, PreviousStatus: from}, RequestID: api.RequestID(ctx), ProjectID: v.ProjectID})
		return err
	})
	if err != nil && tk != nil {
		tk.Release()
		tk = nil
	}
	return tk, err
}

// endExtend ends the extend under tk: write records the outcome, the
// reserved gigabytes are given back, and taken into use when done, and tk
// is finished (done or failed), in one transaction.
func (s *Service) endExtend(ctx context.Context, v *vol, newSize int64, done bool, tk *task.Task, write func(q db.Querier) error) error {
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if write != nil {
			if err := write(tx); err != nil {
				return err
			}
		}
		if err := s.charge(ctx, tx, opExtend, true, extendCharge(v, newSize, -1)...); err != nil {
			return err
		}
		if !done {
			return tk.Fail(ctx, tx, errs.E(errs.Other, "extend of volume %s to %d GiB did not happen", v.ID, newSize))
		}
		if err := s.charge(ctx, tx, opCommit, false, extendCharge(v, newSize, 1)...); err != nil {
			return err
		}
		return tk.Complete(ctx, tx)
	})
}

// chargeTransfer moves what a transferred volume uses (and its snapshots
// unless they stay) from its owners to project, in the transaction that
// changes the owner: Cinder checks per_volume_gigabytes, then the volume's
// quota, then the snapshots', each with its own error.
func (s *Service) chargeTransfer(ctx context.Context, tx *db.Tx, v *vol, snaps []*snapshot, noSnapshots bool, project string) error {
	if err := s.checkVolumeSize(ctx, tx, project, v.Size); err != nil {
		return err
	}
	ch := append(volumeCharge(project, v.Size, v.TypeID, 1), volumeCharge(v.ProjectID, v.Size, v.TypeID, -1)...)
	if err := s.charge(ctx, tx, opVolume, false, ch...); err != nil {
		return err
	}
	if noSnapshots {
		return nil
	}
	ch = nil
	for _, sn := range snaps {
		ch = append(ch, snapshotCharge(project, sn.VolumeSize, sn.TypeID, 1)...)
		ch = append(ch, snapshotCharge(sn.ProjectID, sn.VolumeSize, sn.TypeID, -1)...)
	}
	return s.charge(ctx, tx, opSnapshot, false, ch...)
}
