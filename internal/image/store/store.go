// Package store is the image-store layer, split the way gocloud.dev/blob
// splits its buckets:
//
//   - store.go: the small Driver interface every backend implements, and the
//     optional capabilities (ReadOnlyDriver, Lister, Locator, Recoverer,
//     Describer, Checker, InUser, Spacer) a driver may add, found by type assertion;
//   - portable.go: the Store, the portable type over a Driver that does,
//     once for every driver, the key and range checks, size limits, error
//     mapping and metrics;
//   - hash.go: the single-pass hashing pipeline of a Put (md5 and
//     os_hash_algo on their own goroutines);
//   - metrics.go: the per-store operation metrics;
//   - set.go: the Set of configured stores plus the hidden staging store.
//
// The drivers live in file/, s3/ and http/; drivers/ is the registry that
// maps store types to them and has each read its own [store:<id>] options;
// storetest/ is the conformance suite every driver runs.
//
// Error contract for drivers: a missing object is errs.NotFound, a full
// backend errs.TooLarge, an unreachable backend errs.Unavailable, a write to
// a read-only backend errs.Gone. A Put that fails leaves no object behind.
package store

import (
	"context"
	"io"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Driver is one storage backend. Keys are opaque strings chosen by the image
// service (the image id, optionally with a prefix); the Store has checked
// them (ValidKey) and the offsets before a driver sees them, so a driver
// checks only what its backend cannot store (the file driver: names that
// would escape its directory).
type Driver interface {
	// Put streams r into key and returns the bytes written. It must not
	// buffer the whole object; on any error (including ctx cancellation)
	// no object remains at key.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens key for reading from offset (>= 0); length < 0 reads to
	// the end, a length past the end is clipped, offset == size gives an
	// empty reader and offset > size errs.BadRange.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Delete removes key; errs.NotFound when it does not exist.
	Delete(ctx context.Context, key string) error
	// Size returns the object's size; errs.NotFound when it does not exist.
	Size(ctx context.Context, key string) (int64, error)
}

// EmptyGet is a driver's Get of an empty range at offset of key, for
// backends that cannot be asked for one (HTTP and S3 have no empty range,
// and refuse a range that starts at the end): key must exist (Size), and
// an offset past its end is errs.BadRange. With atEnd, where the backend
// has refused the range as starting past the end, only the end itself is
// empty.
func EmptyGet(ctx context.Context, d Driver, key string, offset int64, atEnd bool) (io.ReadCloser, error) {
	size, err := d.Size(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset > size || atEnd && offset != size {
		return nil, errs.E(errs.BadRange, "offset %d beyond object size %d", offset, size)
	}
	return io.NopCloser(strings.NewReader("")), nil
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

// Locator is implemented by drivers that can say where an object lives, in
// the URL form Glance shows in an image's locations[].url: file:///<path>
// for file stores, s3://<host>/<bucket>/<key> (s3+https:// for TLS
// endpoints; unlike Glance, never with credentials) for s3 stores, and
// the object's URL for http stores. Callers go through Store.Location,
// which checks key first.
type Locator interface {
	Location(key string) (string, error)
}

// Recoverer is implemented by drivers whose Put can leave hidden state
// behind when the process dies mid-upload (S3 multipart parts). At start-up
// the image service calls Recover (through Store.Recover) for each object
// whose write never finished; afterwards no trace of the interrupted
// upload remains. It returns nil when there is nothing to recover.
type Recoverer interface {
	Recover(ctx context.Context, key string) error
}

// Describer is implemented by drivers that show properties of their store
// in GET /v2/info/stores/detail (the file store's data_dir, the s3 store's
// bucket and host). Never secrets.
type Describer interface {
	Properties() map[string]any
}

// Factory opens a driver from its [store:<id>] configuration; the registry
// in package drivers has one per store type.
type Factory func(ctx context.Context, cfg config.Store) (Driver, error)

// Checker is implemented by drivers that can tell whether their backend
// is usable right now (the directory is there and writable, the bucket
// answers). The image service calls it every [image]
// store_check_interval; a store whose check fails is shown unhealthy in
// stores detail and on the dashboard, and the volume types uploading to it
// are flagged (store drift).
type Checker interface {
	Check(ctx context.Context) error
}

// InUser is implemented by drivers whose objects can be used from outside
// the image service (an rbd image whose snapshot volumes are cloned from).
// InUse returns errs.Conflict, with glance_store's InUseByStore message,
// while such a use exists, so that a delete is refused (409) before the
// image is removed rather than failing in the background after a 204.
type InUser interface {
	InUse(ctx context.Context, key string) error
}

// Spacer is implemented by drivers that know how much room their backend
// has left (a file store's filesystem).
type Spacer interface {
	FreeBytes(ctx context.Context) (int64, error)
}
