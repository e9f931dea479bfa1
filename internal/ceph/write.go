//go:build ceph

package ceph

import "github.com/ceph/go-ceph/rbd"

// zeroBlock is the unit WriteNonZero skips: a run of zeros this long and
// aligned is not written.
const zeroBlock = 4096

// WriteNonZero writes the runs of p (at off in img) that are not all-zero
// 4 KiB blocks, for writers into a new image, which reads zeros where
// nothing was written: the zeros are neither sent nor allocated.
func WriteNonZero(img *rbd.Image, p []byte, off int64) error {
	start := -1
	for i := 0; i < len(p); i += zeroBlock {
		zero := allZero(p[i:min(i+zeroBlock, len(p))])
		if !zero && start < 0 {
			start = i
		}
		if zero && start >= 0 {
			if _, err := img.WriteAt(p[start:i], off+int64(start)); err != nil {
				return err
			}
			start = -1
		}
	}
	if start >= 0 {
		if _, err := img.WriteAt(p[start:], off+int64(start)); err != nil {
			return err
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
