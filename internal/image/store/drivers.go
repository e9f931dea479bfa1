package store

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
	httpstore "github.com/ashlar-dev/ashlar/internal/image/store/http"
	"github.com/ashlar-dev/ashlar/internal/image/store/s3"
)

// Locator is implemented by drivers that can say where an object lives, in
// the URL form Glance shows in an image's locations[].url: file:///<path>
// for file stores, s3://<host>/<bucket>/<key> (s3+https:// for TLS
// endpoints; unlike Glance, never with credentials) for s3 stores, and
// the object's URL for http stores. It validates key like the driver does.
type Locator interface {
	Location(key string) (string, error)
}

// Recoverer is implemented by drivers whose Put can leave hidden state
// behind when the process dies mid-upload (S3 multipart parts). At start-up
// the image service calls Recover for each image it finds stuck in
// "saving"; afterwards no trace of the interrupted upload remains. It
// returns nil when there is nothing to recover.
type Recoverer interface {
	Recover(ctx context.Context, key string) error
}

// The drivers satisfy the interfaces they claim. (Drivers do not import
// this package, which imports them, so the checks live here.)
var (
	_ Driver    = (*file.Driver)(nil)
	_ Lister    = (*file.Driver)(nil)
	_ Locator   = (*file.Driver)(nil)
	_ Recoverer = (*file.Driver)(nil)
	_ Driver    = (*s3.Driver)(nil)
	_ Lister    = (*s3.Driver)(nil)
	_ Locator   = (*s3.Driver)(nil)
	_ Recoverer = (*s3.Driver)(nil)

	_ Driver         = (*httpstore.Driver)(nil)
	_ ReadOnlyDriver = (*httpstore.Driver)(nil)
	_ Locator        = (*httpstore.Driver)(nil)
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
