package image

import (
	"sort"

	"github.com/ashlar-dev/ashlar/internal/db"
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

// member is one row of an image's member list.
type member struct {
	ImageID, Member, Status string
	CreatedAt, UpdatedAt    db.Timestamp
}

// task is one import task row.
type task struct {
	ID, ImageID, Type, Status, Owner, UserID, RequestID, Input, Message string
	Result                                                              *string
	CreatedAt, UpdatedAt, ExpiresAt                                     db.Timestamp
}

func strp(s string) *string { return &s }
func i64p(n int64) *int64   { return &n }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
