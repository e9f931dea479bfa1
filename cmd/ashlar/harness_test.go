package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// stateDB returns a fresh state path and its migrated SQLite database
// (closed when the test ends), which the commands run with --state-path
// dir read.
func stateDB(t *testing.T) (dir string, d *db.DB) {
	t.Helper()
	dir = t.TempDir()
	ctx := context.Background()
	d, err := db.Open(ctx, "sqlite:///"+filepath.Join(dir, "ashlar.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return dir, d
}

// runOK runs the command args and returns its output; any exit code but 0
// fails the test.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("%v: exit %d %s", args, code, errOut.String())
	}
	return out.String()
}

// runJSON runs the command args (which ask for --json) and decodes its
// output into v.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := runOK(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: %v: %s", args, err, out)
	}
}

// heldUpload is a task runner on d (made with opts) that knows
// image.upload and holds one, spec, begun with 30 MiB of 100 MiB done
// (released when the test ends): what the status and transfers commands
// show as running. The runner does not run yet (runSaved).
func heldUpload(t *testing.T, d *db.DB, opts task.Options, spec task.Spec) *task.Runner {
	t.Helper()
	r := task.New(d, opts)
	r.Register(task.Kind{Name: "image.upload", Run: func(context.Context, *task.Task) error { return nil }})
	held, err := r.Begin(context.Background(), d, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(held.Release)
	held.SetTotal(100 << 20)
	held.Add(30 << 20)
	return r
}

// runSaved runs r until the test ends and waits until its node is
// registered and the progress of heldUpload's task on subject is saved.
func runSaved(t *testing.T, r *task.Runner, d *db.DB, subject string) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go r.Run(ctx)
	apitest.Eventually(t, 5*time.Second, func() bool {
		nodes, _ := task.Nodes(ctx, d)
		infos, _ := task.List(ctx, d, subject, 1)
		return len(nodes) == 1 && len(infos) == 1 && infos[0].BytesDone == 30<<20
	}, nil)
}
