package backup_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/s3"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/file"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	mib        = 1 << 20
	gib        = 1 << 30
	benchChunk = backup.DefaultChunkSize
)

// fillRandom writes n random bytes at off of the file at path, in 4 MiB
// writes.
func fillRandom(b *testing.B, path string, off, n int64, seed uint64) {
	b.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	buf := make([]byte, 4*mib)
	for done := int64(0); done < n; done += int64(len(buf)) {
		_, _ = r.Read(buf)
		m := min(int64(len(buf)), n-done)
		if _, err := f.WriteAt(buf[:m], off+done); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBackup measures, against the real MinIO of the test
// environment and in one run: MinIO's raw PUT throughput (1 GiB of random
// 4 MiB objects, as many at once as the engine's workers), a full backup
// of a 1 GiB volume of random data (file driver), a full backup of a
// 10 GiB sparse volume holding 1 GiB of data, and an incremental backup
// of the 1 GiB volume after 1 % of its 4 MiB blocks (the chunk size)
// changed. It reports
// the full backup's throughput as a percentage of the raw PUT's, the CPU
// time this process spent on the full backup (MinIO's not counted), the
// sparse backup's time as a multiple of the 1 GiB one's, and the
// incremental's time as a percentage of the full one's, beside the
// incremental's floor (scan/full-%: reading the volume and hashing each
// chunk with xxHash64, from one goroutine per CPU as the engine does,
// timed just before it).
//
//	go test ./internal/volume/backup/ -run '^$' -bench Backup -benchtime 1x
func BenchmarkBackup(b *testing.B) {
	m := testenv.SharedMinIO(b)
	ctx := context.Background()
	st, err := s3.New(s3.Config{Endpoint: m.Endpoint, Bucket: "bench", AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		Region: m.Region, Connections: 2 * backup.DefaultWorkers})
	if err != nil {
		b.Fatal(err)
	}
	eng, err := backup.New(st, backup.Options{})
	if err != nil {
		b.Fatal(err)
	}
	drv, err := file.New(config.Backend{Name: "bench", Options: map[string]string{"volumes_dir": b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	// The volumes: 1 GiB of random data; 10 GiB holding 1 GiB in 16
	// islands of 64 MiB.
	if err := drv.Create(ctx, "dense", gib); err != nil {
		b.Fatal(err)
	}
	dense, _ := drv.Path("dense")
	fillRandom(b, dense, 0, gib, 1)
	if err := drv.Create(ctx, "sparse", 10*gib); err != nil {
		b.Fatal(err)
	}
	sparse, _ := drv.Path("sparse")
	for i := range int64(16) {
		fillRandom(b, sparse, i*(10*gib/16), 64*mib, uint64(10+i))
	}
	// Raw PUT objects, made once.
	objs := make([][]byte, backup.DefaultWorkers)
	for i := range objs {
		objs[i] = make([]byte, benchChunk)
		r := rand.NewChaCha8([32]byte{byte(100 + i)})
		_, _ = r.Read(objs[i])
	}

	var put, full, sp, incr, scan, fullCPU time.Duration
	// run backs vol up and returns the time it took and the CPU time this
	// process spent meanwhile (MinIO's is its own): unlike the ratio of
	// times, the CPU time hardly depends on what else runs on the machine.
	run := func(id, vol string, parent *backup.Manifest) (*backup.Manifest, time.Duration, time.Duration) {
		v, err := drv.Open(ctx, vol)
		if err != nil {
			b.Fatal(err)
		}
		defer v.Close()
		cpu0 := cpuTime(b)
		start := time.Now()
		man, err := eng.Backup(ctx, "bench", id, backup.Source{Volume: v, VolumeID: vol, Parent: parent}, nil)
		if err != nil {
			b.Fatal(err)
		}
		return man, time.Since(start), cpuTime(b) - cpu0
	}
	b.ResetTimer()
	for i := range b.N {
		// MinIO's raw PUT throughput: 1 GiB of 4 MiB objects, Workers
		// at a time.
		start := time.Now()
		var wg sync.WaitGroup
		errc := make(chan error, backup.DefaultWorkers)
		n := gib / benchChunk
		for w := range backup.DefaultWorkers {
			wg.Go(func() {
				for k := w; k < n; k += backup.DefaultWorkers {
					if err := st.Put(ctx, fmt.Sprintf("raw/%d/%06d", i, k), objs[w]); err != nil {
						errc <- err
						return
					}
				}
			})
		}
		wg.Wait()
		put += time.Since(start)
		close(errc)
		if err := <-errc; err != nil {
			b.Fatal(err)
		}

		base, d, cpu := run(fmt.Sprintf("full-%d", i), "dense", nil)
		full += d
		fullCPU += cpu
		_, d, _ = run(fmt.Sprintf("sparse-%d", i), "sparse", nil)
		sp += d

		// Change 1 % (rounded up) of the 1 GiB volume's blocks of the
		// backup's chunk size.
		b.StopTimer()
		r := rand.New(rand.NewPCG(uint64(i), 7))
		blocks := int64(gib / benchChunk)
		for range (blocks + 99) / 100 {
			fillRandom(b, dense, r.Int64N(blocks)*benchChunk, benchChunk, uint64(1000+i))
		}
		// The reference for the incremental: what it cannot avoid, one
		// pass over the volume reading it and hashing each chunk with
		// xxHash64 to tell the unchanged ones, then the changed chunks'
		// PUTs (left out: a lower bound).
		scan += scanVolume(b, dense)
		b.StartTimer()
		_, d, _ = run(fmt.Sprintf("incr-%d", i), "dense", base)
		incr += d

		b.StopTimer()
		for _, id := range []string{fmt.Sprintf("incr-%d", i), fmt.Sprintf("full-%d", i), fmt.Sprintf("sparse-%d", i)} {
			if err := eng.Delete(ctx, "bench", id); err != nil {
				b.Fatal(err)
			}
		}
		keys, _ := st.List(ctx, fmt.Sprintf("raw/%d/", i))
		for _, k := range keys {
			_ = st.Delete(ctx, k)
		}
		b.StartTimer()
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * gib / mib / d.Seconds() }
	b.ReportMetric(mbps(put), "put-MB/s")
	b.ReportMetric(mbps(full), "full-MB/s")
	b.ReportMetric(100*put.Seconds()/full.Seconds(), "full/put-%")
	b.ReportMetric(fullCPU.Seconds()/float64(b.N), "full-cpu-s/GiB")
	b.ReportMetric(sp.Seconds()/full.Seconds(), "sparse10G/full1G-x")
	b.ReportMetric(100*incr.Seconds()/full.Seconds(), "incr/full-%")
	b.ReportMetric(100*scan.Seconds()/full.Seconds(), "scan/full-%")
}

// scanVolume reads the file at path in chunks of the backup's chunk size
// and hashes each with xxHash64, as an incremental backup must to find the
// chunks that changed, and returns how long that took. Like the engine
// with a file volume, it reads from one goroutine per CPU, each its own
// chunks.
func scanVolume(b *testing.B, path string) time.Duration {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	chunks := (st.Size() + benchChunk - 1) / benchChunk
	var next atomic.Int64
	var sum atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, benchChunk)
			for i := next.Add(1) - 1; i < chunks; i = next.Add(1) - 1 {
				n, err := f.ReadAt(buf, i*benchChunk)
				if err != nil && err != io.EOF {
					b.Error(err)
					return
				}
				sum.Add(xxhash.Sum64(buf[:n]))
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if sum.Load() == 0 {
		b.Log("sum of the chunk hashes is zero") // keeps the hashing from being optimised away
	}
	return d
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
