package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// TestTransfersAndStores: `ashlar transfers` lists running and failed
// operations with their progress and reasons; `ashlar stores` counts what
// each store holds, checks it now and flags the volume types whose store
// is unhealthy.
func TestTransfersAndStores(t *testing.T) {
	dir, d := stateDB(t)
	ctx := context.Background()
	r := heldUpload(t, d, task.Options{Lease: time.Minute, ProgressInterval: 50 * time.Millisecond},
		task.Spec{Kind: "image.upload", Subject: "img-1", Store: "fast"})
	failed, err := r.Begin(ctx, d, task.Spec{Kind: "image.upload", Subject: "img-2", Store: "cheap"})
	if err != nil {
		t.Fatal(err)
	}
	failed.Add(1 << 20)
	if err := failed.Fail(ctx, d, errors.New("Image storage media is full")); err != nil {
		t.Fatal(err)
	}
	failed.Release()
	runSaved(t, r, d, "img-1")

	var rep struct{ Transfers []transferJSON }
	runJSON(t, &rep, "transfers", "--state-path", dir, "--json")
	bySubject := map[string]transferJSON{}
	for _, tr := range rep.Transfers {
		bySubject[tr.Subject] = tr
	}
	if tr := bySubject["img-1"]; tr.State != task.Running || tr.Percent != 30 || tr.Store != "fast" || tr.Stalled {
		t.Errorf("running: %+v", tr)
	}
	if tr := bySubject["img-2"]; tr.State != task.Failed || tr.Error != "Image storage media is full" || tr.BytesDone != 1<<20 {
		t.Errorf("failed: %+v", tr)
	}
	if s := runOK(t, "transfers", "--state-path", dir); !strings.Contains(s, "30.0 MiB / 100.0 MiB 30%") || !strings.Contains(s, "media is full") {
		t.Errorf("transfers table:\n%s", s)
	}

	// The default stores of the state path; cheap's directory goes away.
	if out := runOK(t, "stores", "--state-path", dir); !strings.Contains(out, "no store drift") {
		t.Errorf("stores before:\n%s", out)
	}
	if _, err := d.ExecContext(ctx, `INSERT INTO volume_types (id, name, description, is_public, created_at, updated_at)
VALUES ('t1', 'on-cheap', '', TRUE, ?, ?)`, db.Timestamp{Time: time.Now()}, db.Timestamp{Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, `INSERT INTO volume_type_extra_specs (type_id, key, value) VALUES ('t1', 'image_service:store_id', 'cheap')`); err != nil {
		t.Fatal(err)
	}
	// cheap's directory becomes a file: the store cannot even be opened
	cheap := filepath.Join(dir, "images", "cheap")
	if err := os.RemoveAll(cheap); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cheap, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Stores []storeJSON
		Drift  []driftJSON
	}
	runJSON(t, &st, "stores", "--state-path", dir, "--json")
	if len(st.Drift) != 1 || st.Drift[0] != (driftJSON{"on-cheap", "cheap", "store unhealthy"}) {
		t.Errorf("drift: %+v", st.Drift)
	}
	for _, s := range st.Stores {
		if s.ID == "fast" && (s.Health != "healthy" || s.FreeBytes == nil || !s.Default) {
			t.Errorf("fast: %+v", s)
		}
	}
}
