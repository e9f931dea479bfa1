package s3_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/backuptest"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/s3"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var bucketSeq int

// newStore returns a store on a fresh bucket of the package's MinIO (the
// store creates it on first Put).
func newStore(t *testing.T) backup.Store {
	t.Helper()
	m := testenv.SharedMinIO(t)
	bucketSeq++
	s, err := s3.New(s3.Config{Endpoint: m.Endpoint, Bucket: fmt.Sprintf("backup-%d-%d", os.Getpid(), bucketSeq),
		AccessKey: m.AccessKey, SecretKey: m.SecretKey, Region: m.Region})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { backuptest.Run(t, newStore) }

// TestUnreachable: a server that is not there is errs.Unavailable, fast.
func TestUnreachable(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s, err := s3.New(s3.Config{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), Bucket: "b", AccessKey: "a",
		SecretKey: "s", MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e, err := backup.New(s, backup.Options{ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Backup(context.Background(), "c", "b1", backup.Source{Volume: &backuptest.MemVolume{Data: backuptest.Random(1<<20, 1)}, VolumeID: "v"}, nil)
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("backup to an unreachable S3: %v, want Unavailable", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v to fail", d)
	}
}

// TestBucketFull: MinIO on a small filesystem fills up mid-backup; the
// backup fails with errs.TooLarge (or Unavailable, when MinIO cuts the
// request) and leaves nothing behind: no object in the bucket, and its
// bytes gone from MinIO's disk, so a small backup works afterwards.
func TestBucketFull(t *testing.T) {
	mnt := testenv.Tmpfs(t, "64m")
	m := testenv.StartMinIOIn(t, mnt)
	s, err := s3.New(s3.Config{Endpoint: m.Endpoint, Bucket: "full", AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 4 << 20
	e, err := backup.New(s, backup.Options{ChunkSize: chunk, Compression: backup.CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, failed := e.Backup(ctx, "c", "big", backup.Source{Volume: &backuptest.MemVolume{Data: backuptest.Random(128<<20, 2)}, VolumeID: "v"}, nil)
	if k := errs.KindOf(failed); k != errs.TooLarge && k != errs.Unavailable {
		t.Fatalf("backup into a full bucket: %v (kind %v), want TooLarge", failed, k)
	}
	if keys, err := s.List(ctx, "c/"); err != nil || len(keys) != 0 {
		t.Fatalf("a failed backup (%v) left objects %v (%v)", failed, keys, err)
	}
	// Nor on MinIO's disk. MinIO deletes an object by moving it to
	// .minio.sys/tmp/.trash, which it empties at once only if the drive
	// looked nearly full at the delete (by a statfs it caches for a
	// second), and otherwise every 5 minutes, the first time 5 minutes
	// after start whatever MINIO_API_DELETE_CLEANUP_INTERVAL says: whether
	// the space is back right after the failed backup is luck. So do that
	// sweep's work here (the trash holds only what is already out of
	// MinIO's namespace); then less than a chunk may remain in use, or the
	// backup left bytes behind. MinIO may still be moving an upload it
	// aborted to the trash: retry for a while.
	trash := filepath.Join(m.Dir, ".minio.sys", "tmp", ".trash")
	var used uint64
	if !waitFor(10*time.Second, func() bool {
		removeEntries(t, trash)
		used = usedBytes(t, mnt)
		return used < chunk
	}) {
		t.Fatalf("%d bytes still in use on MinIO's disk after the failed backup, its trash emptied; files of 64 KiB or more: %v",
			used, bigFiles(mnt))
	}
	// MinIO checks free space against that cached statfs, so for up to a
	// second it may still refuse a PUT as XMinioStorageFull: wait until it
	// takes an object of the small backup's size (kept, outside the
	// backup's container; the disk has room for both).
	small := backuptest.Random(1<<20, 3)
	refused := 0
	err = nil
	if !waitFor(10*time.Second, func() bool {
		if err = s.Put(ctx, "probe", small); err != nil {
			refused++
		}
		if err != nil && errs.KindOf(err) != errs.TooLarge {
			t.Fatalf("probe PUT: %v", err)
		}
		return err == nil
	}) {
		t.Fatalf("MinIO still refuses a 1 MiB object with its disk empty: %v", err)
	}
	t.Logf("PUTs refused until MinIO saw the space back: %d", refused)
	if _, err := e.Backup(ctx, "c", "small", backup.Source{Volume: &backuptest.MemVolume{Data: small}, VolumeID: "v"}, nil); err != nil {
		t.Fatalf("backup after the failed one: %v", err)
	}
}

// waitFor polls cond every 50 ms until it holds (true) or timeout passes
// (false).
func waitFor(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// usedBytes is the bytes in use on the filesystem holding dir.
func usedBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return (st.Blocks - st.Bfree) * uint64(st.Bsize)
}

// removeEntries removes what is in dir.
func removeEntries(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// bigFiles lists the files of 64 KiB or more under root, with their sizes
// (for a failure message: what MinIO removes meanwhile is skipped).
func bigFiles(root string) []string {
	var files []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil && fi.Size() >= 64<<10 {
				files = append(files, fmt.Sprintf("%s (%d)", path, fi.Size()))
			}
		}
		return nil
	})
	return files
}
