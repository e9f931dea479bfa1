package file

import (
	"context"
	"os"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

var _ driver.Attacher = (*Driver)(nil)

// Protocols reports "local" always (a host that sees volumes_dir opens the
// file itself) and "nfs" when nfs_share names the export holding
// volumes_dir, so other hosts mount it as they mount a Cinder NFS share.
func (d *Driver) Protocols() []string {
	if d.nfsShare != "" {
		return []string{driver.ProtocolLocal, driver.ProtocolNFS}
	}
	return []string{driver.ProtocolLocal}
}

// InitializeConnection answers the local shape ({"device_path": file}) for
// this host, and for every host when no NFS share is configured (the
// directory is then taken to be visible where volumes are attached, e.g.
// a cluster filesystem). With nfs_share, other hosts get the NFS driver's
// shape: os-brick mounts the export and opens name in it.
func (d *Driver) InitializeConnection(ctx context.Context, volumeID string, connector map[string]any) (driver.ConnectionInfo, error) {
	if err := ctx.Err(); err != nil {
		return driver.ConnectionInfo{}, err
	}
	p, err := d.path(volumeID)
	if err != nil {
		return driver.ConnectionInfo{}, err
	}
	if _, err := os.Stat(p); err != nil {
		if os.IsNotExist(err) {
			return driver.ConnectionInfo{}, errs.E(errs.NotFound, "volume %s not found", volumeID)
		}
		return driver.ConnectionInfo{}, err
	}
	host, _ := connector["host"].(string)
	if d.nfsShare == "" || host == "" || d.isLocalHost(host) {
		return driver.ConnectionInfo{DriverVolumeType: driver.ProtocolLocal, Data: map[string]any{"device_path": p}}, nil
	}
	data := map[string]any{"export": d.nfsShare, "name": volPrefix + volumeID, "format": "raw"}
	if d.nfsOptions != "" {
		data["options"] = d.nfsOptions
	}
	return driver.ConnectionInfo{DriverVolumeType: driver.ProtocolNFS, Data: data}, nil
}

// TerminateConnection has nothing to undo: the driver exports nothing per
// host (the file or share is always there).
func (d *Driver) TerminateConnection(ctx context.Context, volumeID string, connector map[string]any) error {
	if _, err := d.path(volumeID); err != nil {
		return err
	}
	return ctx.Err()
}

// isLocalHost reports whether host names this machine, whose volume
// service writes volumes_dir: os-brick sends the short hostname.
func (d *Driver) isLocalHost(host string) bool {
	for _, h := range d.localHosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}

// localHostNames are the names a connector of this machine may carry: the
// hostname and its first label.
func localHostNames() []string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return nil
	}
	short, _, _ := strings.Cut(h, ".")
	return []string{h, short}
}
