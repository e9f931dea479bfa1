package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// MaxJSONBody is the default limit for JSON request bodies (1 MiB, like
// oslo.middleware's sizelimit default of 114688 bytes but roomier for
// image properties).
const MaxJSONBody = 1 << 20

// DecodeJSON reads r's body (at most limit bytes; MaxJSONBody when 0) into v.
// Malformed JSON, a body that is not UTF-8 and a NUL character in any key
// or string are an errs.Invalid, an oversized body an errs.TooLarge; none
// ever becomes a 500. Under Wrap, the client has the body timeout to send
// the body, whatever Content-Type it claims.
func DecodeJSON(r *http.Request, v any, limit int64) error {
	if limit <= 0 {
		limit = MaxJSONBody
	}
	armBody(r.Context())
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
	// encoding/json would quietly turn such bytes into U+FFFD; the Python
	// services refuse them (UnicodeDecodeError is a 400 there).
	if !utf8.Valid(body) {
		return errs.E(errs.Invalid, "Malformed request body: it is not UTF-8 text.")
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
	// Valid JSON can only carry a NUL as the escape \u0000, so the second
	// look is only for bodies that contain one.
	if bytes.Contains(body, []byte(`\u0000`)) {
		var tree any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&tree) == nil {
			if field, found := findNUL(tree, ""); found {
				return errs.E(errs.Invalid, "Invalid input for field %q: NUL characters are not allowed.", field)
			}
		}
	}
	return nil
}

// findNUL looks for a NUL character in the keys and strings of a decoded
// JSON value and returns the key it was found under.
func findNUL(v any, key string) (string, bool) {
	switch v := v.(type) {
	case string:
		return key, strings.IndexByte(v, 0) >= 0
	case []any:
		for _, x := range v {
			if k, ok := findNUL(x, key); ok {
				return k, true
			}
		}
	case map[string]any:
		for k, x := range v {
			if strings.IndexByte(k, 0) >= 0 {
				return k, true
			}
			if k, ok := findNUL(x, k); ok {
				return k, true
			}
		}
	}
	return "", false
}
