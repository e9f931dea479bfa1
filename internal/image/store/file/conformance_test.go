package file_test

import (
	"path/filepath"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
	"github.com/ashlar-dev/ashlar/internal/image/store/storetest"
)

// TestConformanceWriters runs the suite on each of the driver's write
// paths: O_DIRECT pwrites (where the filesystem has them) and buffered
// writes (filesystems without O_DIRECT), each with thin provisioning off
// and on (zeros left as holes: every byte must still come back).
func TestConformanceWriters(t *testing.T) {
	for _, tc := range []struct {
		name           string
		buffered, thin bool
	}{{"direct", false, false}, {"direct-thin", false, true}, {"buffered", true, false}, {"buffered-thin", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := file.New(filepath.Join(t.TempDir(), "images"))
			if err != nil {
				t.Fatal(err)
			}
			d.SetThin(tc.thin)
			d.SetBuffered(tc.buffered)
			storetest.Run(t, func(*testing.T) store.Driver { return d }, storetest.Options{
				Leftovers: func(t *testing.T, key string) []string { return file.TempFiles(t, d.Dir()) },
			})
		})
	}
}

// BenchmarkFile: go test -run '^$' -bench . ./internal/image/store/file/
// (ASHLAR_BENCH_SIZES=64,1024 to choose sizes in MiB).
func BenchmarkFile(b *testing.B) {
	dir := b.TempDir()
	d, err := file.New(filepath.Join(dir, "images"))
	if err != nil {
		b.Fatal(err)
	}
	storetest.Bench(b, d, storetest.BenchOptions{ScratchDir: dir})
}

// BenchmarkFilePaced: Put from a source paced at the hashing speed
// ($ASHLAR_BENCH_PACE MB/s, default 400).
func BenchmarkFilePaced(b *testing.B) {
	dir := b.TempDir()
	d, err := file.New(filepath.Join(dir, "images"))
	if err != nil {
		b.Fatal(err)
	}
	storetest.BenchPaced(b, d, dir)
}
