package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// socketReader returns n bytes at most 32 KiB a Read, as a request body
// read from a socket does: the progress counter runs once a Read.
type socketReader struct {
	left int64
	buf  []byte
}

func (r *socketReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), int64(len(r.buf)), r.left)
	copy(p[:n], r.buf)
	r.left -= n
	return int(n), nil
}

// BenchmarkUploadProgress measures what progress reporting costs the
// upload data path: a 64 MiB body streamed into the default (file) store
// as an image upload does (hashing with md5 and sha512, temp file, fsync,
// rename), once counted by an upload task's Task.Reader (with the runner
// saving the counters every second) and once not. The two alternate in
// rounds in one run, so a machine whose speed drifts affects both alike.
// It reports both rates, with/without over the whole run, and the median
// of the per-pair ratios, which a noisy shared disk moves least (the
// target is >= 0.98).
//
// ASHLAR_BENCH_STORE_DIR puts the store there instead (/dev/shm takes
// the disk, the noisiest part on a shared machine, out: what is left is
// hashing, the store's writes and the counting).
//
//	go test -run '^$' -bench UploadProgress -benchtime 40x ./internal/image/
func BenchmarkUploadProgress(b *testing.B) {
	e := newEnv(b, dbtest.Open(b, "sqlite"), "")
	st := e.svc.stores.Default()
	if dir := os.Getenv("ASHLAR_BENCH_STORE_DIR"); dir != "" {
		dir, err := os.MkdirTemp(dir, "ashlar-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		drv, err := file.New(dir)
		if err != nil {
			b.Fatal(err)
		}
		st = store.NewStore(config.Store{ID: "bench", Type: "file"}, drv, true, nil)
	}
	const size = 64 << 20
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	ctx := context.Background()
	put := func(i int, counted bool) time.Duration {
		key := fmt.Sprintf("bench-%d-%t", i, counted)
		var r io.Reader = &socketReader{left: size, buf: chunk}
		var t *tasks.Task
		if counted {
			var err error
			t, err = e.svc.tasks.Begin(ctx, e.db, tasks.Spec{Kind: kindUpload, Subject: key, Store: st.ID,
				Payload: uploadWork{storedObject{st.ID, key}, StatusSaving}})
			if err != nil {
				b.Fatal(err)
			}
			t.SetTotal(size)
			r = t.Reader(r)
		}
		start := time.Now()
		res, err := st.Put(ctx, key, r, 0, "sha512")
		d := time.Since(start)
		if err != nil || res.Size != size {
			b.Fatal(res.Size, err)
		}
		if t != nil {
			if err := t.Complete(ctx, e.db); err != nil {
				b.Fatal(err)
			}
			t.Release()
		}
		if err := st.Delete(ctx, key); err != nil {
			b.Fatal(err)
		}
		return d
	}
	put(-1, true) // warm up
	put(-1, false)
	var with, without time.Duration
	ratios := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		// alternate which goes first
		var w, wo time.Duration
		if i%2 == 0 {
			w = put(i, true)
			wo = put(i, false)
		} else {
			wo = put(i, false)
			w = put(i, true)
		}
		with, without = with+w, without+wo
		ratios = append(ratios, wo.Seconds()/w.Seconds())
	}
	b.StopTimer()
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "with/without-median")
	mb := float64(size) / (1 << 20) * float64(b.N)
	rWith, rWithout := mb/with.Seconds(), mb/without.Seconds()
	b.ReportMetric(rWith, "MiB/s-with")
	b.ReportMetric(rWithout, "MiB/s-without")
	b.ReportMetric(rWith/rWithout, "with/without")
	b.ReportMetric(0, "ns/op")
}
