// Package errs defines the error kinds shared by every Ashlar service.
//
// Domain code returns errors built with E; each API maps the Kind to its own
// status code and error body in exactly one place (see package api).
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

// The kinds. Do not reorder: tests and metrics refer to them by value.
const (
	Other            Kind = iota // unexpected; rendered as 500
	Invalid                      // bad input: 400
	Unauthorized                 // missing or bad credentials: 401
	Forbidden                    // authenticated but not allowed: 403
	NotFound                     // no such resource (or not visible to the caller): 404
	NotAllowed                   // method not allowed on the resource: 405
	NotAcceptable                // unsupported microversion or Accept: 406
	Conflict                     // state conflict: 409
	Gone                         // the resource or store refuses the operation for good: 410
	TooLarge                     // body, image or quota too large: 413
	BadRange                     // unsatisfiable range: 416
	UnsupportedMedia             // wrong Content-Type: 415
	Unavailable                  // a backend is down: 503
)

var kindNames = [...]string{"other", "invalid", "unauthorized", "forbidden", "not found",
	"not allowed", "not acceptable", "conflict", "gone", "too large", "bad range",
	"unsupported media", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is an error with a Kind and a message meant for the API user.
type Error struct {
	Kind Kind
	// Msg is safe to show to the API user.
	Msg string
	// Detail is an optional second line some APIs (Glance) show after Msg.
	Detail string
	// Err is the underlying cause, logged but never shown to the API user.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Msg != "":
		return e.Msg + ": " + e.Err.Error()
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// E builds an *Error of the given kind with a formatted user-facing message.
func E(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error of the given kind around cause; msg is shown to the user.
func Wrap(kind Kind, cause error, msg string) error {
	return &Error{Kind: kind, Msg: msg, Err: cause}
}

// KindOf returns the Kind of the outermost *Error in err's chain, or Other.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Other
}

// Is reports whether err is an *Error of the given kind.
func Is(err error, kind Kind) bool { return err != nil && KindOf(err) == kind }

// Message returns the user-facing message of err: the Msg of the outermost
// *Error, or a generic text for unexpected errors so internals never leak.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Msg != "" {
		return e.Msg
	}
	if errors.As(err, &e) && e.Kind != Other && e.Err != nil {
		return e.Err.Error()
	}
	return "The server has either erred or is incapable of performing the requested operation."
}
