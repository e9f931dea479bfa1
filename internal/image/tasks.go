package image

import (
	"encoding/json"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/errs"
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
	api.WriteJSON(w, http.StatusOK, tasks[0].view())
	return nil
}
