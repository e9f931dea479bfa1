package volume

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/progress"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// Progress of a volume's or snapshot's running work, where clients can see
// it without breaking: Cinder's volume schemas allow no extra keys
// (tempest's are additionalProperties false), so a volume's progress is
// an additive response header on GET of the volume (and snapshot),
// ProgressHeader, and its own resource, GET .../volumes/{id}/progress.
// A snapshot's shows in os-extended-snapshot-attributes:progress as well,
// when its work moves counted bytes.

// ProgressHeader carries the progress of a volume's or snapshot's running
// work on its GET: "operation=volume.upload; done=1048576; total=4194304;
// percent=25; rate=524288; stalled=false".
const ProgressHeader = "Ashlar-Progress"

// activeProgress is the progress of the work running on subject (a volume
// or snapshot id), or nil when none runs.
func (s *Service) activeProgress(ctx context.Context, subject string) (*progress.View, error) {
	ts, err := task.Find(ctx, s.deps.DB, task.Filter{Subject: subject, Active: true, Limit: 1})
	if err != nil || len(ts) == 0 || ts[0].State != task.Running {
		return nil, err
	}
	v := progress.Of(ts[0], time.Now(), s.deps.Config.Default.ProgressStallAfter)
	return &v, nil
}

// setProgressHeader adds ProgressHeader for subject's running work.
func (s *Service) setProgressHeader(w http.ResponseWriter, r *http.Request, subject string) error {
	v, err := s.activeProgress(r.Context(), subject)
	if err != nil || v == nil {
		return err
	}
	w.Header().Set(ProgressHeader, fmt.Sprintf("operation=%s; done=%d; total=%d; percent=%d; rate=%d; stalled=%t",
		v.Kind, v.Done, v.Total, v.Percent, int64(v.Rate), v.Stalled))
	return nil
}

// showVolumeProgress answers GET /v3/{project_id}/volumes/{id}/progress:
// the volume's running work, or "progress": null when none runs.
func (s *Service) showVolumeProgress(w http.ResponseWriter, r *http.Request) error {
	vol, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:get")
	if err != nil {
		return err
	}
	v, err := s.activeProgress(r.Context(), vol.ID)
	if err != nil {
		return err
	}
	if v == nil {
		return reply(w, http.StatusOK, map[string]any{"progress": nil})
	}
	return reply(w, http.StatusOK, map[string]any{"progress": progressBody(*v)})
}

// progressBody is a View as JSON.
func progressBody(v progress.View) map[string]any {
	var eta, started any
	if v.ETA >= 0 {
		eta = int64(v.ETA.Seconds())
	}
	if !v.Started.IsZero() {
		started = fmtTime(db.Timestamp{Time: v.Started})
	}
	var pct any
	if v.Percent >= 0 {
		pct = v.Percent
	}
	var total any
	if v.Total >= 0 {
		total = v.Total
	}
	return map[string]any{"operation": v.Kind, "bytes_done": v.Done, "bytes_total": total, "percent": pct,
		"rate_bytes_per_second": int64(v.Rate), "started_at": started, "eta_seconds": eta, "stalled": v.Stalled,
		"message": v.Message()}
}
