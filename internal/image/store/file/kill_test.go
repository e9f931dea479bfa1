package file

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// endless is a reader that never ends: an upload that is still running.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return min(len(p), 64<<10), nil
}

// TestKilledMidUpload kills a process in the middle of a Put (SIGKILL, no
// clean-up code runs) and checks that reopening the store removes its temp
// file and that no object appeared.
func TestKilledMidUpload(t *testing.T) {
	if dir := os.Getenv("ASHLAR_FILESTORE_CHILD"); dir != "" {
		d, err := New(dir)
		if err != nil {
			os.Exit(3)
		}
		_, _ = d.Put(context.Background(), "img", endless{})
		os.Exit(4) // not reached: the parent kills us first
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledMidUpload$")
	cmd.Env = append(os.Environ(), "ASHLAR_FILESTORE_CHILD="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the child's temp file has data.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if left := tempFiles(t, dir); len(left) == 1 {
			if fi, err := os.Stat(left[0]); err == nil && fi.Size() > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("child never started writing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A store opened while the upload is alive keeps its temp file.
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	if left := tempFiles(t, dir); len(left) != 1 {
		t.Fatalf("live upload's temp file swept: %v", left)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	d, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Fatalf("temp files after restart: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "img")); !os.IsNotExist(err) {
		t.Fatalf("object of the killed upload exists: %v", err)
	}
	_ = d
}
