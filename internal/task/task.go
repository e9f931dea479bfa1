// Package task is Ashlar's one system for durable background work: volume
// creation, uploads to images, image imports and copies, and the recovery
// of request-held work (an image upload) whose node died.
//
// A task is a database row. A node (one process, named by a random UUID,
// never by an address: several nodes behind one load balancer share their
// public URLs) claims a task under a lease and renews the lease while the
// work runs. A node that dies stops renewing; once the lease has run out
// any node claims the task again and runs it — which resumes the work or
// rolls it back, as the task's Kind decides. Nothing is touched while its
// lease is live, so a restarting node never disturbs its peers' work.
//
// Fencing: every claim increments the task's epoch, and a task is finished
// only by a write that names the epoch it was claimed at (Task.Complete,
// Task.Fail, in the caller's transaction when the domain change must land
// with it). A node that lost its lease (paused, partitioned) has its task
// context cancelled at the next renewal and can no longer finish the task:
// two nodes never both finish the same task.
//
// Two ways in:
//   - Add queues work for any node's runner (a volume create): the kind's
//     Run does it, retried with backoff when it returns a Retry error, and
//     GiveUp rolls it back once the attempts are spent.
//   - Begin records work that the calling request does itself (an upload):
//     the row is claimed by this node from the start and renewed by its
//     runner; the request finishes it. If the node dies first, another node
//     claims it after the lease and the kind's Run rolls back or resumes.
package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// State is a task's place in its life.
type State string

// The states of a task row.
const (
	// Pending tasks wait to be claimed (not before their not_before time).
	Pending State = "pending"
	// Running tasks are held by the node named lease_owner until lease_until.
	Running State = "running"
	// Done and Failed tasks are kept for a while as a record, then pruned.
	Done   State = "done"
	Failed State = "failed"
)

// ErrLeaseLost is the cause of a task context cancelled because another
// node claimed the task (this node's lease ran out), and the error of a
// Complete or Fail that came too late.
var ErrLeaseLost = errors.New("task: lease lost to another node")

// ErrStopping is the cause of a task context cancelled because the runner
// is shutting down; the task is handed back for the next claim.
var ErrStopping = errors.New("task: runner stopping")

// Kind is one kind of durable work and how it is run.
type Kind struct {
	// Name identifies the kind in the table ("volume.create").
	Name string
	// Run does (or, for work begun by a request, recovers) the task. Its
	// context is cancelled with ErrLeaseLost or ErrStopping as cause.
	// Returning nil finishes the task (unless Run already called Complete
	// or Fail); an error wrapped with Retry is tried again after Backoff
	// while attempts remain; any other error fails the task for good, so
	// Run must have left the domain in its failed state first.
	Run func(ctx context.Context, t *Task) error
	// GiveUp rolls the work back when its attempts are spent: after a
	// Retry error on the last attempt, or when a claim finds that earlier
	// attempts died with their node MaxAttempts times. cause is the last
	// error. Optional.
	GiveUp func(ctx context.Context, t *Task, cause error) error
	// MaxAttempts bounds the claims of one task (default 3).
	MaxAttempts int
	// Backoff is the delay before retry number attempt+1 (default
	// exponential from 2 s, at most 1 min).
	Backoff func(attempt int) time.Duration
	// Concurrency bounds how many tasks of this kind one node runs at once
	// (0: the runner's Workers).
	Concurrency int
}

func (k *Kind) maxAttempts() int {
	if k.MaxAttempts > 0 {
		return k.MaxAttempts
	}
	return 3
}

func (k *Kind) backoff(attempt int) time.Duration {
	if k.Backoff != nil {
		return k.Backoff(attempt)
	}
	d := 2 * time.Second << max(0, min(attempt-1, 5))
	return min(d, time.Minute)
}

// Spec describes a task to add or begin.
type Spec struct {
	Kind string
	// Subject is the resource the task works on (an image or volume id),
	// for finding a resource's tasks.
	Subject string
	// Payload is stored as JSON and read back with Task.Decode.
	Payload any
	// RequestID is the request that caused the task, for logs and user
	// messages.
	RequestID string
	// ProjectID is the project the work is done for: members see the
	// progress of their own project's tasks.
	ProjectID string
	// Delay postpones the first claim.
	Delay time.Duration
	// Store is the image store the work writes to or reads from (an
	// upload's target store), for per-store progress: metrics label it
	// and the dashboard groups by it. Empty when no store is involved.
	Store string
	// Host, when set, is the advertised address (Options.Address) of the
	// only node that may claim the task while a node advertising it is
	// alive: the work needs data only that host has (a node-local staging
	// directory). Once no such node is alive, any node claims it, and its
	// Run sees Task.Stranded.
	Host string
}

// retryErr marks an error as worth another attempt.
type retryErr struct{ err error }

func (e retryErr) Error() string { return e.err.Error() }
func (e retryErr) Unwrap() error { return e.err }

// Retry marks err as transient: the task is tried again after the kind's
// backoff while attempts remain. Retry(nil) is nil.
func Retry(err error) error {
	if err == nil {
		return nil
	}
	return retryErr{err}
}

// IsRetry reports whether err was marked with Retry.
func IsRetry(err error) bool {
	var r retryErr
	return errors.As(err, &r)
}

// Task is one claimed task, held by this node.
type Task struct {
	ID, Kind, Subject, RequestID, ProjectID string
	// Store is the Spec's Store (see SetStore).
	Store string
	// Host is the Spec's Host: the node the task belongs on, if any.
	Host string
	// Attempt counts the claims of this task, this one included (1 first).
	Attempt int
	// LastError is the error the previous attempt ended with, if any.
	LastError string
	// CreatedAt is when the task was added.
	CreatedAt time.Time

	payload []byte
	epoch   int64
	r       *Runner
	ctx     context.Context
	cancel  context.CancelCauseFunc
	// deadline is the lease end last written (unix nanoseconds);
	// confirmed is set once a renewal has seen the row.
	deadline  atomic.Int64
	confirmed atomic.Bool
	// since is the runner's renewal round when this node began holding
	// the task (guarded by the runner's mu).
	since    uint64
	finished atomic.Bool
	release  sync.Once
	// Progress: bytes done and expected (-1: unknown), when bytes last
	// moved (unix nanoseconds), and what the runner last saved.
	done, total, moved atomic.Int64
	// seen is done as last observed (observe).
	seen  atomic.Int64
	saved [2]int64
	// started is when this node began the attempt (unix nanoseconds).
	started atomic.Int64
	// store is the store label as the runner's Held reports it, which
	// SetStore may change while the work runs.
	store atomic.Pointer[string]
}

// SetTotal records how many bytes the work will move (-1: unknown).
func (t *Task) SetTotal(n int64) { t.total.Store(n) }

// Add counts n more bytes moved. It is called on the data path, once a
// chunk: one atomic add, no clock read (a clock read costs more than the
// add on some virtual machines). When bytes last moved is told by
// observe, which the runner calls every ProgressInterval: a stall is
// seen to within that interval.
func (t *Task) Add(n int64) {
	if n > 0 {
		t.done.Add(n)
	}
}

// observe returns the counters as of now, first noting the bytes as
// moved now if they changed since the last observation.
func (t *Task) observe(now time.Time) (done, total int64, moved time.Time) {
	done, total = t.Progress()
	if t.seen.Swap(done) != done {
		t.moved.Store(now.UnixNano())
	}
	return done, total, time.Unix(0, t.moved.Load())
}

// Progress returns the bytes done and expected (-1: unknown).
func (t *Task) Progress() (done, total int64) { return t.done.Load(), t.total.Load() }

// Reader counts the bytes read from r as the task's progress.
func (t *Task) Reader(r io.Reader) io.Reader { return &counting{r: r, t: t} }

type counting struct {
	r io.Reader
	t *Task
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.t.Add(int64(n))
	return n, err
}

// initProgress starts the counters of a task held from now.
func (t *Task) initProgress() {
	now := time.Now().UnixNano()
	t.total.Store(-1)
	t.seen.Store(t.done.Load())
	t.moved.Store(now)
	t.started.Store(now)
	t.saved = [2]int64{0, -1}
	st := t.Store
	t.store.Store(&st)
}

// SetStore names the store the work writes to once it is known (a
// volume's upload learns it from the volume type): Held reports it at
// once and the task row records it with the next progress save.
func (t *Task) SetStore(id string) { t.store.Store(&id) }

// store label as last set.
func (t *Task) storeLabel() string {
	if p := t.store.Load(); p != nil {
		return *p
	}
	return t.Store
}

type ctxKey struct{}

// NewContext returns ctx carrying t, so that code far down the call
// chain (a volume driver's copy) can count its bytes as t's progress.
// The runner gives every run task such a context.
func NewContext(ctx context.Context, t *Task) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the task ctx carries, or nil.
func FromContext(ctx context.Context) *Task {
	t, _ := ctx.Value(ctxKey{}).(*Task)
	return t
}

// Decode reads the task's payload into v.
func (t *Task) Decode(v any) error {
	if err := json.Unmarshal(t.payload, v); err != nil {
		return fmt.Errorf("task %s: payload: %w", t.ID, err)
	}
	return nil
}

// Stranded reports whether the task belongs on another host (Spec.Host)
// and was claimed here because no node of that host is alive: work that
// needs the host's data cannot be done here and should fail with why.
func (t *Task) Stranded() bool { return t.Host != "" && t.Host != t.r.o.Address }

// Context is cancelled when the task's lease is lost (cause ErrLeaseLost)
// or its runner stops (ErrStopping), and, for a begun task, when the
// context given to Begin ends.
func (t *Task) Context() context.Context { return t.ctx }

// Complete finishes the task in q, which should be the transaction that
// makes the work's result visible, so that both land or neither does. It
// returns ErrLeaseLost when another node has claimed the task since.
func (t *Task) Complete(ctx context.Context, q db.Querier) error {
	if err := t.finish(ctx, q, Done, ""); err != nil {
		return err
	}
	t.finished.Store(true)
	return nil
}

// Fail finishes the task as failed with cause recorded, fenced like
// Complete. The domain's failed state is the caller's to write (in q).
func (t *Task) Fail(ctx context.Context, q db.Querier, cause error) error {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	if err := t.finish(ctx, q, Failed, msg); err != nil {
		return err
	}
	t.finished.Store(true)
	return nil
}

// Handoff makes a begun task pending, due now, in q (the transaction that
// makes its work ready for any node), fenced like Complete. The part only
// the caller could do is done; a runner does the rest. The attempt Begin
// counted is taken back, so the run that follows is attempt 1 unless this
// node died before the handoff. Call Release after q commits, then Wake.
func (t *Task) Handoff(ctx context.Context, q db.Querier) error {
	if err := requeue(ctx, q, t.ID, t.epoch, time.Now(), "", true); err != nil {
		return err
	}
	t.finished.Store(true)
	return nil
}

// finish ends the task as state, recording its final counters with it:
// the record shows how far the work got, not what the last periodic save
// saw.
func (t *Task) finish(ctx context.Context, q db.Querier, state State, lastError string) error {
	done, total, moved := t.observe(time.Now())
	return finish(ctx, q, t.ID, t.epoch, state, lastError,
		counters{done: done, total: total, moved: moved, store: t.storeLabel()})
}

// Release stops renewing the task's lease. A begun task calls it when its
// request is over: after Complete or Fail, or without them to leave the
// task for recovery once the lease runs out. Safe to call more than once.
func (t *Task) Release() {
	t.release.Do(func() {
		t.r.drop(t)
		t.cancel(context.Canceled)
	})
}

// Lost reports whether err (or ctx's cause) means the lease was lost.
func Lost(ctx context.Context, err error) bool {
	return errors.Is(err, ErrLeaseLost) || errors.Is(context.Cause(ctx), ErrLeaseLost)
}
