// Package rbd is the volume driver that keeps volumes as Ceph RBD images,
// as Cinder's RBD driver lays them out: volume <id> is the image
// volume-<id> in rbd_pool, snapshot <s> of it the RBD snapshot
// snapshot-<s> (protected, so it can be cloned), a clone of a volume a
// copy-on-write clone of the snapshot volume-<new>.clone_snap of its
// source, flattened once the chain is deeper than rbd_max_clone_depth.
//
// The driver talks to Ceph through librados/librbd (go-ceph, cgo), so it is
// built only with the build tag "ceph" (and go-ceph's "pacific" on Debian
// 12); this file, the options, is pure Go so that every build can check a
// configuration that names the driver.
package rbd

import (
	"strconv"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Config is a backend's parsed options.
type Config struct {
	// Name is the backend's section name; BackendName its
	// volume_backend_name.
	Name, BackendName string
	// Pool is rbd_pool (default "rbd").
	Pool string
	// User is rbd_user, the cephx user without "client." (default: none,
	// librados's client.admin).
	User string
	// CephConf is rbd_ceph_conf (default: librados's search path,
	// /etc/ceph/ceph.conf first).
	CephConf string
	// Cluster is rbd_cluster_name (default "ceph").
	Cluster string
	// SecretUUID is rbd_secret_uuid: the libvirt secret holding the key on
	// the compute hosts; the cluster's fsid when unset.
	SecretUUID string
	// FlattenFromSnapshot is rbd_flatten_volume_from_snapshot (default
	// false): volumes from snapshots are flattened clones, independent of
	// the snapshot.
	FlattenFromSnapshot bool
	// MaxCloneDepth is rbd_max_clone_depth (default 5): a clone that would
	// be deeper is flattened; 0 flattens every clone.
	MaxCloneDepth int
	// ConnectTimeout is rados_connect_timeout in seconds (default -1:
	// librados's own timeouts).
	ConnectTimeout int
	// AvailabilityZone is reported in the capabilities when set.
	AvailabilityZone string
}

// ParseConfig reads a [backend:<name>] section whose volume_driver is
// "rbd", with Cinder's defaults, and checks it.
func ParseConfig(b config.Backend) (Config, error) {
	o := b.Options
	c := Config{Name: b.Name, BackendName: b.VolumeBackendName, Pool: o["rbd_pool"], User: o["rbd_user"],
		CephConf: o["rbd_ceph_conf"], Cluster: o["rbd_cluster_name"], SecretUUID: o["rbd_secret_uuid"],
		MaxCloneDepth: 5, ConnectTimeout: -1, AvailabilityZone: o["availability_zone"]}
	if c.BackendName == "" {
		c.BackendName = b.Name
	}
	if c.Pool == "" {
		c.Pool = "rbd"
	}
	if c.Cluster == "" {
		c.Cluster = "ceph"
	}
	if v := o["rbd_flatten_volume_from_snapshot"]; v != "" {
		f, err := parseBool(v)
		if err != nil {
			return c, errs.E(errs.Invalid, "[backend:%s] rbd_flatten_volume_from_snapshot: not a boolean: %q", b.Name, v)
		}
		c.FlattenFromSnapshot = f
	}
	if v := o["rbd_max_clone_depth"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, errs.E(errs.Invalid, "[backend:%s] rbd_max_clone_depth: not a non-negative integer: %q", b.Name, v)
		}
		c.MaxCloneDepth = n
	}
	if v := o["rados_connect_timeout"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return c, errs.E(errs.Invalid, "[backend:%s] rados_connect_timeout: not an integer >= -1: %q", b.Name, v)
		}
		c.ConnectTimeout = n
	}
	return c, nil
}

// parseBool accepts oslo.config's boolean spellings.
func parseBool(v string) (bool, error) {
	switch v {
	case "true", "True", "TRUE", "yes", "on", "1":
		return true, nil
	case "false", "False", "FALSE", "no", "off", "0":
		return false, nil
	}
	return false, strconv.ErrSyntax
}

// NotBuiltIn is the message of a binary built without the driver.
const NotBuiltIn = "volume_driver rbd is not built in: build Ashlar with -tags ceph,pacific (needs librados-dev and librbd-dev)"
