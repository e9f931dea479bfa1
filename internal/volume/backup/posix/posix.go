// Package posix is the backup store that keeps backup objects as files
// under a directory ([backup] backup_posix_path), such as an NFS mount:
// Cinder's posix backup driver. An object "<container>/<id>/<name>" is the
// file <path>/<container>/<id>/<name>, written to a temporary file in the
// same directory and renamed into place, so it appears complete or not at
// all.
package posix

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
)

// The [backup] option of the posix driver (Cinder's name).
const OptPath = "backup_posix_path"

// tmpPrefix starts the names of files being written.
const tmpPrefix = ".tmp-"

// Store keeps backup objects under a directory.
type Store struct {
	dir string
}

// Interface guard.
var _ backup.Store = (*Store)(nil)

// New returns a store under dir, creating it, and removes the temporary
// files a crash left behind (objects never completed).
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errs.E(errs.Invalid, "%s is required for the posix backup driver", OptPath)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, mapErr(err, "creating "+abs)
	}
	_ = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			_ = os.Remove(p)
		}
		return nil
	})
	return &Store{dir: abs}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// path maps a key to its file; keys are "/"-separated names that cannot
// climb out of the directory.
func (s *Store) path(key string) (string, error) {
	parts := strings.Split(key, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.HasPrefix(p, tmpPrefix) || strings.ContainsRune(p, os.PathSeparator) {
			return "", errs.E(errs.Invalid, "invalid backup object key %q", key)
		}
	}
	return filepath.Join(append([]string{s.dir}, parts...)...), nil
}

// Put implements backup.Store.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return mapErr(err, key)
	}
	f, err := os.CreateTemp(dir, tmpPrefix)
	if err != nil {
		return mapErr(err, key)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return mapErr(err, key)
	}
	return nil
}

// Get implements backup.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, mapErr(err, key)
	}
	return data, nil
}

// Delete implements backup.Store; the directories left empty go too.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return mapErr(err, key)
	}
	for d := filepath.Dir(p); d != s.dir && strings.HasPrefix(d, s.dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break // not empty (or gone): its parents are not empty either
		}
	}
	return nil
}

// List implements backup.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	base := s.dir
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		p, err := s.path(prefix[:i])
		if err != nil {
			return nil, err
		}
		base = p
	}
	var keys []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		if k := filepath.ToSlash(rel); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return nil, mapErr(err, prefix)
	}
	return keys, nil
}

// mapErr maps a filesystem error to the backup.Store contract.
func mapErr(err error, what string) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return errs.Wrap(errs.NotFound, err, "backup object "+what+" not found")
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errs.Wrap(errs.TooLarge, err, "backup storage is full")
	}
	return errs.Wrap(errs.Unavailable, err, "backup storage failed")
}
