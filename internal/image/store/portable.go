package store

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"
	"unicode/utf8"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Store is one configured image store: the portable type over a Driver,
// plus everything Glance shows about it. It checks keys and ranges, hashes,
// enforces size limits, maps errors and counts operations once for every
// driver.
type Store struct {
	ID          string
	Type        string
	Description string
	Default     bool
	ReadOnly    bool
	// Properties are shown by GET /v2/info/stores/detail; never secrets.
	Properties map[string]any

	drv     Driver
	metrics *Metrics
}

// NewStore wraps drv as the store described by cfg. m may be nil. The
// Properties come from the driver (Describer); a driver without any shows
// an empty object.
func NewStore(cfg config.Store, drv Driver, isDefault bool, m *Metrics) *Store {
	s := &Store{ID: cfg.ID, Type: cfg.Type, Description: cfg.Description, Default: isDefault,
		drv: drv, metrics: m, Properties: map[string]any{}}
	if ro, ok := drv.(ReadOnlyDriver); ok && ro.ReadOnly() {
		s.ReadOnly = true
	}
	if d, ok := drv.(Describer); ok {
		maps.Copy(s.Properties, d.Properties())
	}
	return s
}

// MaxKeyLen is the longest key, in bytes (S3's limit).
const MaxKeyLen = 1024

// ValidKey checks what every driver needs of a key: not empty, at most
// MaxKeyLen bytes, valid UTF-8 and no control characters. Drivers refuse
// on top of that only what their backend cannot hold.
func ValidKey(key string) error {
	ok := key != "" && len(key) <= MaxKeyLen && utf8.ValidString(key)
	for i := 0; ok && i < len(key); i++ {
		ok = key[i] >= 0x20 && key[i] != 0x7f
	}
	if !ok {
		return errs.E(errs.Invalid, "invalid store key %q", key)
	}
	return nil
}

// Driver returns the wrapped driver (for optional interfaces such as Lister).
func (s *Store) Driver() Driver { return s.drv }

// PutResult is what a successful Put learned in its single pass.
type PutResult struct {
	Size int64
	// MD5 is the hex md5 (Glance's checksum); Hash the hex os_hash_value.
	MD5, Hash string
	// Head is the first bytes of the object (up to HeadSize), for format
	// inspection without a second read.
	Head []byte
}

// ErrTooLarge is the cause of a Put stopped by its size limit; the caller
// decides the message (size cap or quota).
var ErrTooLarge = errors.New("size limit exceeded")

// Put streams r into key, hashing it with md5 and algo as it goes (two
// goroutines fed the same chunks, bounded to QueueDepth chunks in flight).
// limit > 0 stops the upload with an errs.TooLarge wrapping ErrTooLarge once
// more than limit bytes arrive. On any failure no object remains at key.
// Errors reading r are returned as they are (the caller knows whether the
// client went away); store failures are mapped to Glance's kinds.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, limit int64, algo string) (PutResult, error) {
	if s.ReadOnly {
		return PutResult{}, errs.E(errs.Gone, "Error in store configuration. Adding images to store is disabled.")
	}
	if err := ValidKey(key); err != nil {
		return PutResult{}, err
	}
	h2, err := NewHash(algo)
	if err != nil {
		return PutResult{}, errs.Wrap(errs.Invalid, err, err.Error())
	}
	start := time.Now()
	hr := newHashingReader(r, limit, md5.New(), h2)
	n, err := s.drv.Put(ctx, key, hr)
	sums := hr.finish()
	if err == nil && hr.err != nil {
		err = hr.err // a driver that swallowed a reader error
	}
	if err != nil {
		// The driver contract says nothing is left; make sure anyway,
		// with a context that outlives a cancelled request.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if derr := s.drv.Delete(dctx, key); derr != nil && !errs.Is(derr, errs.NotFound) {
			err = errors.Join(err, fmt.Errorf("deleting partial object: %w", derr))
		}
		cancel()
		switch {
		case hr.err != nil:
			err = hr.err
		case errs.Is(err, errs.NotFound):
			// a vanished directory or bucket: the store cannot be written
			err = errs.Wrap(errs.Unavailable, err, fmt.Sprintf("Store %s cannot be written to.", s.ID))
		default:
			err = s.mapErr(err, "put")
		}
		s.metrics.observe(s.ID, "put", 0, start, err)
		return PutResult{}, err
	}
	if n != hr.n {
		err := fmt.Errorf("store %s: driver wrote %d bytes of %d", s.ID, n, hr.n)
		_ = s.drv.Delete(context.WithoutCancel(ctx), key)
		s.metrics.observe(s.ID, "put", 0, start, err)
		return PutResult{}, err
	}
	s.metrics.observe(s.ID, "put", n, start, nil)
	return PutResult{Size: n, MD5: hex.EncodeToString(sums[0]), Hash: hex.EncodeToString(sums[1]), Head: hr.head}, nil
}

// Get opens key from offset; length < 0 reads to the end. A negative offset
// is errs.BadRange.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, errs.E(errs.BadRange, "negative offset %d", offset)
	}
	start := time.Now()
	rc, err := s.drv.Get(ctx, key, offset, length)
	if err != nil {
		err = s.mapErr(err, "get")
		s.metrics.observe(s.ID, "get", 0, start, err)
		return nil, err
	}
	return &countingReadCloser{ReadCloser: rc, done: func(n int64, err error) { s.metrics.observe(s.ID, "get", n, start, err) }}, nil
}

// Delete removes key; errs.NotFound when it is not there.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	start := time.Now()
	err := s.drv.Delete(ctx, key)
	if err != nil && !errs.Is(err, errs.NotFound) {
		err = s.mapErr(err, "delete")
	}
	s.metrics.observe(s.ID, "delete", 0, start, err)
	return err
}

// InUse returns errs.Conflict when key is in use outside the image
// service (see InUser); nil when the driver cannot tell or the object is
// gone.
func (s *Store) InUse(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	u, ok := s.drv.(InUser)
	if !ok {
		return nil
	}
	err := u.InUse(ctx, key)
	if err == nil || errs.Is(err, errs.NotFound) {
		return nil
	}
	if errs.KindOf(err) == errs.Conflict {
		return err
	}
	return s.mapErr(err, "in-use check")
}

// Size returns the object's size.
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	if err := ValidKey(key); err != nil {
		return 0, err
	}
	n, err := s.drv.Size(ctx, key)
	if err != nil && !errs.Is(err, errs.NotFound) {
		err = s.mapErr(err, "size")
	}
	return n, err
}

// Location returns key's location URL (see Locator); errors.ErrUnsupported
// when the driver cannot say.
func (s *Store) Location(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	l, ok := s.drv.(Locator)
	if !ok {
		return "", fmt.Errorf("store %s: locations: %w", s.ID, errors.ErrUnsupported)
	}
	return l.Location(key)
}

// Recover discards what a write to key killed with its process left
// behind (see Recoverer); nil when the driver leaves nothing behind.
func (s *Store) Recover(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if r, ok := s.drv.(Recoverer); ok {
		return r.Recover(ctx, key)
	}
	return nil
}

// mapErr gives driver errors Glance's user-facing messages.
func (s *Store) mapErr(err error, op string) error {
	switch errs.KindOf(err) {
	case errs.TooLarge:
		return &errs.Error{Kind: errs.TooLarge, Msg: "Image storage media is full: There is not enough disk space on the image storage media.", Err: err}
	case errs.Unavailable:
		var e *errs.Error
		if errors.As(err, &e) && e.Msg != "" {
			return err // the driver's message says why (permissions, unreachable)
		}
		return errs.Wrap(errs.Unavailable, err, fmt.Sprintf("Store %s is unavailable.", s.ID))
	case errs.Gone:
		return errs.Wrap(errs.Gone, err, "Error in store configuration. Adding images to store is disabled.")
	case errs.NotFound:
		return err
	case errs.Forbidden:
		return errs.Wrap(errs.Forbidden, err, "Insufficient permissions on image storage media.")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("store %s %s: %w", s.ID, op, err)
}

// Check reports whether the store's backend is usable now, through the
// driver's Checker; checked is false when the driver has none (its health
// is not known).
func (s *Store) Check(ctx context.Context) (checked bool, err error) {
	if c, ok := s.drv.(Checker); ok {
		return true, c.Check(ctx)
	}
	return false, nil
}

// FreeBytes is the room left in the store's backend; known is false when
// the driver cannot tell (no Spacer).
func (s *Store) FreeBytes(ctx context.Context) (free int64, known bool, err error) {
	sp, ok := s.drv.(Spacer)
	if !ok {
		return 0, false, nil
	}
	free, err = sp.FreeBytes(ctx)
	return free, err == nil, err
}
