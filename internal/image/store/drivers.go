package store

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
	httpstore "github.com/ashlar-dev/ashlar/internal/image/store/http"
	"github.com/ashlar-dev/ashlar/internal/image/store/s3"
)

// The drivers satisfy the interfaces they claim. (Drivers do not import
// this package, which imports them, so the checks live here.)
var (
	_ Driver = (*file.Driver)(nil)
	_ Lister = (*file.Driver)(nil)
	_ Driver = (*s3.Driver)(nil)
	_ Lister = (*s3.Driver)(nil)

	_ Driver         = (*httpstore.Driver)(nil)
	_ ReadOnlyDriver = (*httpstore.Driver)(nil)
)

// Factories returns the driver factories by store type, the value of
// `<store id>:<type>` in [image] enabled_backends.
func Factories() map[string]Factory {
	return map[string]Factory{
		"file": func(ctx context.Context, cfg config.Store) (Driver, error) {
			d, err := file.Open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		"s3": func(ctx context.Context, cfg config.Store) (Driver, error) {
			d, err := s3.Open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		"http": func(ctx context.Context, cfg config.Store) (Driver, error) {
			d, err := httpstore.Open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
	}
}
