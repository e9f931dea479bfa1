package store

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// ChunkSize is the size of the buffers that carry upload data to the
// hashers; QueueDepth buffers per upload bound its memory.
const (
	ChunkSize  = 256 << 10
	QueueDepth = 16
)

// HeadSize is how much of an upload's start PutResult.Head keeps.
const HeadSize = 4096

// NewHash returns the hash named by os_hash_algo.
func NewHash(algo string) (hash.Hash, error) {
	switch algo {
	case "", "sha512":
		return sha512.New(), nil
	case "sha256":
		return sha256.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "md5":
		return md5.New(), nil
	}
	return nil, fmt.Errorf("unsupported hashing algorithm %q", algo)
}

// hashingReader hands the client's bytes to the driver and, through a
// bounded queue of copied chunks, to one goroutine per hash.
type hashingReader struct {
	r     io.Reader
	limit int64
	n     int64
	err   error // a reader-side error (client, size limit), kept for the caller
	head  []byte

	inline  hash.Hash
	pool    chan []byte
	outs    []chan chunk
	wg      sync.WaitGroup
	hashes  []hash.Hash // inline first
	pending []byte      // filled part of the current chunk buffer
	buf     []byte
}

// chunkPool keeps the hashers' chunk buffers between uploads: without it
// every Put leaves QueueDepth×ChunkSize (4 MiB) of garbage, and on a busy
// server the heap, and so the RSS, grows by that much per upload between
// collections.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

type chunk struct {
	b    []byte
	refs *refcount
}

type refcount struct {
	mu   sync.Mutex
	n    int
	buf  []byte
	pool chan []byte
}

func (rc *refcount) release() {
	rc.mu.Lock()
	rc.n--
	last := rc.n == 0
	rc.mu.Unlock()
	if last {
		rc.pool <- rc.buf[:cap(rc.buf)]
	}
}

// newHashingReader hashes with inline on the reading goroutine, while the
// bytes are still in the CPU cache, and with each of async on a goroutine
// of its own. md5 is cheaper than sha512, so reading, copying and md5 on
// one core keep pace with sha512 on the other: on two cores this is ~20 %
// faster than a goroutine per hash plus the reader's copying.
func newHashingReader(r io.Reader, limit int64, inline hash.Hash, async ...hash.Hash) *hashingReader {
	hr := &hashingReader{r: r, limit: limit, inline: inline, hashes: append([]hash.Hash{inline}, async...),
		pool: make(chan []byte, QueueDepth)}
	for range QueueDepth {
		hr.pool <- *chunkPool.Get().(*[]byte)
	}
	for _, h := range async {
		ch := make(chan chunk, QueueDepth)
		hr.outs = append(hr.outs, ch)
		hr.wg.Add(1)
		go func(h hash.Hash, ch chan chunk) {
			defer hr.wg.Done()
			for c := range ch {
				h.Write(c.b)
				c.refs.release()
			}
		}(h, ch)
	}
	return hr
}

// readMax caps one Read: the bytes just read are still in the CPU cache
// when feed copies them for the hashers (a 1 MiB read would be copied from
// memory, costing ~10% more CPU per upload).
const readMax = 64 << 10

func (hr *hashingReader) Read(p []byte) (int, error) {
	if hr.err != nil {
		return 0, hr.err
	}
	if len(p) > readMax {
		p = p[:readMax]
	}
	n, err := hr.r.Read(p)
	if n > 0 {
		hr.n += int64(n)
		if hr.limit > 0 && hr.n > hr.limit {
			hr.err = errs.Wrap(errs.TooLarge, ErrTooLarge, "The incoming image is too large.")
			return 0, hr.err
		}
		if len(hr.head) < HeadSize {
			hr.head = append(hr.head, p[:min(n, HeadSize-len(hr.head))]...)
		}
		hr.inline.Write(p[:n])
		hr.feed(p[:n])
	}
	if err != nil && err != io.EOF {
		hr.err = err
	}
	return n, err
}

// feed copies b into chunk buffers and sends each full one to the hashers.
func (hr *hashingReader) feed(b []byte) {
	for len(b) > 0 {
		if hr.buf == nil {
			hr.buf = <-hr.pool
			hr.pending = hr.buf[:0]
		}
		k := copy(hr.buf[len(hr.pending):cap(hr.buf)], b)
		hr.pending = hr.buf[:len(hr.pending)+k]
		b = b[k:]
		if len(hr.pending) == cap(hr.buf) {
			hr.flush()
		}
	}
}

func (hr *hashingReader) flush() {
	if hr.buf == nil {
		return
	}
	rc := &refcount{n: len(hr.outs), buf: hr.buf, pool: hr.pool}
	for _, ch := range hr.outs {
		ch <- chunk{b: hr.pending, refs: rc}
	}
	hr.buf, hr.pending = nil, nil
}

// finish flushes the last chunk, waits for the hashers and returns the sums.
func (hr *hashingReader) finish() [][]byte {
	hr.flush()
	for _, ch := range hr.outs {
		close(ch)
	}
	hr.wg.Wait()
	// Every chunk buffer is back in the pool now; hand them on to the
	// next upload.
	for range QueueDepth {
		b := <-hr.pool
		chunkPool.Put(&b)
	}
	out := make([][]byte, len(hr.hashes))
	for i, h := range hr.hashes {
		out[i] = h.Sum(nil)
	}
	return out
}

// HashReader computes md5 and algo over r with the same concurrent pipeline
// Put uses, without a store: the benchmark's baseline and copy verification.
func HashReader(r io.Reader, algo string) (size int64, md5hex, hashHex string, err error) {
	h2, err := NewHash(algo)
	if err != nil {
		return 0, "", "", err
	}
	hr := newHashingReader(r, 0, md5.New(), h2)
	_, err = io.Copy(io.Discard, hr)
	sums := hr.finish()
	if err != nil {
		return 0, "", "", err
	}
	return hr.n, hex.EncodeToString(sums[0]), hex.EncodeToString(sums[1]), nil
}
