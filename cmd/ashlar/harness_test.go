package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/db"
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
