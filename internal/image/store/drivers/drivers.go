// Package drivers is the registry of image-store drivers, keyed by the store
// type of [image] enabled_backends (`<id>:<type>`). Each driver reads and
// checks its own [store:<id>] options (its ParseConfig); the registry runs
// them for `ashlar config check` and `serve` (Check) and opens the drivers
// for the image service (Factories). It lives apart from package store
// because the drivers import that package.
package drivers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
	httpstore "github.com/ashlar-dev/ashlar/internal/image/store/http"
	"github.com/ashlar-dev/ashlar/internal/image/store/s3"
)

// Type is one store type.
type Type struct {
	// ReadOnly types never accept writes, so such a store cannot be the
	// default one. (Their drivers say so too: store.ReadOnlyDriver.)
	ReadOnly bool
	// parse reads and checks a section's options without side effects.
	parse func(o *config.Options)
	open  store.Factory
}

// newType registers a driver by its two halves: parse reads the options
// into the driver's Config, recording every problem in o; open builds the
// driver from a Config parse accepted. (No driver contacts its backend
// when opened, so open takes no context.)
func newType[C any, D store.Driver](readOnly bool, parse func(*config.Options) C, open func(C) (D, error)) Type {
	return Type{
		ReadOnly: readOnly,
		parse:    func(o *config.Options) { parse(o) },
		open: func(ctx context.Context, sc config.Store) (store.Driver, error) {
			o := config.NewOptions(sc)
			c := parse(o)
			if p := o.Problems(); len(p) > 0 {
				msgs := make([]string, len(p))
				for i := range p {
					msgs[i] = p[i].String()
				}
				return nil, errs.E(errs.Invalid, "%s", strings.Join(msgs, "; "))
			}
			d, err := open(c)
			if err != nil {
				return nil, err // not a typed nil in a store.Driver
			}
			return d, nil
		},
	}
}

// Types returns the known store types by name.
func Types() map[string]Type {
	return map[string]Type{
		"file": newType(false, file.ParseConfig, file.Open),
		"s3":   newType(false, s3.ParseConfig, s3.New),
		"http": newType(true, httpstore.ParseConfig, httpstore.Open),
		"rbd":  rbdType(),
	}
}

// Keys returns the option keys of the type's [store:<id>] sections
// (besides store_description), sorted.
func (t Type) Keys() []string {
	o := config.NewOptions(config.Store{})
	t.parse(o)
	return o.Keys()
}

// Factories returns each type's driver factory, for store.NewSet.
func Factories() map[string]store.Factory {
	out := map[string]store.Factory{}
	for name, t := range Types() {
		out[name] = t.open
	}
	return out
}

// Check is a config.Check: each store's driver reads its options, the
// staging store's ([image] staging_store, [store:os_glance_staging_store])
// too. It reports unknown store types, read-only default or staging
// stores, bad option values (section and key named) and, as warnings, keys
// no driver knows; and it resolves each store's Options (defaults filled
// in, secrets marked) for `config check` to print.
func Check(c *config.Config) (problems, warnings []config.Problem) {
	types := Types()
	known := strings.Join(slices.Sorted(maps.Keys(types)), ", ")
	stores := []*config.Store{&c.Image.Staging}
	for i := range c.Stores {
		stores = append(stores, &c.Stores[i])
	}
	for _, sc := range stores {
		staging := sc.ID == config.StagingStoreID
		t, ok := types[sc.Type]
		switch {
		case !ok && staging:
			problems = append(problems, config.Problem{Section: "image", Key: "staging_store",
				Msg: fmt.Sprintf("unknown store type %q (want %s)", sc.Type, known)})
			continue
		case !ok:
			problems = append(problems, config.Problem{Section: "image", Key: "enabled_backends",
				Msg: fmt.Sprintf("store %q has unknown type %q (want %s)", sc.ID, sc.Type, known)})
			continue
		case t.ReadOnly && staging:
			problems = append(problems, config.Problem{Section: "image", Key: "staging_store",
				Msg: fmt.Sprintf("store type %q is read-only and cannot hold staged data", sc.Type)})
		case t.ReadOnly && sc.ID == c.Image.DefaultBackend:
			problems = append(problems, config.Problem{Section: "image", Key: "default_backend",
				Msg: fmt.Sprintf("store %q is read-only and cannot be the default", sc.ID)})
		}
		o := config.NewOptions(*sc)
		t.parse(o)
		problems = append(problems, o.Problems()...)
		warnings = append(warnings, o.Unknown()...)
		o.Resolve(sc)
	}
	return problems, warnings
}

// The drivers implement the interfaces they claim. (Drivers need not
// import package store, so the checks live here.)
var (
	_ store.Driver    = (*file.Driver)(nil)
	_ store.Lister    = (*file.Driver)(nil)
	_ store.Recoverer = (*file.Driver)(nil)
	_ store.Locator   = (*file.Driver)(nil)
	_ store.Describer = (*file.Driver)(nil)

	_ store.Driver    = (*s3.Driver)(nil)
	_ store.Lister    = (*s3.Driver)(nil)
	_ store.Locator   = (*s3.Driver)(nil)
	_ store.Recoverer = (*s3.Driver)(nil)
	_ store.Describer = (*s3.Driver)(nil)

	_ store.Driver         = (*httpstore.Driver)(nil)
	_ store.ReadOnlyDriver = (*httpstore.Driver)(nil)
	_ store.Locator        = (*httpstore.Driver)(nil)
)
