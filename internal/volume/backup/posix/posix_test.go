package posix_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/backuptest"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/posix"
)

func newStore(t *testing.T) backup.Store {
	s, err := posix.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { backuptest.Run(t, newStore) }

// TestTempFilesRemoved: objects a crash left half-written are removed at
// start and never listed.
func TestTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "c", "b"), 0o750); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "c", "b", ".tmp-123")
	if err := os.WriteFile(tmp, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := posix.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file kept: %v", err)
	}
	if keys, err := s.List(context.Background(), "c/"); err != nil || len(keys) != 0 {
		t.Fatalf("List = %v, %v", keys, err)
	}
}

// TestKeysStayInside: keys cannot name files outside the directory.
func TestKeysStayInside(t *testing.T) {
	s := newStore(t)
	for _, k := range []string{"../x", "c/../../x", "/abs", "c//x", "c/.tmp-x"} {
		if err := s.Put(context.Background(), k, nil); errs.KindOf(err) != errs.Invalid {
			t.Errorf("Put(%q): %v, want Invalid", k, err)
		}
	}
}

// TestFullFilesystem: a full filesystem is errs.TooLarge and a failed
// backup leaves no chunk on it.
func TestFullFilesystem(t *testing.T) {
	dir := testenv.Tmpfs(t, "2m")
	s, err := posix.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := backup.New(s, backup.Options{ChunkSize: 512 << 10, Compression: backup.CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Backup(context.Background(), "c", "big", backup.Source{Volume: &backuptest.MemVolume{Data: backuptest.Random(8<<20, 1)}, VolumeID: "v"}, nil)
	if errs.KindOf(err) != errs.TooLarge {
		t.Fatalf("backup onto a full filesystem: %v, want TooLarge", err)
	}
	if keys, err := s.List(context.Background(), "c/"); err != nil || len(keys) != 0 {
		t.Fatalf("left %v (%v)", keys, err)
	}
}
