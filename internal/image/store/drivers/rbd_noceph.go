//go:build !ceph

package drivers

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/rbd"
)

// rbdType is the rbd store in a binary built without it: its options are
// read (so they are known) and the section is refused, saying how to
// build Ashlar with it.
func rbdType() Type {
	return Type{
		parse: func(o *config.Options) {
			rbd.ParseConfig(o)
			o.Problem("", "%s", rbd.NotBuiltIn)
		},
		open: func(context.Context, config.Store) (store.Driver, error) {
			return nil, errs.E(errs.Invalid, "%s", rbd.NotBuiltIn)
		},
	}
}
