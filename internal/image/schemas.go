package image

import (
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/api"
)

type m = map[string]any

func nullable(typ string, desc string, extra ...any) m {
	p := m{"type": []any{typ, "null"}, "description": desc}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i].(string)] = extra[i+1]
	}
	return p
}

func enumOf(vals []string) []any {
	out := []any{nil}
	for _, v := range vals {
		out = append(out, v)
	}
	return out
}

const uuidPattern = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"

// imageSchema is the JSON schema clients (glanceclient, the openstack CLI)
// fetch to build their arguments and validate patches.
func imageSchema() m {
	ro := func(p m) m { p["readOnly"] = true; return p }
	props := m{
		"id":               m{"type": "string", "description": "Image identifier (a UUID).", "pattern": uuidPattern},
		"name":             nullable("string", "Human-readable image name.", "maxLength", 255),
		"status":           ro(m{"type": "string", "description": "Image lifecycle status.", "enum": []string{"queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"}}),
		"visibility":       m{"type": "string", "description": "Who may see the image.", "enum": []string{"community", "public", "private", "shared"}},
		"protected":        m{"type": "boolean", "description": "A protected image cannot be deleted."},
		"os_hidden":        m{"type": "boolean", "description": "Hidden images are left out of lists unless asked for."},
		"checksum":         ro(nullable("string", "md5 of the image data (legacy).", "maxLength", 32)),
		"os_hash_algo":     ro(nullable("string", "Algorithm of os_hash_value.", "maxLength", 64)),
		"os_hash_value":    ro(nullable("string", "Secure hash of the image data.", "maxLength", 128)),
		"owner":            nullable("string", "Project owning the image.", "maxLength", 255),
		"size":             ro(nullable("integer", "Size of the image data in bytes.")),
		"virtual_size":     ro(nullable("integer", "Virtual size of the disk image in bytes.")),
		"container_format": m{"type": []any{"null", "string"}, "description": "Format of the image container.", "enum": enumOf(containerFormats)},
		"disk_format":      m{"type": []any{"null", "string"}, "description": "Format of the disk.", "enum": enumOf(diskFormats)},
		"created_at":       ro(m{"type": "string", "description": "When the image was created."}),
		"updated_at":       ro(m{"type": "string", "description": "When the image was last updated."}),
		"tags":             m{"type": "array", "description": "Image tags.", "items": m{"type": "string", "maxLength": 255}},
		"direct_url":       ro(m{"type": "string", "description": "URL of the image data in its first store."}),
		"min_ram":          m{"type": "integer", "description": "RAM in MB needed to boot the image.", "minimum": 0},
		"min_disk":         m{"type": "integer", "description": "Disk in GB needed to boot the image.", "minimum": 0},
		"self":             ro(m{"type": "string", "description": "URL of this image."}),
		"file":             ro(m{"type": "string", "description": "URL of the image data."}),
		"stores":           ro(m{"type": "string", "description": "Comma-separated ids of the stores holding the image data."}),
		"schema":           ro(m{"type": "string", "description": "URL of this schema."}),
		"locations": m{"type": "array", "description": "Where the image data is stored.", "items": m{
			"type": "object", "required": []string{"url", "metadata"},
			"properties": m{"url": m{"type": "string", "maxLength": 255}, "metadata": m{"type": "object"},
				"validation_data": m{"type": "object"}}}},
		"kernel_id":                             nullable("string", "Kernel image id (AMI style images).", "pattern", uuidPattern),
		"ramdisk_id":                            nullable("string", "Ramdisk image id (AMI style images).", "pattern", uuidPattern),
		"instance_uuid":                         m{"type": "string", "description": "Server the image was snapshotted from."},
		"architecture":                          m{"type": "string", "description": "CPU architecture the image needs."},
		"os_distro":                             m{"type": "string", "description": "Operating system distribution."},
		"os_version":                            m{"type": "string", "description": "Operating system version."},
		"description":                           m{"type": "string", "description": "Free-form description."},
		"cinder_encryption_key_id":              m{"type": "string", "description": "Key of an encrypted volume image."},
		"cinder_encryption_key_deletion_policy": m{"type": "string", "description": "What happens to that key on delete.", "enum": []string{"on_image_deletion", "do_not_delete"}},
	}
	return m{"name": "image", "properties": props, "additionalProperties": m{"type": "string"},
		"links": []m{{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"}, {"rel": "describedby", "href": "{schema}"}}}
}

func listSchema(name, item string, itemSchema m, links []m) m {
	return m{"name": name, "properties": m{
		name:     m{"type": "array", "items": itemSchema},
		"schema": m{"type": "string"}, "first": m{"type": "string"}, "next": m{"type": "string"}},
		"links": links}
}

func memberSchema() m {
	return m{"name": "member", "properties": m{
		"created_at": m{"type": "string", "description": "When the member was added."},
		"image_id":   m{"type": "string", "description": "The shared image.", "pattern": uuidPattern},
		"member_id":  m{"type": "string", "description": "The project the image is shared with."},
		"schema":     m{"type": "string", "readOnly": true},
		"status":     m{"type": "string", "description": "Whether the member accepted the image.", "enum": []string{"pending", "accepted", "rejected"}},
		"updated_at": m{"type": "string", "description": "When the member was last updated."},
	}}
}

func taskSchema() m {
	return m{"name": "task", "properties": m{
		"id":         m{"type": "string", "pattern": uuidPattern},
		"type":       m{"type": "string", "enum": []string{"import", "api_image_import"}},
		"status":     m{"type": "string", "enum": []string{"pending", "processing", "success", "failure"}},
		"input":      m{"type": []any{"null", "object"}},
		"result":     m{"type": []any{"null", "object"}},
		"owner":      m{"type": "string"},
		"message":    m{"type": "string"},
		"image_id":   m{"type": "string"},
		"request_id": m{"type": "string"},
		"user_id":    m{"type": "string"},
		"expires_at": m{"type": []any{"null", "string"}},
		"created_at": m{"type": "string"},
		"updated_at": m{"type": "string"},
		"self":       m{"type": "string"},
		"schema":     m{"type": "string"},
	}}
}

// pageLinks are the links of a paged list's schema.
var pageLinks = []m{{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"}, {"rel": "describedby", "href": "{schema}"}}

// schemas are the documents of GET /v2/schemas/<name>, built once: they
// depend on nothing but the code.
var schemas = map[string]m{
	"image":  imageSchema(),
	"images": listSchema("images", "image", imageSchema(), pageLinks),
	"member": memberSchema(),
	"members": {"name": "members", "properties": m{
		"members": m{"type": "array", "items": memberSchema()}, "schema": m{"type": "string"}},
		"links": []m{{"rel": "self", "href": "{self}"}, {"rel": "describedby", "href": "{schema}"}}},
	"task":  taskSchema(),
	"tasks": listSchema("tasks", "task", taskSchema(), pageLinks),
}

// schema serves GET /v2/schemas/<name>.
func schema(name string) func(w http.ResponseWriter, r *http.Request) error {
	doc := schemas[name]
	return func(w http.ResponseWriter, r *http.Request) error {
		api.WriteJSON(w, http.StatusOK, doc)
		return nil
	}
}
