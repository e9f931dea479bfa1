// Package rbd is the image-store driver that keeps images as Ceph RBD
// images, laid out as glance_store's rbd store lays them out, so that
// Cinder's RBD driver (Ashlar's or a real Cinder's) can clone volumes from
// them copy-on-write and Ashlar can serve images a real Glance wrote: image
// <key> is the RBD image <key> in rbd_store_pool with a protected snapshot
// "snap" taken when the upload completes; its location is
// rbd://<fsid>/<pool>/<key>/snap.
//
// The driver needs librados/librbd (go-ceph, cgo), so it is built only with
// the build tag "ceph"; this file, the options, is pure Go so every build
// can check a configuration that names the store type.
package rbd

import (
	"github.com/ashlar-dev/ashlar/internal/config"
)

// Option names, glance_store's.
const (
	OptPool           = "rbd_store_pool"
	OptUser           = "rbd_store_user"
	OptCephConf       = "rbd_store_ceph_conf"
	OptChunkSize      = "rbd_store_chunk_size"
	OptConnectTimeout = "rados_connect_timeout"
	OptThin           = "rbd_thin_provisioning"
)

// SnapName is the snapshot every image has, as glance_store names it.
const SnapName = "snap"

// NotBuiltIn is the message of a binary built without the driver.
const NotBuiltIn = "store type rbd is not built in: build Ashlar with -tags ceph,pacific (needs librados-dev and librbd-dev)"

// Config is a [store:<id>] section of type rbd.
type Config struct {
	// Pool is rbd_store_pool (default "images").
	Pool string
	// User is rbd_store_user, without "client." (default: librados's
	// client.admin).
	User string
	// CephConf is rbd_store_ceph_conf (default: librados's search path).
	CephConf string
	// ChunkSize is rbd_store_chunk_size in bytes (given in MiB, a power of
	// two, default 8): the RBD object size of new images and the size of
	// each write.
	ChunkSize int64
	// ConnectTimeout is rados_connect_timeout in seconds (0: librados's).
	ConnectTimeout int
	// Thin is rbd_thin_provisioning (default false, as glance_store):
	// all-zero chunks are not written, they stay holes.
	Thin bool
}

// ParseConfig reads and checks a [store:<id>] section of type rbd.
func ParseConfig(o *config.Options) Config {
	c := Config{
		Pool:           o.String(OptPool, "images"),
		User:           o.String(OptUser, ""),
		CephConf:       o.String(OptCephConf, ""),
		ChunkSize:      o.Int(OptChunkSize, 8, 1, 1024) << 20,
		ConnectTimeout: int(o.Int(OptConnectTimeout, 0, 0, 3600)),
		Thin:           o.Bool(OptThin, false),
	}
	if n := c.ChunkSize >> 20; n&(n-1) != 0 {
		o.Problem(OptChunkSize, "must be a power of two (MiB), got %d", n)
		c.ChunkSize = 8 << 20
	}
	return c
}
