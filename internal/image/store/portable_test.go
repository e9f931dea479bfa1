package store_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
)

func newFileStore(t testing.TB, m *store.Metrics) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	drv, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return store.NewStore(config.Store{ID: "fast", Type: "file", Options: map[string]string{"filesystem_store_datadir": dir}}, drv, true, m), dir
}

func TestPutHashes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := store.NewMetrics(reg)
	st, _ := newFileStore(t, m)
	for _, size := range []int{0, 1, store.ChunkSize - 1, store.ChunkSize, store.ChunkSize*store.QueueDepth*3 + 17} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		res, err := st.Put(context.Background(), "k", bytes.NewReader(data), 0, "sha512")
		if err != nil {
			t.Fatal(err)
		}
		md, sh := md5.Sum(data), sha512.Sum512(data)
		if res.Size != int64(size) || res.MD5 != hex.EncodeToString(md[:]) || res.Hash != hex.EncodeToString(sh[:]) {
			t.Errorf("size %d: %+v", size, res)
		}
		if len(res.Head) != min(size, store.HeadSize) || !bytes.Equal(res.Head, data[:len(res.Head)]) {
			t.Errorf("size %d: head of %d bytes", size, len(res.Head))
		}
		rc, err := st.Get(context.Background(), "k", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) {
			t.Errorf("size %d: read back %d bytes", size, len(got))
		}
	}
	if n := testutil.ToFloat64(m.Ops().WithLabelValues("fast", "put", "ok")); n != 5 {
		t.Errorf("put counter = %v", n)
	}
}

func TestPutLimitAndFailures(t *testing.T) {
	st, dir := newFileStore(t, nil)
	_, err := st.Put(context.Background(), "big", bytes.NewReader(make([]byte, 5000)), 4999, "sha512")
	if !errs.Is(err, errs.TooLarge) || !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("over limit: %v", err)
	}
	clientErr := errors.New("client went away")
	_, err = st.Put(context.Background(), "cut", io.MultiReader(bytes.NewReader(make([]byte, 3*store.ChunkSize)), errReader{clientErr}), 0, "sha512")
	if !errors.Is(err, clientErr) {
		t.Errorf("reader error: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("partial objects left: %v", ents)
	}
	ro := store.NewStore(config.Store{ID: "web", Type: "http"}, readOnly{st.Driver()}, false, nil)
	if _, err := ro.Put(context.Background(), "x", bytes.NewReader(nil), 0, "sha512"); !errs.Is(err, errs.Gone) {
		t.Errorf("read-only put: %v", err)
	}
}

// spy is a driver that records the calls that reach it.
type spy struct {
	store.Driver
	calls []string
}

func (s *spy) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	s.calls = append(s.calls, "Put "+key)
	return s.Driver.Put(ctx, key, r)
}
func (s *spy) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.calls = append(s.calls, "Get "+key)
	return s.Driver.Get(ctx, key, off, n)
}
func (s *spy) Delete(ctx context.Context, key string) error {
	s.calls = append(s.calls, "Delete "+key)
	return s.Driver.Delete(ctx, key)
}
func (s *spy) Size(ctx context.Context, key string) (int64, error) {
	s.calls = append(s.calls, "Size "+key)
	return s.Driver.Size(ctx, key)
}

// TestKeysAndRanges: the Store refuses bad keys and negative offsets itself,
// for every driver, before any driver sees them.
func TestKeysAndRanges(t *testing.T) {
	ctx := context.Background()
	fs, _ := newFileStore(t, nil)
	sp := &spy{Driver: fs.Driver()}
	st := store.NewStore(config.Store{ID: "fast", Type: "file"}, sp, true, nil)
	for _, key := range []string{"", "nul\x00", "cr\rlf\n", "del\x7f", "\xff\xfe", strings.Repeat("k", store.MaxKeyLen+1)} {
		if _, err := st.Put(ctx, key, strings.NewReader("x"), 0, "sha512"); !errs.Is(err, errs.Invalid) {
			t.Errorf("Put(%q) = %v, want Invalid", key, err)
		}
		if _, err := st.Get(ctx, key, 0, -1); !errs.Is(err, errs.Invalid) {
			t.Errorf("Get(%q) = %v, want Invalid", key, err)
		}
		if err := st.Delete(ctx, key); !errs.Is(err, errs.Invalid) {
			t.Errorf("Delete(%q) = %v, want Invalid", key, err)
		}
		if _, err := st.Size(ctx, key); !errs.Is(err, errs.Invalid) {
			t.Errorf("Size(%q) = %v, want Invalid", key, err)
		}
		if err := st.Recover(ctx, key); !errs.Is(err, errs.Invalid) {
			t.Errorf("Recover(%q) = %v, want Invalid", key, err)
		}
	}
	if _, err := st.Get(ctx, "k", -1, 10); !errs.Is(err, errs.BadRange) {
		t.Errorf("Get at offset -1 = %v, want BadRange", err)
	}
	if len(sp.calls) != 0 {
		t.Errorf("the driver was called with bad keys or offsets: %q", sp.calls)
	}
	// The longest key and any printable UTF-8 reach the driver (which may
	// refuse what its backend cannot hold).
	for _, key := range []string{strings.Repeat("k", store.MaxKeyLen), "sp ace", "é"} {
		sp.calls = nil
		_, _ = st.Size(ctx, key)
		if len(sp.calls) != 1 {
			t.Errorf("Size(%q) did not reach the driver", key)
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type readOnly struct{ store.Driver }

func (readOnly) ReadOnly() bool { return true }

// TestPutReusesBuffers checks that an upload's buffers (the hashers' chunk
// queue, the file driver's write buffers) come back for the next one, also
// from an upload that failed: a
// server taking uploads back to back must not grow its heap by ~20 MiB of
// garbage per upload. Best of three, as a collection between two Puts may
// empty the pools once.
func TestPutReusesBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	st, _ := newFileStore(t, nil)
	const size = 8 << 20
	put := func() {
		if _, err := st.Put(context.Background(), "k", io.LimitReader(zeroReader{}, size), 0, "sha512"); err != nil {
			t.Fatal(err)
		}
	}
	// A Put that fails half-way (the client goes away) must give its
	// buffers back too, or the next Put allocates them afresh.
	failed := func() {
		r := io.MultiReader(io.LimitReader(zeroReader{}, size/2), errReader{errors.New("client went away")})
		if _, err := st.Put(context.Background(), "k", r, 0, "sha512"); err == nil {
			t.Fatal("a Put whose reader fails succeeded")
		}
	}
	for name, before := range map[string]func(){"after a Put": func() {}, "after a failed Put": failed} {
		put() // fills the pools
		best := uint64(1 << 62)
		for range 3 {
			before()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			put()
			runtime.ReadMemStats(&m1)
			best = min(best, m1.TotalAlloc-m0.TotalAlloc)
		}
		if best > 1<<20 {
			t.Errorf("%s, a Put of %d MiB allocated %d KiB (want < 1 MiB: its buffers should be reused)", name, size>>20, best>>10)
		}
	}
}
