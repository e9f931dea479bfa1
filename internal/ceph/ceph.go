//go:build ceph

// Package ceph holds what the Ceph drivers (the rbd volume driver and the
// rbd image store) share: connecting to a cluster through librados with
// the key from the keyring the conf names, errnos of go-ceph errors,
// looking an RBD image up without opening it, and writing data into a new
// image without its zero blocks. It needs librados/librbd
// (cgo), so it builds only with the tag "ceph".
package ceph

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"
)

// Connect connects to cluster as user ("" for librados's default,
// client.admin) with the conf file at conf ("" for librados's default
// search, /etc/ceph/ceph.conf first), and returns the connection and the
// cluster's fsid. The key comes from the keyring the conf names; it never
// passes through Ashlar's configuration or logs. timeout > 0 bounds the
// connect and every monitor and OSD operation (rados_connect_timeout).
func Connect(cluster, user, conf string, timeout int) (*rados.Conn, string, error) {
	if user == "" {
		user = "admin"
	}
	if cluster == "" {
		cluster = "ceph"
	}
	conn, err := rados.NewConnWithClusterAndUser(cluster, "client."+user)
	if err != nil {
		return nil, "", fmt.Errorf("rados: %w", err)
	}
	if conf != "" {
		err = conn.ReadConfigFile(conf)
	} else {
		err = conn.ReadDefaultConfigFile()
	}
	if err != nil {
		conn.Shutdown()
		return nil, "", fmt.Errorf("reading ceph conf %q: %w", conf, err)
	}
	if timeout > 0 {
		t := strconv.Itoa(timeout)
		for _, o := range []string{"client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"} {
			if err := conn.SetConfigOption(o, t); err != nil {
				conn.Shutdown()
				return nil, "", fmt.Errorf("setting %s: %w", o, err)
			}
		}
	}
	if err := conn.Connect(); err != nil {
		conn.Shutdown()
		return nil, "", fmt.Errorf("connecting to ceph cluster %q as client.%s: %w", cluster, user, err)
	}
	fsid, err := conn.GetFSID()
	if err != nil {
		conn.Shutdown()
		return nil, "", fmt.Errorf("cluster fsid: %w", err)
	}
	return conn, fsid, nil
}

// Errno is the (positive) errno of a go-ceph error, 0 if it has none.
func Errno(err error) int {
	if errors.Is(err, rbd.ErrNotFound) || errors.Is(err, rados.ErrNotFound) {
		return 2 // ENOENT
	}
	var oe rados.OperationError
	if errors.As(err, &oe) && oe.OpError != nil {
		err = oe.OpError
	}
	var e interface{ ErrorCode() int }
	if errors.As(err, &e) {
		n := e.ErrorCode()
		if n < 0 {
			n = -n
		}
		return n
	}
	return 0
}

// RemoveImage removes RBD image name of ioctx and its snapshots,
// unprotecting them first, as the cleanup after a failed or replaced
// upload (and a test's purge) does: best effort. What it cannot remove
// stays; the image store's Recover looks for an unfinished upload's image
// again, nothing for a replaced one's.
func RemoveImage(ioctx *rados.IOContext, name string) {
	if img, err := rbd.OpenImage(ioctx, name, rbd.NoSnapshot); err == nil {
		snaps, _ := img.GetSnapshotNames()
		for _, s := range snaps {
			_ = img.GetSnapshot(s.Name).Unprotect()
			_ = img.GetSnapshot(s.Name).Remove()
		}
		img.Close()
	}
	_ = rbd.RemoveImage(ioctx, name)
}

// ImageExists reports whether RBD image name exists in ioctx's pool and
// namespace, from the image directory (rbd_directory's name_<image> key):
// never by opening a missing image, which librbd answers only after
// setting up and tearing down a whole image context (and which, under
// load, has aborted the process).
func ImageExists(ioctx *rados.IOContext, name string) (bool, error) {
	op := rados.CreateReadOp()
	defer op.Release()
	step := op.GetOmapValuesByKeys([]string{"name_" + name})
	if err := op.Operate(ioctx, "rbd_directory", rados.OperationNoFlag); err != nil {
		var oe rados.OperationError
		if errors.Is(err, rados.ErrNotFound) || errors.As(err, &oe) && errors.Is(oe.OpError, rados.ErrNotFound) {
			return false, nil // no image was ever made here
		}
		return false, err
	}
	kv, err := step.Next()
	if err != nil {
		return false, err
	}
	return kv != nil, nil
}
