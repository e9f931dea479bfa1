// Package qcow2 writes qcow2 (version 3) images as a stream. The layout is
// computed up front from the source's data ranges, so the image size is
// known before the first byte and ranges that are holes in the source cost
// nothing: they are left unallocated and read as zeros.
//
// Layout, in file order, all in 64 KiB clusters: the header; the L1 table;
// the refcount table; the refcount blocks; one L2 table per 512 MiB of
// virtual disk that holds data; the data clusters in virtual-disk order.
// Every cluster is referenced exactly once (refcount 1, QCOW_OFLAG_COPIED
// set), so `qemu-img check` finds neither leaks nor errors.
package qcow2

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sort"
)

const (
	clusterBits     = 16
	clusterSize     = 1 << clusterBits
	l2Entries       = clusterSize / 8 // 8-byte L2 entries
	refcountOrder   = 4               // 16-bit refcounts
	refBlockEntries = clusterSize * 8 / (1 << refcountOrder)
	headerLength    = 104
	oflagCopied     = uint64(1) << 63
	// readChunk is how much data is read from the source at once.
	readChunk = 16 * clusterSize
)

// Range is a byte range [Offset, Offset+Length) of the source that may
// hold data; bytes outside every range are zeros.
type Range struct{ Offset, Length int64 }

// run is a stretch of consecutive allocated virtual clusters.
type run struct {
	vstart, count int64 // first virtual cluster, number of clusters
	rank          int64 // index of the first one among all data clusters
}

// Reader produces the qcow2 image of a source.
type Reader struct {
	ctx   context.Context
	src   io.ReaderAt
	vsize int64

	runs  []run
	nData int64
	l2s   []int64 // indices (virtual cluster / l2Entries) of the L2 tables present

	l1Size                           int64
	l1Off, rtOff, rbOff, l2Off, dOff int64 // first cluster of each area
	rtClusters, rbClusters           int64
	total                            int64 // clusters in the file

	pos      int64  // bytes produced so far
	buf      []byte // the bytes at [bufStart, bufStart+len(buf))
	bufStart int64
	store    []byte
	runIdx   int // the run the next data cluster comes from
}

// NewReader lays out the qcow2 image of src, a raw disk of virtualSize
// bytes whose data lies within ranges (sorted by Offset, non-overlapping).
// Reads fail with ctx's error once ctx is done.
func NewReader(ctx context.Context, src io.ReaderAt, virtualSize int64, ranges []Range) (*Reader, error) {
	if virtualSize <= 0 {
		return nil, errors.New("qcow2: virtual size must be positive")
	}
	r := &Reader{ctx: ctx, src: src, vsize: virtualSize, store: make([]byte, readChunk), bufStart: -1}
	nv := (virtualSize + clusterSize - 1) / clusterSize
	for _, g := range ranges {
		if g.Length <= 0 {
			continue
		}
		if g.Offset < 0 || g.Offset+g.Length > virtualSize {
			return nil, errors.New("qcow2: data range outside the disk")
		}
		cs, ce := g.Offset/clusterSize, min((g.Offset+g.Length+clusterSize-1)/clusterSize, nv)
		if n := len(r.runs); n > 0 {
			last := &r.runs[n-1]
			end := last.vstart + last.count
			if cs < last.vstart {
				return nil, errors.New("qcow2: data ranges are not sorted")
			}
			if cs <= end {
				if ce > end {
					last.count = ce - last.vstart
				}
				continue
			}
		}
		r.runs = append(r.runs, run{vstart: cs, count: ce - cs})
	}
	for i := range r.runs {
		r.runs[i].rank = r.nData
		r.nData += r.runs[i].count
		first, last := r.runs[i].vstart/l2Entries, (r.runs[i].vstart+r.runs[i].count-1)/l2Entries
		for t := first; t <= last; t++ {
			if len(r.l2s) == 0 || r.l2s[len(r.l2s)-1] != t {
				r.l2s = append(r.l2s, t)
			}
		}
	}
	r.l1Size = (nv + l2Entries - 1) / l2Entries
	l1Clusters := (r.l1Size*8 + clusterSize - 1) / clusterSize
	fixed := 1 + l1Clusters + int64(len(r.l2s)) + r.nData
	// Refcount blocks must count themselves and the refcount table: grow
	// both until they cover every cluster.
	r.rtClusters, r.rbClusters = 1, 1
	for {
		total := fixed + r.rtClusters + r.rbClusters
		rb := (total + refBlockEntries - 1) / refBlockEntries
		rt := (rb*8 + clusterSize - 1) / clusterSize
		if rb == r.rbClusters && rt == r.rtClusters {
			r.total = total
			break
		}
		r.rbClusters, r.rtClusters = max(rb, r.rbClusters), max(rt, r.rtClusters)
	}
	r.l1Off = 1
	r.rtOff = r.l1Off + l1Clusters
	r.rbOff = r.rtOff + r.rtClusters
	r.l2Off = r.rbOff + r.rbClusters
	r.dOff = r.l2Off + int64(len(r.l2s))
	return r, nil
}

// Size is the length of the image in bytes.
func (r *Reader) Size() int64 { return r.total * clusterSize }

// DataClusters is the number of data clusters stored.
func (r *Reader) DataClusters() int64 { return r.nData }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.Size() {
		return 0, io.EOF
	}
	if r.bufStart < 0 || r.pos < r.bufStart || r.pos >= r.bufStart+int64(len(r.buf)) {
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		if err := r.fill(r.pos / clusterSize); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.pos-r.bufStart:])
	r.pos += int64(n)
	return n, nil
}

// fill loads the bytes starting at cluster c into buf.
func (r *Reader) fill(c int64) error {
	r.bufStart = c * clusterSize
	if c >= r.dOff {
		return r.fillData(c - r.dOff)
	}
	b := r.store[:clusterSize]
	clear(b)
	r.buf = b
	be := binary.BigEndian
	switch {
	case c == 0:
		be.PutUint32(b[0:], 0x514649fb) // "QFI\xfb"
		be.PutUint32(b[4:], 3)
		be.PutUint32(b[20:], clusterBits)
		be.PutUint64(b[24:], uint64(r.vsize))
		be.PutUint32(b[36:], uint32(r.l1Size))
		be.PutUint64(b[40:], uint64(r.l1Off*clusterSize))
		be.PutUint64(b[48:], uint64(r.rtOff*clusterSize))
		be.PutUint32(b[56:], uint32(r.rtClusters))
		be.PutUint32(b[96:], refcountOrder)
		be.PutUint32(b[100:], headerLength)
		// Header extensions start at 104; the zeros there are the end marker.
	case c < r.rtOff:
		first := (c - r.l1Off) * l2Entries
		for e := int64(0); e < l2Entries && first+e < r.l1Size; e++ {
			i := sort.Search(len(r.l2s), func(k int) bool { return r.l2s[k] >= first+e })
			if i < len(r.l2s) && r.l2s[i] == first+e {
				be.PutUint64(b[e*8:], uint64((r.l2Off+int64(i))*clusterSize)|oflagCopied)
			}
		}
	case c < r.rbOff:
		first := (c - r.rtOff) * (clusterSize / 8)
		for e := int64(0); e < clusterSize/8 && first+e < r.rbClusters; e++ {
			be.PutUint64(b[e*8:], uint64((r.rbOff+first+e)*clusterSize))
		}
	case c < r.l2Off:
		first := (c - r.rbOff) * refBlockEntries
		for e := int64(0); e < refBlockEntries && first+e < r.total; e++ {
			be.PutUint16(b[e*2:], 1)
		}
	default:
		t := r.l2s[c-r.l2Off]
		lo, hi := t*l2Entries, (t+1)*l2Entries
		i := sort.Search(len(r.runs), func(k int) bool { return r.runs[k].vstart+r.runs[k].count > lo })
		for ; i < len(r.runs) && r.runs[i].vstart < hi; i++ {
			ru := r.runs[i]
			for v := max(ru.vstart, lo); v < min(ru.vstart+ru.count, hi); v++ {
				off := (r.dOff + ru.rank + v - ru.vstart) * clusterSize
				be.PutUint64(b[(v-lo)*8:], uint64(off)|oflagCopied)
			}
		}
	}
	return nil
}

// fillData reads data cluster d (and following ones of the same run, up
// to readChunk) from the source.
func (r *Reader) fillData(d int64) error {
	for r.runIdx < len(r.runs) && r.runs[r.runIdx].rank+r.runs[r.runIdx].count <= d {
		r.runIdx++
	}
	if r.runIdx >= len(r.runs) || r.runs[r.runIdx].rank > d {
		// Out of order access: search.
		r.runIdx = sort.Search(len(r.runs), func(k int) bool { return r.runs[k].rank+r.runs[k].count > d })
	}
	ru := r.runs[r.runIdx]
	v := ru.vstart + d - ru.rank
	n := min(ru.rank+ru.count-d, readChunk/clusterSize) * clusterSize
	b := r.store[:n]
	voff := v * clusterSize
	want := min(n, r.vsize-voff)
	got, err := r.src.ReadAt(b[:want], voff)
	if got < int(want) && err != io.EOF {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	// A source shorter than virtualSize reads as zeros past its end.
	clear(b[got:])
	r.buf = b
	return nil
}
