package task

import (
	"context"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// nodeState is the state of node id as Nodes reports it now.
func nodeState(t *testing.T, d *db.DB, id string) (Node, NodeState) {
	t.Helper()
	nodes, err := Nodes(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == id {
			return n, n.State(time.Now())
		}
	}
	return Node{}, ""
}

// A runner registers its node, heartbeats it past its first lease, and
// records a clean stop; a node that stops heartbeating without one is
// stale once its lease has run out.
func TestNodeRegistry(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		r, stop := start(t, d, Options{Address: "http://a:9292", Version: "v1", Services: []string{"image", "volume"}})
		apitest.Eventually(t, 5*time.Second, func() bool { _, s := nodeState(t, d, r.Node()); return s == NodeUp }, nil)
		time.Sleep(2 * testLease) // past the lease it registered with: heartbeats keep it up
		n, s := nodeState(t, d, r.Node())
		if s != NodeUp || n.Address != "http://a:9292" || n.Version != "v1" || len(n.Services) != 2 || n.PID == 0 ||
			!n.HeartbeatAt.After(n.StartedAt) {
			t.Fatalf("running node: %s %+v", s, n)
		}
		if alive, err := HostAlive(context.Background(), d, "http://a:9292"); err != nil || !alive {
			t.Fatalf("HostAlive of a running node: %v, %v", alive, err)
		}
		stop()
		if _, s := nodeState(t, d, r.Node()); s != NodeStopped {
			t.Fatalf("after a clean stop: %s", s)
		}
		if alive, _ := HostAlive(context.Background(), d, "http://a:9292"); alive {
			t.Fatal("a stopped node's host is alive")
		}

		// A node killed mid-way: its heartbeat ages past its lease.
		killed := New(d, Options{Lease: testLease})
		if err := killed.register(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, s := nodeState(t, d, killed.Node()); s != NodeUp {
			t.Fatalf("registered node: %s", s)
		}
		apitest.Eventually(t, 5*time.Second, func() bool { _, s := nodeState(t, d, killed.Node()); return s == NodeStale }, nil)

		// Records of nodes gone longer than the retention are pruned.
		if err := prune(context.Background(), d, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if nodes, _ := Nodes(context.Background(), d); len(nodes) != 0 {
			t.Fatalf("after pruning: %+v", nodes)
		}
	})
}

// A task naming a host runs only on a node advertising it while one is
// alive; once none is, another node claims it, stranded.
func TestHostAffinity(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		type run struct {
			node     string
			stranded bool
		}
		ran := make(chan run, 10)
		kind := func() Kind {
			return Kind{Name: "staged", Run: func(ctx context.Context, tk *Task) error {
				ran <- run{tk.r.Node(), tk.Stranded()}
				return nil
			}}
		}
		a, stopA := start(t, d, Options{Address: "http://a"}, kind())
		b, _ := start(t, d, Options{Address: "http://b"}, kind())
		ctx := context.Background()
		apitest.Eventually(t, 5*time.Second, func() bool { alive, _ := HostAlive(ctx, d, "http://a"); return alive }, nil)
		for range 4 {
			if _, err := b.Add(ctx, d, Spec{Kind: "staged", Host: "http://a"}); err != nil {
				t.Fatal(err)
			}
		}
		for range 4 {
			select {
			case got := <-ran:
				if got.node != a.Node() || got.stranded {
					t.Fatalf("a task of host a ran on %s (a is %s), stranded %v", got.node, a.Node(), got.stranded)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the host's task never ran")
			}
		}
		stopA()
		for _, host := range []string{"http://a", "http://never-started"} {
			if _, err := b.Add(ctx, d, Spec{Kind: "staged", Host: host}); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-ran:
				if got.node != b.Node() || !got.stranded {
					t.Fatalf("task of gone host %s: ran on %s, stranded %v", host, got.node, got.stranded)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the task of gone host %s was never claimed", host)
			}
		}
		// Unpinned work runs anywhere and is never stranded.
		if _, err := b.Add(ctx, d, Spec{Kind: "staged"}); err != nil {
			t.Fatal(err)
		}
		if got := <-ran; got.stranded {
			t.Fatal("an unpinned task is stranded")
		}
		infos, err := List(ctx, d, "", 10)
		if err != nil || len(infos) != 7 || infos[6].Host != "http://a" || infos[0].Host != "" { // newest first
			t.Fatalf("List: %+v, %v", infos, err)
		}
	})
}
