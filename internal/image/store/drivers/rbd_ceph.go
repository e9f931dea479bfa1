//go:build ceph

package drivers

import (
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/rbd"
)

// rbdType is the rbd store (this binary was built with -tags ceph).
func rbdType() Type { return newType(false, rbd.ParseConfig, rbd.Open) }

var (
	_ store.Driver    = (*rbd.Driver)(nil)
	_ store.Lister    = (*rbd.Driver)(nil)
	_ store.Locator   = (*rbd.Driver)(nil)
	_ store.Recoverer = (*rbd.Driver)(nil)
	_ store.Describer = (*rbd.Driver)(nil)
)
