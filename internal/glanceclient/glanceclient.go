// Package glanceclient is the Glance v2 client the volume service uses. It
// talks HTTP to whatever image endpoint is configured or in the catalog:
// Ashlar's own image service or a real Glance.
package glanceclient

import (
	"context"
	"io"
)

// Store is one entry of GET /v2/info/stores.
type Store struct {
	ID          string `json:"id"`
	Description string `json:"description,omitempty"`
	// Default and ReadOnly are decoded from Glance's "true" strings.
	Default  bool `json:"-"`
	ReadOnly bool `json:"-"`
}

// Image is the subset of an image record the volume service reads.
type Image struct {
	ID              string
	Name            string
	Status          string
	Size            int64
	VirtualSize     int64
	DiskFormat      string
	ContainerFormat string
	Checksum        string
	Stores          string
	MinDisk         int64
	Visibility      string
	Protected       bool
	Owner           string
	// Properties holds every other top-level key, as returned.
	Properties map[string]any
}

// Client is what the volume service needs from an image service. Every
// call is made with the caller's token, as Cinder does.
type Client interface {
	Stores(ctx context.Context, token string) ([]Store, error)
	CreateImage(ctx context.Context, token string, fields map[string]any) (*Image, error)
	GetImage(ctx context.Context, token, id string) (*Image, error)
	// Upload streams r as the image data; store names the target store
	// (X-Image-Meta-Store) and may be empty for the default store.
	Upload(ctx context.Context, token, id, store string, r io.Reader, size int64) error
	Download(ctx context.Context, token, id string) (io.ReadCloser, error)
	DeleteImage(ctx context.Context, token, id string) error
}
