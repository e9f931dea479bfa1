package volume

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// A volume's running work shows in the Ashlar-Progress header of its GET
// and in GET .../volumes/{id}/progress, and the volume's JSON stays
// Cinder's (strict clients refuse keys they do not know).
func TestVolumeProgress(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		v := e.createVolume("member", projA, map[string]any{}, "available")
		id := v["id"].(string)
		path := "/v3/" + projA + "/volumes/" + id

		r := e.MustJSON(200, e.Do("member", "GET", path+"/progress", nil))
		if p, ok := r["progress"]; !ok || p != nil {
			t.Fatalf("idle volume progress = %v", r)
		}
		if h := e.Do("member", "GET", path, nil).Header.Get(ProgressHeader); h != "" {
			t.Errorf("idle volume header %q", h)
		}

		// Work on the volume moving bytes (as an upload to image does).
		ctx := context.Background()
		tk, err := e.svc.tasks.Begin(ctx, d, task.Spec{Kind: workUpload, Subject: id, ProjectID: projA, Store: "fast"})
		if err != nil {
			t.Fatal(err)
		}
		defer tk.Release()
		tk.SetTotal(4 << 20)
		tk.Add(1 << 20)
		var got map[string]any
		apitest.Eventually(t, 10*time.Second, func() bool {
			got, _ = e.MustJSON(200, e.Do("member", "GET", path+"/progress", nil))["progress"].(map[string]any)
			return got != nil && got["bytes_done"] == float64(1<<20)
		}, func() string { return "progress never saved" })
		if got["operation"] != workUpload || got["bytes_total"] != float64(4<<20) || got["percent"] != float64(25) ||
			got["stalled"] != false || !strings.Contains(got["message"].(string), "(25%)") {
			t.Errorf("progress = %v", got)
		}
		resp := e.Do("member", "GET", path, nil)
		if h := resp.Header.Get(ProgressHeader); !strings.Contains(h, "operation=volume.upload") || !strings.Contains(h, "percent=25") {
			t.Errorf("header %q", h)
		}
		if _, extra := resp.JSON(t)["volume"].(map[string]any)["progress"]; extra {
			t.Errorf("volume JSON has a progress key")
		}
		// Another project cannot read it.
		e.Must(404, e.Do("memberB", "GET", "/v3/"+projB+path[len("/v3/"+projA):]+"/progress", nil))
		if err := tk.Complete(ctx, d); err != nil {
			t.Fatal(err)
		}
	})
}
