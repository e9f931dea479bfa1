package image

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/progress"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// Import tasks as the API shows them.

func (t task) view() object {
	var in, res any
	_ = json.Unmarshal([]byte(t.Input), &in)
	if t.Result != nil {
		_ = json.Unmarshal([]byte(*t.Result), &res)
	}
	var exp any
	if !t.ExpiresAt.IsZero() {
		exp = isoTime(t.ExpiresAt)
	}
	return object{{"id", t.ID}, {"type", t.Type}, {"status", t.Status}, {"owner", t.Owner},
		{"expires_at", exp}, {"created_at", isoTime(t.CreatedAt)}, {"updated_at", isoTime(t.UpdatedAt)},
		{"deleted_at", nil}, {"deleted", false}, {"image_id", t.ImageID}, {"request_id", t.RequestID},
		{"user_id", t.UserID}, {"input", in}, {"result", res}, {"message", t.Message},
		{"self", "/v2/tasks/" + t.ID}, {"schema", "/v2/schemas/task"}}
}

func (s *Service) imageTasks(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	im, err := s.getVisible(r.Context(), c, r.PathValue("id"))
	if err == nil {
		err = readable(c, "get_tasks")
	}
	if err != nil {
		return err
	}
	tasks, err := loadTasks(r.Context(), s.deps.DB, "", im.ID)
	if err != nil {
		return err
	}
	if err := s.withProgress(r.Context(), tasks); err != nil {
		return err
	}
	views := make([]object, 0, len(tasks))
	for _, t := range tasks {
		views = append(views, t.view())
	}
	api.WriteJSON(w, http.StatusOK, object{{"tasks", views}})
	return nil
}

func (s *Service) showTask(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	id := r.PathValue("id")
	tasks, err := loadTasks(r.Context(), s.deps.DB, id, "")
	if err != nil {
		return err
	}
	if len(tasks) == 0 || !c.IsAdmin() && tasks[0].Owner != c.ProjectID {
		return errs.E(errs.NotFound, "Task with the given ID %s not found", id)
	}
	if err := s.withProgress(r.Context(), tasks[:1]); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, tasks[0].view())
	return nil
}

// withProgress sets the message of each processing import to its
// progress ("copied 1.2 GiB of 4.0 GiB (30%) at 80.0 MiB/s", with
// "stalled" when no data moved for [DEFAULT] progress_stall_after): the
// field Glance clients already print, which real Glance leaves empty
// while a task runs. One import runs per image at a time (the import
// lock), so an image's active import work is the processing task's.
func (s *Service) withProgress(ctx context.Context, ts []task) error {
	now := time.Now()
	for i := range ts {
		if ts[i].Status != "processing" || ts[i].Type != "api_image_import" {
			continue
		}
		work, err := tasks.Find(ctx, s.deps.DB, tasks.Filter{Subject: ts[i].ImageID, Kind: kindImport, Active: true, Limit: 1})
		if err != nil {
			return err
		}
		if len(work) == 1 && work[0].State == tasks.Running {
			ts[i].Message = progress.Of(work[0], now, s.cfg.Default.ProgressStallAfter).Message()
		}
	}
	return nil
}
