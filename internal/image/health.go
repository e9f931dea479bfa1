package image

import (
	"context"
	"sync"
	"time"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// Store health: every [image] store_check_interval each store's driver
// is asked whether its backend is usable (store.Checker) and how much
// room it has (store.Spacer). The results are this node's view, kept in
// memory, shown in stores detail's "ashlar" object and on the dashboard,
// where a volume type uploading to an unhealthy store is flagged.

// storeHealth is the last check of one store.
type storeHealth struct {
	// Checked is when; zero until the first check.
	Checked time.Time
	// Err is why the store is unhealthy; empty when healthy.
	Err string
	// Unknown: the driver cannot check its backend (no store.Checker).
	Unknown bool
	// Free is the room left, when FreeKnown.
	Free      int64
	FreeKnown bool
}

// healthBook holds the last check of every store.
type healthBook struct {
	mu sync.Mutex
	m  map[string]storeHealth
}

func (b *healthBook) get(id string) (storeHealth, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.m[id]
	return h, ok
}

func (b *healthBook) set(id string, h storeHealth) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]storeHealth{}
	}
	b.m[id] = h
}

// storeCheckTimeout bounds one store's check: a hung backend is unhealthy.
const storeCheckTimeout = 10 * time.Second

// checkStores checks every store once.
func (s *Service) checkStores(ctx context.Context) {
	for _, st := range s.stores.All() {
		s.health.set(st.ID, checkStore(ctx, st))
	}
}

func checkStore(ctx context.Context, st *store.Store) storeHealth {
	ctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	h := storeHealth{Checked: time.Now()}
	checked, err := st.Check(ctx)
	h.Unknown = !checked
	if err != nil {
		h.Err = errs.Message(err)
		if h.Err == "" {
			h.Err = err.Error()
		}
		return h
	}
	if free, known, err := st.FreeBytes(ctx); err == nil {
		h.Free, h.FreeKnown = free, known
	}
	return h
}

// runStoreChecks checks the stores now and every interval until ctx ends.
func (s *Service) runStoreChecks(ctx context.Context) {
	every := s.cfg.Image.StoreCheckInterval
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.checkStores(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
