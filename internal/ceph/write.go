//go:build ceph

package ceph

import (
	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"
)

// zeroBlock is the unit of the zero runs the writers here look for: a run
// of zeros this long and aligned.
const zeroBlock = 4096

// maxWriteSame bounds one write-same call (one 4 MiB object's worth),
// keeping errors close to the range they concern.
const maxWriteSame = 4 << 20

// zeros is the pattern ZeroRange writes the same of.
var zeros = make([]byte, 512)

// WriteNonZero writes the runs of p (at off in img) that are not all-zero
// 4 KiB blocks, for writers into a new image, which reads zeros where
// nothing was written: the zeros are neither sent nor allocated.
func WriteNonZero(img *rbd.Image, p []byte, off int64) error {
	return eachRun(p, func(start, end int, zero bool) error {
		if zero {
			return nil
		}
		_, err := img.WriteAt(p[start:end], off+int64(start))
		return err
	})
}

// WriteOver writes p at off in img, which may hold data there already:
// the non-zero runs as data, the zero runs zeroed with ZeroRange (neither
// sent nor, where librbd can, allocated).
func WriteOver(img *rbd.Image, p []byte, off int64) error {
	return eachRun(p, func(start, end int, zero bool) error {
		if zero {
			return ZeroRange(img, off+int64(start), int64(end-start))
		}
		_, err := img.WriteAt(p[start:end], off+int64(start))
		return err
	})
}

// ZeroRange zeroes n bytes of img at off: a write-same of zeros for the
// whole 512-byte blocks, which librbd turns into a zeroing of the range
// (hiding a clone's parent data too), plain zeros for the rest.
func ZeroRange(img *rbd.Image, off, n int64) error {
	whole := n / int64(len(zeros)) * int64(len(zeros))
	for done := int64(0); done < whole; {
		step := min(whole-done, maxWriteSame)
		if _, err := img.WriteSame(uint64(off+done), uint64(step), zeros, rados.OpFlagNone); err != nil {
			return err
		}
		done += step
	}
	if rest := n - whole; rest > 0 {
		if _, err := img.WriteAt(make([]byte, rest), off+whole); err != nil {
			return err
		}
	}
	return nil
}

// eachRun calls fn for the maximal runs of p that are all-zero 4 KiB
// blocks (zero) or not, in order.
func eachRun(p []byte, fn func(start, end int, zero bool) error) error {
	if len(p) == 0 {
		return nil
	}
	start, zero := 0, allZero(p[:min(zeroBlock, len(p))])
	for i := zeroBlock; i < len(p); i += zeroBlock {
		if z := allZero(p[i:min(i+zeroBlock, len(p))]); z != zero {
			if err := fn(start, i, zero); err != nil {
				return err
			}
			start, zero = i, z
		}
	}
	return fn(start, len(p), zero)
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
