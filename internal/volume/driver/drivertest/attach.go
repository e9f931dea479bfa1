package drivertest

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// testAttach checks a driver.Attacher: every connection_info names a
// protocol the driver declares, a missing volume is NotFound, the answer
// is stable for one connector, terminating is idempotent, and a "local"
// device_path is the volume: bytes written through it read back through
// Open, as os-brick's LocalConnector hands the path to the consumer.
func testAttach(t *testing.T, d driver.Driver) {
	a, ok := d.(driver.Attacher)
	if !ok {
		t.Skip("driver does not implement driver.Attacher")
	}
	ctx := context.Background()
	protos := a.Protocols()
	if len(protos) == 0 {
		t.Fatal("Protocols() is empty")
	}
	connector := map[string]any{"host": "conformance-host", "ip": "127.0.0.1", "initiator": nil, "multipath": false,
		"platform": "x86_64", "os_type": "linux"}
	_, err := a.InitializeConnection(ctx, "missing", connector)
	wantKind(t, err, errs.NotFound)

	if err := d.Create(ctx, "att", 4*mib); err != nil {
		t.Fatal(err)
	}
	ci, err := a.InitializeConnection(ctx, "att", connector)
	if err != nil {
		t.Fatalf("InitializeConnection: %v", err)
	}
	if !slices.Contains(protos, ci.DriverVolumeType) || ci.Data == nil {
		t.Fatalf("connection_info %+v: driver_volume_type not in Protocols() %v, or no data", ci, protos)
	}
	again, err := a.InitializeConnection(ctx, "att", connector)
	if err != nil || again.DriverVolumeType != ci.DriverVolumeType {
		t.Fatalf("second InitializeConnection = %+v, %v; want the first answer %+v", again, err, ci)
	}
	if ci.DriverVolumeType == driver.ProtocolLocal {
		path, _ := ci.Data["device_path"].(string)
		want := pattern(mib, 7)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("open device_path %q: %v", path, err)
		}
		if _, err := f.WriteAt(want, mib); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, d, "att")
		if !bytes.Equal(got[mib:2*mib], want) || !bytes.Equal(got[:mib], make([]byte, mib)) {
			t.Fatal("bytes written through device_path do not read back through Open")
		}
	}
	for range 2 {
		if err := a.TerminateConnection(ctx, "att", connector); err != nil {
			t.Fatalf("TerminateConnection: %v", err)
		}
	}
	if err := d.Delete(ctx, "att"); err != nil {
		t.Fatal(err)
	}
	if err := a.TerminateConnection(ctx, "att", connector); err != nil {
		t.Fatalf("TerminateConnection of a deleted volume: %v", err)
	}
}
