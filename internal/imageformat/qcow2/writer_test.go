package qcow2

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/testenv"
)

const mib = 1 << 20

// disk builds a raw disk of size bytes with random data in ranges; the
// returned bytes are the disk.
func disk(size int64, seed uint64, ranges []Range) []byte {
	b := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	for _, g := range ranges {
		rng.Read(b[g.Offset : g.Offset+g.Length])
	}
	return b
}

func TestQemuImgAcceptsImage(t *testing.T) {
	qemu := testenv.Tool(t, "qemu-img", "qemu-utils")
	cases := []struct {
		name   string
		size   int64
		ranges []Range
	}{
		{"empty", 64 * mib, nil},
		{"one-byte-disk", 512, []Range{{0, 512}}},
		{"full", 3 * mib, []Range{{0, 3 * mib}}},
		{"unaligned-ranges", 10*mib + 512, []Range{{100, 1}, {70000, 5}, {70010, 200000}, {10 * mib, 512}}},
		{"shared-cluster", 4 * mib, []Range{{0, 10}, {20, 10}, {65535, 2}}},
		{"across-l2-tables", 1200 * mib, []Range{{0, mib}, {512*mib - 4096, 8192}, {1100 * mib, 3 * mib}, {1200*mib - 1, 1}}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := disk(c.size, uint64(i), c.ranges)
			rawPath := filepath.Join(dir, "disk.raw")
			if err := os.WriteFile(rawPath, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(context.Background(), bytes.NewReader(raw), c.size, c.ranges)
			if err != nil {
				t.Fatal(err)
			}
			qPath := filepath.Join(dir, "disk.qcow2")
			f, err := os.Create(qPath)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(f, r)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if n != r.Size() {
				t.Fatalf("wrote %d bytes, Size() said %d", n, r.Size())
			}
			for _, args := range [][]string{
				{"check", "-f", "qcow2", qPath},
				{"compare", "-f", "raw", "-F", "qcow2", rawPath, qPath},
			} {
				out, err := exec.Command(qemu, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("qemu-img %s: %v\n%s", args[0], err, out)
				}
			}
			out, err := exec.Command(qemu, "info", "--output=json", "-f", "qcow2", qPath).CombinedOutput()
			if err != nil || !strings.Contains(string(out), `"virtual-size": `+strconv.FormatInt(c.size, 10)) {
				t.Fatalf("qemu-img info: %v\n%s", err, out)
			}
		})
	}
}

// TestHolesCostNothing checks that only clusters touching data are stored.
func TestHolesCostNothing(t *testing.T) {
	r, err := NewReader(context.Background(), bytes.NewReader(nil), 1<<40, []Range{{0, 1}, {1 << 39, 2 * clusterSize}})
	if err != nil {
		t.Fatal(err)
	}
	if r.DataClusters() != 3 {
		t.Fatalf("data clusters %d, want 3", r.DataClusters())
	}
	// header, L1 (1 TiB: 2048 entries = 16 KiB: one cluster), refcount
	// table, one refcount block, two L2 tables, three data clusters.
	if want := int64(1+1+1+1+2+3) * clusterSize; r.Size() != want {
		t.Fatalf("size %d, want %d", r.Size(), want)
	}
}

func TestInvalidInput(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		size   int64
		ranges []Range
	}{
		{0, nil},
		{mib, []Range{{mib - 1, 2}}},
		{4 * mib, []Range{{2 * mib, 1}, {0, 1}}},
	} {
		if _, err := NewReader(ctx, bytes.NewReader(nil), c.size, c.ranges); err == nil {
			t.Errorf("NewReader(%d, %v) accepted", c.size, c.ranges)
		}
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	raw := disk(8*mib, 1, []Range{{0, 8 * mib}})
	r, err := NewReader(ctx, bytes.NewReader(raw), 8*mib, []Range{{0, 8 * mib}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, r, 2*mib); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, r); err != context.Canceled {
		t.Fatalf("after cancel: %v", err)
	}
}
