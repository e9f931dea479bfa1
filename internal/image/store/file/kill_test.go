package file

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/storetest"
)

// TestKilledMidUpload kills a process in the middle of a Put (SIGKILL, no
// clean-up code runs) and checks that reopening the store removes its temp
// file and that no object appeared.
func TestKilledMidUpload(t *testing.T) {
	storetest.PutInChild(func(dir string) (store.Driver, error) { return New(dir) }, 64<<10)
	dir := t.TempDir()
	kill := storetest.StartPutChild(t, dir)
	// Wait until the child's temp file has data.
	apitest.Eventually(t, 20*time.Second, func() bool {
		left := tempFiles(t, dir)
		if len(left) != 1 {
			return false
		}
		fi, err := os.Stat(left[0])
		return err == nil && fi.Size() > 0
	}, func() string { return "child never started writing" })
	// A store opened while the upload is alive keeps its temp file.
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	if left := tempFiles(t, dir); len(left) != 1 {
		t.Fatalf("live upload's temp file swept: %v", left)
	}
	kill()
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Fatalf("temp files after restart: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "img")); !os.IsNotExist(err) {
		t.Fatalf("object of the killed upload exists: %v", err)
	}
}
