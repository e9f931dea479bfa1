//go:build ceph

package drivers

import (
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/rbd"
)

// newRBD builds an rbd backend (this binary was built with -tags ceph).
func newRBD(b config.Backend) (driver.Driver, error) {
	c, err := rbd.ParseConfig(b)
	if err != nil {
		return nil, err
	}
	return rbd.New(c)
}

// checkRBD checks an rbd backend's options.
func checkRBD(b config.Backend) error {
	_, err := rbd.ParseConfig(b)
	return err
}
