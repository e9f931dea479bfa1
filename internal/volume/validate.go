package volume

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Request validation with Cinder's JSON-schema style messages:
// "Invalid input for field/attribute <f>. Value: <v>. <detail>".

func invalidInput(field string, value any, detail string, args ...any) error {
	return errs.E(errs.Invalid, "Invalid input for field/attribute %s. Value: %s. %s", field, pyRepr(value, false), fmt.Sprintf(detail, args...))
}

// pyRepr renders a JSON value roughly as Python prints it, as Cinder's
// messages do; quote selects repr() (quoted strings) over str().
func pyRepr(v any, quote bool) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		if quote {
			return "'" + x + "'"
		}
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return x.String()
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, "'"+k+"': "+pyRepr(x[k], true))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, pyRepr(e, true))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// decodeObject reads a JSON object body; null or a non-object is Cinder's
// "body required" 400.
func decodeObject(r *http.Request) (map[string]any, error) {
	var v any
	if err := api.DecodeJSON(r, &v, 0); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errs.E(errs.Invalid, "Missing required element body or element body is not a dict.")
	}
	return m, nil
}

// decodeEntity decodes the request's JSON object and returns its key
// member as an object (the {"volume": {...}} envelope of create and update).
func decodeEntity(r *http.Request, key string) (map[string]any, error) {
	body, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	return entity(body, key)
}

// entity returns body[key] as an object, or Cinder's missing-element 400.
func entity(body map[string]any, key string) (map[string]any, error) {
	v, ok := body[key]
	if !ok {
		return nil, invalidInput(key, body, "'%s' is a required property", key)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidInput(key, v, "%s is not of type 'object'", pyRepr(v, true))
	}
	return m, nil
}

// optString reads an optional string (or null) of at most max characters.
func optString(m map[string]any, field string, max int) (*string, error) {
	v, ok := m[field]
	if !ok || v == nil {
		return nil, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, invalidInput(field, v, "%s is not of type 'string', 'null'", pyRepr(v, true))
	}
	if max > 0 && len([]rune(s)) > max {
		return nil, invalidInput(field, v, "'%s' is too long", s)
	}
	return &s, nil
}

// trueStrings and falseStrings are what Cinder's boolean parameters accept.
var (
	trueStrings  = []string{"True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t"}
	falseStrings = []string{"False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f"}
)

// parseBool accepts JSON booleans and Cinder's boolean strings.
func parseBool(field string, v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		for _, t := range trueStrings {
			if x == t {
				return true, nil
			}
		}
		for _, f := range falseStrings {
			if x == f {
				return false, nil
			}
		}
	case json.Number:
		if x == "1" {
			return true, nil
		}
		if x == "0" {
			return false, nil
		}
	}
	return false, invalidInput(field, v, "%s is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f']", pyRepr(v, true))
}

// checkAllowed rejects properties outside allowed (additionalProperties: false).
func checkAllowed(field string, m map[string]any, allowed ...string) error {
	var extra []string
	for k := range m {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			extra = append(extra, "'"+k+"'")
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	verb := "was"
	if len(extra) > 1 {
		verb = "were"
	}
	return invalidInput(field, m, "Additional properties are not allowed (%s %s unexpected)", strings.Join(extra, ", "), verb)
}

// isUUID reports whether s looks like a UUID (with or without dashes).
func isUUID(s string) bool {
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// parseSize reads a volume size in GiB (integer or digit string, >= 1).
func parseSize(v any) (int64, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return 0, invalidInput("size", v, "%s is not of type 'integer', 'string', 'null'", pyRepr(v, true))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strings.HasPrefix(s, "+") {
		return 0, invalidInput("size", v, "%s does not match '^[0-9]+$'", pyRepr(v, true))
	}
	if n < 1 {
		return 0, invalidInput("size", v, "%s is less than the minimum of 1", pyRepr(v, true))
	}
	if n > math.MaxInt32 {
		return 0, invalidInput("size", v, "%s is greater than the maximum of 2147483647", pyRepr(v, true))
	}
	return n, nil
}

// parseMetadata validates a metadata object: string keys 1..255, string
// values up to 255.
func parseMetadata(field string, v any) (map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidInput(field, v, "%s is not of type 'object'", pyRepr(v, true))
	}
	out := map[string]string{}
	for k, val := range m {
		if len(k) == 0 || len([]rune(k)) > 255 {
			return nil, invalidInput(field, m, "'%s' does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'", k)
		}
		sv, ok := val.(string)
		if !ok {
			return nil, invalidInput(k, val, "%s is not of type 'string'", pyRepr(val, true))
		}
		if len([]rune(sv)) > 255 {
			return nil, invalidInput(k, sv, "'%s' is too long", sv)
		}
		out[k] = sv
	}
	return out, nil
}

// pyInt reads a query parameter as Python's int() does: surrounding space
// and a sign allowed. ok is false for text that is no integer; a value too
// large for an int64 is clamped, as only its bounds matter here.
func pyInt(s string) (n int64, ok bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	var ne *strconv.NumError
	if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
		return n, true // ParseInt returns the bound with the sign
	}
	return n, err == nil
}
