// Package backup is the chunk engine of volume backups: it cuts a volume
// into fixed-size chunks, records all-zero chunks without storing them,
// compresses the others with zstd and stores each as one object of a
// Store, checksummed (sha256), with a manifest naming every chunk. An
// incremental backup stores only the chunks whose checksum differs from
// its parent's and refers to the parent's objects for the rest. A restore
// verifies every chunk against its checksum before a byte of it is
// written, so a corrupted object is an error, never silent bad data.
//
// The Store interface is the object store a backup driver provides
// ([backup] backup_driver: s3, posix); drivers live in sub-packages and
// are built by package backup/drivers; every driver passes the one
// conformance suite in backup/backuptest.
package backup

import (
	"context"
)

// Store is where backups keep their objects: a flat namespace of keys
// ("<container>/<backup id>/<name>") holding byte strings of at most a
// chunk's size plus compression overhead.
//
// Error contract: a missing key is errs.NotFound (Get); an unreachable or
// failing store is errs.Unavailable; no space left (a full bucket or
// filesystem) is errs.TooLarge; a done ctx returns ctx's error. Every
// method is safe for concurrent use.
type Store interface {
	// Put stores data under key, replacing an existing object. The object
	// appears complete or not at all: a failed Put leaves no partial
	// object under key (a failed replace may leave the old one).
	Put(ctx context.Context, key string, data []byte) error
	// Get returns the object under key; errs.NotFound when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Delete removes the object under key; a missing key is not an error,
	// so deletes can be retried.
	Delete(ctx context.Context, key string) error
	// List returns the keys that start with prefix, in no particular
	// order.
	List(ctx context.Context, prefix string) ([]string, error)
}
