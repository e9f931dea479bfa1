package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// Options configure a Runner; zero values take the defaults.
type Options struct {
	// Node names this process among the nodes sharing the database
	// (default: a random UUID, new at every start).
	Node string
	// Lease is how long a claim lasts without renewal: the delay before
	// another node takes over the work of a dead one (default 30 s).
	// Leases are renewed every Lease/3.
	Lease time.Duration
	// Poll is how often the runner looks for work it was not woken for
	// (default 2 s).
	Poll time.Duration
	// Workers bounds the tasks this node runs at once (default 8). Begun
	// tasks are the requests' own and do not count.
	Workers int
	// Exclusive says this node is the only one on the database (SQLite,
	// which one process owns): leases found at start belong to dead
	// predecessors and are taken over at once instead of after they run
	// out.
	Exclusive bool
	// Retention is how long finished tasks are kept as a record (default 24 h).
	Retention time.Duration
	// ProgressInterval is how often the progress of held tasks is saved
	// (default 1 s).
	ProgressInterval time.Duration
	// Logger receives failures of the task system itself.
	Logger *slog.Logger
	// Address is the node's advertised address ([DEFAULT]
	// worker_self_reference_url): how operators and peers reach this node
	// directly, stable across restarts, and the host that tasks naming it
	// (Spec.Host) run on.
	Address string
	// Version and Services describe the node in the nodes table.
	Version  string
	Services []string
}

// Runner claims and runs the tasks of the kinds registered with it, renews
// the leases of every task this node holds, and hands work back when it
// stops. One Runner serves a whole process.
type Runner struct {
	db *db.DB
	o  Options

	mu      sync.Mutex
	kinds   map[string]*Kind
	held    map[string]*Task // every task this node holds (run or begun)
	busy    map[string]int   // running tasks per kind (run, not begun)
	total   int
	kick    chan struct{}
	runCtx  context.Context
	started bool
	// round counts renewal rounds; a task added to held during a round
	// (Task.since == round) may be missing from that round's renewal,
	// which read the table before it was claimed, and is judged next
	// round.
	round uint64
}

// New returns a runner on d; register kinds, then call Run.
func New(d *db.DB, o Options) *Runner {
	if o.Node == "" {
		o.Node = uuid.NewString()
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Runner{db: d, o: o, kinds: map[string]*Kind{}, held: map[string]*Task{}, busy: map[string]int{},
		kick: make(chan struct{}, 1)}
}

// Node is this process's node id.
func (r *Runner) Node() string { return r.o.Node }

// Address is this node's advertised address (Options.Address).
func (r *Runner) Address() string { return r.o.Address }

// Lease is the lease duration.
func (r *Runner) Lease() time.Duration { return r.o.Lease }

// Register adds a kind this node runs. Registering a name twice is a
// programming error and panics.
func (r *Runner) Register(k Kind) {
	if k.Name == "" || k.Run == nil {
		panic("task: a kind needs a name and a Run")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[k.Name]; dup {
		panic("task: kind registered twice: " + k.Name)
	}
	r.kinds[k.Name] = &k
}

// Add records a pending task in q (a transaction, so that the task exists
// exactly when the change that needs it commits, or the pool). Call Wake
// after the transaction commits to start it without waiting for a poll.
func (r *Runner) Add(ctx context.Context, q db.Querier, s Spec) (string, error) {
	id, _, err := insert(ctx, q, s, Pending, "", time.Time{})
	if err != nil {
		return "", err
	}
	if _, pool := q.(*db.DB); pool {
		r.Wake()
	}
	return id, nil
}

// Wake makes the runner look for due tasks now.
func (r *Runner) Wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Begin records in q a task that the caller does itself, held by this node
// from the start: the runner renews its lease until Release. The kind must
// be registered, because its Run is what recovers the task if this node
// dies first. The task's Context ends with ctx, and with the lease.
func (r *Runner) Begin(ctx context.Context, q db.Querier, s Spec) (*Task, error) {
	r.mu.Lock()
	_, ok := r.kinds[s.Kind]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("task: kind %q is not registered", s.Kind)
	}
	until := time.Now().Add(r.o.Lease)
	id, payload, err := insert(ctx, q, s, Running, r.o.Node, until)
	if err != nil {
		return nil, err
	}
	t := &Task{ID: id, Kind: s.Kind, Subject: s.Subject, RequestID: s.RequestID, ProjectID: s.ProjectID, Host: s.Host,
		Store: s.Store, Attempt: 1, CreatedAt: time.Now(), payload: payload, epoch: 1, r: r}
	t.initProgress()
	t.ctx, t.cancel = context.WithCancelCause(NewContext(ctx, t))
	t.deadline.Store(until.UnixNano())
	r.mu.Lock()
	t.since = r.round
	r.held[id] = t
	r.mu.Unlock()
	return t, nil
}

// drop forgets t; a run task also frees its worker slot.
func (r *Runner) drop(t *Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held[t.ID] == t {
		delete(r.held, t.ID)
	}
}

// Run claims and runs due tasks until ctx ends, renewing the leases of
// everything this node holds. When ctx ends it cancels its running tasks
// (cause ErrStopping), waits for them and hands back those unfinished.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("task: runner already running")
	}
	// (Run may be called again once it has returned: a restart in tests.)
	r.started = true
	runCtx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	r.runCtx = runCtx
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.started = false
		r.mu.Unlock()
	}()
	if r.o.Exclusive {
		if err := expireOthers(ctx, r.db, r.o.Node); err != nil {
			stop(err)
			return fmt.Errorf("task: taking over leases: %w", err)
		}
	}
	if err := r.register(ctx); err != nil {
		stop(err)
		return fmt.Errorf("task: registering node: %w", err)
	}
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewDone := make(chan struct{})
	go func() { defer close(renewDone); r.renewLoop(renewCtx) }()

	var wg sync.WaitGroup
	t := time.NewTicker(r.o.Poll)
	defer t.Stop()
	for {
		r.claimDue(ctx, &wg)
		select {
		case <-ctx.Done():
			stop(ErrStopping)
			wg.Wait()
			stopRenew()
			<-renewDone
			if err := stopNode(context.WithoutCancel(ctx), r.db, r.o.Node); err != nil {
				r.o.Logger.Error("recording the node's stop", "err", err)
			}
			return ctx.Err()
		case <-r.kick:
		case <-t.C:
		}
	}
}

// claimDue claims as many due tasks as there are free workers and starts them.
func (r *Runner) claimDue(ctx context.Context, wg *sync.WaitGroup) {
	r.mu.Lock()
	free := r.o.Workers - r.total
	// Locally held tasks may be listed too (a lease this node let lapse);
	// ask for enough rows to see past them.
	limit := free + len(r.held)
	var kinds []string
	for name, k := range r.kinds {
		if k.Concurrency <= 0 || r.busy[name] < k.Concurrency {
			kinds = append(kinds, name)
		}
	}
	r.mu.Unlock()
	if free <= 0 || len(kinds) == 0 {
		return
	}
	sort.Strings(kinds)
	cands, err := due(ctx, r.db, kinds, r.o.Address, limit)
	if err != nil {
		if ctx.Err() == nil {
			r.o.Logger.Error("listing due tasks", "err", err)
		}
		return
	}
	for _, c := range cands {
		r.mu.Lock()
		k := r.kinds[c.kind]
		_, mine := r.held[c.id]
		full := r.total >= r.o.Workers || (k.Concurrency > 0 && r.busy[c.kind] >= k.Concurrency)
		r.mu.Unlock()
		if mine || full {
			continue
		}
		until := time.Now().Add(r.o.Lease)
		// A claim is not cut in two when the runner stops: its UPDATE
		// may commit while its answer is lost, which would leave a task
		// leased to this node that nothing runs.
		t, err := claim(context.WithoutCancel(ctx), r.db, c, r.o.Node, until)
		if err != nil {
			if ctx.Err() == nil {
				r.o.Logger.Error("claiming task", "task", c.id, "err", err)
			}
			continue
		}
		if t == nil {
			continue // another node was first
		}
		r.hold(t, until)
		wg.Go(func() {
			defer func() {
				r.mu.Lock()
				r.busy[t.Kind]--
				r.total--
				r.mu.Unlock()
				t.Release()
				r.Wake() // a slot is free
			}()
			r.execute(k, t)
		})
	}
}

// hold makes t, just claimed until until, one of the tasks this node runs.
func (r *Runner) hold(t *Task, until time.Time) {
	t.r = r
	t.initProgress()
	t.ctx, t.cancel = context.WithCancelCause(NewContext(r.runCtx, t))
	t.deadline.Store(until.UnixNano())
	t.confirmed.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	t.since = r.round
	r.held[t.ID] = t
	r.busy[t.Kind]++
	r.total++
}

// execute runs one claimed task and records how it ended.
func (r *Runner) execute(k *Kind, t *Task) {
	log := r.o.Logger.With("task", t.ID, "kind", t.Kind, "subject", t.Subject, "attempt", t.Attempt)
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("task panicked: %v", p)
			}
		}()
		if t.Attempt > k.maxAttempts() {
			cause := errors.New("interrupted too often")
			if t.LastError != "" {
				cause = errors.New(t.LastError)
			}
			err = r.giveUp(k, t, cause)
			return
		}
		err = k.Run(t.ctx, t)
	}()
	bg := context.WithoutCancel(t.ctx)
	cause := context.Cause(t.ctx)
	switch {
	case t.finished.Load():
		return
	case errors.Is(cause, ErrLeaseLost) || errors.Is(err, ErrLeaseLost):
		log.Warn("task lease lost to another node; stopped")
		return
	case err == nil:
		err = t.finish(bg, r.db, Done, "")
	case errors.Is(cause, ErrStopping):
		err = requeue(bg, r.db, t.ID, t.epoch, time.Now(), err.Error(), true)
	case IsRetry(err) && t.Attempt < k.maxAttempts():
		log.Warn("task failed; will retry", "err", err)
		err = requeue(bg, r.db, t.ID, t.epoch, time.Now().Add(k.backoff(t.Attempt)), err.Error(), false)
	default:
		if IsRetry(err) {
			err = r.giveUp(k, t, err)
		}
		log.Error("task failed", "err", err)
		if !t.finished.Load() {
			err = t.finish(bg, r.db, Failed, err.Error())
		} else {
			err = nil
		}
	}
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		log.Error("recording task outcome", "err", err)
	}
}

// giveUp rolls t back through the kind's GiveUp and returns the error the
// task fails with: cause, and what went wrong rolling back.
func (r *Runner) giveUp(k *Kind, t *Task, cause error) error {
	if k.GiveUp == nil {
		return cause
	}
	if err := k.GiveUp(t.ctx, t, cause); err != nil {
		return fmt.Errorf("%w (rolling back: %v)", cause, err)
	}
	return cause
}

// renewLoop extends this node's leases every Lease/3 and cancels the tasks
// whose lease was lost, saves the progress of held tasks every
// ProgressInterval, and prunes finished tasks now and then.
func (r *Runner) renewLoop(ctx context.Context) {
	t := time.NewTicker(r.o.Lease / 3)
	defer t.Stop()
	p := time.NewTicker(r.o.ProgressInterval)
	defer p.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.C:
			r.saveProgress(ctx)
			continue
		case <-t.C:
		}
		r.renewOnce(ctx)
		r.heartbeat(ctx)
		if time.Since(lastPrune) > min(r.o.Retention/4, 10*time.Minute) {
			lastPrune = time.Now()
			if err := prune(ctx, r.db, time.Now().Add(-r.o.Retention)); err != nil && ctx.Err() == nil {
				r.o.Logger.Error("pruning finished tasks", "err", err)
			}
		}
	}
}

// renewOnce is one renewal round. A held task that the renewal did not
// extend is lost once it has been seen by a renewal before (another node
// claimed it) or its lease has passed (a begun task whose transaction never
// committed, or a database this node could not reach in time).
func (r *Runner) renewOnce(ctx context.Context) {
	r.mu.Lock()
	r.round++
	round := r.round
	ids := make([]string, 0, len(r.held))
	for id := range r.held {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	until := time.Now().Add(r.o.Lease)
	got, err := renew(ctx, r.db, r.o.Node, ids, until)
	if err != nil && ctx.Err() == nil {
		r.o.Logger.Error("renewing task leases", "err", err)
	}
	r.judge(round, got, err, until)
}

// judge applies the renewal of round (got: the tasks it extended, err: how
// it ended) to the tasks held: an extended task's lease now runs to until;
// one not extended is lost (see renewOnce). A task claimed while the
// renewal ran is left for the next round: the renewal may have read the
// table before its claim committed.
func (r *Runner) judge(round uint64, got map[string]int64, err error, until time.Time) {
	now := time.Now().UnixNano()
	r.mu.Lock()
	var lost []*Task
	for id, t := range r.held {
		if t.finished.Load() || t.since >= round {
			continue
		}
		if e, ok := got[id]; ok && e == t.epoch {
			t.deadline.Store(until.UnixNano())
			t.confirmed.Store(true)
			continue
		}
		if (err == nil && t.confirmed.Load()) || now > t.deadline.Load() {
			lost = append(lost, t)
			delete(r.held, id)
		}
	}
	r.mu.Unlock()
	for _, t := range lost {
		r.o.Logger.Warn("task lease lost", "task", t.ID, "kind", t.Kind, "subject", t.Subject)
		t.cancel(ErrLeaseLost)
	}
}

// saveProgress writes the counters of the held tasks that moved since
// they were last saved.
func (r *Runner) saveProgress(ctx context.Context) {
	r.mu.Lock()
	held := make([]*Task, 0, len(r.held))
	for _, t := range r.held {
		held = append(held, t)
	}
	r.mu.Unlock()
	for _, t := range held {
		done, total, moved := t.observe(time.Now())
		if t.finished.Load() || [2]int64{done, total} == t.saved {
			continue
		}
		c := counters{done: done, total: total, moved: moved, store: t.storeLabel()}
		if err := saveProgress(ctx, r.db, t.ID, t.epoch, c); err != nil {
			if ctx.Err() == nil {
				r.o.Logger.Warn("saving task progress", "task", t.ID, "err", err)
			}
			continue
		}
		t.saved = [2]int64{done, total}
	}
}

// Live is the progress of a task this node holds, as of now: fresher
// than the saved row (saved every ProgressInterval), for metrics.
type Live struct {
	ID, Kind, Subject, ProjectID, Store string
	// Done of Total (-1: unknown) bytes since Started; bytes last moved
	// at Moved.
	Done, Total    int64
	Started, Moved time.Time
}

// Held returns the progress of every unfinished task this node holds
// (run or begun), in no particular order.
func (r *Runner) Held() []Live {
	r.mu.Lock()
	held := make([]*Task, 0, len(r.held))
	for _, t := range r.held {
		held = append(held, t)
	}
	r.mu.Unlock()
	out := make([]Live, 0, len(held))
	now := time.Now()
	for _, t := range held {
		if t.finished.Load() {
			continue
		}
		done, total, moved := t.observe(now)
		out = append(out, Live{ID: t.ID, Kind: t.Kind, Subject: t.Subject, ProjectID: t.ProjectID, Store: t.storeLabel(),
			Done: done, Total: total, Started: time.Unix(0, t.started.Load()), Moved: moved})
	}
	return out
}
