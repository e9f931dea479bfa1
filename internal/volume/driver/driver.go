// Package driver defines the volume Driver interface that every block
// backend implements, the optional interfaces a backend may add, the
// capabilities the scheduler matches against, and Copy, which moves a
// volume between two backends.
package driver

import (
	"context"
	"io"
)

// Driver manages the volumes and snapshots of one backend
// ([backend:<name>]).
//
// Error contract, for every method: a malformed id or size is
// errs.Invalid; a missing volume or snapshot is errs.NotFound; a volume or
// snapshot id that already exists is errs.Conflict; no space left is
// errs.TooLarge; a done ctx returns ctx's error. An operation that fails,
// for whatever reason (ctx included), leaves no partial volume or snapshot
// behind and does not change the volumes it read from: the new object
// appears complete or not at all. So a caller retrying after a failure,
// or after a crash in the middle of a call, deletes what it was creating
// (ignoring errs.NotFound) and calls again; none of the creating methods
// is idempotent, an existing target is errs.Conflict.
//
// Volume ids and snapshot ids are passed together because distributed
// backends (Ceph RBD) name a snapshot under its volume. A snapshot id is
// unique within its volume.
//
// Callers serialize the operations on one volume and its snapshots (the
// volume service does, through the volume's status): a driver need not
// make, say, a Revert and an Extend of the same volume safe to run at
// once. Operations on different volumes may run concurrently.
type Driver interface {
	// Create makes an empty (all-zero, sparse where possible) volume.
	Create(ctx context.Context, id string, sizeBytes int64) error
	// CreateFrom makes a volume of sizeBytes from r (raw bytes, at most
	// sizeBytes), writing only the non-zero extents so holes stay holes.
	CreateFrom(ctx context.Context, id string, sizeBytes int64, r io.Reader) error
	// Open returns the volume for reading its raw bytes.
	Open(ctx context.Context, id string) (Volume, error)
	// Extend grows the volume; the new space reads as zeros. Its snapshots
	// keep their size.
	Extend(ctx context.Context, id string, newSizeBytes int64) error
	// Delete removes the volume; errs.NotFound when it does not exist.
	// A volume that still has snapshots is not deleted: errs.Conflict (as
	// RBD refuses to remove an image with snapshots). Delete the snapshots
	// first.
	Delete(ctx context.Context, id string) error
	// Capabilities reports what the scheduler needs to know.
	Capabilities(ctx context.Context) (Capabilities, error)

	// CreateSnapshot makes snapshotID, a point-in-time copy of volume
	// volumeID: writes to the volume after CreateSnapshot returns do not
	// change the snapshot, and the snapshot keeps the volume's size at
	// that moment even if the volume is extended later. The snapshot holds
	// the volume's bytes as they were at some instant during the call;
	// writes to the volume while the call runs may or may not be in it.
	// Errors: errs.NotFound when the volume does not exist, errs.Conflict
	// when the snapshot id exists already. A failure leaves no snapshot;
	// since a snapshot appears only complete, errs.Conflict after one's own
	// interrupted attempt means that attempt finished.
	CreateSnapshot(ctx context.Context, volumeID, snapshotID string) error
	// DeleteSnapshot removes a snapshot; the volume and its other
	// snapshots are unchanged. errs.NotFound when the snapshot (or its
	// volume) does not exist, so a retry after a success is errs.NotFound.
	DeleteSnapshot(ctx context.Context, volumeID, snapshotID string) error
	// OpenSnapshot returns a snapshot for reading its raw bytes (backups,
	// uploads to an image, copies); its Size is the volume's size when the
	// snapshot was taken. errs.NotFound when it does not exist. The
	// snapshot must not be deleted while it is open.
	OpenSnapshot(ctx context.Context, volumeID, snapshotID string) (Volume, error)
	// CreateFromSnapshot makes volume newID of sizeBytes holding the
	// snapshot's bytes, followed by zeros up to sizeBytes. The new volume
	// is independent: writing it does not change the snapshot or the
	// snapshot's volume, and deleting those later does not change it.
	// Errors: errs.NotFound for a missing snapshot, errs.Conflict when
	// newID exists, errs.Invalid when sizeBytes is smaller than the
	// snapshot.
	CreateFromSnapshot(ctx context.Context, volumeID, snapshotID, newID string, sizeBytes int64) error
	// Clone makes volume newID of sizeBytes holding volume srcID's bytes,
	// followed by zeros up to sizeBytes; the two are independent from then
	// on (writing either does not change the other). srcID should not be
	// written while Clone runs: the clone then holds its bytes of some
	// instant during the call, or a mix. Errors: errs.NotFound for a
	// missing source, errs.Conflict when newID exists, errs.Invalid when
	// sizeBytes is smaller than the source.
	Clone(ctx context.Context, srcID, newID string, sizeBytes int64) error
	// Revert makes volume volumeID's data the snapshot's: the volume keeps
	// its current size, and if it was extended since the snapshot, the
	// bytes beyond the snapshot's size read as zeros (as Cinder's generic
	// revert leaves them: it copies a temporary volume of the volume's
	// size made from the snapshot; Cinder's API refuses a revert when the
	// sizes differ, so the service should too). The snapshot is kept,
	// unchanged. A failed Revert leaves the volume's bytes unchanged.
	// Volumes opened before the Revert may keep reading the old data.
	// Errors: errs.NotFound for a missing volume or snapshot.
	Revert(ctx context.Context, volumeID, snapshotID string) error
}

// Volume is an open volume's (or snapshot's) data.
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

// Granular is implemented by volumes whose Extents come in units coarser
// than their data: an RBD image knows which of its objects exist and how
// far each was written, not where the zeros inside one are. Granularity
// is the unit's size in bytes.
type Granular interface {
	Granularity() int64
}

// ParallelReader is implemented by volumes whose ReadAt serves several
// goroutines at once, at scattered offsets, as well as one goroutine
// reading in order (a file's pread): a reader of the whole volume may then
// split it between goroutines. A volume that reads ahead for one
// sequential reader (an RBD image) does not implement it: readers at
// several places would defeat its read-ahead.
type ParallelReader interface {
	ReadsInParallel()
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
	// List returns the ids of every volume the backend holds (not its
	// snapshots).
	List(ctx context.Context) ([]string, error)
}

// SnapshotRef names one snapshot of a backend.
type SnapshotRef struct {
	VolumeID, SnapshotID string
}

// SnapshotLister is implemented by drivers that can enumerate their
// snapshots, so the service can remove snapshots whose row is gone.
type SnapshotLister interface {
	// ListSnapshots returns every snapshot the backend holds, including
	// snapshots whose volume is gone, in no particular order.
	ListSnapshots(ctx context.Context) ([]SnapshotRef, error)
}

// Copier is implemented by drivers that can copy a volume into another
// backend without streaming its bytes through the caller (a reflink or
// server-side copy). Copy uses it when it is there; callers use Copy.
type Copier interface {
	// CopyTo copies volume srcID of this backend into dst as the new
	// volume dstID of sizeBytes, as Copy does. handled is false, with a nil
	// error and nothing done, when the driver cannot copy into dst
	// natively (another kind of backend); Copy then streams the data.
	CopyTo(ctx context.Context, srcID string, dst Driver, dstID string, sizeBytes int64) (handled bool, err error)
}

// ImageCloner is implemented by drivers that can make a volume from an
// image without copying its data, when the image service keeps the image
// where the driver can reach it (Cinder's clone_image: an RBD backend and
// an rbd store in the same cluster give a copy-on-write clone).
type ImageCloner interface {
	// CloneImage makes volume id of sizeBytes from the raw image whose
	// locations (the URLs of the image's locations and direct_url) are
	// given. handled is false, with a nil error and nothing done, when
	// no location is one the driver can clone; the caller then copies the
	// data. Errors and the no-partial-volume rule are those of Driver.
	CloneImage(ctx context.Context, id string, sizeBytes int64, locations []string) (handled bool, err error)
}

// Attacher is implemented by drivers whose volumes hosts can attach
// (Cinder's initialize/terminate_connection): it hands out the
// connection_info that os-brick, on the attaching host, turns into a
// device or path. The volume service adds what Cinder's volume manager
// adds to every driver's answer (access_mode, qos_specs, encrypted,
// cacheable); a driver returns only its protocol's keys.
type Attacher interface {
	// Protocols lists the os-brick connector protocols the backend
	// serves, as Cinder's driver_volume_type ("local", "nfs", "rbd"): a
	// connection_info the backend returns always names one of them.
	Protocols() []string
	// InitializeConnection returns the connection_info of volumeID for the
	// host described by connector (os-brick's connector properties: host,
	// ip, initiator, multipath, ...), in the exact shape Cinder's driver
	// of the same protocol returns (os-brick's connector of that protocol
	// reads Data). It may be called again for the same connector (a
	// re-attach), and must answer the same. errs.NotFound when the volume
	// is missing; errs.Invalid when the connector cannot use this backend.
	InitializeConnection(ctx context.Context, volumeID string, connector map[string]any) (ConnectionInfo, error)
	// TerminateConnection undoes InitializeConnection for connector; a
	// connection that does not exist is not an error, nor is a volume
	// that does not (a detach after a failed create).
	TerminateConnection(ctx context.Context, volumeID string, connector map[string]any) error
}

// ConnectionInfo is Cinder's connection_info: {"driver_volume_type": ...,
// "data": {...}}.
type ConnectionInfo struct {
	DriverVolumeType string         `json:"driver_volume_type"`
	Data             map[string]any `json:"data"`
}

// The driver_volume_type values of the drivers here, with the Data keys
// os-brick's connector of each reads.
const (
	// ProtocolLocal is os-brick's LocalConnector: Data["device_path"] is
	// a path the attaching host opens directly (a block device or file).
	ProtocolLocal = "local"
	// ProtocolNFS is os-brick's RemoteFsConnector for NFS, as Cinder's NFS
	// driver returns it: Data["export"] (host:/path), Data["name"] (the
	// file in the export), Data["options"] (mount options, when set) and
	// Data["format"] ("raw").
	ProtocolNFS = "nfs"
)

// Overwriter is implemented by drivers that can replace the bytes of an
// existing volume, as a restore from a backup into an existing volume
// needs (Cinder restores over the volume's data).
type Overwriter interface {
	// Overwrite makes volume id's bytes those of r (raw bytes, at most the
	// volume's size) followed by zeros up to its size, which is unchanged.
	// It writes only the non-zero extents, so holes stay holes. The new
	// bytes appear complete or not at all: a failure (ctx included) leaves
	// the volume's bytes as they were. errs.NotFound when the volume does
	// not exist; errs.TooLarge when r holds more than the volume's size.
	Overwrite(ctx context.Context, id string, r io.Reader) error
}
