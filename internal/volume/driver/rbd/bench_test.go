//go:build ceph

package rbd

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	storerbd "github.com/ashlar-dev/ashlar/internal/image/store/rbd"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// benchGiB is the size of the benchmarks' volume.
const benchGiB = 1

// randomVolume makes volume id of size bytes of random data (written in
// 4 MiB pieces through librbd).
func randomVolume(b *testing.B, d *Driver, id string, size int64) {
	b.Helper()
	if err := d.CreateFrom(context.Background(), id, size, io.LimitReader(rand.Reader, size)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCloneVsCopy measures Clone (a COW clone) of a 1 GiB volume of
// random data against a full copy of it (driver.Copy streaming its bytes
// into a new volume), in the same run:
//
//	ASHLAR_CEPH=1 go test -tags ceph,pacific -run '^$' -bench CloneVsCopy -benchtime 3x ./internal/volume/driver/rbd/
func BenchmarkCloneVsCopy(b *testing.B) {
	ctx := context.Background()
	d := newDriver(b, nil)
	const size = benchGiB << 30
	randomVolume(b, d, "src", size)
	var copyNs float64
	b.Run("full-copy", func(b *testing.B) {
		for i := range b.N {
			id := "copy" + strconv.Itoa(i)
			start := time.Now()
			if err := driver.Copy(ctx, d, "src", d, id, size); err != nil {
				b.Fatal(err)
			}
			copyNs += float64(time.Since(start).Nanoseconds()) / float64(b.N)
			b.StopTimer()
			_ = d.Delete(ctx, id)
			b.StartTimer()
		}
		b.SetBytes(size)
	})
	b.Run("cow-clone", func(b *testing.B) {
		var cloneNs float64
		for i := range b.N {
			id := "clone" + strconv.Itoa(i)
			start := time.Now()
			if err := d.Clone(ctx, "src", id, size); err != nil {
				b.Fatal(err)
			}
			cloneNs += float64(time.Since(start).Nanoseconds()) / float64(b.N)
			b.StopTimer()
			_ = d.Delete(ctx, id)
			b.StartTimer()
		}
		if copyNs > 0 {
			b.ReportMetric(copyNs/cloneNs, "x-faster-than-copy")
		}
	})
}

// BenchmarkUploadVsExport measures what an upload to image does with a
// 1 GiB random volume of an rbd backend into an rbd store — the volume read
// through librbd (driver.NewReader), md5 and sha512 computed in one pass,
// written into the store — against `rbd export` of the same volume to
// /dev/null, and against the simplest pipeline that does the upload's work
// (`rbd export | tee >(md5sum) >(sha512sum) | rbd import` from the volumes
// pool into the images pool of the same cluster), both timed just before each upload in the
// same run; %export and %export-import are the upload's throughput as a
// share of theirs. On a one-OSD cluster the upload reads and writes the
// same disk, which export alone does not:
//
//	ASHLAR_CEPH=1 go test -tags ceph,pacific -run '^$' -bench UploadVsExport -benchtime 3x ./internal/volume/driver/rbd/
func BenchmarkUploadVsExport(b *testing.B) {
	ctx := context.Background()
	c := testenv.SharedCeph(b)
	d := newDriver(b, nil)
	const size = benchGiB << 30
	randomVolume(b, d, "up", size)
	co := config.NewOptions(config.Store{ID: "ceph", Type: "rbd", Options: map[string]string{
		storerbd.OptPool: "images", storerbd.OptUser: "glance", storerbd.OptCephConf: c.Conf}})
	sd, err := storerbd.Open(storerbd.ParseConfig(co))
	if err != nil {
		b.Fatal(err)
	}
	defer sd.Close()
	st := store.NewStore(config.Store{ID: "ceph", Type: "rbd"}, sd, true, nil)
	spec := "volumes/" + d.namespace + "/volume-up"
	var exportNs, pipeNs, uploadNs float64
	run := func(name string, args ...string) time.Duration {
		start := time.Now()
		cmd := exec.Command(name, args...)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s %v: %v %s", name, args, err, stderr.String())
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		exportNs += float64(run("rbd", "-c", c.Conf, "--id", "cinder", "export", "--no-progress", spec, "-").Nanoseconds())
		ref := fmt.Sprintf("images/bench-ref-%d-%d", time.Now().UnixNano(), i)
		pipeNs += float64(run("bash", "-c", fmt.Sprintf("rbd -c %q --id cinder export --no-progress %s - | "+
			"tee >(md5sum >/dev/null) >(sha512sum >/dev/null) | rbd -c %q --id glance import --no-progress - %s",
			c.Conf, spec, c.Conf, ref)).Nanoseconds())
		run("rbd", "-c", c.Conf, "--id", "glance", "rm", "--no-progress", ref)
		b.StartTimer()
		start := time.Now()
		v, err := d.Open(ctx, "up")
		if err != nil {
			b.Fatal(err)
		}
		key := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		res, err := st.Put(ctx, key, driver.NewReader(ctx, v), 0, "sha512")
		v.Close()
		if err != nil || res.Size != size {
			b.Fatalf("Put = %+v, %v", res, err)
		}
		uploadNs += float64(time.Since(start).Nanoseconds())
		b.StopTimer()
		_ = st.Delete(ctx, key)
		b.StartTimer()
	}
	b.SetBytes(size)
	b.ReportMetric(float64(size)*float64(b.N)/(exportNs/1e9)/1e6, "export-MB/s")
	b.ReportMetric(100*exportNs/uploadNs, "%export")
	b.ReportMetric(100*pipeNs/uploadNs, "%export-import")
}

// BenchmarkVolumeFromImage measures a volume made from a raw image in the
// rbd store of the same cluster (CloneImage: a copy-on-write clone of the
// image's snapshot), for a 1 GiB image of random data and a 10 GiB image
// holding the same 1 GiB then zeros (stored thin: the one-OSD test
// cluster has 10 GiB). The target is under a second for
// both, whatever the size:
//
//	ASHLAR_CEPH=1 go test -tags ceph,pacific -run '^$' -bench VolumeFromImage -benchtime 5x ./internal/volume/driver/rbd/
func BenchmarkVolumeFromImage(b *testing.B) {
	ctx := context.Background()
	c := testenv.SharedCeph(b)
	d := newDriver(b, nil)
	co := config.NewOptions(config.Store{ID: "ceph", Type: "rbd", Options: map[string]string{
		storerbd.OptPool: "images", storerbd.OptUser: "glance", storerbd.OptCephConf: c.Conf, storerbd.OptThin: "true"}})
	sd, err := storerbd.Open(storerbd.ParseConfig(co))
	if err != nil {
		b.Fatal(err)
	}
	defer sd.Close()
	data := make([]byte, 1<<30)
	if _, err := io.ReadFull(rand.Reader, data); err != nil {
		b.Fatal(err)
	}
	for _, gib := range []int64{1, 10} {
		size := gib << 30
		key := fmt.Sprintf("bench-from-image-%d-%d", gib, time.Now().UnixNano())
		src := io.MultiReader(bytes.NewReader(data), io.LimitReader(zeroReader{}, size-int64(len(data))))
		if n, err := sd.Put(ctx, key, src); err != nil || n != size {
			b.Fatalf("storing the %d GiB image: %d bytes, %v", gib, n, err)
		}
		loc, err := sd.Location(key)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dGiB", gib), func(b *testing.B) {
			for i := range b.N {
				id := fmt.Sprintf("fromimg%d-%d", gib, i)
				if handled, err := d.CloneImage(ctx, id, size, []string{loc}); err != nil || !handled {
					b.Fatalf("CloneImage = %v, %v (want a COW clone)", handled, err)
				}
				b.StopTimer()
				if err := d.Delete(ctx, id); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
		if err := sd.Delete(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}

// zeroReader reads as endless zeros.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
