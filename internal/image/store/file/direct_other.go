//go:build !linux

package file

import (
	"errors"
	"os"
)

func setDirect(f *os.File, on bool) error {
	if on {
		return errors.New("direct I/O is not supported here")
	}
	return nil
}
