//go:build ceph

package rbd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

// osBrickScript attaches the volume of the connection_info on stdin with
// os-brick's RBD connector in userspace (do_local_attach=False: a file-like
// object over librbd, as Nova uses for libvirt's rbd disks), writes the
// pattern file's bytes at offset 4096, reads them back and detaches.
const osBrickScript = `
import json, sys
from os_brick.initiator import connector
conn = json.load(sys.stdin)
data = open(sys.argv[1], "rb").read()
c = connector.InitiatorConnector.factory("RBD", root_helper=None, do_local_attach=False)
dev = c.connect_volume(conn["data"])
f = dev["path"]
f.seek(4096)
f.write(data)
f.flush()
f.seek(4096)
assert f.read(len(data)) == data, "read back differs"
c.disconnect_volume(conn["data"], dev)
print("ok")
`

// TestAttachOSBrickAndQemu hands the driver's connection_info to os-brick's
// RBD connector (with the keyring's content added, as cinderlib does; Cinder
// leaves the key to the host), writes a pattern through it, checks it
// through the driver, then reads the whole volume with qemu-img through an
// rbd: path.
func TestAttachOSBrickAndQemu(t *testing.T) {
	c := testenv.SharedCeph(t)
	py := testenv.Tool(t, "/usr/bin/python3", "python3-os-brick")
	if err := exec.Command(py, "-c", "import os_brick, rbd").Run(); err != nil {
		testenv.SkipOrFatal(t, "os-brick or python3-rbd missing (install python3-os-brick python3-rbd)")
	}
	qemu := testenv.Tool(t, "qemu-img", "qemu-utils")
	ctx := context.Background()
	// os-brick names images pool/image: no namespace, so the pool's own.
	cfg, _ := ParseConfig(config.Backend{Name: "ceph", Options: map[string]string{"rbd_pool": "volumes", "rbd_user": "cinder", "rbd_ceph_conf": c.Conf}})
	d, _ := New(cfg)
	t.Cleanup(d.Close)
	id := "attach-" + strings.ReplaceAll(t.Name(), "/", "-")
	_ = d.Delete(ctx, id)
	if err := d.Create(ctx, id, 8<<20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Delete(ctx, id) })
	ci, err := d.InitializeConnection(ctx, id, map[string]any{"host": "h"})
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := os.ReadFile(c.Keyring("cinder"))
	if err != nil {
		t.Fatal(err)
	}
	ci.Data["keyring"] = string(keyring)
	in, _ := json.Marshal(ci)
	pattern := bytes.Repeat([]byte("os-brick!"), 100000)
	pf := filepath.Join(t.TempDir(), "pattern")
	if err := os.WriteFile(pf, pattern, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", osBrickScript, pf)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("os-brick attach: %v\n%s", err, out)
	}
	want := make([]byte, 8<<20)
	copy(want[4096:], pattern)
	v, err := d.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8<<20)
	_, err = v.ReadAt(got, 0)
	v.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("volume after os-brick's writes differs (%v)", err)
	}
	raw := filepath.Join(t.TempDir(), "out.raw")
	if out, err := exec.Command(qemu, "convert", "-f", "raw", "-O", "raw",
		"rbd:volumes/volume-"+id+":id=cinder:conf="+c.Conf, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(raw); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("qemu-img read the volume differently (%v)", err)
	}
}
