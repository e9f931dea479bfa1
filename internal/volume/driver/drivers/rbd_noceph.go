//go:build !ceph

package drivers

import (
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/rbd"
)

// newRBD refuses an rbd backend: the default build is pure Go and has no
// librbd. The options are still checked, so a config is validated fully.
func newRBD(b config.Backend) (driver.Driver, error) {
	if _, err := rbd.ParseConfig(b); err != nil {
		return nil, err
	}
	return nil, errs.E(errs.Invalid, "[backend:%s] %s", b.Name, rbd.NotBuiltIn)
}

// checkRBD reports that this binary cannot serve an rbd backend.
func checkRBD(b config.Backend) error {
	if _, err := rbd.ParseConfig(b); err != nil {
		return err
	}
	return errs.E(errs.Invalid, "%s", rbd.NotBuiltIn)
}
