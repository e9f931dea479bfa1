package file

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivertest"
)

func newDriver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(config.Backend{Name: "local", VolumeDriver: "file", VolumeBackendName: "local-file",
		Options: map[string]string{"volumes_dir": t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newDriver(t) })
}

// TestNoTempFilesLeft checks that neither success nor failure leaves
// temporary files, and that New removes a crash's leftovers.
func TestNoTempFilesLeft(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	if err := d.CreateFrom(ctx, "ok", 1<<20, bytes.NewReader(make([]byte, 100))); err != nil {
		t.Fatal(err)
	}
	_ = d.CreateFrom(ctx, "toolarge", 10, bytes.NewReader(make([]byte, 1<<20)))
	ents, _ := os.ReadDir(d.dir)
	if len(ents) != 1 || ents[0].Name() != "volume-ok" {
		t.Fatalf("directory holds %v, want only volume-ok", ents)
	}
	stale := filepath.Join(d.dir, tmpPrefix+"crashed-123")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(config.Backend{Name: "local", Options: map[string]string{"volumes_dir": d.dir}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("New kept a stale temporary file")
	}
}

func TestCapabilitiesConfigured(t *testing.T) {
	d, err := New(config.Backend{Name: "b1", Options: map[string]string{
		"volumes_dir": t.TempDir(), "total_capacity_gb": "1", "availability_zone": "az2"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.VolumeBackendName != "b1" || c.TotalCapacityGB != 1 || c.FreeCapacityGB > 1 || !c.ThinProvisioning ||
		!c.Multiattach || c.Extra["availability_zone"] != "az2" || c.Extra["provisioned_capacity_gb"] != 0.0 {
		t.Fatalf("capabilities %+v", c)
	}
	// Thin: 3 GiB provisioned on a 1 GiB backend, nothing allocated.
	if err := d.Create(context.Background(), "big", 3<<30); err != nil {
		t.Fatal(err)
	}
	if c, _ = d.Capabilities(context.Background()); c.Extra["provisioned_capacity_gb"] != 3.0 {
		t.Fatalf("provisioned %#v, want the number 3", c.Extra["provisioned_capacity_gb"])
	}
	// A snapshot may come to occupy its size as its volume is rewritten.
	if err := d.CreateSnapshot(context.Background(), "big", "s"); err != nil {
		t.Fatal(err)
	}
	if c, _ = d.Capabilities(context.Background()); c.Extra["provisioned_capacity_gb"] != 6.0 || c.Extra["sparse_copy_volume"] != true {
		t.Fatalf("provisioned %#v, sparse_copy_volume %#v; want 6 and true", c.Extra["provisioned_capacity_gb"], c.Extra["sparse_copy_volume"])
	}
}

func TestNewInvalid(t *testing.T) {
	for _, opts := range []map[string]string{
		{},
		{"volumes_dir": t.TempDir(), "total_capacity_gb": "lots"},
	} {
		_, err := New(config.Backend{Name: "x", Options: opts})
		if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "[backend:x]") {
			t.Errorf("New(%v) = %v, want Invalid naming the section", opts, err)
		}
	}
}

// TestConnectionInfoShapes checks the two shapes the file driver answers:
// os-brick's local connector for this host (and for any host without an
// NFS share), Cinder's NFS driver's for other hosts when nfs_share is set.
func TestConnectionInfoShapes(t *testing.T) {
	ctx := context.Background()
	host, _ := os.Hostname()
	newWith := func(opts map[string]string) *Driver {
		opts["volumes_dir"] = t.TempDir()
		d, err := New(config.Backend{Name: "b", Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Create(ctx, "v1", 1<<20); err != nil {
			t.Fatal(err)
		}
		return d
	}
	plain := newWith(map[string]string{})
	nfs := newWith(map[string]string{"nfs_share": "filer:/export/vols", "nfs_mount_options": "vers=4.1"})
	bare := newWith(map[string]string{"nfs_share": "filer:/export/vols"})
	tests := []struct {
		name string
		d    *Driver
		host string
		want driver.ConnectionInfo
	}{
		{"local without share", plain, "compute-9", driver.ConnectionInfo{DriverVolumeType: "local",
			Data: map[string]any{"device_path": filepath.Join(plain.dir, "volume-v1")}}},
		{"this host with share", nfs, host, driver.ConnectionInfo{DriverVolumeType: "local",
			Data: map[string]any{"device_path": filepath.Join(nfs.dir, "volume-v1")}}},
		{"other host with share", nfs, "compute-9", driver.ConnectionInfo{DriverVolumeType: "nfs",
			Data: map[string]any{"export": "filer:/export/vols", "name": "volume-v1", "options": "vers=4.1", "format": "raw"}}},
		{"no options", bare, "compute-9", driver.ConnectionInfo{DriverVolumeType: "nfs",
			Data: map[string]any{"export": "filer:/export/vols", "name": "volume-v1", "format": "raw"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.d.InitializeConnection(ctx, "v1", map[string]any{"host": tc.host})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got := nfs.Protocols(); fmt.Sprint(got) != "[local nfs]" {
		t.Fatalf("Protocols() = %v", got)
	}
	if _, err := New(config.Backend{Name: "b", Options: map[string]string{"volumes_dir": t.TempDir(), "nfs_share": "filer"}}); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("nfs_share without a path: %v, want invalid", err)
	}
}
