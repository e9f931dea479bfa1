package image

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Image statuses.
const (
	StatusQueued      = "queued"
	StatusSaving      = "saving"
	StatusActive      = "active"
	StatusKilled      = "killed"
	StatusDeleted     = "deleted"
	StatusUploading   = "uploading"
	StatusImporting   = "importing"
	StatusDeactivated = "deactivated"
)

// Image is one image row with its properties, tags and locations.
type Image struct {
	ID              string
	Name            *string
	Status          string
	Visibility      string
	Owner           string
	DiskFormat      *string
	ContainerFormat *string
	Size            *int64
	VirtualSize     *int64
	Checksum        *string
	HashAlgo        *string
	HashValue       *string
	MinDisk         int64
	MinRAM          int64
	Protected       bool
	Hidden          bool
	CreatedAt       db.Timestamp
	UpdatedAt       db.Timestamp
	Props           map[string]string
	Tags            []string
	Locations       []Location
}

// Location is one store copy of an image.
type Location struct {
	Store string
	URL   string
}

// StoreIDs returns the stores holding the image, sorted by id (tempest
// compares the comma-separated list sorted).
func (im *Image) StoreIDs() []string {
	out := make([]string, 0, len(im.Locations))
	for _, l := range im.Locations {
		out = append(out, l.Store)
	}
	sort.Strings(out)
	return out
}

// HasStore reports whether the image has a copy in store.
func (im *Image) HasStore(id string) bool {
	for _, l := range im.Locations {
		if l.Store == id {
			return true
		}
	}
	return false
}

const imageCols = `id, name, status, visibility, owner, disk_format, container_format, size, virtual_size,
checksum, os_hash_algo, os_hash_value, min_disk, min_ram, protected, os_hidden, created_at, updated_at`

func scanImage(sc interface{ Scan(...any) error }) (*Image, error) {
	im := &Image{}
	err := sc.Scan(&im.ID, &im.Name, &im.Status, &im.Visibility, &im.Owner, &im.DiskFormat, &im.ContainerFormat,
		&im.Size, &im.VirtualSize, &im.Checksum, &im.HashAlgo, &im.HashValue, &im.MinDisk, &im.MinRAM,
		&im.Protected, &im.Hidden, &im.CreatedAt, &im.UpdatedAt)
	return im, err
}

// loadImage reads one image with everything attached; errs.NotFound when
// there is none. Given the pool, it reads in one snapshot (db.Snapshot).
func loadImage(ctx context.Context, q db.Querier, id string) (*Image, error) {
	return db.Snapshot(ctx, q, func(q db.Querier) (*Image, error) {
		im, err := scanImage(q.QueryRowContext(ctx, "SELECT "+imageCols+" FROM images WHERE id = ?", id))
		if db.IsNoRows(err) {
			return nil, errs.E(errs.NotFound, "No image found with ID %s", id)
		}
		if err != nil {
			return nil, err
		}
		if err := attach(ctx, q, []*Image{im}); err != nil {
			return nil, err
		}
		return im, nil
	})
}

// attach loads properties, tags and locations of images in three queries.
func attach(ctx context.Context, q db.Querier, ims []*Image) error {
	if len(ims) == 0 {
		return nil
	}
	byID := map[string]*Image{}
	args := make([]any, 0, len(ims))
	for _, im := range ims {
		im.Props = map[string]string{}
		im.Tags = []string{}
		im.Locations = nil
		byID[im.ID] = im
		args = append(args, im.ID)
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?,", len(ims)), ",") + ")"
	rows, err := q.QueryContext(ctx, "SELECT image_id, name, value FROM image_properties WHERE image_id IN "+in, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			rows.Close()
			return err
		}
		byID[id].Props[k] = v
	}
	rows.Close()
	rows, err = q.QueryContext(ctx, "SELECT image_id, tag FROM image_tags WHERE image_id IN "+in+" ORDER BY tag", args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, t string
		if err := rows.Scan(&id, &t); err != nil {
			rows.Close()
			return err
		}
		byID[id].Tags = append(byID[id].Tags, t)
	}
	rows.Close()
	rows, err = q.QueryContext(ctx, "SELECT image_id, store, url FROM image_locations WHERE image_id IN "+in+" ORDER BY position", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var l Location
		if err := rows.Scan(&id, &l.Store, &l.URL); err != nil {
			return err
		}
		byID[id].Locations = append(byID[id].Locations, l)
	}
	return rows.Err()
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
		if _, err := tx.ExecContext(ctx, "INSERT INTO image_tags (image_id, tag) VALUES (?,?) ON CONFLICT DO NOTHING", im.ID, t); err != nil {
			return err
		}
	}
	return nil
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

func strp(s string) *string { return &s }
func i64p(n int64) *int64   { return &n }

// kv is one member of an ordered JSON object.
type kv struct {
	k string
	v any
}

// object is a JSON object that keeps its member order, so bodies read like
// Glance's (custom properties first, stores last).
type object []kv

// MarshalJSON implements json.Marshaler.
func (o object) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteString(", ")
		}
		kb, _ := json.Marshal(m.k)
		b.Write(kb)
		b.WriteString(": ")
		vb, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// hiddenProps are bookkeeping properties never shown.
var hiddenProps = map[string]bool{"os_glance_stage_host": true}

// view renders an image the way Glance v2 does.
func (s *Service) view(im *Image) object {
	o := object{}
	keys := make([]string, 0, len(im.Props))
	for k := range im.Props {
		if !hiddenProps[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		o = append(o, kv{k, im.Props[k]})
	}
	locs := make([]object, 0, len(im.Locations))
	for _, l := range im.Locations {
		locs = append(locs, object{{"url", l.URL}, {"metadata", object{{"store", l.Store}}}})
	}
	o = append(o,
		kv{"name", im.Name}, kv{"disk_format", im.DiskFormat}, kv{"container_format", im.ContainerFormat},
		kv{"visibility", im.Visibility}, kv{"size", im.Size}, kv{"virtual_size", im.VirtualSize},
		kv{"status", im.Status}, kv{"checksum", im.Checksum}, kv{"protected", im.Protected},
		kv{"min_ram", im.MinRAM}, kv{"min_disk", im.MinDisk}, kv{"owner", im.Owner}, kv{"os_hidden", im.Hidden},
		kv{"os_hash_algo", im.HashAlgo}, kv{"os_hash_value", im.HashValue}, kv{"id", im.ID},
		kv{"created_at", isoTime(im.CreatedAt)}, kv{"updated_at", isoTime(im.UpdatedAt)},
		kv{"locations", locs})
	if len(im.Locations) > 0 {
		o = append(o, kv{"direct_url", im.Locations[0].URL})
	}
	o = append(o, kv{"tags", im.Tags}, kv{"self", "/v2/images/" + im.ID}, kv{"file", "/v2/images/" + im.ID + "/file"},
		kv{"schema", "/v2/schemas/image"})
	if len(im.Locations) > 0 {
		o = append(o, kv{"stores", strings.Join(im.StoreIDs(), ",")})
	}
	return o
}

// isoTime is Glance's timestamp format (seconds, Z).
func isoTime(t db.Timestamp) string { return t.Time.UTC().Format("2006-01-02T15:04:05Z") }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
