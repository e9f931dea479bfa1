package volume

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// Message event ids, after Cinder's message_field.
const (
	eventScheduleAllocate = "VOLUME_VOLUME_001_003"
	eventCreateFromImage  = "VOLUME_VOLUME_002_001"
	eventUploadImage      = "VOLUME_VOLUME_003_004"
	eventUploadQuota      = "VOLUME_VOLUME_003_006"
	eventExtend           = "VOLUME_VOLUME_007_001"
)

// messageTTL is how long a user message is kept (Cinder: 30 days).
const messageTTL = 30 * 24 * time.Hour

// minMessagesVersion is the microversion that introduced messages.
const minMessagesVersion = 3

// recordMessage stores a user message about a volume's failed async work.
func (s *Service) recordMessage(ctx context.Context, project, volumeID, requestID, event, text string) {
	s.recordResourceMessage(ctx, project, "VOLUME", volumeID, requestID, event, text)
}

// newMessage is a user message about the failed async work of a
// resource of resourceType, to store with insertMessage; work that stores
// it in the transaction recording the failure makes the two visible
// together.
func newMessage(project, resourceType, resourceID, requestID, event, text string) *message {
	now := db.Now()
	return &message{ID: uuid.NewString(), ProjectID: project, RequestID: &requestID,
		ResourceType: resourceType, ResourceUUID: &resourceID, EventID: event, Level: "ERROR", Text: text,
		CreatedAt: now, GuaranteedTil: db.Timestamp{Time: now.Time.Add(messageTTL)}}
}

// recordResourceMessage stores a user message about the failed async work
// of a resource of resourceType (VOLUME, VOLUME_SNAPSHOT). Failing to
// store it is logged: the work's own outcome stands.
func (s *Service) recordResourceMessage(ctx context.Context, project, resourceType, resourceID, requestID, event, text string) {
	err := insertMessage(ctx, s.deps.DB, newMessage(project, resourceType, resourceID, requestID, event, text))
	if err != nil {
		s.deps.Logger.Error("recording user message", "resource", resourceID, "err", err)
	}
}

func (s *Service) messageView(r *http.Request, m *message) map[string]any {
	out := map[string]any{"id": m.ID, "request_id": deref(m.RequestID), "resource_type": m.ResourceType,
		"event_id": m.EventID, "message_level": m.Level, "user_message": m.Text, "created_at": fmtTime(m.CreatedAt),
		"guaranteed_until": fmtTime(m.GuaranteedTil),
		"links":            []map[string]string{{"rel": "self", "href": s.linkBase(r) + "/messages/" + m.ID}}}
	if m.ResourceUUID != nil {
		out["resource_uuid"] = *m.ResourceUUID
	}
	return out
}

func (s *Service) listMessages(w http.ResponseWriter, r *http.Request) error {
	if versionOf(r) < minMessagesVersion {
		return errResourceNotFound
	}
	if err := enforce(r, "message:get_all", ""); err != nil {
		return err
	}
	filters := map[string]string{}
	for _, f := range messageFilters {
		if v := r.URL.Query().Get(f); v != "" {
			filters[f] = v
		}
	}
	msgs, err := listMessages(r.Context(), s.deps.DB, caller(r).ProjectID, filters)
	if err != nil {
		return err
	}
	out := []any{}
	for _, m := range msgs {
		out = append(out, s.messageView(r, m))
	}
	return reply(w, http.StatusOK, map[string]any{"messages": out})
}

// messageFor loads the request's message: another project's message is
// not found for non-admins, then action is enforced against its project.
func (s *Service) messageFor(r *http.Request, action string) (*message, error) {
	if versionOf(r) < minMessagesVersion {
		return nil, errResourceNotFound
	}
	return loadOwned(r.Context(), s.deps.DB, r, r.PathValue("message_id"), action, getMessage, messageNotFound)
}

func (s *Service) showMessage(w http.ResponseWriter, r *http.Request) error {
	m, err := s.messageFor(r, "message:get")
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"message": s.messageView(r, m)})
}

func (s *Service) deleteMessage(w http.ResponseWriter, r *http.Request) error {
	m, err := s.messageFor(r, "message:delete")
	if err != nil {
		return err
	}
	if err := deleteMessageRow(r.Context(), s.deps.DB, m.ID); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusNoContent)
}
