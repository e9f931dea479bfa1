package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

const testLease = 400 * time.Millisecond

// start runs a runner on d with short leases until the test ends (or the
// returned stop is called) and returns it.
func start(t *testing.T, d *db.DB, o Options, kinds ...Kind) (*Runner, func()) {
	t.Helper()
	if o.Lease == 0 {
		o.Lease = testLease
	}
	if o.Poll == 0 {
		o.Poll = 30 * time.Millisecond
	}
	r := New(d, o)
	for _, k := range kinds {
		r.Register(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return r, stop
}

// row reads a task's state, attempts and last error.
func row(t *testing.T, d *db.DB, id string) (State, int, string) {
	t.Helper()
	var st, lastErr string
	var attempts int
	if err := d.QueryRowContext(context.Background(), `SELECT state, attempts, last_error FROM tasks WHERE id = ?`, id).
		Scan(&st, &attempts, &lastErr); err != nil {
		t.Fatal(err)
	}
	return State(st), attempts, lastErr
}

func waitState(t *testing.T, d *db.DB, id string, want State, within time.Duration) {
	t.Helper()
	apitest.Eventually(t, within, func() bool { s, _, _ := row(t, d, id); return s == want },
		func() string {
			s, a, e := row(t, d, id)
			return fmt.Sprintf("state %s attempts %d last_error %q", s, a, e)
		})
}

// addDead records a task as running under a node that died: its lease has
// run out and attempts claims were made.
func addDead(t *testing.T, d *db.DB, s Spec, attempts int, lastErr string) string {
	t.Helper()
	ctx := context.Background()
	id, _, err := insert(ctx, d, s, Running, "dead-node", time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, `UPDATE tasks SET attempts = ?, last_error = ? WHERE id = ?`, attempts, lastErr, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRunOutcomes(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		type payload struct{ N int }
		var gaveUp atomic.Value
		var calls sync.Map // task id -> *atomic.Int32
		count := func(id string) int32 {
			v, _ := calls.LoadOrStore(id, new(atomic.Int32))
			return v.(*atomic.Int32).Add(1)
		}
		kinds := []Kind{
			{Name: "ok", Run: func(ctx context.Context, tk *Task) error {
				var p payload
				if err := tk.Decode(&p); err != nil || p.N != 7 {
					return fmt.Errorf("payload %+v: %v", p, err)
				}
				count(tk.ID)
				return nil
			}},
			{Name: "flaky", Backoff: func(int) time.Duration { return 10 * time.Millisecond },
				Run: func(ctx context.Context, tk *Task) error {
					if n := count(tk.ID); n < 3 {
						return Retry(fmt.Errorf("transient %d", n))
					}
					return nil
				}},
			{Name: "hopeless", MaxAttempts: 2, Backoff: func(int) time.Duration { return 10 * time.Millisecond },
				Run: func(ctx context.Context, tk *Task) error {
					count(tk.ID)
					return Retry(errors.New("store unreachable"))
				},
				GiveUp: func(ctx context.Context, tk *Task, cause error) error {
					gaveUp.Store(tk.ID + ": " + cause.Error())
					return nil
				}},
			{Name: "broken", GiveUp: func(ctx context.Context, tk *Task, cause error) error {
				gaveUp.Store("broken must not give up: " + cause.Error())
				return nil
			}, Run: func(ctx context.Context, tk *Task) error { count(tk.ID); return errors.New("bad image") }},
		}
		r, _ := start(t, d, Options{}, kinds...)
		ctx := context.Background()
		add := func(kind string) string {
			id, err := r.Add(ctx, d, Spec{Kind: kind, Subject: "s-" + kind, Payload: payload{7}})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		ok, flaky, hopeless, broken := add("ok"), add("flaky"), add("hopeless"), add("broken")

		waitState(t, d, ok, Done, 5*time.Second)
		waitState(t, d, flaky, Done, 5*time.Second)
		waitState(t, d, hopeless, Failed, 5*time.Second)
		waitState(t, d, broken, Failed, 5*time.Second)

		if _, a, _ := row(t, d, ok); a != 1 {
			t.Errorf("ok: attempts %d, want 1", a)
		}
		if _, a, e := row(t, d, flaky); a != 3 || e != "transient 2" {
			t.Errorf("flaky: attempts %d last_error %q, want 3 and the last transient error", a, e)
		}
		if _, a, e := row(t, d, hopeless); a != 2 || e != "store unreachable" {
			t.Errorf("hopeless: attempts %d last_error %q", a, e)
		}
		if g, _ := gaveUp.Load().(string); g != hopeless+": store unreachable" {
			t.Errorf("GiveUp saw %q", g)
		}
		if _, a, e := row(t, d, broken); a != 1 || e != "bad image" {
			t.Errorf("broken: attempts %d last_error %q (a permanent error is not retried)", a, e)
		}
		infos, err := List(ctx, d, "s-flaky", 10)
		if err != nil || len(infos) != 1 || infos[0].State != Done || infos[0].Attempts != 3 || infos[0].FinishedAt.IsZero() {
			t.Fatalf("List = %+v, %v", infos, err)
		}
	})
}

// A task whose earlier claims all died with their nodes is given up at the
// next claim instead of being run again (work that kills its process must
// not be retried forever).
func TestClaimAfterCrashes(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var ran, gave atomic.Int32
		var cause atomic.Value
		k := Kind{Name: "crashy", MaxAttempts: 2,
			Run: func(ctx context.Context, tk *Task) error { ran.Add(1); return nil },
			GiveUp: func(ctx context.Context, tk *Task, c error) error {
				gave.Add(1)
				cause.Store(c.Error())
				return nil
			}}
		resumed := addDead(t, d, Spec{Kind: "crashy"}, 1, "")
		spent := addDead(t, d, Spec{Kind: "crashy"}, 2, "node died")
		start(t, d, Options{}, k)
		waitState(t, d, resumed, Done, 5*time.Second)
		waitState(t, d, spent, Failed, 5*time.Second)
		if ran.Load() != 1 || gave.Load() != 1 || cause.Load() != "node died" {
			t.Fatalf("ran %d gave up %d cause %v", ran.Load(), gave.Load(), cause.Load())
		}
	})
}

// A task begun by a request on a node that then dies (stops renewing) is
// claimed by another node once the lease has run out, within two lease
// periods, and its Run (the recovery) sees the second attempt.
func TestBegunTaskRecoveredByAnotherNode(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		recovered := make(chan int, 1)
		kind := func() Kind {
			return Kind{Name: "upload", Run: func(ctx context.Context, tk *Task) error {
				recovered <- tk.Attempt
				return nil
			}}
		}
		a, stopA := start(t, d, Options{}, kind())
		tk, err := a.Begin(context.Background(), d, Spec{Kind: "upload", Subject: "img"})
		if err != nil {
			t.Fatal(err)
		}
		// While A lives, a second node leaves the task alone.
		start(t, d, Options{}, kind())
		select {
		case <-recovered:
			t.Fatal("a live node's begun task was claimed by another node")
		case <-time.After(3 * testLease):
		}
		// A dies: it stops renewing without handing anything back.
		stopA()
		died := time.Now()
		select {
		case attempt := <-recovered:
			if attempt != 2 {
				t.Errorf("recovery attempt %d, want 2", attempt)
			}
			if took := time.Since(died); took > 2*testLease+time.Second {
				t.Errorf("recovered after %v, want within two lease periods", took)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the dead node's task was never recovered")
		}
		waitState(t, d, tk.ID, Done, 5*time.Second)
		// The dead node's late Complete is refused: the task is finished.
		if err := tk.Complete(context.Background(), d); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("late Complete: %v, want ErrLeaseLost", err)
		}
	})
}

// A begun task that its request finishes is done and never recovered.
func TestBegunTaskCompleted(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		var recovered atomic.Int32
		r, _ := start(t, d, Options{}, Kind{Name: "upload", Run: func(ctx context.Context, tk *Task) error {
			recovered.Add(1)
			return nil
		}})
		ctx := context.Background()
		var tk *Task
		err := d.InTx(ctx, func(tx *db.Tx) error {
			var err error
			tk, err = r.Begin(ctx, tx, Spec{Kind: "upload", Subject: "img"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * testLease) // renewed meanwhile: still ours
		if err := tk.Context().Err(); err != nil {
			t.Fatalf("live task cancelled: %v", context.Cause(tk.Context()))
		}
		if err := d.InTx(ctx, func(tx *db.Tx) error { return tk.Complete(ctx, tx) }); err != nil {
			t.Fatal(err)
		}
		tk.Release()
		time.Sleep(2 * testLease)
		if s, _, _ := row(t, d, tk.ID); s != Done || recovered.Load() != 0 {
			t.Fatalf("state %s, recovered %d times", s, recovered.Load())
		}
		if _, err := r.Begin(ctx, d, Spec{Kind: "unregistered"}); err == nil {
			t.Fatal("Begin of a kind nobody can recover was accepted")
		}
	})
}

// A begun task handed off runs once, as attempt 1, on whichever node
// claims it; a late Complete by the node that began it is refused.
func TestBegunTaskHandedOff(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ran := make(chan int, 2)
		kind := Kind{Name: "upload", Run: func(ctx context.Context, tk *Task) error {
			ran <- tk.Attempt
			return nil
		}}
		r, _ := start(t, d, Options{}, kind)
		ctx := context.Background()
		tk, err := r.Begin(ctx, d, Spec{Kind: "upload", Subject: "vol"})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ran:
			t.Fatal("a begun task ran before its handoff")
		case <-time.After(3 * testLease):
		}
		if err := d.InTx(ctx, func(tx *db.Tx) error { return tk.Handoff(ctx, tx) }); err != nil {
			t.Fatal(err)
		}
		tk.Release()
		r.Wake()
		select {
		case attempt := <-ran:
			if attempt != 1 {
				t.Errorf("handed-off task ran as attempt %d, want 1", attempt)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the handed-off task never ran")
		}
		waitState(t, d, tk.ID, Done, 5*time.Second)
		select {
		case a := <-ran:
			t.Fatalf("the task ran a second time (attempt %d)", a)
		case <-time.After(2 * testLease):
		}
		if err := tk.Handoff(ctx, d); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("second Handoff: %v, want ErrLeaseLost", err)
		}
	})
}

// Stopping a runner hands its running tasks back without counting the
// attempt, and the next node runs them.
func TestStopHandsBack(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		started := make(chan struct{}, 1)
		blocking := Kind{Name: "long", Run: func(ctx context.Context, tk *Task) error {
			started <- struct{}{}
			<-ctx.Done()
			return context.Cause(ctx)
		}}
		a, stopA := start(t, d, Options{}, blocking)
		id, err := a.Add(context.Background(), d, Spec{Kind: "long"})
		if err != nil {
			t.Fatal(err)
		}
		<-started
		stopA()
		if s, att, e := row(t, d, id); s != Pending || att != 0 || e != ErrStopping.Error() {
			t.Fatalf("after stop: state %s attempts %d last_error %q", s, att, e)
		}
		start(t, d, Options{}, Kind{Name: "long", Run: func(ctx context.Context, tk *Task) error { return nil }})
		waitState(t, d, id, Done, 5*time.Second)
	})
}

// On an exclusive database the leases found at start are a dead
// predecessor's and are taken over at once; otherwise they are waited out.
func TestExclusiveTakesOverAtStart(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		long := time.Hour
		id, _, err := insert(ctx, d, Spec{Kind: "k"}, Running, "old-process", time.Now().Add(long))
		if err != nil {
			t.Fatal(err)
		}
		done := Kind{Name: "k", Run: func(ctx context.Context, tk *Task) error { return nil }}
		_, stop := start(t, d, Options{}, done)
		time.Sleep(3 * testLease)
		if s, _, _ := row(t, d, id); s != Running {
			t.Fatalf("a live lease was taken over: %s", s)
		}
		stop()
		start(t, d, Options{Exclusive: true}, done)
		waitState(t, d, id, Done, 5*time.Second)
	})
}

// An exclusive runner takes over its predecessors' leases at start, but
// not a task its own node's request began before the runner started.
func TestExclusiveSparesOwnBegunTasks(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		r := New(d, Options{Exclusive: true, Lease: testLease, Poll: 30 * time.Millisecond})
		r.Register(Kind{Name: "upload", Run: func(ctx context.Context, tk *Task) error {
			t.Error("a live begun task was recovered at start")
			return nil
		}})
		early, err := r.Begin(ctx, d, Spec{Kind: "upload"})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		rdone := make(chan struct{})
		go func() { defer close(rdone); _ = r.Run(rctx) }()
		time.Sleep(3 * testLease)
		if err := early.Complete(ctx, d); err != nil {
			t.Fatalf("the begun task was taken from its node: %v", err)
		}
		early.Release()
		cancel()
		<-rdone
	})
}

// Fencing: a node whose lease ran out (paused, cut off) while another node
// claimed the task can no longer finish it, and learns it lost the lease;
// the node that holds the task now finishes it.
func TestFencing(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		type claimed struct {
			tk     *Task
			finish chan struct{}
			result chan error
		}
		claims := make(chan claimed, 2)
		kind := Kind{Name: "f", Run: func(ctx context.Context, tk *Task) error {
			c := claimed{tk, make(chan struct{}), make(chan error, 1)}
			claims <- c
			// Work on past a lost lease (a paused node does not notice
			// at once); stop only with the runner (a failed test).
			for done := ctx.Done(); ; {
				select {
				case <-c.finish:
				case <-done:
					if errors.Is(context.Cause(ctx), ErrStopping) {
						return ctx.Err()
					}
					done = nil
					continue
				}
				break
			}
			// Past the cancellation: only the epoch fences this write.
			bg := context.WithoutCancel(ctx)
			err := d.InTx(bg, func(tx *db.Tx) error { return tk.Complete(bg, tx) })
			c.result <- err
			return err
		}}
		a, _ := start(t, d, Options{Node: "A"}, kind)
		id, err := a.Add(ctx, d, Spec{Kind: "f"})
		if err != nil {
			t.Fatal(err)
		}
		first := <-claims
		// A's renewals stop reaching the database: its lease runs out and
		// node B claims the task.
		stopRenewing(t, d, id)
		start(t, d, Options{Node: "B"}, kind)
		second := <-claims
		// A learns it lost the lease while it still works: its context
		// ends, so its writes stop.
		apitest.Eventually(t, 5*time.Second, func() bool { return errors.Is(context.Cause(first.tk.Context()), ErrLeaseLost) },
			func() string { return fmt.Sprintf("A's task context: %v", context.Cause(first.tk.Context())) })
		// A tries to finish anyway, before B: refused.
		close(first.finish)
		if err := <-first.result; !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("the node that lost the lease finished the task: %v", err)
		}
		if s, _, _ := row(t, d, id); s != Running {
			t.Fatalf("state %s after the stale node's attempt, want running (B still works)", s)
		}
		close(second.finish)
		if err := <-second.result; err != nil {
			t.Fatalf("the lease holder could not finish: %v", err)
		}
		waitState(t, d, id, Done, 5*time.Second)
	})
}

// stopRenewing makes a task's lease run out as if its node's renewals were
// lost, by moving lease_until into the past (and keeping it there for the
// next few renewals of the stalled node).
func stopRenewing(t *testing.T, d *db.DB, id string) {
	t.Helper()
	if _, err := d.ExecContext(context.Background(), `UPDATE tasks SET lease_owner = 'partitioned', lease_until = ? WHERE id = ?`,
		ts(time.Now().Add(-time.Second)), id); err != nil {
		t.Fatal(err)
	}
}

// Under churn (leases lost at random, three nodes, work of random length)
// every task is finished exactly once.
func TestNoTaskFinishedTwice(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var mu sync.Mutex
		completed := map[string]int{}
		kind := Kind{Name: "churn", MaxAttempts: 1000, Run: func(ctx context.Context, tk *Task) error {
			time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
			bg := context.WithoutCancel(ctx)
			err := d.InTx(bg, func(tx *db.Tx) error { return tk.Complete(bg, tx) })
			if err == nil {
				mu.Lock()
				completed[tk.ID]++
				mu.Unlock()
			}
			return err
		}}
		var runners []*Runner
		var stops []func()
		for i := range 3 {
			r, stop := start(t, d, Options{Node: fmt.Sprint("node", i), Workers: 4}, kind)
			runners, stops = append(runners, r), append(stops, stop)
		}
		const n = 40
		var ids []string
		for range n {
			id, err := runners[0].Add(ctx, d, Spec{Kind: "churn"})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for _, r := range runners {
			r.Wake()
		}
		// Knock leases out from under their holders while the work runs.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				_, _ = d.ExecContext(ctx, `UPDATE tasks SET lease_until = ? WHERE id = ? AND state = 'running'`,
					ts(time.Now().Add(-time.Second)), ids[rand.IntN(n)])
			}
		})
		apitest.Eventually(t, 60*time.Second, func() bool {
			// A count that fails (SQLite busy under the churn) is not a
			// zero: reading it as one ended the wait early.
			left := -1
			_ = d.QueryRowContext(ctx, `SELECT COUNT(*) FROM tasks WHERE state <> 'done'`).Scan(&left)
			return left == 0
		}, func() string { return "tasks still not done" })
		close(stop)
		wg.Wait()
		// A Run counts its Complete just after the commit the wait above
		// saw: let every Run return before counting.
		for _, stop := range stops {
			stop()
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if completed[id] != 1 {
				t.Errorf("task %s completed %d times", id, completed[id])
			}
		}
	})
}

// A restarted runner (same node) does not renew a lease its earlier run
// left on a task nothing runs (a claim whose answer was lost as the run
// stopped): the lease runs out and the task is claimed and run again.
// The snapshot recovery test stayed stuck a minute on such a lease.
func TestRestartLetsOrphanLeaseLapse(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ran := make(chan string, 4)
		r, stop := start(t, d, Options{Node: "node-a"}, Kind{Name: "k", Run: func(ctx context.Context, tk *Task) error {
			ran <- tk.ID
			return nil
		}})
		stop()
		// The earlier run claimed this one and lost the answer.
		id := addDead(t, d, Spec{Kind: "k"}, 1, "")
		if _, err := d.ExecContext(context.Background(), `UPDATE tasks SET lease_owner = ?, lease_until = ? WHERE id = ?`,
			r.Node(), ts(time.Now().Add(testLease)), id); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = r.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case got := <-ran:
			if got != id {
				t.Fatalf("ran %s, want %s", got, id)
			}
		case <-time.After(10 * testLease):
			t.Fatal("the restarted runner kept renewing an orphaned lease: the task never ran")
		}
		waitState(t, d, id, Done, 5*time.Second)
	})
}

// A task this node claims while a renewal round is reading the table is
// not in that round's result; it is not lost for that (found by the
// cluster chaos run: a live node gave up tasks it had just claimed).
func TestClaimDuringRenewal(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		r := New(d, Options{Lease: time.Minute})
		r.runCtx = ctx
		id, err := r.Add(ctx, d, Spec{Kind: "k"})
		if err != nil {
			t.Fatal(err)
		}
		// A renewal round starts and reads the leases...
		r.mu.Lock()
		r.round++
		round := r.round
		r.mu.Unlock()
		until := time.Now().Add(time.Minute)
		got, err := renew(ctx, d, r.Node(), nil, until)
		if err != nil {
			t.Fatal(err)
		}
		// ...while the node claims a task.
		cands, err := due(ctx, d, []string{"k"}, "", 1)
		if err != nil || len(cands) != 1 || cands[0].id != id {
			t.Fatalf("due: %+v, %v", cands, err)
		}
		tk, err := claim(ctx, d, cands[0], r.Node(), until)
		if err != nil || tk == nil {
			t.Fatalf("claim: %v, %v", tk, err)
		}
		r.hold(tk, until)
		r.judge(round, got, nil, until)
		if err := context.Cause(tk.Context()); err != nil {
			t.Fatalf("a task claimed during a renewal was given up: %v", err)
		}
		// The next round sees it.
		r.renewOnce(ctx)
		if err := context.Cause(tk.Context()); err != nil {
			t.Fatalf("after the next renewal: %v", err)
		}
		if err := tk.Complete(ctx, d); err != nil {
			t.Fatal(err)
		}
	})
}

// Progress counted on the data path is saved every ProgressInterval and
// found by project; a task whose bytes stop moving reads as stalled.
func TestProgress(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		r, _ := start(t, d, Options{ProgressInterval: 50 * time.Millisecond}, Kind{Name: "upload",
			Run: func(ctx context.Context, tk *Task) error { return nil }})
		tk, err := r.Begin(ctx, d, Spec{Kind: "upload", Subject: "img", ProjectID: "p1"})
		if err != nil {
			t.Fatal(err)
		}
		defer tk.Release()
		tk.SetTotal(1000)
		n, err := io.Copy(io.Discard, tk.Reader(strings.NewReader(strings.Repeat("x", 400))))
		if err != nil || n != 400 {
			t.Fatal(n, err)
		}
		var info Info
		apitest.Eventually(t, 5*time.Second, func() bool {
			infos, err := Find(ctx, d, Filter{ProjectID: "p1", Active: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) == 1 {
				info = infos[0]
			}
			return info.BytesDone == 400 && info.BytesTotal == 1000
		}, func() string { return fmt.Sprintf("progress saved: %+v", info) })
		if info.Kind != "upload" || info.State != Running || info.StartedAt.IsZero() || info.MovedAt.Before(info.StartedAt) {
			t.Fatalf("info %+v", info)
		}
		now := info.MovedAt.Add(2 * time.Second)
		if rate := info.Rate(now); rate <= 0 || rate > 400 {
			t.Errorf("rate %v over at least 2 s of 400 bytes", rate)
		}
		if info.Stalled(now, 3*time.Second) || !info.Stalled(now, time.Second) {
			t.Errorf("stalled: no bytes for 2 s is stalled after 1 s, not after 3 s")
		}
		if others, _ := Find(ctx, d, Filter{ProjectID: "p2"}); len(others) != 0 {
			t.Errorf("another project's tasks: %+v", others)
		}
	})
}

// A task's final counters land with its end, whatever the periodic save
// last saw; the store a task writes to is recorded and can change while it
// runs; a run task's context carries it; Held shows this node's tasks
// until they end.
func TestFinalProgressAndStore(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var ran atomic.Bool
		// An hour between saves: only the finish records the counters.
		r, _ := start(t, d, Options{ProgressInterval: time.Hour}, Kind{Name: "copy",
			Run: func(ctx context.Context, tk *Task) error {
				if FromContext(ctx) != tk {
					return errors.New("context does not carry the task")
				}
				tk.SetTotal(10)
				tk.SetStore("late")
				_, err := io.Copy(io.Discard, FromContext(ctx).Reader(strings.NewReader("0123456789")))
				ran.Store(true)
				return err
			}}, Kind{Name: "upload", Run: func(context.Context, *Task) error { return nil }})

		tk, err := r.Begin(ctx, d, Spec{Kind: "upload", Subject: "img", Store: "fast"})
		if err != nil {
			t.Fatal(err)
		}
		tk.SetTotal(6)
		tk.Add(6)
		held := r.Held()
		if len(held) != 1 || held[0].ID != tk.ID || held[0].Store != "fast" || held[0].Done != 6 || held[0].Started.IsZero() {
			t.Fatalf("held = %+v", held)
		}
		if err := tk.Fail(ctx, d, errors.New("store full")); err != nil {
			t.Fatal(err)
		}
		tk.Release()
		if held := r.Held(); len(held) != 0 {
			t.Errorf("held after release = %+v", held)
		}
		infos, err := Find(ctx, d, Filter{Store: "fast"})
		if err != nil || len(infos) != 1 {
			t.Fatal(infos, err)
		}
		if i := infos[0]; i.State != Failed || i.BytesDone != 6 || i.BytesTotal != 6 || i.LastError != "store full" {
			t.Errorf("failed task = %+v", i)
		}

		id, err := r.Add(ctx, d, Spec{Kind: "copy", Subject: "vol", Store: "early"})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, d, id, Done, 5*time.Second)
		if !ran.Load() {
			t.Fatal("copy did not run")
		}
		infos, err = Find(ctx, d, Filter{Subject: "vol"})
		if err != nil || len(infos) != 1 {
			t.Fatal(infos, err)
		}
		if i := infos[0]; i.BytesDone != 10 || i.BytesTotal != 10 || i.Store != "late" {
			t.Errorf("done task = %+v", i)
		}
	})
}
