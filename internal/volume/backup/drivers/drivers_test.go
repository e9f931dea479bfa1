package drivers_test

import (
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/backup/drivers"
)

func TestNew(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		c     config.Backup
		kind  errs.Kind // of the error; Other: none expected
		chunk int64
	}{
		{"posix", config.Backup{Driver: "posix", Options: map[string]string{"backup_posix_path": dir}}, errs.Other, 4 << 20},
		{"posix chunk size", config.Backup{Driver: "posix", Options: map[string]string{"backup_posix_path": dir, "backup_file_size": "1048576"}}, errs.Other, 1 << 20},
		{"posix bad chunk size", config.Backup{Driver: "posix", Options: map[string]string{"backup_posix_path": dir, "backup_file_size": "-1"}}, errs.Invalid, 0},
		{"posix without path", config.Backup{Driver: "posix", Options: map[string]string{}}, errs.Invalid, 0},
		{"s3", config.Backup{Driver: "s3", Options: map[string]string{"backup_s3_endpoint_url": "http://127.0.0.1:1",
			"backup_s3_store_bucket": "b", "backup_s3_store_access_key": "a", "backup_s3_store_secret_key": "s"}}, errs.Other, 4 << 20},
		{"s3 without bucket", config.Backup{Driver: "s3", Options: map[string]string{"backup_s3_endpoint_url": "http://127.0.0.1:1",
			"backup_s3_store_access_key": "a", "backup_s3_store_secret_key": "s"}}, errs.Invalid, 0},
		{"s3 bad endpoint", config.Backup{Driver: "s3", Options: map[string]string{"backup_s3_endpoint_url": "ftp://x",
			"backup_s3_store_bucket": "b", "backup_s3_store_access_key": "a", "backup_s3_store_secret_key": "s"}}, errs.Invalid, 0},
		{"unknown", config.Backup{Driver: "swift"}, errs.Invalid, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := drivers.New(tc.c)
			if tc.kind != errs.Other {
				if errs.KindOf(err) != tc.kind {
					t.Fatalf("New: %v, want %v", err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.ChunkSize() != tc.chunk {
				t.Errorf("chunk size %d, want %d", e.ChunkSize(), tc.chunk)
			}
		})
	}
}
