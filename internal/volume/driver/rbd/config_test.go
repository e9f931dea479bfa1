package rbd

import (
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(config.Backend{Name: "b", Options: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	// Cinder's defaults.
	if c.Pool != "rbd" || c.Cluster != "ceph" || c.User != "" || c.MaxCloneDepth != 5 || c.FlattenFromSnapshot ||
		c.ConnectTimeout != -1 || c.BackendName != "b" {
		t.Fatalf("defaults %+v", c)
	}
	c, err = ParseConfig(config.Backend{Name: "b", VolumeBackendName: "fast", Options: map[string]string{
		"rbd_pool": "volumes", "rbd_user": "cinder", "rbd_ceph_conf": "/etc/ceph/x.conf", "rbd_cluster_name": "x",
		"rbd_secret_uuid": "u", "rbd_flatten_volume_from_snapshot": "True", "rbd_max_clone_depth": "0",
		"rados_connect_timeout": "5"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Pool != "volumes" || c.User != "cinder" || c.CephConf != "/etc/ceph/x.conf" || c.Cluster != "x" ||
		c.SecretUUID != "u" || !c.FlattenFromSnapshot || c.MaxCloneDepth != 0 || c.ConnectTimeout != 5 || c.BackendName != "fast" {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range []map[string]string{
		{"rbd_flatten_volume_from_snapshot": "maybe"},
		{"rbd_max_clone_depth": "-1"},
		{"rbd_max_clone_depth": "x"},
		{"rados_connect_timeout": "-2"},
	} {
		if _, err := ParseConfig(config.Backend{Name: "b", Options: bad}); !errs.Is(err, errs.Invalid) {
			t.Errorf("ParseConfig(%v) = %v, want Invalid", bad, err)
		}
	}
}
