package volume

// Persistence of volumes: the volumes table, a volume's metadata and image
// metadata. Every SQL statement about volume rows is here.

import (
	"context"
	"maps"
	"sort"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// vol is a volume row with its metadata.
type vol struct {
	ID, ProjectID, UserID string
	Name, Description     *string
	Size                  int64
	Status                string
	PreviousStatus        *string
	AttachStatus          string
	TypeID                *string
	TypeName              *string
	AZ                    string
	Host                  *string
	Bootable, Readonly    bool
	Multiattach           bool
	ImageID, SourceVolID  *string
	SnapshotID            *string
	MigrationStatus       *string
	CreatedAt, UpdatedAt  db.Timestamp
	Metadata              map[string]string
	ImageMetadata         map[string]string
	// Attachments are the volume's attachments, oldest first (loaded with
	// the metadata).
	Attachments []*attachment
}

const volCols = `v.id, v.project_id, v.user_id, v.name, v.description, v.size, v.status, v.previous_status,
	v.attach_status, v.type_id, t.name, v.availability_zone, v.host, v.bootable, v.readonly, v.multiattach,
	v.image_id, v.source_volid, v.snapshot_id, v.migration_status, v.created_at, v.updated_at`

const volFrom = ` FROM volumes v LEFT JOIN volume_types t ON t.id = v.type_id`

// kvSet names a key/value set of volumes or snapshots: its table and the
// column naming the volume or snapshot a row belongs to.
type kvSet struct{ table, owner string }

// The two key/value sets of a volume.
var (
	setMetadata      = kvSet{"volume_metadata", "volume_id"}
	setImageMetadata = kvSet{"volume_image_metadata", "volume_id"}
)

// kv returns the volume's key/values of set.
func (v *vol) kv(set kvSet) map[string]string {
	if set == setImageMetadata {
		return v.ImageMetadata
	}
	return v.Metadata
}

func scanVol(sc db.Row) (*vol, error) {
	v := &vol{}
	err := sc.Scan(&v.ID, &v.ProjectID, &v.UserID, &v.Name, &v.Description, &v.Size, &v.Status, &v.PreviousStatus,
		&v.AttachStatus, &v.TypeID, &v.TypeName, &v.AZ, &v.Host, &v.Bootable, &v.Readonly, &v.Multiattach,
		&v.ImageID, &v.SourceVolID, &v.SnapshotID, &v.MigrationStatus, &v.CreatedAt, &v.UpdatedAt)
	return v, err
}

// volumeNotFound is Cinder's 404 for a volume id.
func volumeNotFound(id string) error {
	return errs.E(errs.NotFound, "Volume %s could not be found.", id)
}

// getVolume loads a volume by id without access checks. Given the pool, it
// reads the row and its metadata in one snapshot (db.Snapshot).
func getVolume(ctx context.Context, q db.Querier, id string) (*vol, error) {
	return getWith(ctx, q, id, getVolumeRow, loadKVs)
}

// getWith loads row id through getRow and what load reads for it (its
// key/value sets, attachments), in one snapshot of the database when q is
// the pool (db.Snapshot).
func getWith[T any](ctx context.Context, q db.Querier, id string, getRow func(context.Context, db.Querier, string) (T, error),
	load func(context.Context, db.Querier, []T) error) (T, error) {
	return db.Snapshot(ctx, q, func(q db.Querier) (T, error) {
		row, err := getRow(ctx, q, id)
		if err != nil {
			var none T
			return none, err
		}
		return row, load(ctx, q, []T{row})
	})
}

// getVolumeRow loads a volume's row without its metadata.
func getVolumeRow(ctx context.Context, q db.Querier, id string) (*vol, error) {
	return rowByID(ctx, q, scanVol, volumeNotFound, `SELECT `+volCols+volFrom+` WHERE v.id = ?`, id)
}

// rowByID reads through scan the row query selects by id (its one
// argument); no row is notFound(id), Cinder's 404 for the kind of row.
func rowByID[T any](ctx context.Context, q db.Querier, scan func(db.Row) (T, error), notFound func(string) error, query, id string) (T, error) {
	row, err := scan(q.QueryRowContext(ctx, query, id))
	if db.IsNoRows(err) {
		var none T
		return none, notFound(id)
	}
	return row, err
}

// readKVs reads set for each of ids with one query: owner id -> key ->
// value (owners without keys are absent).
func readKVs(ctx context.Context, q db.Querier, set kvSet, ids []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	err := db.EachRow(ctx, q, func(r db.Row) error {
		var id, k, val string
		if err := r.Scan(&id, &k, &val); err != nil {
			return err
		}
		if out[id] == nil {
			out[id] = map[string]string{}
		}
		out[id][k] = val
		return nil
	}, `SELECT `+set.owner+`, key, value FROM `+set.table+` WHERE `+set.owner+` IN (`+db.Placeholders(len(ids))+`)`, args...)
	return out, err
}

// loadKVs fills the metadata and attachments of a page of volumes with
// one query per table, not one per volume.
func loadKVs(ctx context.Context, q db.Querier, vols []*vol) error {
	if err := loadKVSets(ctx, q, vols, setMetadata, setImageMetadata); err != nil {
		return err
	}
	return loadAttachments(ctx, q, vols)
}

// kvHolder is a volume or snapshot with key/value sets.
type kvHolder interface {
	// owner is the id its sets' rows name.
	owner() string
	// kv returns set's map, which loadKVSets has made.
	kv(set kvSet) map[string]string
	// setKV replaces set's map.
	setKV(set kvSet, m map[string]string)
}

func (v *vol) owner() string { return v.ID }

func (v *vol) setKV(set kvSet, m map[string]string) {
	if set == setImageMetadata {
		v.ImageMetadata = m
	} else {
		v.Metadata = m
	}
}

// loadKVSets fills sets of rows with one query per set, not one per row.
func loadKVSets[T kvHolder](ctx context.Context, q db.Querier, rows []T, sets ...kvSet) error {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.owner()
	}
	for _, set := range sets {
		m, err := readKVs(ctx, q, set, ids)
		if err != nil {
			return err
		}
		for _, r := range rows {
			r.setKV(set, map[string]string{})
			maps.Copy(r.kv(set), m[r.owner()])
		}
	}
	return nil
}

// insertVolume writes a new volume's row and metadata.
func insertVolume(ctx context.Context, tx *db.Tx, v *vol) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO volumes (id, project_id, user_id, name, description, size, status,
		attach_status, type_id, availability_zone, bootable, multiattach, image_id, source_volid, snapshot_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.ID, v.ProjectID, v.UserID, v.Name, v.Description, v.Size, v.Status, v.AttachStatus, v.TypeID, v.AZ,
		v.Bootable, v.Multiattach, v.ImageID, v.SourceVolID, v.SnapshotID, v.CreatedAt); err != nil {
		return err
	}
	if err := putKV(ctx, tx, setMetadata, v.ID, v.Metadata); err != nil {
		return err
	}
	return putKV(ctx, tx, setImageMetadata, v.ID, v.ImageMetadata)
}

// updateVolumeText writes a volume's name, description and updated_at.
func updateVolumeText(ctx context.Context, q db.Querier, v *vol) error {
	return updateRowText(ctx, q, "volumes", v.ID, v.Name, v.Description, v.UpdatedAt)
}

// setStatus moves a volume from one of the from statuses to to, atomically;
// an Invalid error names the statuses required. A volume moving between
// backends keeps its status (notMigrating): nothing may change its data
// or start work on it until the move ends.
func setStatus(ctx context.Context, q db.Querier, id, to string, from ...string) error {
	args := []any{to, db.Now(), id}
	for _, f := range from {
		args = append(args, f)
	}
	moved, err := db.Changed(ctx, q, `UPDATE volumes SET previous_status = status, status = ?, updated_at = ? WHERE id = ? AND status IN (`+db.Placeholders(len(from))+`) AND `+notMigrating, args...)
	if err != nil {
		return err
	}
	if !moved {
		return errs.E(errs.Invalid, "Invalid volume: Volume %s status must be %s", id, strings.Join(from, " or "))
	}
	return nil
}

// forceStatus sets a volume's status unconditionally (background work).
func forceStatus(ctx context.Context, q db.Querier, id, status string) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET status = ?, updated_at = ? WHERE id = ?`, status, db.Now(), id)
	return err
}

// resetStatus sets a volume's status and attach status (os-reset_status).
func resetStatus(ctx context.Context, q db.Querier, id, status, attachStatus string) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET status = ?, attach_status = ?, updated_at = ? WHERE id = ?`,
		status, attachStatus, db.Now(), id)
	return err
}

// setExtended records an extend that finished: the new size, and in-use
// for a volume still attached (extended from 3.42), else available.
func setExtended(ctx context.Context, q db.Querier, id string, sizeGiB int64) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET size = ?, updated_at = ?,
		status = CASE WHEN attach_status = 'attached' THEN 'in-use' ELSE 'available' END WHERE id = ?`, sizeGiB, db.Now(), id)
	return err
}

// setBootable sets a volume's bootable flag.
func setBootable(ctx context.Context, q db.Querier, id string, bootable bool) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET bootable = ?, updated_at = ? WHERE id = ?`, bootable, db.Now(), id)
	return err
}

// setReadonly sets a volume's readonly flag.
func setReadonly(ctx context.Context, q db.Querier, id string, readonly bool) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET readonly = ?, updated_at = ? WHERE id = ?`, readonly, db.Now(), id)
	return err
}

// setHost records the backend a volume was scheduled to.
func setHost(ctx context.Context, q db.Querier, id, host string) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET host = ? WHERE id = ?`, host, id)
	return err
}

// markCreated moves a creating volume to available with its bootable flag.
// It reports false when the volume was no longer creating (or is gone).
func markCreated(ctx context.Context, q db.Querier, id string, bootable bool) (bool, error) {
	return db.Changed(ctx, q, `UPDATE volumes SET status = 'available', bootable = ?, updated_at = ? WHERE id = ? AND status = 'creating'`,
		bootable, db.Now(), id)
}

// deleteVolumeRow removes a volume's row; its metadata goes with it.
func deleteVolumeRow(ctx context.Context, q db.Querier, id string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM volumes WHERE id = ?`, id)
	return err
}

// putKV upserts key/values into one of a volume's (or snapshot's) sets, in
// key order so concurrent writers lock rows in the same order.
func putKV(ctx context.Context, tx *db.Tx, set kvSet, id string, m map[string]string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+set.table+` (`+set.owner+`, key, value) VALUES (?, ?, ?)
			ON CONFLICT (`+set.owner+`, key) DO UPDATE SET value = excluded.value`, id, k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

// replaceKV makes m the whole of one of a volume's (or snapshot's) sets.
func replaceKV(ctx context.Context, tx *db.Tx, set kvSet, id string, m map[string]string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+set.table+` WHERE `+set.owner+` = ?`, id); err != nil {
		return err
	}
	return putKV(ctx, tx, set, id, m)
}

// deleteKV removes one key of a volume's (or snapshot's) set; false when
// it had none.
func deleteKV(ctx context.Context, q db.Querier, set kvSet, id, key string) (bool, error) {
	return db.Changed(ctx, q, `DELETE FROM `+set.table+` WHERE `+set.owner+` = ? AND key = ?`, id, key)
}

// scope is whose rows a list selects.
type scope struct {
	// AllProjects selects every project's rows, else only ProjectID's.
	AllProjects bool
	ProjectID   string
}

// listFilter is what the volume and snapshot lists filter on alike.
type listFilter struct {
	scope
	// Names must all equal the row's name (name and display_name).
	Names  []string
	Status *string
	// Metadata entries must all be in the row's metadata.
	Metadata map[string]string
}

// whereClause collects the conditions of a list's WHERE clause.
type whereClause struct {
	conds []string
	args  []any
}

func (w *whereClause) add(cond string, args ...any) {
	w.conds, w.args = append(w.conds, cond), append(w.args, args...)
}

// common adds f's conditions on the rows of alias, whose metadata is md.
func (w *whereClause) common(f listFilter, alias string, md kvSet) {
	if !f.AllProjects {
		w.add(alias+".project_id = ?", f.ProjectID)
	}
	for _, n := range f.Names {
		w.add(alias+".name = ?", n)
	}
	if f.Status != nil {
		w.add(alias+".status = ?", *f.Status)
	}
	keys := make([]string, 0, len(f.Metadata))
	for k := range f.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.add("EXISTS (SELECT 1 FROM "+md.table+" m WHERE m."+md.owner+" = "+alias+".id AND m.key = ? AND m.value = ?)", k, f.Metadata[k])
	}
}

// clause renders the conditions as a WHERE clause ("" when there is none).
func (w *whereClause) clause() (string, []any) {
	if len(w.conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(w.conds, " AND "), w.args
}

// volumeFilter selects the volumes of a list or summary.
type volumeFilter struct {
	listFilter
	AZ       *string
	Bootable *bool
}

// where renders the filter as a WHERE clause ("" when it selects all).
func (f volumeFilter) where() (string, []any) {
	var w whereClause
	w.common(f.listFilter, "v", setMetadata)
	if f.AZ != nil {
		w.add("v.availability_zone = ?", *f.AZ)
	}
	if f.Bootable != nil {
		w.add("v.bootable = ?", *f.Bootable)
	}
	return w.clause()
}

// sortColumns maps Cinder's sort keys to the expressions lists order by.
var sortColumns = map[string]string{"id": "v.id", "name": "COALESCE(v.name, '')", "display_name": "COALESCE(v.name, '')",
	"status": "v.status", "size": "v.size", "availability_zone": "v.availability_zone", "created_at": "v.created_at",
	"updated_at": "COALESCE(v.updated_at, '')", "bootable": "v.bootable"}

// listVolumes reads one keyset-paged page: O(offset+limit) rows, however
// many volumes match. more reports that further volumes follow.
func listVolumes(ctx context.Context, q db.Querier, f volumeFilter, p listPage) (vols []*vol, more bool, err error) {
	where, args := f.where()
	k := keyset{table: "volumes", alias: "v", col: sortColumns[p.SortKey]}
	return pageRows(ctx, q, k, `SELECT `+volCols+volFrom, where, args, p, scanVol)
}

// summarizeVolumes counts the volumes f selects and adds up their sizes.
func summarizeVolumes(ctx context.Context, q db.Querier, f volumeFilter) (count, sizeGiB int64, err error) {
	where, args := f.where()
	err = q.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(v.size), 0) FROM volumes v`+where, args...).Scan(&count, &sizeGiB)
	return count, sizeGiB, err
}

// metadataValues returns, per metadata key of the volumes f selects, the
// distinct values it has.
func metadataValues(ctx context.Context, q db.Querier, f volumeFilter) (map[string][]string, error) {
	where, args := f.where()
	out := map[string][]string{}
	err := db.EachRow(ctx, q, func(r db.Row) error {
		var k, val string
		if err := r.Scan(&k, &val); err != nil {
			return err
		}
		out[k] = append(out[k], val)
		return nil
	}, `SELECT DISTINCT m.key, m.value FROM volume_metadata m JOIN volumes v ON v.id = m.volume_id`+where, args...)
	return out, err
}
