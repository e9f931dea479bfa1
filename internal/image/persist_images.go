package image

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// The SQL of images and what belongs to them (properties, tags, locations).

const imageCols = `id, name, status, visibility, owner, disk_format, container_format, size, virtual_size,
checksum, os_hash_algo, os_hash_value, min_disk, min_ram, protected, os_hidden, created_at, updated_at`

// childCols are an image's properties, tags and locations, each
// aggregated into one column of length-prefixed texts ("<bytes>:<text>",
// so any content survives), so that one row carries a whole image: a show
// or a list page is one statement, hence one snapshot on both engines, and
// a page of 25 images reads 25 rows instead of 25 plus one per property,
// tag and copy, which made a page cost as much as ~10 shows. Locations
// carry their position; scanImage sorts tags and locations (an ORDER BY
// inside the aggregates costs both engines a sort per image).
const childCols = `(SELECT string_agg(octet_length(name) || ':' || name || octet_length(value) || ':' || value, '')
 FROM image_properties p WHERE p.image_id = images.id),
(SELECT string_agg(octet_length(tag) || ':' || tag, '') FROM image_tags t WHERE t.image_id = images.id),
(SELECT string_agg(octet_length(CAST(position AS TEXT)) || ':' || position || octet_length(store) || ':' || store
 || octet_length(url) || ':' || url, '') FROM image_locations l WHERE l.image_id = images.id)`

// selectImages reads whole images.
const selectImages = "SELECT " + imageCols + ", " + childCols + " FROM images"

// imageRow holds what Scan fills for one row (one allocation, where
// separate variables would each escape to the heap).
type imageRow struct {
	name, disk, container, checksum, algo, hash, props, tags, locs sql.NullString
	size, vsize                                                    sql.NullInt64
}

// scanImage reads a row of selectImages.
func scanImage(sc db.Row) (*Image, error) {
	im := &Image{}
	// Nullable columns go through sql.Null*: database/sql fills a **string
	// by reflection, a third of the Go time of reading a page.
	r := &imageRow{}
	err := sc.Scan(&im.ID, &r.name, &im.Status, &im.Visibility, &im.Owner, &r.disk, &r.container,
		&r.size, &r.vsize, &r.checksum, &r.algo, &r.hash, &im.MinDisk, &im.MinRAM,
		&im.Protected, &im.Hidden, &im.CreatedAt, &im.UpdatedAt, &r.props, &r.tags, &r.locs)
	if err != nil {
		return nil, err
	}
	im.Name, im.DiskFormat, im.ContainerFormat = nullString(&r.name), nullString(&r.disk), nullString(&r.container)
	im.Checksum, im.HashAlgo, im.HashValue = nullString(&r.checksum), nullString(&r.algo), nullString(&r.hash)
	im.Size, im.VirtualSize = nullInt(&r.size), nullInt(&r.vsize)
	p, err := unprefix(r.props.String)
	im.Props = make(map[string]string, len(p)/2)
	for i := 0; err == nil && i+1 < len(p); i += 2 {
		im.Props[p[i]] = p[i+1]
	}
	if err == nil {
		im.Tags, err = unprefix(r.tags.String)
		slices.Sort(im.Tags)
	}
	var l []string
	if err == nil {
		l, err = unprefix(r.locs.String)
	}
	if err == nil {
		im.Locations, err = sortedLocations(l)
	}
	return im, err
}

// sortedLocations turns position, store, url triples into locations in
// position order.
func sortedLocations(l []string) ([]Location, error) {
	if len(l) == 0 {
		return nil, nil
	}
	type located struct {
		pos int64
		loc Location
	}
	ls := make([]located, 0, len(l)/3)
	for i := 0; i+2 < len(l); i += 3 {
		pos, err := strconv.ParseInt(l[i], 10, 64)
		if err != nil {
			return nil, err
		}
		ls = append(ls, located{pos, Location{Store: l[i+1], URL: l[i+2]}})
	}
	slices.SortFunc(ls, func(a, b located) int { return cmp.Compare(a.pos, b.pos) })
	out := make([]Location, len(ls))
	for i, x := range ls {
		out[i] = x.loc
	}
	return out, nil
}

func nullString(ns *sql.NullString) *string {
	if !ns.Valid {
		return nil
	}
	return &ns.String
}

func nullInt(n *sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

// unprefix splits a concatenation of "<bytes>:<text>" items.
func unprefix(s string) ([]string, error) {
	out := make([]string, 0, strings.Count(s, ":"))
	for s != "" {
		n, rest, ok := strings.Cut(s, ":")
		size, err := strconv.Atoi(n)
		if !ok || err != nil || size < 0 || size > len(rest) {
			return nil, fmt.Errorf("malformed aggregate column near %.20q", s)
		}
		out, s = append(out, rest[:size]), rest[size:]
	}
	return out, nil
}

// visibility is which images a caller sees: the one rule behind showing an
// image by id and listing images (another project's image that is not
// visible is a 404, never a 403).
type visibility struct {
	caller *auth.Caller
	// community: other projects' community images count (an image by id,
	// lists asked for visibility=all); a default list leaves them out.
	community bool
	// memberStatus limits other projects' shared images to memberships in
	// this status; "" and "all" take any membership.
	memberStatus string
	// adminMembers applies the membership rule to admins as well (lists
	// filtered by member_status); otherwise admins see every image.
	adminMembers bool
}

// visibleTo is the rule for one image by id.
func visibleTo(c *auth.Caller) visibility { return visibility{caller: c, community: true} }

// where returns the SQL condition on images (none when the caller sees
// everything) and its arguments. It is written as one CASE, which both
// engines evaluate as a filter while walking the sort order's index, so a
// page stops after limit visible rows; an OR of indexable terms made
// SQLite collect and sort every visible image for each page.
func (v visibility) where() (string, []any) {
	c := v.caller
	member := "EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id AND m.member = ?"
	margs := []any{c.ProjectID}
	if v.memberStatus != "" && v.memberStatus != "all" {
		member += " AND m.status = ?"
		margs = append(margs, v.memberStatus)
	}
	member += ")"
	if c.IsAdmin() {
		if !v.adminMembers {
			return "", nil
		}
		return "(CASE WHEN visibility <> 'shared' THEN 1 WHEN owner = ? THEN 1 WHEN " + member + " THEN 1 ELSE 0 END) = 1",
			append([]any{c.ProjectID}, margs...)
	}
	cond := "(CASE WHEN owner = ? THEN 1 WHEN visibility = 'public' THEN 1 "
	if v.community {
		cond += "WHEN visibility = 'community' THEN 1 "
	}
	cond += "WHEN visibility = 'shared' AND " + member + " THEN 1 ELSE 0 END) = 1"
	return cond, append([]any{c.ProjectID}, margs...)
}

// loadImage reads one image with everything attached, in one statement
// (one snapshot); errs.NotFound when there is none.
func loadImage(ctx context.Context, q db.Querier, id string) (*Image, error) {
	return loadImageWhere(ctx, q, id, "", nil)
}

// loadVisibleImage is loadImage for an image v lets its caller see; an
// invisible image is errs.NotFound like a missing one.
func loadVisibleImage(ctx context.Context, q db.Querier, v visibility, id string) (*Image, error) {
	cond, args := v.where()
	return loadImageWhere(ctx, q, id, cond, args)
}

func loadImageWhere(ctx context.Context, q db.Querier, id, cond string, args []any) (*Image, error) {
	query := selectImages + " WHERE id = ?"
	if cond != "" {
		query += " AND " + cond
	}
	im, err := scanImage(q.QueryRowContext(ctx, query, append([]any{id}, args...)...))
	if db.IsNoRows(err) {
		return nil, errs.E(errs.NotFound, "No image found with ID %s", id)
	}
	return im, err
}

func insertImage(ctx context.Context, tx *db.Tx, im *Image) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO images ("+imageCols+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
		im.ID, im.Name, im.Status, im.Visibility, im.Owner, im.DiskFormat, im.ContainerFormat, im.Size, im.VirtualSize,
		im.Checksum, im.HashAlgo, im.HashValue, im.MinDisk, im.MinRAM, im.Protected, im.Hidden, im.CreatedAt, im.UpdatedAt)
	if db.IsUniqueViolation(err) {
		return errs.E(errs.Conflict, "Image ID %s already exists!", im.ID)
	}
	if err != nil {
		return err
	}
	return writeChildren(ctx, tx, im)
}

// updateImage writes the image's mutable columns, properties and tags.
func updateImage(ctx context.Context, tx *db.Tx, im *Image) error {
	_, err := tx.ExecContext(ctx, `UPDATE images SET name = ?, status = ?, visibility = ?, owner = ?, disk_format = ?,
container_format = ?, size = ?, virtual_size = ?, checksum = ?, os_hash_algo = ?, os_hash_value = ?, min_disk = ?,
min_ram = ?, protected = ?, os_hidden = ?, updated_at = ? WHERE id = ?`,
		im.Name, im.Status, im.Visibility, im.Owner, im.DiskFormat, im.ContainerFormat, im.Size, im.VirtualSize,
		im.Checksum, im.HashAlgo, im.HashValue, im.MinDisk, im.MinRAM, im.Protected, im.Hidden, im.UpdatedAt, im.ID)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM image_properties WHERE image_id = ?", im.ID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM image_tags WHERE image_id = ?", im.ID); err != nil {
		return err
	}
	return writeChildren(ctx, tx, im)
}

func writeChildren(ctx context.Context, tx *db.Tx, im *Image) error {
	for k, v := range im.Props {
		if _, err := tx.ExecContext(ctx, "INSERT INTO image_properties (image_id, name, value) VALUES (?,?,?)", im.ID, k, v); err != nil {
			return err
		}
	}
	for _, t := range im.Tags {
		if err := addTag(ctx, tx, im.ID, t); err != nil {
			return err
		}
	}
	return nil
}

// withStatus adds "AND status = ?" to an update when status is set.
func withStatus(query string, args []any, status string) (string, []any) {
	if status == "" {
		return query, args
	}
	return query + " AND status = ?", append(args, status)
}

// deleteImageRow deletes an image and, by cascade, what belongs to it;
// errs.NotFound when it is already gone.
func deleteImageRow(ctx context.Context, q db.Querier, id string) error {
	ok, err := db.Changed(ctx, q, "DELETE FROM images WHERE id = ?", id)
	if err == nil && !ok {
		err = errs.E(errs.NotFound, "Failed to find image %s to delete", id)
	}
	return err
}

// setProps upserts (value non-nil) or deletes (nil) properties in place,
// without touching the rest of the image; used by the data and import paths.
func setProps(ctx context.Context, q db.Querier, id string, props map[string]*string) error {
	for k, v := range props {
		var err error
		if v == nil {
			_, err = q.ExecContext(ctx, "DELETE FROM image_properties WHERE image_id = ? AND name = ?", id, k)
		} else {
			_, err = q.ExecContext(ctx, `INSERT INTO image_properties (image_id, name, value) VALUES (?,?,?)
ON CONFLICT (image_id, name) DO UPDATE SET value = excluded.value`, id, k, *v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// setStatus moves an image to status to if its status is one of from; it
// reports whether it did.
func setStatus(ctx context.Context, q db.Querier, id, to string, from ...string) (bool, error) {
	args := []any{to, db.Now(), id}
	for _, f := range from {
		args = append(args, f)
	}
	return db.Changed(ctx, q, "UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status IN ("+db.Placeholders(len(from))+")", args...)
}

// moveStatus is setStatus from one status, answering Glance's 409 (with
// the status the image really has) when the image is not in it.
func moveStatus(ctx context.Context, q db.Querier, id, from, to string) error {
	ok, err := setStatus(ctx, q, id, to, from)
	if err != nil || ok {
		return err
	}
	cur, err := loadImage(ctx, q, id)
	if err != nil {
		return err
	}
	return errs.E(errs.Conflict, "Image status transition from %s to %s is not allowed", cur.Status, to)
}

// touchImage sets updated_at.
func touchImage(ctx context.Context, q db.Querier, id string) error {
	_, err := q.ExecContext(ctx, "UPDATE images SET updated_at = ? WHERE id = ?", db.Now(), id)
	return err
}

func addTag(ctx context.Context, q db.Querier, id, tag string) error {
	_, err := q.ExecContext(ctx, "INSERT INTO image_tags (image_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING", id, tag)
	return err
}

// deleteTag removes a tag; errs.NotFound when the image has no such tag.
func deleteTag(ctx context.Context, q db.Querier, id, tag string) error {
	ok, err := db.Changed(ctx, q, "DELETE FROM image_tags WHERE image_id = ? AND tag = ?", id, tag)
	if err == nil && !ok {
		err = errs.E(errs.NotFound, "Tag %s not found", tag)
	}
	return err
}

// imageData is what one pass over an image's data learned.
type imageData struct {
	Size        int64
	VirtualSize *int64
	MD5, Algo   string
	Hash        string
}

// activate makes an image active with the sizes and hashes of its data,
// if its status is from ("" for any); it reports whether it did.
func activate(ctx context.Context, q db.Querier, id, from string, d imageData) (bool, error) {
	query, args := withStatus(`UPDATE images SET status = ?, size = ?, virtual_size = ?, checksum = ?, os_hash_algo = ?,
os_hash_value = ?, updated_at = ? WHERE id = ?`, []any{StatusActive, d.Size, d.VirtualSize, d.MD5, d.Algo, d.Hash, db.Now(), id}, from)
	return db.Changed(ctx, q, query, args...)
}

// setSize records the size of staged data, if the image's status is
// status ("" for any); it reports whether it did.
func setSize(ctx context.Context, q db.Querier, id string, size int64, status string) (bool, error) {
	query, args := withStatus("UPDATE images SET size = ?, updated_at = ? WHERE id = ?", []any{size, db.Now(), id}, status)
	return db.Changed(ctx, q, query, args...)
}

// settleFailedImport puts an image whose import failed into status with
// size; an image that is not active loses its hashes.
func settleFailedImport(ctx context.Context, q db.Querier, id, status string, size *int64) error {
	if _, err := q.ExecContext(ctx, "UPDATE images SET status = ?, size = ?, updated_at = ? WHERE id = ?", status, size, db.Now(), id); err != nil {
		return err
	}
	if status == StatusActive {
		return nil
	}
	_, err := q.ExecContext(ctx, "UPDATE images SET checksum = NULL, os_hash_algo = NULL, os_hash_value = NULL, virtual_size = NULL WHERE id = ?", id)
	return err
}

// lockForImport moves an image from status from to to unless another
// import holds its lock (the lockProp property); it reports whether it did.
func lockForImport(ctx context.Context, q db.Querier, id, from, to, lockProp string) (bool, error) {
	return db.Changed(ctx, q, `UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = ?
AND NOT EXISTS (SELECT 1 FROM image_properties WHERE image_id = ? AND name = ?)`, to, db.Now(), id, from, id, lockProp)
}

// addLocation records a store copy after the image's other copies.
func addLocation(ctx context.Context, q db.Querier, imageID, storeID, url string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO image_locations (image_id, store, url, position)
VALUES (?, ?, ?, (SELECT COALESCE(MAX(position), 0) + 1 FROM image_locations WHERE image_id = ?))`,
		imageID, storeID, url, imageID)
	return err
}

func deleteLocation(ctx context.Context, q db.Querier, imageID, storeID string) error {
	_, err := q.ExecContext(ctx, "DELETE FROM image_locations WHERE image_id = ? AND store = ?", imageID, storeID)
	return err
}

// projectUsage is the bytes a project stores, counting every copy (as
// Glance's user_storage_quota does).
func projectUsage(ctx context.Context, q db.Querier, owner string) (int64, error) {
	var used int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(SUM(COALESCE(i.size, 0)), 0) FROM images i
JOIN image_locations l ON l.image_id = i.id WHERE i.owner = ?`, owner).Scan(&used)
	return used, err
}

// countImages is the number of images a project owns.
func countImages(ctx context.Context, q db.Querier, owner string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM images WHERE owner = ?", owner).Scan(&n)
	return n, err
}

// listImages reads one page of lq for caller c, after marker (nil for the
// first page), with everything attached, in one statement (one snapshot).
func listImages(ctx context.Context, q db.Querier, c *auth.Caller, lq *listQuery, marker *Image) ([]*Image, error) {
	where, args := lq.where(c)
	if marker != nil {
		cond, a := keyset(lq.sort, marker)
		where, args = append(where, cond), append(args, a...)
	}
	order := make([]string, 0, len(lq.sort))
	for _, sp := range lq.sort {
		d := " DESC"
		if sp.asc {
			d = " ASC"
		}
		order = append(order, sortExpr(sp.key)+d)
	}
	query := selectImages
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(lq.limit)
	return db.QueryRows(ctx, q, scanImage, query, args...)
}

// where returns the conditions of a list and their arguments.
func (lq *listQuery) where(c *auth.Caller) ([]string, []any) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		if cond != "" {
			where = append(where, cond)
			args = append(args, a...)
		}
	}
	v := visibility{caller: c, community: true, memberStatus: lq.memberStatus}
	switch lq.visibility {
	case "":
		v.community, v.adminMembers = false, lq.memberStatusGiven
	case "shared":
		v.adminMembers = lq.memberStatusGiven
	}
	if lq.visibility != "" && lq.visibility != "all" {
		add("visibility = ?", lq.visibility)
	}
	cond, a := v.where()
	add(cond, a...)
	// Booleans and the limit are written as literals (from parsed values,
	// never text of the request): SQLite re-prepares a statement whose
	// bound os_hidden or LIMIT value could change its plan, a second parse
	// of every list query.
	add("os_hidden = " + sqlBool(lq.hidden))
	if lq.protected != nil {
		add("protected = " + sqlBool(*lq.protected))
	}
	for _, f := range lq.columns {
		if len(f.values) == 1 {
			add(f.col+" = ?", f.values[0])
			continue
		}
		a := make([]any, len(f.values))
		for i, x := range f.values {
			a[i] = x
		}
		add(f.col+" IN ("+db.Placeholders(len(a))+")", a...)
	}
	for _, t := range lq.tags {
		add("EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = images.id AND t.tag = ?)", t)
	}
	for _, f := range lq.ranges {
		add(f.col+" "+f.op+" ?", f.value)
	}
	for _, p := range lq.props {
		add("EXISTS (SELECT 1 FROM image_properties p WHERE p.image_id = images.id AND p.name = ? AND p.value = ?)", p[0], p[1])
	}
	return where, args
}

func sqlBool(b bool) string {
	if b {
		return "TRUE"
	}
	return "FALSE"
}

// sortExpr is the SQL expression for a sort key; NULLs become a value that
// sorts first ascending on both engines so keyset paging stays exact (the
// indexes of migration 02001 index the same expressions).
func sortExpr(k string) string {
	switch k {
	case "name", "container_format", "disk_format":
		return "COALESCE(" + k + ", '')"
	case "size":
		return "COALESCE(size, -1)"
	}
	return k
}

// keyset returns the condition selecting rows strictly after the marker
// in the sort order: (k1 after v1) OR (k1 = v1 AND k2 after v2) ...
func keyset(specs []sortSpec, m *Image) (string, []any) {
	val := func(k string) any {
		switch k {
		case "name":
			return deref(m.Name)
		case "status":
			return m.Status
		case "container_format":
			return deref(m.ContainerFormat)
		case "disk_format":
			return deref(m.DiskFormat)
		case "size":
			if m.Size == nil {
				return int64(-1)
			}
			return *m.Size
		case "id":
			return m.ID
		case "created_at":
			return m.CreatedAt
		case "updated_at":
			return m.UpdatedAt
		}
		return nil
	}
	var ors []string
	var args []any
	for i, sp := range specs {
		var ands []string
		for _, prev := range specs[:i] {
			ands = append(ands, sortExpr(prev.key)+" = ?")
			args = append(args, val(prev.key))
		}
		op := " < ?"
		if sp.asc {
			op = " > ?"
		}
		ands = append(ands, sortExpr(sp.key)+op)
		args = append(args, val(sp.key))
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", args
}

// stagedDataNeeded reports whether staged data under key (an image id)
// still belongs to its image: the image exists and is uploading or
// importing. In tx, an image that does not need it is locked (a stage
// waits for the caller to commit).
func stagedDataNeeded(ctx context.Context, tx *db.Tx, key string) (bool, error) {
	locked, err := db.Changed(ctx, tx, `UPDATE images SET updated_at = updated_at WHERE id = ? AND status NOT IN (?, ?)`,
		key, StatusUploading, StatusImporting)
	if err != nil || locked {
		return false, err
	}
	var n int
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE id = ?`, key).Scan(&n)
	return n > 0, err
}

// StoreUse is what one store holds.
type StoreUse struct{ Images, Bytes int64 }

// StoreUsage counts the images and bytes every store holds (by location),
// for stores detail and `ashlar stores`.
func StoreUsage(ctx context.Context, q db.Querier) (map[string]StoreUse, error) {
	return db.QueryMap(ctx, q, func(r db.Row) (id string, u StoreUse, err error) {
		err = r.Scan(&id, &u.Images, &u.Bytes)
		return id, u, err
	}, `SELECT l.store, COUNT(*), COALESCE(SUM(COALESCE(i.size, 0)), 0) FROM image_locations l
JOIN images i ON i.id = l.image_id GROUP BY l.store`)
}
