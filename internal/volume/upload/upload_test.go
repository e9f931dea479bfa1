package upload

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"testing/iotest"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/file"
)

const mib = 1 << 20

// testVolume is a file-driver volume of size bytes: random data in the
// given [start,end) ranges, zeros (holes) elsewhere.
type testVolume struct {
	driver.Volume
	data []byte
	path string
}

func newVolume(t testing.TB, size int64, seed uint64, ranges ...[2]int64) *testVolume {
	t.Helper()
	d, err := file.New(config.Backend{Name: "t", Options: map[string]string{"volumes_dir": t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	for _, g := range ranges {
		rng.Read(data[g[0]:g[1]])
	}
	ctx := context.Background()
	if err := d.CreateFrom(ctx, "vol", size, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	v, err := d.Open(ctx, "vol")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	p, _ := d.Path("vol")
	return &testVolume{Volume: v, data: data, path: p}
}

// hidePath hides driver.LocalFile, as a volume of a non-file driver.
type hidePath struct{ driver.Volume }

var volumeShapes = []struct {
	name   string
	size   int64
	ranges [][2]int64
}{
	{"empty", 16 * mib, nil},
	{"full", 3*mib + 512, [][2]int64{{0, 3*mib + 512}}},
	{"islands", 20 * mib, [][2]int64{{1, 2}, {4096, 70000}, {5 * mib, 7 * mib}, {20*mib - 100, 20 * mib}}},
}

func TestRaw(t *testing.T) {
	for i, c := range volumeShapes {
		t.Run(c.name, func(t *testing.T) {
			v := newVolume(t, c.size, uint64(i), c.ranges...)
			if err := iotest.TestReader(Raw(context.Background(), v), v.data); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(iotest.HalfReader(Raw(context.Background(), hidePath{v})))
			if err != nil || !bytes.Equal(got, v.data) {
				t.Fatalf("raw stream differs from the volume (err %v)", err)
			}
		})
	}
}

func TestRawCanceled(t *testing.T) {
	v := newVolume(t, 8*mib, 1, [2]int64{0, 8 * mib})
	ctx, cancel := context.WithCancel(context.Background())
	r := Raw(ctx, v)
	if _, err := io.CopyN(io.Discard, r, mib); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, r); err != context.Canceled {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestUploadFormats uploads each shape in each disk format and checks the
// stored image with qemu-img compare against the volume.
func TestUploadFormats(t *testing.T) {
	qemu := testenv.Tool(t, "qemu-img", "qemu-utils")
	s, client := newSink(t, true)
	ctx := context.Background()
	qemuName := map[string]string{"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi",
		"vhd": "vpc", "vhdx": "vhdx", "ploop": "parallels"}
	for i, c := range volumeShapes {
		v := newVolume(t, c.size, uint64(i), c.ranges...)
		for _, f := range DiskFormats {
			for _, vol := range []driver.Volume{v, hidePath{v}} {
				_, hidden := vol.(hidePath)
				if hidden && f != "vmdk" {
					continue // the copy path is the same for every qemu-img format
				}
				t.Run(c.name+"/"+f, func(t *testing.T) {
					id := c.name + "-" + f
					if err := Upload(ctx, client, "tok", id, "cheap", vol, f); err != nil {
						t.Fatal(err)
					}
					if s.stores[id] != "cheap" {
						t.Fatalf("store header %q", s.stores[id])
					}
					out, err := exec.Command(qemu, "compare", "-f", "raw", "-F", qemuName[f], v.path, s.path(id)).CombinedOutput()
					if err != nil {
						t.Fatalf("qemu-img compare: %v\n%s", err, out)
					}
					if f == "raw" {
						sum := md5.Sum(v.data)
						if s.md5s[id] != hex.EncodeToString(sum[:]) {
							t.Fatal("raw image checksum differs from the volume's")
						}
					}
					if f == "qcow2" {
						if out, err := exec.Command(qemu, "check", "-f", "qcow2", s.path(id)).CombinedOutput(); err != nil {
							t.Fatalf("qemu-img check: %v\n%s", err, out)
						}
					}
				})
			}
		}
	}
}

func TestUploadCompressed(t *testing.T) {
	s, client := newSink(t, true)
	v := newVolume(t, 4*mib, 7, [2]int64{mib, 2 * mib})
	err := UploadWith(context.Background(), client, v, Options{Token: "tok", ImageID: "gz", DiskFormat: "raw", ContainerFormat: "compressed"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.path("gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, v.data) {
		t.Fatalf("decompressed image differs from the volume (err %v)", err)
	}
	if s.stores["gz"] != "" {
		t.Fatalf("default store expected, got header %q", s.stores["gz"])
	}
}

func TestUploadErrors(t *testing.T) {
	_, client := newSink(t, false)
	ctx := context.Background()
	v := newVolume(t, mib, 1, [2]int64{0, mib})
	if err := Upload(ctx, client, "tok", "img", "web", v, "raw"); !errs.Is(err, errs.Gone) {
		t.Fatalf("read-only store: %v", err)
	}
	if err := Upload(ctx, client, "tok", "img", "", v, "iso"); !errs.Is(err, errs.Invalid) {
		t.Fatalf("unknown disk format: %v", err)
	}
	err := UploadWith(ctx, client, v, Options{ImageID: "img", DiskFormat: "raw", ContainerFormat: "ova"})
	if !errs.Is(err, errs.Invalid) {
		t.Fatalf("unknown container format: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Upload(cctx, client, "tok", "img", "", v, "qcow2"); err == nil {
		t.Fatal("upload with a canceled context succeeded")
	}
}
