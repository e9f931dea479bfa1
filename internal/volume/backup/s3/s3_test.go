package s3_test

import (
	"context"
	"fmt"
	"os"
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
// request) and leaves no chunk in the bucket.
func TestBucketFull(t *testing.T) {
	mnt := testenv.Tmpfs(t, "64m")
	m := testenv.StartMinIOIn(t, mnt)
	s, err := s3.New(s3.Config{Endpoint: m.Endpoint, Bucket: "full", AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	e, err := backup.New(s, backup.Options{ChunkSize: 4 << 20, Compression: backup.CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = e.Backup(ctx, "c", "big", backup.Source{Volume: &backuptest.MemVolume{Data: backuptest.Random(128<<20, 2)}, VolumeID: "v"}, nil)
	if k := errs.KindOf(err); k != errs.TooLarge && k != errs.Unavailable {
		t.Fatalf("backup into a full bucket: %v (kind %v), want TooLarge", err, k)
	}
	if keys, err := s.List(ctx, "c/"); err != nil || len(keys) != 0 {
		t.Fatalf("a failed backup left %d objects (%v)", len(keys), err)
	}
	// Space is back: a small backup works.
	if _, err := e.Backup(ctx, "c", "small", backup.Source{Volume: &backuptest.MemVolume{Data: backuptest.Random(1<<20, 3)}, VolumeID: "v"}, nil); err != nil {
		t.Fatalf("backup after the failed one: %v", err)
	}
}
