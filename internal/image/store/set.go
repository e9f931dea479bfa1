package store

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/config"
)

// StagingID is the id of the hidden store that holds staged import data.
const StagingID = config.StagingStoreID

// Set is every configured store, in enabled_backends order, plus the hidden
// staging store.
type Set struct {
	stores  []*Store
	byID    map[string]*Store
	staging *Store
	def     *Store
}

// NewSet opens every store of cfg with factories (keyed by store type) and
// the staging store ([image] staging_store: by default a file store under
// [image] staging_dir).
func NewSet(ctx context.Context, cfg *config.Config, factories map[string]Factory, reg prometheus.Registerer) (*Set, error) {
	m := NewMetrics(reg)
	set := &Set{byID: map[string]*Store{}}
	for _, sc := range cfg.Stores {
		f, ok := factories[sc.Type]
		if !ok {
			return nil, fmt.Errorf("store %s: no driver for type %q", sc.ID, sc.Type)
		}
		drv, err := f(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", sc.ID, err)
		}
		st := NewStore(sc, drv, sc.ID == cfg.Image.DefaultBackend, m)
		set.stores = append(set.stores, st)
		set.byID[sc.ID] = st
		if st.Default {
			set.def = st
		}
	}
	sc := cfg.Image.Staging
	if sc.Type == "" { // a Config built by hand: the embedded default
		sc = config.Store{ID: StagingID, Type: "file", StateDir: cfg.Image.StagingDir}
	}
	f, ok := factories[sc.Type]
	if !ok {
		return nil, fmt.Errorf("staging store: no driver for type %q", sc.Type)
	}
	// A file store with no options keeps its objects in its StateDir.
	drv, err := f(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("staging store: %w", err)
	}
	set.staging = NewStore(sc, drv, false, m)
	return set, nil
}

// NewSetOf builds a Set from already wrapped stores (tests, tools).
func NewSetOf(staging *Store, stores ...*Store) *Set {
	set := &Set{byID: map[string]*Store{}, staging: staging}
	for _, st := range stores {
		set.stores = append(set.stores, st)
		set.byID[st.ID] = st
		if st.Default && set.def == nil {
			set.def = st
		}
	}
	return set
}

// All returns the visible stores in configuration order.
func (s *Set) All() []*Store { return s.stores }

// Default returns the default store.
func (s *Set) Default() *Store { return s.def }

// Staging returns the hidden staging store.
func (s *Set) Staging() *Store { return s.staging }

// Get returns the visible store with id.
func (s *Set) Get(id string) (*Store, bool) {
	st, ok := s.byID[id]
	return st, ok
}
