package image

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// stageHost reads an image's hidden os_glance_stage_host.
func stageHost(t *testing.T, d *db.DB, id string) string {
	t.Helper()
	var host string
	err := d.QueryRowContext(context.Background(), `SELECT value FROM image_properties WHERE image_id = ? AND name = ?`,
		id, propStageHost).Scan(&host)
	if err != nil && !db.IsNoRows(err) {
		t.Fatal(err)
	}
	return host
}

// twoNodes starts node A and, on the same database and stores, node B
// (staging shared or each its own); PostgreSQL only.
func twoNodes(t *testing.T, d *db.DB, shared bool) (a, b *env) {
	t.Helper()
	if !d.Postgres() {
		t.Skip("several nodes share PostgreSQL only")
	}
	a = newEnv(t, d, "")
	return a, a.peer("http://node-b", shared)
}

// TestNodeLocalStaging: data staged through node A, in A's own staging
// directory, is imported through node B by A; an import asked for while A
// is down is refused, one whose A dies before it runs fails with the
// reason, and what A's staging keeps that no image needs is swept.
func TestNodeLocalStaging(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		a, b := twoNodes(t, d, false)
		data := bytes.Repeat([]byte("local"), 20000)
		stageOnA := func() string {
			t.Helper()
			id := a.create("alice", rawImage)
			a.Must(204, a.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			if h := stageHost(t, d, id); h != "http://node-a" {
				t.Fatalf("stage host %q, want node A's address", h)
			}
			if _, shown := a.image(id)[propStageHost]; shown {
				t.Fatal("the stage host is shown")
			}
			return id
		}

		t.Run("imported through the other node", func(t *testing.T) {
			id := stageOnA()
			b.Must(202, b.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"},"stores":["fast","cheap"]}`))
			im := b.waitImage(id, importDone)
			if im["status"] != "active" || im["stores"] != "cheap,fast" || im["os_glance_failed_import"] != "" {
				t.Fatalf("imported: %v", im)
			}
			if objs := a.objects("os_glance_staging_store"); slices.Contains(objs, id) {
				t.Errorf("A's staging keeps the imported data: %v", objs)
			}
			if h := stageHost(t, d, id); h != "" {
				t.Errorf("stage host %q kept after the import", h)
			}
		})

		t.Run("stage host down", func(t *testing.T) {
			id := stageOnA()
			a.stop() // a clean stop: A's node is recorded as stopped
			r := b.Must(503, b.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"}}`))
			if !strings.Contains(string(r.Body), "Stage host is unavailable") || !strings.Contains(string(r.Body), "http://node-a") {
				t.Errorf("refusal: %s", r.Body)
			}
			if im := b.image(id); im["status"] != "uploading" || im["os_glance_import_task"] != nil {
				t.Errorf("after the refusal: %v", im)
			}
			// A comes back (same address, new process) and imports it.
			a.start()
			apitest.Eventually(t, 5*time.Second, func() bool {
				alive, _ := tasks.HostAlive(t.Context(), d, "http://node-a")
				return alive
			}, nil)
			b.Must(202, b.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"}}`))
			if im := b.waitImage(id, importDone); im["status"] != "active" {
				t.Errorf("imported after A came back: %v", im)
			}
		})

		t.Run("stage host dies before the import runs", func(t *testing.T) {
			id := stageOnA()
			a.stop()
			// A was killed: its row still says it is alive for a moment,
			// so the import is accepted, for A to run.
			if _, err := d.ExecContext(t.Context(), `UPDATE nodes SET stopped_at = NULL, alive_until = ? WHERE address = ?`,
				db.Timestamp{Time: time.Now().Add(time.Second)}, "http://node-a"); err != nil {
				t.Fatal(err)
			}
			b.Must(202, b.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"},"stores":["fast","cheap"]}`))
			im := b.waitImage(id, importDone)
			if im["status"] != "queued" || im["size"] != nil || im["os_glance_failed_import"] != "fast,cheap" {
				t.Errorf("after the stage host died: %v", im)
			}
			tasks := b.Must(200, b.Do("alice", "GET", "/v2/images/"+id+"/tasks", nil)).JSON(t)["tasks"].([]any)
			msg, _ := tasks[0].(map[string]any)["message"].(string)
			if len(tasks) != 1 || tasks[0].(map[string]any)["status"] != "failure" || !strings.Contains(msg, "http://node-a") {
				t.Errorf("tasks: %v", tasks)
			}
			if h := stageHost(t, d, id); h != "" {
				t.Errorf("stage host %q kept on a queued image", h)
			}
			// Staged again, through B this time, it imports.
			b.Must(204, b.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			b.Must(202, b.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"}}`))
			if im := b.waitImage(id, importDone); im["status"] != "active" {
				t.Errorf("staged again: %v", im)
			}
			// A comes back and sweeps the data nobody needs any more.
			a.start()
			if err := a.svc.sweepStaging(t.Context()); err != nil {
				t.Fatal(err)
			}
			if objs := a.objects("os_glance_staging_store"); len(objs) != 0 {
				t.Errorf("A's staging after its sweep: %v", objs)
			}
		})
	})
}

// TestSharedStaging: with a staging directory both nodes see, data staged
// through one node is imported by whichever node claims the import.
func TestSharedStaging(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		a, b := twoNodes(t, d, true)
		a.stop() // B alone runs tasks: the data must be readable there
		data := bytes.Repeat([]byte("shared"), 20000)
		id := a.create("alice", rawImage)
		a.Must(204, a.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
		if h := stageHost(t, d, id); h != "" {
			t.Errorf("a shared stage records host %q", h)
		}
		b.Must(202, b.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"}}`))
		if im := b.waitImage(id, importDone); im["status"] != "active" || im["size"] != float64(len(data)) {
			t.Errorf("imported: %v", im)
		}
	})
}

// TestStagingSweep: a node's sweep deletes the staged data whose image is
// gone or no longer staged, and keeps what an image still needs.
func TestStagingSweep(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		data := bytes.Repeat([]byte("sweep"), 1000)
		stage := func() string {
			id := e.create("alice", rawImage)
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			return id
		}
		kept, requeued, deleted := stage(), stage(), stage()
		// Another node rolled requeued back, and deleted the last, without
		// reaching this node's staging directory.
		if _, err := d.ExecContext(t.Context(), `UPDATE images SET status = 'queued', size = NULL WHERE id = ?`, requeued); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(t.Context(), `DELETE FROM images WHERE id = ?`, deleted); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.sweepStaging(t.Context()); err != nil {
			t.Fatal(err)
		}
		if objs := e.objects("os_glance_staging_store"); !slices.Equal(objs, []string{kept}) {
			t.Errorf("staging after the sweep: %v, want only %s", objs, kept)
		}
		e.Must(202, e.Do("alice", "POST", "/v2/images/"+kept+"/import", `{"method":{"name":"glance-direct"}}`))
		if im := e.waitImage(kept, importDone); im["status"] != "active" {
			t.Errorf("the kept image's import: %v", im)
		}
	})
}
