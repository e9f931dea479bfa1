//go:build linux

package file

import (
	"os"
	"syscall"
)

// setDirect turns O_DIRECT on or off for f. Turning it on fails on
// filesystems without direct I/O (tmpfs), and the caller then stays buffered.
func setDirect(f *os.File, on bool) error {
	fd := f.Fd()
	flags, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	if e != 0 {
		return e
	}
	if on {
		flags |= syscall.O_DIRECT
	} else {
		flags &^= syscall.O_DIRECT
	}
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, flags); e != 0 {
		return e
	}
	return nil
}
