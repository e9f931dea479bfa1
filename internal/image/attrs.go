package image

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Image attributes: what a client may set on create and patch, and how
// each value is checked (Glance's image schema and its messages).

var (
	diskFormats      = []string{"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
	containerFormats = []string{"ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"}
	visibilities     = []string{"public", "private", "shared", "community"}
	uuidRE           = regexp.MustCompile(uuidPattern)
)

// Attributes a client may never set, and the message kind Glance uses.
var (
	createDisallowed = []string{"direct_url", "self", "file", "schema", "stores"}
	readOnlyAttrs    = []string{"created_at", "updated_at", "status", "checksum", "size", "virtual_size",
		"direct_url", "self", "file", "schema", "id", "os_hash_algo", "os_hash_value", "stores"}
	reservedAttrs = []string{"location", "locations", "deleted", "deleted_at"}
)

const reservedNS = "os_glance"

// coreAttrs are the settable attributes that are columns, not custom
// properties.
var coreAttrs = []string{"name", "disk_format", "container_format", "visibility", "protected", "os_hidden",
	"min_disk", "min_ram", "owner", "tags"}

func schemaErr(format string, args ...any) error {
	return errs.E(errs.Invalid, "Provided object does not match schema 'image': "+format, args...)
}

func forbiddenAttr(msg string) error {
	return &errs.Error{Kind: errs.Forbidden, Msg: "Access was denied to this resource.", Detail: msg}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
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

// attrSetter checks one attribute's value and sets it on im; c is the
// caller, for the attributes only admins may set freely.
type attrSetter func(c *auth.Caller, im *Image, v any) error

var attrSetters = map[string]attrSetter{
	"name":             setName,
	"disk_format":      setEnum(diskFormats, func(im *Image) **string { return &im.DiskFormat }),
	"container_format": setEnum(containerFormats, func(im *Image) **string { return &im.ContainerFormat }),
	"visibility":       setVisibility,
	"protected":        setBool(func(im *Image) *bool { return &im.Protected }),
	"os_hidden":        setBool(func(im *Image) *bool { return &im.Hidden }),
	"min_disk":         setInt(func(im *Image) *int64 { return &im.MinDisk }),
	"min_ram":          setInt(func(im *Image) *int64 { return &im.MinRAM }),
	"owner":            setOwner,
	"tags":             setTags,
}

// applyAttr validates one attribute and sets it on im. Custom properties
// must be strings (the image schema's additionalProperties).
func applyAttr(c *auth.Caller, im *Image, k string, v any) error {
	if set, ok := attrSetters[k]; ok {
		return set(c, im, v)
	}
	return setCustom(im, k, v)
}

// asString is a nullable string value.
func asString(v any) (*string, error) {
	if v == nil {
		return nil, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, schemaErr("%s is not of type 'string'", jsonText(v))
	}
	return &s, nil
}

func setName(_ *auth.Caller, im *Image, v any) error {
	s, err := asString(v)
	if err != nil {
		return err
	}
	if s != nil && len(*s) > 255 {
		return schemaErr("'%s' is too long", *s)
	}
	im.Name = s
	return nil
}

// setEnum sets a nullable string that must be one of allowed.
func setEnum(allowed []string, field func(*Image) **string) attrSetter {
	return func(_ *auth.Caller, im *Image, v any) error {
		s, err := asString(v)
		if err != nil {
			return err
		}
		if s != nil && !slices.Contains(allowed, *s) {
			return schemaErr("'%s' is not one of [None, '%s']", *s, strings.Join(allowed, "', '"))
		}
		*field(im) = s
		return nil
	}
}

func setBool(field func(*Image) *bool) attrSetter {
	return func(_ *auth.Caller, im *Image, v any) error {
		b, ok := v.(bool)
		if !ok {
			return schemaErr("%s is not of type 'boolean'", jsonText(v))
		}
		*field(im) = b
		return nil
	}
}

// setInt sets a non-negative integer.
func setInt(field func(*Image) *int64) attrSetter {
	return func(_ *auth.Caller, im *Image, v any) error {
		n, ok := v.(json.Number)
		if !ok {
			return schemaErr("%s is not of type 'integer'", jsonText(v))
		}
		i, err := n.Int64()
		if err != nil {
			return schemaErr("%s is not of type 'integer'", n)
		}
		if i < 0 {
			return schemaErr("%d is less than the minimum of 0", i)
		}
		*field(im) = i
		return nil
	}
}

// setVisibility: only admins make an image public.
func setVisibility(c *auth.Caller, im *Image, v any) error {
	s, ok := v.(string)
	if !ok || !slices.Contains(visibilities, s) {
		return schemaErr("%s is not one of ['community', 'public', 'private', 'shared']", jsonText(v))
	}
	if s == "public" && !c.IsAdmin() && im.Visibility != "public" {
		return &errs.Error{Kind: errs.Forbidden, Msg: "You are not authorized to complete publicize_image action."}
	}
	im.Visibility = s
	return nil
}

// setOwner: only admins give an image to another project.
func setOwner(c *auth.Caller, im *Image, v any) error {
	s, err := asString(v)
	if err != nil {
		return err
	}
	if s == nil || *s == "" {
		return schemaErr("owner must be set")
	}
	if *s != im.Owner && !c.IsAdmin() {
		return errs.E(errs.Forbidden, "You are not permitted to create images owned by '%s'.", *s)
	}
	im.Owner = *s
	return nil
}

// setTags sets the tags, deduplicated and sorted.
func setTags(_ *auth.Caller, im *Image, v any) error {
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
	return nil
}

// setCustom sets (or, with null, removes) a custom property.
func setCustom(im *Image, k string, v any) error {
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
	return nil
}

// checkCreateAttr refuses the attributes a create may not set.
func checkCreateAttr(k string) error {
	switch {
	case slices.Contains(readOnlyAttrs, k):
		return errs.E(errs.Forbidden, "Attribute '%s' is read-only.", k)
	case slices.Contains(reservedAttrs, k):
		return errs.E(errs.Forbidden, "Attribute '%s' is reserved.", k)
	case strings.HasPrefix(k, reservedNS):
		return forbiddenAttr("Attribute '" + k + "' is reserved.")
	}
	return nil
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

// parsePatch reads a JSON-patch body in either of Glance's two media types.
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
		parse := parseOpV21
		if ct == patchV20 {
			parse = parseOpV20
		}
		op, p, err := parse(m)
		if err != nil {
			return nil, err
		}
		if op.Path, err = parsePointer(p); err != nil {
			return nil, err
		}
		op.Value, op.Has = m["value"]
		if op.Op != "remove" && !op.Has {
			return nil, errs.E(errs.Invalid, "Operation \"%s\" requires a member named \"value\".", op.Op)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// parseOpV20 reads a draft-4 operation: {"replace": "/name", "value": ...}.
func parseOpV20(m map[string]any) (patchOp, string, error) {
	var op patchOp
	var p string
	for _, k := range []string{"add", "remove", "replace"} {
		if v, ok := m[k]; ok {
			if op.Op != "" {
				return op, "", errs.E(errs.Invalid, "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".")
			}
			op.Op = k
			if p, ok = v.(string); !ok {
				return op, "", errs.E(errs.Invalid, "Unable to find '%s' in JSON Schema change", k)
			}
		}
	}
	if op.Op == "" {
		return op, "", errs.E(errs.Invalid, "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".")
	}
	return op, p, nil
}

// parseOpV21 reads an RFC 6902 operation: {"op": ..., "path": ..., "value": ...}.
func parseOpV21(m map[string]any) (patchOp, string, error) {
	op := patchOp{}
	op.Op, _ = m["op"].(string)
	switch op.Op {
	case "add", "remove", "replace":
	case "":
		return op, "", errs.E(errs.Invalid, "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.")
	default:
		return op, "", errs.E(errs.Invalid, "Invalid operation: `%s`. It must be one of the following: add, remove, replace.", op.Op)
	}
	p, ok := m["path"].(string)
	if !ok {
		return op, "", errs.E(errs.Invalid, "Unable to find '%s' in JSON Schema change", "path")
	}
	return op, p, nil
}

// parsePointer splits a JSON pointer into its unescaped segments.
func parsePointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, errs.E(errs.Invalid, "Pointer `%s` does not start with \"/\".", p)
	}
	var out []string
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" {
			return nil, errs.E(errs.Invalid, "Pointer `%s` contains adjacent \"/\".", p)
		}
		out = append(out, strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~"))
	}
	return out, nil
}

// applyPatch applies one operation to im.
func applyPatch(c *auth.Caller, im *Image, op patchOp) error {
	root := op.Path[0]
	if err := checkPatchPath(im, op); err != nil {
		return err
	}
	if root == "tags" && len(op.Path) == 2 {
		return patchTag(c, im, op)
	}
	core := slices.Contains(coreAttrs, root)
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
		if _, ok := im.Props[root]; !core && !ok {
			return errs.E(errs.Conflict, "Property %s does not exist.", root)
		}
	}
	if !core && op.Value == nil {
		return schemaErr("None is not of type 'string'")
	}
	return applyAttr(c, im, root, op.Value)
}

// checkPatchPath refuses paths a patch may not touch: read-only and
// reserved attributes, nested pointers, formats of an image with data.
func checkPatchPath(im *Image, op patchOp) error {
	root := op.Path[0]
	switch {
	case root == "stores":
		return errs.E(errs.Conflict, "Property stores does not exist.")
	case slices.Contains(readOnlyAttrs, root):
		return errs.E(errs.Forbidden, "Attribute '%s' is read-only.", root)
	case slices.Contains(reservedAttrs, root), strings.HasPrefix(root, reservedNS):
		return errs.E(errs.Forbidden, "Attribute '%s' is reserved.", root)
	case len(op.Path) > 1 && !(root == "tags" && len(op.Path) == 2):
		return errs.E(errs.Invalid, "Invalid JSON pointer for this resource: '/%s'", strings.Join(op.Path, "/"))
	}
	if (root == "disk_format" || root == "container_format") && im.Status != StatusQueued && op.Op != "remove" {
		cur := im.DiskFormat
		if root == "container_format" {
			cur = im.ContainerFormat
		}
		if cur == nil || op.Value != *cur {
			return errs.E(errs.Forbidden, "Attribute %s can be only replaced for a queued image.", root)
		}
	}
	return nil
}

// patchTag adds or removes the one tag /tags/<tag> names.
func patchTag(c *auth.Caller, im *Image, op patchOp) error {
	if op.Op == "remove" {
		i := slices.Index(im.Tags, op.Path[1])
		if i < 0 {
			return errs.E(errs.Conflict, "Tag %s does not exist.", op.Path[1])
		}
		im.Tags = slices.Delete(im.Tags, i, i+1)
		return nil
	}
	tags := make([]any, 0, len(im.Tags)+1)
	for _, t := range im.Tags {
		tags = append(tags, t)
	}
	return setTags(c, im, append(tags, op.Value))
}
