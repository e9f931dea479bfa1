package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// TestStatus: `ashlar status` lists the nodes of the database with their
// state, and the unfinished tasks with the node holding each.
func TestStatus(t *testing.T) {
	dir, d := stateDB(t)
	ctx := context.Background()
	// One node running with a task it holds (begun), one queued task, and
	// a node that died without a word (its row's heartbeat is old).
	r := heldUpload(t, d, task.Options{Address: "http://node-a:9292", Version: "9.9", Services: []string{"image"},
		Lease: time.Minute}, task.Spec{Kind: "image.upload", Subject: "img-1"})
	if _, err := r.Add(ctx, d, task.Spec{Kind: "volume.create", Subject: "vol-1", Host: "http://node-b:9292"}); err != nil {
		t.Fatal(err)
	}
	runSaved(t, r, d, "img-1")
	old := db.Timestamp{Time: time.Now().Add(-time.Hour)}
	if _, err := d.ExecContext(ctx, `INSERT INTO nodes (id, address, started_at, heartbeat_at, alive_until)
VALUES ('dead-node', 'http://node-b:9292', ?, ?, ?)`, old, old, old); err != nil {
		t.Fatal(err)
	}

	var rep statusReport
	runJSON(t, &rep, "status", "--state-path", dir, "--json")
	states := map[string]task.NodeState{}
	for _, n := range rep.Nodes {
		states[n.ID] = n.State
	}
	if len(rep.Nodes) != 2 || states[r.Node()] != task.NodeUp || states["dead-node"] != task.NodeStale || rep.Stale != 1 {
		t.Errorf("nodes %+v stale %d", rep.Nodes, rep.Stale)
	}
	byKind := map[string]statusTask{}
	for _, tk := range rep.Tasks {
		byKind[tk.Kind] = tk
	}
	if up := byKind["image.upload"]; up.State != task.Running || up.Node != r.Node() || up.Subject != "img-1" ||
		up.BytesDone != 30<<20 || up.BytesTotal != 100<<20 {
		t.Errorf("held task: %+v", up)
	}
	if vc := byKind["volume.create"]; vc.State != task.Pending || vc.Node != "" || vc.Host != "http://node-b:9292" {
		t.Errorf("queued task: %+v", vc)
	}

	out := runOK(t, "status", "--state-path", dir)
	for _, want := range []string{r.Node() + "  up", "dead-node", "stale", "2 nodes, 1 stale", "img-1", "(host http://node-b:9292)",
		"30 MiB of 100 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}
