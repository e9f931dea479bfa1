package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// LoopFS makes a filesystem of size bytes in a sparse file with mkfs (the
// command and its options, e.g. "mkfs.xfs", "-m", "reflink=1"; pkg is the
// Debian package that has it), mounts it with -o loop on a fresh directory
// and returns that directory; it is unmounted (and its loop device freed)
// when the test ends, pass or fail. Where that cannot be done (not root,
// no mkfs, no loop devices) it skips the test, or fails it under CI=true.
func LoopFS(t testing.TB, size int64, pkg string, mkfs ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFatal(t, "a loop-mounted filesystem (%s) needs root", mkfs[0])
	}
	cmd := Tool(t, mkfs[0], pkg)
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cmd, append(mkfs[1:], img)...).CombinedOutput(); err != nil {
		SkipOrFatal(t, "%s: %v %s", mkfs[0], err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		SkipOrFatal(t, "cannot loop-mount the %s filesystem: %v %s", mkfs[0], err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s; detaching it lazily", mnt, err, out)
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	return mnt
}
