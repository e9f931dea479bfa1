package file

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/storetest"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

func newTestDriver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tempFiles lists upload temp files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), tempPrefix) {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// parse runs ParseConfig on opts of store "fast" whose StateDir is
// stateDir, returning the config and the problems as strings.
func parse(opts map[string]string, stateDir string) (Config, []string) {
	o := config.NewOptions(config.Store{ID: "fast", Type: "file", Options: opts, StateDir: stateDir})
	c := ParseConfig(o)
	var problems []string
	for _, p := range o.Problems() {
		problems = append(problems, p.String())
	}
	return c, problems
}

func TestParseConfig(t *testing.T) {
	state := t.TempDir()
	tests := []struct {
		name     string
		opts     map[string]string
		stateDir string
		want     Config
		problems []string
	}{
		{"defaults to the state dir", nil, state, Config{Dir: state}, nil},
		{"datadir made absolute", map[string]string{OptDatadir: "rel/dir"}, state, Config{Dir: absolute(t, "rel/dir")}, nil},
		{"thin", map[string]string{OptDatadir: "/d", OptThin: "yes"}, "", Config{Dir: "/d", Thin: true}, nil},
		{"no datadir anywhere", nil, "", Config{}, []string{"[store:fast] filesystem_store_datadir: required for a file store"}},
		{"thin not a boolean", map[string]string{OptThin: "sometimes"}, state, Config{Dir: state},
			[]string{`[store:fast] filesystem_thin_provisioning: "sometimes" is not a boolean (true/false)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, problems := parse(tt.opts, tt.stateDir)
			if c != tt.want || !slices.Equal(problems, tt.problems) {
				t.Errorf("ParseConfig = %+v, %q; want %+v, %q", c, problems, tt.want, tt.problems)
			}
		})
	}
}
func absolute(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	d, err := Open(Config{Dir: dir, Thin: true})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("datadir not created: %v", err)
	}
	if !d.Thin() {
		t.Error("Open ignored Thin")
	}
	if _, err := d.Put(context.Background(), "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "k")); err != nil || string(b) != "v" {
		t.Fatalf("object file = %q, %v; want the flat layout <datadir>/<key>", b, err)
	}
	want := map[string]any{"data_dir": dir, "chunk_size": store.ChunkSize, "thin_provisioning": true}
	if got := d.Properties(); !maps.Equal(got, want) {
		t.Errorf("Properties = %v, want %v", got, want)
	}
}

// TestThinProvisioning: with filesystem_thin_provisioning the zeros of a
// mostly-empty object take no disk blocks; without it they all do.
func TestThinProvisioning(t *testing.T) {
	const size = 16 << 20
	data := make([]byte, size)
	for i := range 4096 { // 4 KiB of data in the middle of 16 MiB of zeros
		data[size/2+i] = byte(i | 1)
	}
	for _, thin := range []bool{false, true} {
		dir := t.TempDir()
		d, err := Open(Config{Dir: dir, Thin: thin})
		if err != nil {
			t.Fatal(err)
		}
		if d.Thin() != thin {
			t.Fatalf("Thin() = %v, want %v", d.Thin(), thin)
		}
		if _, err := d.Put(context.Background(), "k", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, "k"), &st); err != nil {
			t.Fatal(err)
		}
		allocated := st.Blocks * 512
		if st.Size != size {
			t.Fatalf("thin=%v: size %d, want %d", thin, st.Size, size)
		}
		if thin && allocated > 1<<20 {
			t.Errorf("thin: %d bytes allocated for 4 KiB of data in 16 MiB", allocated)
		}
		if !thin && allocated < size {
			t.Errorf("not thin: only %d bytes allocated for %d", allocated, size)
		}
		got, err := os.ReadFile(filepath.Join(dir, "k"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("thin=%v: content differs (%v)", thin, err)
		}
	}
}

func TestKeys(t *testing.T) {
	d := newTestDriver(t)
	ctx := context.Background()
	for _, key := range []string{"", ".", "..", "../x", "a/../../x", "/abs", "a//b", ".hidden",
		tempPrefix + "x", "a/.b", "sp ace", "back\\slash", "nul\x00", "é"} {
		if _, err := d.Put(ctx, key, strings.NewReader("x")); !errs.Is(err, errs.Invalid) {
			t.Errorf("Put(%q) = %v, want Invalid", key, err)
		}
		if _, err := d.Size(ctx, key); !errs.Is(err, errs.Invalid) {
			t.Errorf("Size(%q) = %v, want Invalid", key, err)
		}
	}
	// A prefixed key lives in a subdirectory and is listed with its prefix.
	if _, err := d.Put(ctx, "staging/abc", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := d.List(ctx, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "staging/abc" {
		t.Fatalf("List = %v, want [staging/abc]", keys)
	}
	// A directory is not an object.
	if _, err := d.Size(ctx, "staging"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("Size(dir) = %v, want NotFound", err)
	}
	if err := d.Delete(ctx, "staging"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("Delete(dir) = %v, want NotFound", err)
	}
}

// errAfter is a writer that fails with err once n bytes have been written,
// as a real file does when the disk fills up.
type errAfter struct {
	w   io.Writer
	n   int
	err error
}

func (e *errAfter) Write(p []byte) (int, error) {
	if len(p) > e.n {
		k, _ := e.w.Write(p[:e.n])
		e.n = 0
		return k, &fs.PathError{Op: "write", Path: "x", Err: e.err}
	}
	e.n -= len(p)
	return e.w.Write(p)
}

func TestWriteErrors(t *testing.T) {
	cases := []struct {
		errno syscall.Errno
		kind  errs.Kind
	}{
		{syscall.ENOSPC, errs.TooLarge},
		{syscall.EDQUOT, errs.TooLarge},
		{syscall.EFBIG, errs.TooLarge},
		{syscall.EROFS, errs.Unavailable},
		{syscall.EACCES, errs.Unavailable},
		{syscall.EIO, errs.Other},
	}
	for _, c := range cases {
		t.Run(c.errno.Error(), func(t *testing.T) {
			d := newTestDriver(t)
			d.wrapWrite = func(w io.Writer) io.Writer { return &errAfter{w: w, n: 3 << 20, err: c.errno} }
			_, err := d.Put(context.Background(), "img", bytes.NewReader(storetest.Data(5<<20, 1)))
			if !errs.Is(err, c.kind) || !errors.Is(err, c.errno) {
				t.Fatalf("Put = %v (kind %v), want kind %v wrapping %v", err, errs.KindOf(err), c.kind, c.errno)
			}
			if _, err := d.Size(context.Background(), "img"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("Size after failed Put = %v, want NotFound", err)
			}
			if left := tempFiles(t, d.dir); len(left) > 0 {
				t.Fatalf("temp files left: %v", left)
			}
			d.wrapWrite = nil
			if _, err := d.Put(context.Background(), "img", strings.NewReader("ok")); err != nil {
				t.Fatalf("Put after failure: %v", err)
			}
		})
	}
}

// TestFullFilesystem fills a real 1 MiB tmpfs. It needs CAP_SYS_ADMIN to
// mount and skips without it.
func TestFullFilesystem(t *testing.T) {
	mnt := testenv.Tmpfs(t, "1m")
	d, err := New(mnt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Put(context.Background(), "big", bytes.NewReader(storetest.Data(3<<20, 1)))
	if !errs.Is(err, errs.TooLarge) {
		t.Fatalf("Put into full fs = %v, want TooLarge", err)
	}
	if left := tempFiles(t, mnt); len(left) > 0 {
		t.Fatalf("temp files left on the full fs: %v", left)
	}
	if _, err := d.Put(context.Background(), "small", bytes.NewReader(storetest.Data(100<<10, 1))); err != nil {
		t.Fatalf("Put after the failure (space must have been freed): %v", err)
	}
	// Thin: data that does not fit fails the same way; 3 MiB that are
	// nearly all zeros fit on the 1 MiB filesystem.
	d.SetThin(true)
	if _, err := d.Put(context.Background(), "big-thin", bytes.NewReader(storetest.Data(3<<20, 2))); !errs.Is(err, errs.TooLarge) {
		t.Fatalf("thin Put into full fs = %v, want TooLarge", err)
	}
	if left := tempFiles(t, mnt); len(left) > 0 {
		t.Fatalf("temp files left on the full fs: %v", left)
	}
	sparse := make([]byte, 3<<20)
	copy(sparse[1<<20:], storetest.Data(4096, 3))
	if _, err := d.Put(context.Background(), "sparse", bytes.NewReader(sparse)); err != nil {
		t.Fatalf("thin Put of 3 MiB of mostly zeros on a 1 MiB fs: %v", err)
	}
	if !bytes.Equal(get(t, d, "sparse"), sparse) {
		t.Fatal("sparse object reads back differently")
	}
	d.SetThin(false)
	// A read-only remount refuses writes with 503 semantics.
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot remount read-only: %v %s", err, out)
	}
	_, err = d.Put(context.Background(), "ro", strings.NewReader("x"))
	if !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Put into read-only fs = %v, want Unavailable", err)
	}
	if b := get(t, d, "small"); len(b) != 100<<10 {
		t.Fatalf("read from read-only fs: %d bytes", len(b))
	}
}

func get(t *testing.T, d *Driver, key string) []byte {
	t.Helper()
	rc, err := d.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSweep: a temp file left by a dead process is removed when the store
// is opened; one whose writer is alive (holds the lock) is kept.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, tempPrefix+"dead")
	if err := os.WriteFile(dead, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, tempPrefix+"live")
	f, err := os.Create(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	d, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("dead temp file still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("live temp file removed: %v", err)
	}
	n := 0
	_ = d.List(context.Background(), func(string) error { n++; return nil })
	if n != 0 {
		t.Fatalf("List shows %d objects, want temp files hidden", n)
	}
	// A writer that dies after the store was opened: Recover sweeps it
	// (another node recovering the upload), and still spares the live one.
	if err := os.WriteFile(dead, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Recover(context.Background(), "some-image"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("Recover left the dead temp file: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("Recover removed the live temp file: %v", err)
	}
}

// TestGetSendfile checks that the reader hands an *io.LimitedReader over
// the file to a ReaderFrom (what lets net/http use sendfile).
func TestGetSendfile(t *testing.T) {
	d := newTestDriver(t)
	data := storetest.Data(1<<20, 3)
	if _, err := d.Put(context.Background(), "k", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Get(context.Background(), "k", 1000, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rf := &recordingReaderFrom{}
	if _, err := io.Copy(rf, rc); err != nil {
		t.Fatal(err)
	}
	lr, ok := rf.src.(*io.LimitedReader)
	if !ok {
		t.Fatalf("ReadFrom got %T, want *io.LimitedReader", rf.src)
	}
	if _, ok := lr.R.(*os.File); !ok {
		t.Fatalf("LimitedReader over %T, want *os.File", lr.R)
	}
	if !bytes.Equal(rf.buf.Bytes(), data[1000:6000]) {
		t.Fatal("ranged content differs")
	}
}

type recordingReaderFrom struct {
	src io.Reader
	buf bytes.Buffer
}

func (r *recordingReaderFrom) Write(p []byte) (int, error) { return r.buf.Write(p) }

func (r *recordingReaderFrom) ReadFrom(src io.Reader) (int64, error) {
	r.src = src
	return r.buf.ReadFrom(src)
}
