package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Flavor selects which OpenStack API's error body an error is rendered as.
type Flavor int

// The three error dialects.
const (
	Cinder Flavor = iota
	Glance
	Keystone
)

// kindStatus maps each error kind to its HTTP status. This is the only
// place kinds become statuses (StatusOf) and, for clients of other
// OpenStack services, statuses kinds (KindOfStatus).
var kindStatus = map[errs.Kind]int{
	errs.Invalid:          http.StatusBadRequest,
	errs.Unauthorized:     http.StatusUnauthorized,
	errs.Forbidden:        http.StatusForbidden,
	errs.NotFound:         http.StatusNotFound,
	errs.NotAllowed:       http.StatusMethodNotAllowed,
	errs.NotAcceptable:    http.StatusNotAcceptable,
	errs.Conflict:         http.StatusConflict,
	errs.Gone:             http.StatusGone,
	errs.TooLarge:         http.StatusRequestEntityTooLarge,
	errs.BadRange:         http.StatusRequestedRangeNotSatisfiable,
	errs.UnsupportedMedia: http.StatusUnsupportedMediaType,
	errs.Unavailable:      http.StatusServiceUnavailable,
}

// statusKind is kindStatus the other way round.
var statusKind = func() map[int]errs.Kind {
	m := make(map[int]errs.Kind, len(kindStatus))
	for k, s := range kindStatus {
		m[s] = k
	}
	return m
}()

// StatusOf maps an error kind to its HTTP status; an unexpected error
// (kind Other) is a 500.
func StatusOf(k errs.Kind) int {
	if s, ok := kindStatus[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// KindOfStatus maps the status of another service's error response to the
// error kind it stands for: StatusOf's inverse, where any 5xx means the
// service is unavailable and an unknown 4xx is Other.
func KindOfStatus(status int) errs.Kind {
	if k, ok := statusKind[status]; ok {
		return k
	}
	if status >= 500 {
		return errs.Unavailable
	}
	return errs.Other
}

// WriteError renders err as the flavor's OpenStack error body. Unexpected
// errors (kind Other) are logged with the request id and shown generically.
func WriteError(w http.ResponseWriter, r *http.Request, flavor Flavor, err error) {
	kind := errs.KindOf(err)
	status := StatusOf(kind)
	if kind == errs.Other {
		LoggerFrom(r.Context()).Error("internal error", "err", err, "request_id", RequestID(r.Context()))
	}
	msg := errs.Message(err)
	var detail string
	var e *errs.Error
	if errors.As(err, &e) {
		detail = e.Detail
	}
	switch flavor {
	case Keystone:
		WriteJSON(w, status, map[string]any{"error": map[string]any{
			"code": status, "title": keystoneTitle(status), "message": msg}})
	case Glance:
		writeGlanceError(w, r, status, msg, detail)
	default:
		WriteJSON(w, status, map[string]any{cinderName(status): map[string]any{
			"code": status, "message": msg}})
	}
}

func cinderName(status int) string {
	switch status {
	case 400:
		return "badRequest"
	case 401:
		return "unauthorized"
	case 403:
		return "forbidden"
	case 404:
		return "itemNotFound"
	case 405:
		return "badMethod"
	case 406:
		return "notAcceptable"
	case 409:
		return "conflictingRequest"
	case 413:
		return "overLimit"
	case 415:
		return "badMediaType"
	case 501:
		return "notImplemented"
	case 503:
		return "serviceUnavailable"
	}
	return "computeFault"
}

func keystoneTitle(status int) string {
	switch status {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 409:
		return "Conflict"
	}
	return http.StatusText(status)
}

// webobTitle is webob's status title where it differs from Go's text.
func webobTitle(status int) string {
	switch status {
	case 413:
		return "Request Entity Too Large"
	case 416:
		return "Requested Range Not Satisfiable"
	}
	return http.StatusText(status)
}

// writeGlanceError renders webob's HTTPException body the way Glance does:
// negotiated on Accept (JSON, HTML for */*, plain text otherwise), with the
// message followed by "<br /><br />\n", the detail and "\n\n".
func writeGlanceError(w http.ResponseWriter, r *http.Request, status int, msg, detail string) {
	title := webobTitle(status)
	code := fmt.Sprintf("%d %s", status, title)
	accept := r.Header.Get("Accept")
	h := w.Header()
	switch {
	case strings.Contains(accept, "application/json"):
		WriteJSON(w, status, map[string]any{"message": msg + "<br /><br />\n" + detail + "\n\n",
			"code": code, "title": title})
	case accept == "" || strings.Contains(accept, "text/plain"):
		h.Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s\n\n%s\n%s\n\n   ", code, msg, detail)
	default:
		h.Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html>\n <head>\n  <title>%s</title>\n </head>\n <body>\n  <h1>%s</h1>\n  %s<br /><br />\n%s\n\n\n </body>\n</html>",
			code, code, html.EscapeString(msg), html.EscapeString(detail))
	}
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("encoding response", "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"error": "encoding response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
