// Package store is the image-store layer: a small Driver interface that
// every backend (file, s3, http) implements, and the Store wrapper that does,
// once for all drivers, single-pass hashing (md5 and os_hash_algo run
// concurrently), size limits, error mapping and metrics.
//
// Error contract for drivers: a missing object is errs.NotFound, a full
// backend errs.TooLarge, an unreachable backend errs.Unavailable, a write to
// a read-only backend errs.Gone. A Put that fails leaves no object behind.
package store

import (
	"context"
	"io"

	"github.com/ashlar-dev/ashlar/internal/config"
)

// Driver is one storage backend. Keys are opaque ASCII strings chosen by
// the image service (the image id, optionally with a prefix).
type Driver interface {
	// Put streams r into key and returns the bytes written. It must not
	// buffer the whole object; on any error (including ctx cancellation)
	// no object remains at key.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens key for reading from offset; length < 0 reads to the end.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Delete removes key; errs.NotFound when it does not exist.
	Delete(ctx context.Context, key string) error
	// Size returns the object's size; errs.NotFound when it does not exist.
	Size(ctx context.Context, key string) (int64, error)
}

// ReadOnlyDriver is implemented by drivers that never accept writes (http).
type ReadOnlyDriver interface {
	ReadOnly() bool
}

// Lister is implemented by drivers that can enumerate keys, used to find
// orphaned objects after a crash.
type Lister interface {
	List(ctx context.Context, fn func(key string) error) error
}

// Factory opens a driver from its [store:<id>] configuration.
type Factory func(ctx context.Context, cfg config.Store) (Driver, error)
