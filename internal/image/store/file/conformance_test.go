package file_test

import (
	"path/filepath"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
	"github.com/ashlar-dev/ashlar/internal/image/store/storetest"
)

func TestConformance(t *testing.T) {
	d, err := file.New(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(*testing.T) store.Driver { return d }, storetest.Options{
		Leftovers: func(t *testing.T, key string) []string { return file.TempFiles(t, d.Dir()) },
	})
}

// TestConformanceThin runs the suite with thin provisioning on: zeros are
// left as holes, and every byte must still come back.
func TestConformanceThin(t *testing.T) {
	d, err := file.New(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	d.SetThin(true)
	storetest.Run(t, func(*testing.T) store.Driver { return d }, storetest.Options{
		Leftovers: func(t *testing.T, key string) []string { return file.TempFiles(t, d.Dir()) },
	})
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
