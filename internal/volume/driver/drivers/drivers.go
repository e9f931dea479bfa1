// Package drivers is the registry of volume drivers, keyed by the
// volume_driver name of a [backend:<name>] section. It lives apart from
// package driver because every driver imports that package.
package drivers

import (
	"sort"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/file"
)

// Factory builds a driver from its backend section.
type Factory func(b config.Backend) (driver.Driver, error)

// Factories returns the known drivers by volume_driver name.
func Factories() map[string]Factory {
	return map[string]Factory{
		"file": func(b config.Backend) (driver.Driver, error) { return file.New(b) },
		"rbd":  newRBD,
	}
}

// New builds the driver that b names.
func New(b config.Backend) (driver.Driver, error) {
	f, ok := Factories()[b.VolumeDriver]
	if !ok {
		names := make([]string, 0)
		for n := range Factories() {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, errs.E(errs.Invalid, "[backend:%s] unknown volume_driver %q (want %s)", b.Name, b.VolumeDriver, strings.Join(names, ", "))
	}
	return f(b)
}

// Check is a config.Check for the volume backends: each backend's options
// are parsed by its driver (without contacting any backend), so `config
// check` and `serve` report bad values, and a driver this binary was built
// without (rbd without -tags ceph), before anything starts.
func Check(c *config.Config) (problems, warnings []config.Problem) {
	for _, b := range c.Backends {
		var err error
		switch b.VolumeDriver {
		case "rbd":
			err = checkRBD(b)
		default:
			continue
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "[backend:"+b.Name+"] ")
			problems = append(problems, config.Problem{Section: "backend:" + b.Name, Key: "volume_driver", Msg: msg})
		}
	}
	return problems, nil
}
