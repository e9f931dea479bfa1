// Package drivers is the registry of backup drivers, keyed by [backup]
// backup_driver; each driver reads its own options. It lives apart from
// package backup because the drivers import that package.
package drivers

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/posix"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/s3"
)

// Factory builds a driver's store from the [backup] section and returns
// the chunk size its options ask for (0: the default).
type Factory func(c config.Backup) (backup.Store, int64, error)

// Factories returns the known drivers by backup_driver name.
func Factories() map[string]Factory {
	return map[string]Factory{
		"posix": func(c config.Backup) (backup.Store, int64, error) {
			size, err := intOpt(c, "backup_file_size")
			if err != nil {
				return nil, 0, err
			}
			st, err := posix.New(c.Options[posix.OptPath])
			return st, size, err
		},
		"s3": func(c config.Backup) (backup.Store, int64, error) {
			size, err := intOpt(c, "backup_s3_object_size")
			if err != nil {
				return nil, 0, err
			}
			attempts, err := intOpt(c, s3.OptRetries)
			if err != nil {
				return nil, 0, err
			}
			timeout, err := intOpt(c, s3.OptTimeout)
			if err != nil {
				return nil, 0, err
			}
			st, err := s3.New(s3.Config{Endpoint: c.Options[s3.OptEndpoint], Bucket: c.Options[s3.OptBucket],
				AccessKey: c.Options[s3.OptAccessKey], SecretKey: c.Options[s3.OptSecretKey], Region: c.Options[s3.OptRegion],
				MaxAttempts: int(attempts), Timeout: time.Duration(timeout) * time.Second, Connections: 2 * c.Workers})
			return st, size, err
		},
	}
}

// intOpt reads a positive integer option (0 when not set).
func intOpt(c config.Backup, key string) (int64, error) {
	v := c.Options[key]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0, errs.E(errs.Invalid, "[backup] %s: %q is not a positive integer", key, v)
	}
	return n, nil
}

// New builds the backup engine the [backup] section describes.
func New(c config.Backup) (*backup.Engine, error) {
	f, ok := Factories()[c.Driver]
	if !ok {
		names := make([]string, 0)
		for n := range Factories() {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, errs.E(errs.Invalid, "[backup] unknown backup_driver %q (want %s)", c.Driver, strings.Join(names, ", "))
	}
	st, chunk, err := f(c)
	if err != nil {
		return nil, err
	}
	return backup.New(st, backup.Options{ChunkSize: chunk, Compression: c.Compression, Workers: c.Workers})
}
