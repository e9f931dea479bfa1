//go:build linux && (amd64 || arm64)

package file

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writeback, do not wait.
const syncFileRangeWrite = 2

// startWriteback asks the kernel to start writing [off, off+n) of f to
// disk (sync_file_range(2)); errors are ignored, the final fsync reports
// real ones.
func startWriteback(f *os.File, off, n int64) {
	_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}
