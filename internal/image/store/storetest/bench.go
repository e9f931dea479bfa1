package storetest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/image/store"
)

var (
	patternOnce sync.Once
	pattern     []byte
)

// Source is a non-allocating reader of n pattern bytes: what a benchmark
// uploads, so the measured cost is the driver's, not the source's. It hides
// WriterTo so drivers see it as they see a network body.
type Source struct {
	n, off int64
}

// NewSource returns a Source of n bytes.
func NewSource(n int64) *Source {
	patternOnce.Do(func() { pattern = Data(MiB, 77) })
	return &Source{n: n}
}

// Read implements io.Reader, copying from a shared 1 MiB pattern.
func (s *Source) Read(p []byte) (int, error) {
	if s.off >= s.n {
		return 0, io.EOF
	}
	if rem := s.n - s.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	total := 0
	for len(p) > 0 {
		k := copy(p, pattern[(s.off+int64(total))%MiB:])
		p = p[k:]
		total += k
	}
	s.off += int64(total)
	return total, nil
}

// BenchSizes are the object sizes benchmarked: $ASHLAR_BENCH_SIZES (MiB,
// comma-separated) or 64, 256 and 1024 MiB.
func BenchSizes() []int64 {
	spec := os.Getenv("ASHLAR_BENCH_SIZES")
	if spec == "" {
		spec = "64,256,1024"
	}
	var sizes []int64
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err == nil && n > 0 {
			sizes = append(sizes, n*MiB)
		}
	}
	return sizes
}

// BenchOptions configure Bench.
type BenchOptions struct {
	// ScratchDir holds the baseline files (same filesystem as a file
	// store under test, for a fair comparison).
	ScratchDir string
	// Seed stores objects for read-only drivers (Put is not benchmarked
	// then).
	Seed func(b *testing.B, key string, size int64)
}

// drain copies r to io.Discard through a 1 MiB buffer with ReaderFrom and
// WriterTo hidden, so every reader is drained the same way.
func drain(r io.Reader, buf []byte) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, buf)
}

// writeBaseline writes size source bytes to a new file and fsyncs it, as
// a file store's Put does, without any store machinery.
func writeBaseline(path string, size int64, buf []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, NewSource(size), buf); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Bench benchmarks d's Put and Get for every BenchSizes size. Each
// iteration also runs the baselines on the same bytes, interleaved so
// machine noise hits both alike, and reports:
//
//	MB/s            the driver (b.SetBytes)
//	base-MB/s       Put: raw os.File write+fsync; Get: raw os.File read
//	src-MB/s        Put: the source copied to io.Discard (the ceiling)
//	x-base          driver MB/s / base-MB/s
func Bench(b *testing.B, d store.Driver, opts BenchOptions) {
	ro, _ := d.(store.ReadOnlyDriver)
	readOnly := ro != nil && ro.ReadOnly()
	for _, size := range BenchSizes() {
		name := fmt.Sprintf("%dMiB", size/MiB)
		if !readOnly {
			b.Run(name+"/Put", func(b *testing.B) { benchPut(b, d, opts, size) })
		}
		b.Run(name+"/Get", func(b *testing.B) { benchGet(b, d, opts, size, readOnly) })
	}
}

func benchPut(b *testing.B, d store.Driver, opts BenchOptions, size int64) {
	ctx := context.Background()
	key := fmt.Sprintf("bench-put-%d", size)
	base := filepath.Join(opts.ScratchDir, key+".baseline")
	buf := make([]byte, MiB)
	var baseT, srcT time.Duration
	baseline := func() {
		t0 := time.Now()
		if _, err := drain(NewSource(size), buf); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := writeBaseline(base, size, buf); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		_ = os.Remove(base)
		srcT += t1.Sub(t0)
		baseT += t2.Sub(t1)
	}
	driverT := interleaved(b, size, baseline, func() time.Duration {
		t0 := time.Now()
		n, err := d.Put(ctx, key, NewSource(size))
		took := time.Since(t0)
		if err != nil || n != size {
			b.Fatalf("Put = %d, %v", n, err)
		}
		b.StopTimer()
		if err := d.Delete(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		return took
	})
	report(b, size, driverT, baseT)
	b.ReportMetric(mbps(size, b.N, srcT), "src-MB/s")
}

func benchGet(b *testing.B, d store.Driver, opts BenchOptions, size int64, readOnly bool) {
	ctx := context.Background()
	key := fmt.Sprintf("bench-get-%d", size)
	buf := make([]byte, MiB)
	if readOnly {
		opts.Seed(b, key, size)
	} else if _, err := d.Put(ctx, key, NewSource(size)); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if !readOnly {
			_ = d.Delete(ctx, key)
		}
	}()
	base := filepath.Join(opts.ScratchDir, key+".baseline")
	if err := writeBaseline(base, size, buf); err != nil {
		b.Fatal(err)
	}
	defer os.Remove(base)
	var baseT time.Duration
	baseline := func() {
		t0 := time.Now()
		f, err := os.Open(base)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := drain(f, buf); err != nil || n != size {
			b.Fatalf("baseline read = %d, %v", n, err)
		}
		f.Close()
		baseT += time.Since(t0)
	}
	driverT := interleaved(b, size, baseline, func() time.Duration {
		t0 := time.Now()
		rc, err := d.Get(ctx, key, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		n, err := drain(rc, buf)
		rc.Close()
		took := time.Since(t0)
		if err != nil || n != size {
			b.Fatalf("Get = %d bytes, %v", n, err)
		}
		return took
	})
	report(b, size, driverT, baseT)
}

// interleaved runs the benchmark of op over size bytes: op once per
// iteration, returning the time it took, and baseline with the timer
// stopped, before op on even iterations and after it on odd ones, so
// neither always inherits the other's writeback. It returns op's total.
func interleaved(b *testing.B, size int64, baseline func(), op func() time.Duration) time.Duration {
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	base := func() {
		b.StopTimer()
		baseline()
		b.StartTimer()
	}
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			base()
		}
		total += op()
		if i%2 == 1 {
			base()
		}
	}
	return total
}

func mbps(size int64, n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(size) * float64(n) / d.Seconds() / 1e6
}

func report(b *testing.B, size int64, driverT, baseT time.Duration) {
	drv, base := mbps(size, b.N, driverT), mbps(size, b.N, baseT)
	b.ReportMetric(base, "base-MB/s")
	if base > 0 {
		b.ReportMetric(drv/base, "x-base")
	}
}

// PacedSource is a Source that delivers at most rate bytes per second, like
// an upload whose speed is set by the hashing in front of the store.
type PacedSource struct {
	Source
	rate  float64
	start time.Time
}

// NewPacedSource returns n bytes delivered at rate bytes/s.
func NewPacedSource(n int64, rate float64) *PacedSource {
	return &PacedSource{Source: *NewSource(n), rate: rate}
}

// Read implements io.Reader, sleeping to keep to the rate.
func (s *PacedSource) Read(p []byte) (int, error) {
	if s.start.IsZero() {
		s.start = time.Now()
	}
	n, err := s.Source.Read(p)
	due := time.Duration(float64(s.off) / s.rate * float64(time.Second))
	if d := due - time.Since(s.start); d > 0 {
		time.Sleep(d)
	}
	return n, err
}

// BenchPace is the source rate of BenchPaced in MB/s: $ASHLAR_BENCH_PACE or
// 400 (about the md5+sha512 throughput of the build machine, the speed at
// which the image service hands data to a store).
func BenchPace() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("ASHLAR_BENCH_PACE"), 64); err == nil && v > 0 {
		return v
	}
	return 400
}

// BenchPaced measures Put from a PacedSource: how much of the source's pace
// the driver keeps once its own tail (fsync, multipart completion) is
// counted. It reports x-pace (driver MB/s / pace) and, interleaved, the
// same for a raw os.File write+fsync at the same pace (base-x-pace).
func BenchPaced(b *testing.B, d store.Driver, scratchDir string) {
	rate := BenchPace() * 1e6
	for _, size := range BenchSizes() {
		b.Run(fmt.Sprintf("%dMiB/PutPaced%.0f", size/MiB, rate/1e6), func(b *testing.B) {
			ctx := context.Background()
			key := fmt.Sprintf("bench-paced-%d", size)
			base := filepath.Join(scratchDir, key+".baseline")
			buf := make([]byte, MiB)
			var driverT, baseT time.Duration
			baseline := func() {
				b.StopTimer()
				t0 := time.Now()
				f, err := os.Create(base)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(struct{ io.Writer }{f}, NewPacedSource(size, rate), buf); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				f.Close()
				baseT += time.Since(t0)
				_ = os.Remove(base)
				b.StartTimer()
			}
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					baseline()
				}
				t1 := time.Now()
				if n, err := d.Put(ctx, key, NewPacedSource(size, rate)); err != nil || n != size {
					b.Fatalf("Put = %d, %v", n, err)
				}
				driverT += time.Since(t1)
				b.StopTimer()
				if err := d.Delete(ctx, key); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if i%2 == 1 {
					baseline()
				}
			}
			b.ReportMetric(mbps(size, b.N, driverT)/(rate/1e6), "x-pace")
			b.ReportMetric(mbps(size, b.N, baseT)/(rate/1e6), "base-x-pace")
		})
	}
}
