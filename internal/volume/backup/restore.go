package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
)

// fetched is one chunk's bytes, checked, or why not.
type fetched struct {
	data []byte
	// zeros is the length of a zero chunk (data is then nil).
	zeros int64
	err   error
}

// Restore returns a reader of the backed-up volume's raw bytes (m.Size of
// them). Chunks are fetched, decompressed and checked ahead of the reader,
// Workers at a time; every chunk's checksum is verified before any of its
// bytes is returned, and a mismatch fails the read with ErrCorrupt. Zero
// chunks read as zeros without a fetch. Close the reader to stop the
// fetches early.
func (e *Engine) Restore(ctx context.Context, m *Manifest) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	r := &restoreReader{cancel: cancel, size: m.Size, queue: make(chan chan fetched, e.o.Workers)}
	r.wg.Go(func() {
		defer close(r.queue)
		for i := range m.Chunks {
			c := m.Chunks[i]
			ch := make(chan fetched, 1)
			select {
			case r.queue <- ch:
			case <-ctx.Done():
				return
			}
			if c.Zero {
				ch <- fetched{zeros: c.Length}
				continue
			}
			go func() { ch <- e.fetch(ctx, m, i) }()
		}
	})
	return r
}

// fetch gets chunk i, decompresses it and verifies its checksum.
func (e *Engine) fetch(ctx context.Context, m *Manifest, i int) fetched {
	c := m.Chunks[i]
	obj, err := e.store.Get(ctx, c.Object)
	if err != nil {
		return fetched{err: fmt.Errorf("reading chunk %d of backup %s: %w", i, m.BackupID, err)}
	}
	data := obj
	if m.Compression == CompressZstd && !c.Raw {
		if data, err = e.dec.DecodeAll(obj, make([]byte, 0, c.Length)); err != nil {
			return fetched{err: fmt.Errorf("chunk %d of backup %s: %w: %v", i, m.BackupID, ErrCorrupt, err)}
		}
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != c.Length || hex.EncodeToString(sum[:]) != c.SHA256 {
		return fetched{err: fmt.Errorf("chunk %d of backup %s: %w: checksum mismatch", i, m.BackupID, ErrCorrupt)}
	}
	return fetched{data: data}
}

// restoreReader hands out the fetched chunks in order.
type restoreReader struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	queue  chan chan fetched
	size   int64
	off    int64
	cur    []byte
	// zeros left of the current zero chunk
	zeros int64
	err   error
}

func (r *restoreReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.zeros > 0 {
			n := int(min(int64(len(p)), r.zeros))
			clear(p[:n])
			r.zeros -= int64(n)
			r.off += int64(n)
			return n, nil
		}
		if len(r.cur) > 0 {
			n := copy(p, r.cur)
			r.cur = r.cur[n:]
			r.off += int64(n)
			return n, nil
		}
		if r.off >= r.size {
			return 0, io.EOF
		}
		ch, ok := <-r.queue
		if !ok {
			r.err = io.ErrUnexpectedEOF
			continue
		}
		f := <-ch
		if f.err != nil {
			r.err = f.err
			continue
		}
		r.cur, r.zeros = f.data, f.zeros
	}
}

// Close stops the fetches still running.
func (r *restoreReader) Close() error {
	r.cancel()
	go func() {
		for ch := range r.queue {
			<-ch
		}
	}()
	return nil
}
