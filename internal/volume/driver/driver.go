// Package driver defines the volume Driver interface that every block
// backend implements, and the capabilities the scheduler matches against.
package driver

import (
	"context"
	"io"
)

// Driver manages the volumes of one backend ([backend:<name>]).
//
// Error contract: a missing volume is errs.NotFound, no space left is
// errs.TooLarge; failed operations leave no partial volume behind.
type Driver interface {
	// Create makes an empty (all-zero, sparse where possible) volume.
	Create(ctx context.Context, id string, sizeBytes int64) error
	// CreateFrom makes a volume of sizeBytes from r (raw bytes, at most
	// sizeBytes), writing only the non-zero extents so holes stay holes.
	CreateFrom(ctx context.Context, id string, sizeBytes int64, r io.Reader) error
	// Open returns the volume for reading its raw bytes.
	Open(ctx context.Context, id string) (Volume, error)
	// Extend grows the volume; the new space reads as zeros.
	Extend(ctx context.Context, id string, newSizeBytes int64) error
	// Delete removes the volume; errs.NotFound when it does not exist.
	Delete(ctx context.Context, id string) error
	// Capabilities reports what the scheduler needs to know.
	Capabilities(ctx context.Context) (Capabilities, error)
}

// Volume is an open volume's data.
type Volume interface {
	io.ReaderAt
	io.Closer
	// Size is the volume's size in bytes.
	Size() int64
	// Extents lists the ranges that may hold data, in order; ranges not
	// listed read as zeros. A driver that cannot tell returns one extent
	// covering the whole volume.
	Extents(ctx context.Context) ([]Extent, error)
}

// Extent is a byte range [Offset, Offset+Length).
type Extent struct {
	Offset, Length int64
}

// Capabilities are a backend's reported properties, matched by the
// scheduler against a volume type's extra specs and shown by get_pools.
type Capabilities struct {
	VolumeBackendName string
	TotalCapacityGB   float64
	FreeCapacityGB    float64
	ThinProvisioning  bool
	// Multiattach reports that a volume may be attached to several hosts at
	// once; types asking for "multiattach": "<is> True" need it.
	Multiattach bool
	// Extra holds further capabilities under Cinder's names, typed as
	// Cinder's drivers report them (string, bool, int or float64), e.g.
	// "storage_protocol": "file", "provisioned_capacity_gb": 3.5. Clients
	// decode get_pools into typed fields, so a number must not be a string.
	Extra map[string]any
}

// Allocator is implemented by drivers that can tell how much backing space
// a volume really uses (for thin provisioning reports and sparseness tests).
type Allocator interface {
	// Allocated returns the bytes of backing storage the volume occupies.
	Allocated(ctx context.Context, id string) (int64, error)
}

// LocalFile is implemented by volumes that live in a local file or block
// device, so external tools (qemu-img) can read them by path.
type LocalFile interface {
	// Path is the file or device holding the volume's raw bytes.
	Path() string
}

// Lister is implemented by drivers that can enumerate their volumes, so
// the volume service can remove data whose database row is gone (left by a
// process that stopped between a force-delete and the end of a create).
type Lister interface {
	// List returns the ids of every volume the backend holds.
	List(ctx context.Context) ([]string, error)
}
