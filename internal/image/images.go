package image

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

var (
	diskFormats      = []string{"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
	containerFormats = []string{"ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"}
	visibilities     = []string{"public", "private", "shared", "community"}
	uuidRE           = regexp.MustCompile(`^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$`)
)

// Attributes a client may never set, and the message kind Glance uses.
var (
	createDisallowed = []string{"direct_url", "self", "file", "schema", "stores"}
	readOnlyAttrs    = []string{"created_at", "updated_at", "status", "checksum", "size", "virtual_size",
		"direct_url", "self", "file", "schema", "id", "os_hash_algo", "os_hash_value", "stores"}
	reservedAttrs = []string{"location", "locations", "deleted", "deleted_at"}
)

const reservedNS = "os_glance"

func schemaErr(format string, args ...any) error {
	return errs.E(errs.Invalid, "Provided object does not match schema 'image': "+format, args...)
}

func forbiddenAttr(msg string) error {
	return &errs.Error{Kind: errs.Forbidden, Msg: "Access was denied to this resource.", Detail: msg}
}

// decodeObject reads a JSON object body, keeping numbers exact.
func decodeObject(r *http.Request) (map[string]any, error) {
	var raw any
	if err := api.DecodeJSON(r, &raw, 0); err != nil {
		if errs.Is(err, errs.Invalid) {
			return nil, errs.E(errs.Invalid, "Malformed JSON in request body.")
		}
		return nil, err
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, errs.E(errs.Invalid, "Malformed JSON in request body.")
	}
	return m, nil
}

// applyAttr validates one attribute and sets it on im. Custom properties
// must be strings (the image schema's additionalProperties).
func applyAttr(c *auth.Caller, im *Image, k string, v any) error {
	str := func() (*string, error) {
		if v == nil {
			return nil, nil
		}
		s, ok := v.(string)
		if !ok {
			return nil, schemaErr("%s is not of type 'string'", jsonText(v))
		}
		return &s, nil
	}
	enum := func(allowed []string) (*string, error) {
		s, err := str()
		if err != nil || s == nil {
			return s, err
		}
		if !slices.Contains(allowed, *s) {
			return nil, schemaErr("'%s' is not one of [None, '%s']", *s, strings.Join(allowed, "', '"))
		}
		return s, nil
	}
	boolean := func() (bool, error) {
		b, ok := v.(bool)
		if !ok {
			return false, schemaErr("%s is not of type 'boolean'", jsonText(v))
		}
		return b, nil
	}
	integer := func() (int64, error) {
		n, ok := v.(json.Number)
		if !ok {
			return 0, schemaErr("%s is not of type 'integer'", jsonText(v))
		}
		i, err := n.Int64()
		if err != nil {
			return 0, schemaErr("%s is not of type 'integer'", n)
		}
		if i < 0 {
			return 0, schemaErr("%d is less than the minimum of 0", i)
		}
		return i, nil
	}
	var err error
	switch k {
	case "name":
		var s *string
		if s, err = str(); err == nil && s != nil && len(*s) > 255 {
			err = schemaErr("'%s' is too long", *s)
		}
		if err == nil {
			im.Name = s
		}
	case "disk_format":
		var s *string
		if s, err = enum(diskFormats); err == nil {
			im.DiskFormat = s
		}
	case "container_format":
		var s *string
		if s, err = enum(containerFormats); err == nil {
			im.ContainerFormat = s
		}
	case "visibility":
		s, ok := v.(string)
		if !ok || !slices.Contains(visibilities, s) {
			return schemaErr("%s is not one of ['community', 'public', 'private', 'shared']", jsonText(v))
		}
		if s == "public" && !c.IsAdmin() && im.Visibility != "public" {
			return &errs.Error{Kind: errs.Forbidden, Msg: "You are not authorized to complete publicize_image action."}
		}
		im.Visibility = s
	case "protected":
		im.Protected, err = boolean()
	case "os_hidden":
		im.Hidden, err = boolean()
	case "min_disk":
		im.MinDisk, err = integer()
	case "min_ram":
		im.MinRAM, err = integer()
	case "owner":
		var s *string
		if s, err = str(); err == nil {
			if s == nil || *s == "" {
				return schemaErr("owner must be set")
			}
			if *s != im.Owner && !c.IsAdmin() {
				return errs.E(errs.Forbidden, "You are not permitted to create images owned by '%s'.", *s)
			}
			im.Owner = *s
		}
	case "tags":
		arr, ok := v.([]any)
		if !ok {
			return schemaErr("%s is not of type 'array'", jsonText(v))
		}
		tags := []string{}
		for _, t := range arr {
			s, ok := t.(string)
			if !ok {
				return schemaErr("%s is not of type 'string'", jsonText(t))
			}
			if len(s) > 255 {
				return schemaErr("'%s' is too long", s)
			}
			if !slices.Contains(tags, s) {
				tags = append(tags, s)
			}
		}
		slices.Sort(tags)
		im.Tags = tags
	default:
		if len(k) > 255 {
			return errs.E(errs.Invalid, "Custom property should not be greater than 255 characters.")
		}
		if v == nil {
			delete(im.Props, k)
			return nil
		}
		s, ok := v.(string)
		if !ok {
			return schemaErr("%s is not of type 'string'", jsonText(v))
		}
		if len(s) > 65535 {
			return schemaErr("'%s...' is too long", s[:32])
		}
		im.Props[k] = s
	}
	return err
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *Service) storeHeaders(w http.ResponseWriter) {
	ids := make([]string, 0, len(s.stores.All()))
	for _, st := range s.stores.All() {
		ids = append(ids, st.ID)
	}
	w.Header().Set("OpenStack-image-store-ids", strings.Join(ids, ","))
	w.Header().Set("OpenStack-image-import-methods", strings.Join(s.cfg.Image.ImportMethods, ","))
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	if err := enforce(c, "add_image", nil); err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := decodeObject(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, k := range createDisallowed {
		if _, ok := body[k]; ok {
			s.fail(w, r, errs.E(errs.Forbidden, "Attribute '%s' is read-only.", k))
			return
		}
	}
	now := db.Now()
	im := &Image{ID: uuid.NewString(), Status: StatusQueued, Visibility: "shared", Owner: c.ProjectID,
		CreatedAt: now, UpdatedAt: now, Props: map[string]string{}, Tags: []string{}}
	if v, ok := body["id"]; ok {
		id, _ := v.(string)
		if !uuidRE.MatchString(id) {
			s.fail(w, r, schemaErr("%s does not match '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$'", jsonText(v)))
			return
		}
		im.ID = strings.ToLower(id)
	}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "id" {
			continue
		}
		if slices.Contains(readOnlyAttrs, k) {
			s.fail(w, r, errs.E(errs.Forbidden, "Attribute '%s' is read-only.", k))
			return
		}
		if slices.Contains(reservedAttrs, k) {
			s.fail(w, r, errs.E(errs.Forbidden, "Attribute '%s' is reserved.", k))
			return
		}
		if strings.HasPrefix(k, reservedNS) {
			s.fail(w, r, forbiddenAttr(fmt.Sprintf("Attribute '%s' is reserved.", k)))
			return
		}
		if err := applyAttr(c, im, k, body[k]); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if im.Owner != c.ProjectID {
		if err := enforce(c, "add_image", im); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if err := s.deps.DB.InTx(r.Context(), func(tx *db.Tx) error { return insertImage(r.Context(), tx, im) }); err != nil {
		s.fail(w, r, err)
		return
	}
	s.storeHeaders(w)
	w.Header().Set("Location", strings.TrimSuffix(s.cfg.Image.PublicURL, "/")+"/v2/images/"+im.ID)
	api.WriteJSON(w, http.StatusCreated, s.view(im))
}

// visible reports whether c may see im at all (others' private images are
// 404, not 403).
func (s *Service) visible(ctx context.Context, c *auth.Caller, im *Image) (bool, error) {
	if c.IsAdmin() || im.Owner == c.ProjectID || im.Visibility == "public" || im.Visibility == "community" {
		return true, nil
	}
	if im.Visibility != "shared" {
		return false, nil
	}
	var n int
	err := s.deps.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM image_members WHERE image_id = ? AND member = ?", im.ID, c.ProjectID).Scan(&n)
	return n > 0, err
}

// getVisible loads an image the caller may see.
// visibleFor returns the image named by the request path if c may see it
// and may do action on it.
func (s *Service) visibleFor(ctx context.Context, c *auth.Caller, r *http.Request, action string) (*Image, error) {
	im, err := s.getVisible(ctx, c, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return im, enforce(c, action, im)
}

func (s *Service) getVisible(ctx context.Context, c *auth.Caller, id string) (*Image, error) {
	im, err := loadImage(ctx, s.deps.DB, id)
	if err != nil {
		return nil, err
	}
	ok, err := s.visible(ctx, c, im)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errs.E(errs.NotFound, "No image found with ID %s", id)
	}
	return im, nil
}

func (s *Service) show(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	if err := readable(c, "get_image"); err != nil {
		s.fail(w, r, err)
		return
	}
	im, err := s.getVisible(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.storeHeaders(w)
	api.WriteJSON(w, http.StatusOK, s.view(im))
}

// patchOp is one JSON-patch operation.
type patchOp struct {
	Op    string
	Path  []string
	Value any
	Has   bool
}

const (
	patchV21 = "application/openstack-images-v2.1-json-patch"
	patchV20 = "application/openstack-images-v2.0-json-patch"
)

func parsePatch(r *http.Request) ([]patchOp, error) {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	if ct != patchV21 && ct != patchV20 {
		return nil, errs.E(errs.UnsupportedMedia, "The request media type %s is not supported by this server.", ct)
	}
	var raw any
	if err := api.DecodeJSON(r, &raw, 0); err != nil {
		if errs.Is(err, errs.Invalid) {
			return nil, errs.E(errs.Invalid, "Malformed JSON in request body.")
		}
		return nil, err
	}
	arr, ok := raw.([]any)
	if !ok {
		return nil, errs.E(errs.Invalid, "Request body must be a JSON array of operation objects.")
	}
	var ops []patchOp
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, errs.E(errs.Invalid, "Operations must be JSON objects.")
		}
		var op patchOp
		var p string
		if ct == patchV20 {
			// draft 4: {"replace": "/name", "value": ...}
			for _, k := range []string{"add", "remove", "replace"} {
				if v, ok := m[k]; ok {
					if op.Op != "" {
						return nil, errs.E(errs.Invalid, "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".")
					}
					op.Op = k
					if p, ok = v.(string); !ok {
						return nil, errs.E(errs.Invalid, "Unable to find '%s' in JSON Schema change", k)
					}
				}
			}
			if op.Op == "" {
				return nil, errs.E(errs.Invalid, "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".")
			}
		} else {
			op.Op, _ = m["op"].(string)
			switch op.Op {
			case "add", "remove", "replace":
			case "":
				return nil, errs.E(errs.Invalid, "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.")
			default:
				return nil, errs.E(errs.Invalid, "Invalid operation: `%s`. It must be one of the following: add, remove, replace.", op.Op)
			}
			var ok bool
			if p, ok = m["path"].(string); !ok {
				return nil, errs.E(errs.Invalid, "Unable to find '%s' in JSON Schema change", "path")
			}
		}
		if !strings.HasPrefix(p, "/") {
			return nil, errs.E(errs.Invalid, "Pointer `%s` does not start with \"/\".", p)
		}
		for _, seg := range strings.Split(p[1:], "/") {
			if seg == "" {
				return nil, errs.E(errs.Invalid, "Pointer `%s` contains adjacent \"/\".", p)
			}
			op.Path = append(op.Path, strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~"))
		}
		op.Value, op.Has = m["value"]
		if op.Op != "remove" && !op.Has {
			return nil, errs.E(errs.Invalid, "Operation \"%s\" requires a member named \"value\".", op.Op)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

var coreAttrs = []string{"name", "disk_format", "container_format", "visibility", "protected", "os_hidden",
	"min_disk", "min_ram", "owner", "tags"}

func (s *Service) update(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	ops, err := parsePatch(r)
	if err != nil {
		if errs.Is(err, errs.UnsupportedMedia) {
			w.Header().Set("Accept-Patch", patchV20+", "+patchV21)
		}
		s.fail(w, r, err)
		return
	}
	im, err := s.getVisible(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := enforce(c, "modify_image", im); err != nil {
		s.fail(w, r, err)
		return
	}
	for _, op := range ops {
		if err := s.applyPatch(c, im, op); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	im.UpdatedAt = db.Now()
	if err := s.deps.DB.InTx(r.Context(), func(tx *db.Tx) error { return updateImage(r.Context(), tx, im) }); err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, s.view(im))
}

func (s *Service) applyPatch(c *auth.Caller, im *Image, op patchOp) error {
	root := op.Path[0]
	if slices.Contains(readOnlyAttrs, root) {
		if root == "stores" {
			return errs.E(errs.Conflict, "Property stores does not exist.")
		}
		return errs.E(errs.Forbidden, "Attribute '%s' is read-only.", root)
	}
	if slices.Contains(reservedAttrs, root) {
		return errs.E(errs.Forbidden, "Attribute '%s' is reserved.", root)
	}
	if strings.HasPrefix(root, reservedNS) {
		return errs.E(errs.Forbidden, "Attribute '%s' is reserved.", root)
	}
	if len(op.Path) > 1 && !(root == "tags" && len(op.Path) == 2) {
		return errs.E(errs.Invalid, "Invalid JSON pointer for this resource: '/%s'", strings.Join(op.Path, "/"))
	}
	core := slices.Contains(coreAttrs, root)
	if (root == "disk_format" || root == "container_format") && im.Status != StatusQueued && op.Op != "remove" {
		cur := im.DiskFormat
		if root == "container_format" {
			cur = im.ContainerFormat
		}
		if cur == nil || op.Value != *cur {
			return errs.E(errs.Forbidden, "Attribute %s can be only replaced for a queued image.", root)
		}
	}
	if root == "tags" && len(op.Path) == 2 {
		if op.Op == "remove" {
			i := slices.Index(im.Tags, op.Path[1])
			if i < 0 {
				return errs.E(errs.Conflict, "Tag %s does not exist.", op.Path[1])
			}
			im.Tags = slices.Delete(im.Tags, i, i+1)
			return nil
		}
		return applyAttr(c, im, "tags", append(anySlice(im.Tags), op.Value))
	}
	switch op.Op {
	case "remove":
		if core {
			return errs.E(errs.Forbidden, "Properties %s cannot be deleted.", root)
		}
		if _, ok := im.Props[root]; !ok {
			return errs.E(errs.Conflict, "Property %s does not exist.", root)
		}
		delete(im.Props, root)
		return nil
	case "replace":
		if !core {
			if _, ok := im.Props[root]; !ok {
				return errs.E(errs.Conflict, "Property %s does not exist.", root)
			}
		}
	}
	if !core && op.Value == nil {
		return schemaErr("None is not of type 'string'")
	}
	return applyAttr(c, im, root, op.Value)
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (s *Service) delete(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	ctx := r.Context()
	im, err := s.getVisible(ctx, c, r.PathValue("id"))
	if errs.Is(err, errs.NotFound) {
		err = errs.E(errs.NotFound, "Failed to find image %s to delete", r.PathValue("id"))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := enforce(c, "delete_image", im); err != nil {
		s.fail(w, r, err)
		return
	}
	if im.Protected {
		s.fail(w, r, errs.E(errs.Forbidden, "Image %s is protected and cannot be deleted.", im.ID))
		return
	}
	// Remember the objects before the row goes, so a crash between the
	// two steps still finds and removes them at start-up.
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		for _, l := range im.Locations {
			if err := s.addPending(ctx, tx, im.ID, l.Store, im.ID); err != nil {
				return err
			}
		}
		if err := s.addPending(ctx, tx, im.ID, store.StagingID, im.ID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM images WHERE id = ?", im.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "Failed to find image %s to delete", im.ID)
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.sweepPending(context.WithoutCancel(ctx), im.ID)
	writeEmpty(w, http.StatusNoContent)
}

func (s *Service) deactivate(w http.ResponseWriter, r *http.Request) { s.setActive(w, r, false) }
func (s *Service) reactivate(w http.ResponseWriter, r *http.Request) { s.setActive(w, r, true) }

func (s *Service) setActive(w http.ResponseWriter, r *http.Request, active bool) {
	c := caller(r)
	ctx := r.Context()
	action := "deactivate"
	from, to := StatusActive, StatusDeactivated
	if active {
		action, from, to = "reactivate", StatusDeactivated, StatusActive
	}
	im, err := s.visibleFor(ctx, c, r, action)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if im.Status != from && im.Status != to {
		s.fail(w, r, errs.E(errs.Forbidden, "Not allowed to %s image in status '%s'", action, im.Status))
		return
	}
	if _, err := s.deps.DB.ExecContext(ctx, "UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status IN (?, ?)",
		to, db.Now(), im.ID, from, to); err != nil {
		s.fail(w, r, err)
		return
	}
	writeEmpty(w, http.StatusNoContent)
}

func (s *Service) addTag(w http.ResponseWriter, r *http.Request)    { s.tag(w, r, true) }
func (s *Service) deleteTag(w http.ResponseWriter, r *http.Request) { s.tag(w, r, false) }

func (s *Service) tag(w http.ResponseWriter, r *http.Request, add bool) {
	c := caller(r)
	ctx := r.Context()
	action := "delete_image_tag"
	if add {
		action = "add_image_tag"
	}
	im, err := s.visibleFor(ctx, c, r, action)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tag := r.PathValue("tag")
	if add {
		if len(tag) > 255 {
			s.fail(w, r, errs.E(errs.Invalid, "Provided object does not match schema 'image': '%s' is too long", tag))
			return
		}
		_, err = s.deps.DB.ExecContext(ctx, "INSERT INTO image_tags (image_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING", im.ID, tag)
	} else {
		var res interface{ RowsAffected() (int64, error) }
		res, err = s.deps.DB.ExecContext(ctx, "DELETE FROM image_tags WHERE image_id = ? AND tag = ?", im.ID, tag)
		if err == nil {
			if n, _ := res.RowsAffected(); n == 0 {
				err = errs.E(errs.NotFound, "Tag %s not found", tag)
			}
		}
	}
	if err == nil {
		_, err = s.deps.DB.ExecContext(ctx, "UPDATE images SET updated_at = ? WHERE id = ?", db.Now(), im.ID)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeEmpty(w, http.StatusNoContent)
}
