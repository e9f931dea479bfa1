//go:build unix

package db

import (
	"io"
	"os"
	"syscall"
)

// lockFile takes a non-blocking exclusive flock on path, created if
// missing; the kernel drops it when the process dies, however it dies.
func lockFile(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
