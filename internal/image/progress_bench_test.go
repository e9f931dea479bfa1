package image

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
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
// It reports both rates and with/without (the target is >= 0.98).
//
//	go test -run '^$' -bench UploadProgress -benchtime 40x ./internal/image/
func BenchmarkUploadProgress(b *testing.B) {
	e := newEnv(b, dbtest.Open(b, "sqlite"), "")
	st := e.svc.stores.Default()
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
	b.ResetTimer()
	for i := range b.N {
		// alternate which goes first
		if i%2 == 0 {
			with += put(i, true)
			without += put(i, false)
		} else {
			without += put(i, false)
			with += put(i, true)
		}
	}
	b.StopTimer()
	mb := float64(size) / (1 << 20) * float64(b.N)
	rWith, rWithout := mb/with.Seconds(), mb/without.Seconds()
	b.ReportMetric(rWith, "MiB/s-with")
	b.ReportMetric(rWithout, "MiB/s-without")
	b.ReportMetric(rWith/rWithout, "with/without")
	b.ReportMetric(0, "ns/op")
}
