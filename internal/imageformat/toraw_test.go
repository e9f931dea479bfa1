package imageformat

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/imageformat/qcow2"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

const mib = 1 << 20

// rawDisk is 8 MiB: random data in the first and sixth MiB, zeros elsewhere.
func rawDisk() []byte {
	b := make([]byte, 8*mib)
	rng := rand.NewChaCha8([32]byte{9})
	rng.Read(b[:mib])
	rng.Read(b[5*mib : 6*mib])
	return b
}

// qemuMake converts raw into format with qemu-img and returns the bytes.
func qemuMake(t *testing.T, qemu string, raw []byte, format string, opts ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.raw"), filepath.Join(dir, "out")
	if err := os.WriteFile(in, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"convert", "-f", "raw", "-O", format}, opts...)
	if b, err := exec.Command(qemu, append(args, in, out)...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestToRaw(t *testing.T) {
	qemu := testenv.Tool(t, "qemu-img", "qemu-utils")
	raw := rawDisk()
	q, err := qcow2.NewReader(context.Background(), bytes.NewReader(raw), int64(len(raw)), []qcow2.Range{{Offset: 0, Length: int64(len(raw))}})
	if err != nil {
		t.Fatal(err)
	}
	native, _ := io.ReadAll(q)
	cases := []struct {
		name, disk, container string
		data                  []byte
		vsize                 int64
	}{
		{"raw", "raw", "bare", raw, -1},
		{"raw-compressed", "raw", "compressed", gz(raw), -1},
		{"qcow2-native", "qcow2", "bare", native, int64(len(raw))},
		{"qcow2-qemu-compressed", "qcow2", "compressed", gz(qemuMake(t, qemu, raw, "qcow2")), int64(len(raw))},
		{"vmdk-stream", "vmdk", "bare", qemuMake(t, qemu, raw, "vmdk", "-o", "subformat=streamOptimized"), int64(len(raw))},
		{"vdi", "vdi", "bare", qemuMake(t, qemu, raw, "vdi"), int64(len(raw))},
		{"vhdx", "vhdx", "bare", qemuMake(t, qemu, raw, "vhdx"), int64(len(raw))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := ToRaw(context.Background(), Source{ImageID: "img", DiskFormat: c.disk,
				ContainerFormat: c.container, Data: bytes.NewReader(c.data), TempDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) || r.VirtualSize != c.vsize {
				t.Fatalf("got %d bytes (equal %v), virtual size %d; want %d bytes, %d", len(got), bytes.Equal(got, raw), r.VirtualSize, len(raw), c.vsize)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("temporary files left: %v", ents)
			}
		})
	}
}

func TestToRawRefuses(t *testing.T) {
	qemu := testenv.Tool(t, "qemu-img", "qemu-utils")
	raw := rawDisk()
	q2 := qemuMake(t, qemu, raw, "qcow2")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	os.WriteFile(base, raw, 0o600)
	backed := filepath.Join(dir, "backed.qcow2")
	if b, err := exec.Command(qemu, "create", "-f", "qcow2", "-b", base, "-F", "raw", backed).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, b)
	}
	backedData, _ := os.ReadFile(backed)
	flat := filepath.Join(dir, "flat.vmdk")
	if b, err := exec.Command(qemu, "create", "-f", "vmdk", "-o", "subformat=monolithicFlat", flat, "1M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, b)
	}
	flatData, _ := os.ReadFile(flat)
	cases := []struct {
		name, disk, container string
		data                  []byte
		reason                string
	}{
		{"qcow2-as-raw", "raw", "bare", q2, "claimed to be 'raw'"},
		{"raw-as-qcow2", "qcow2", "bare", raw, "claimed to be 'qcow2'"},
		{"backing-file", "qcow2", "bare", backedData, "backed by:" + base},
		// qemu-img cannot even open the descriptor without its extent file.
		{"vmdk-descriptor", "vmdk", "bare", flatData, "is unacceptable"},
		{"not-gzip", "raw", "compressed", raw, "Only gzip is supported"},
		{"unknown-format", "zfs", "bare", raw, "disk format zfs is not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			r, err := ToRaw(context.Background(), Source{ImageID: "img1", DiskFormat: c.disk,
				ContainerFormat: c.container, Data: bytes.NewReader(c.data), TempDir: tmp})
			if err == nil {
				r.Close()
				t.Fatal("accepted")
			}
			if !errs.Is(err, errs.Invalid) || !strings.HasPrefix(errs.Message(err), "Image img1 is unacceptable: ") || !strings.Contains(errs.Message(err), c.reason) {
				t.Fatalf("error %v (%q), want Invalid mentioning %q", err, errs.Message(err), c.reason)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Fatalf("temporary files left: %v", ents)
			}
		})
	}
}

func TestVirtualSize(t *testing.T) {
	q := make([]byte, 512)
	copy(q, "QFI\xfb")
	binary.BigEndian.PutUint64(q[24:], 1<<30)
	v := make([]byte, 512)
	copy(v, "KDMV")
	binary.LittleEndian.PutUint64(v[12:], 2048)
	h := make([]byte, 512)
	copy(h, "conectix")
	binary.BigEndian.PutUint64(h[48:], 5<<20)
	for _, c := range []struct {
		format string
		head   []byte
		want   int64
	}{{"qcow2", q, 1 << 30}, {"vmdk", v, 2048 * 512}, {"vhd", h, 5 << 20}, {"raw", q, 512}, {"qcow2", h, -1}} {
		got := VirtualSize(c.format, c.head, 512)
		if c.want < 0 && got != nil || c.want >= 0 && (got == nil || *got != c.want) {
			t.Errorf("%s: %v, want %d", c.format, got, c.want)
		}
	}
}

func TestDetect(t *testing.T) {
	vdi := make([]byte, 72)
	copy(vdi[64:], []byte{0x7f, 0x10, 0xda, 0xbe})
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{[]byte("QFI\xfb\x00\x00\x00\x03"), "qcow2"},
		{[]byte("KDMV...."), "vmdk"},
		{[]byte("vhdxfile"), "vhdx"},
		{[]byte("conectix"), "vhd"},
		{vdi, "vdi"},
		{make([]byte, 512), "raw"},
		{nil, "raw"},
	} {
		if got := Detect(c.b); got != c.want {
			t.Errorf("Detect(%q) = %s, want %s", c.b[:min(len(c.b), 8)], got, c.want)
		}
	}
}
