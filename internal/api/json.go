package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// MaxJSONBody is the default limit for JSON request bodies (1 MiB, like
// oslo.middleware's sizelimit default of 114688 bytes but roomier for
// image properties).
const MaxJSONBody = 1 << 20

// DecodeJSON reads r's body (at most limit bytes; MaxJSONBody when 0) into v.
// Malformed JSON is an errs.Invalid, an oversized body an errs.TooLarge;
// neither ever becomes a 500.
func DecodeJSON(r *http.Request, v any, limit int64) error {
	if limit <= 0 {
		limit = MaxJSONBody
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "Could not read the request body.")
	}
	if int64(len(body)) > limit {
		return errs.E(errs.TooLarge, "Request is too large.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errs.E(errs.Invalid, "Malformed request body: the body is empty.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return errs.E(errs.Invalid, "Invalid type for field %q: expected %s.", typeErr.Field, typeErr.Type)
		}
		return errs.E(errs.Invalid, "Malformed request body: %v.", err)
	}
	if dec.More() {
		return errs.E(errs.Invalid, "Malformed request body: trailing data after the JSON value.")
	}
	return nil
}
