package identity

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Keystone validates request bodies with JSON Schema (draft 4) and answers
// the first error jsonschema finds: "Invalid input for field 'name': 'x…' is
// too long" for a member, the bare message for the object itself. The
// schemas below are Keystone's (keystone/*/schema.py), and check checks in
// jsonschema's order (the schema's keywords, then its properties, in the
// order Keystone declares them) so that the error reported is Keystone's.
// The "Failed validating … On instance …" dump jsonschema appends is left
// out: it is a debugging aid, not part of the message clients show.

// jsonSchema is the subset of JSON Schema Keystone's request schemas use.
type jsonSchema struct {
	types                []string // "string", "boolean", "object", "array", "null"
	enum                 []any
	minLength, maxLength int // in characters; maxLength 0 = unbounded
	pattern              *pattern
	props                []property
	required             []string
	minProps             int
	closed               bool // additionalProperties: false
	items                *jsonSchema
	minItems, maxItems   int // maxItems 0 = unbounded
	unique               bool
}

type property struct {
	name   string
	schema *jsonSchema
}

// pattern is a Keystone regular expression: its Python text (for the
// message) and the Go match of Python's re.search with it.
type pattern struct {
	text  string
	match func(string) bool
}

func regexpPattern(text string) *pattern {
	re := regexp.MustCompile(text)
	return &pattern{text: text, match: re.MatchString}
}

var (
	// nonBlank is Keystone's name pattern [\S]+, with Python's Unicode \S.
	nonBlank = &pattern{`[\S]+`, func(s string) bool {
		return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsSpace(r) }) >= 0
	}}
	idPattern  = regexpPattern(`^[a-zA-Z0-9-]+$`)
	urlPattern = regexpPattern(`^[a-zA-Z0-9+.-]+:.+`)
	tagPattern = regexpPattern(`^[^,/]*$`)
)

func str(minLen, maxLen int, p *pattern) *jsonSchema {
	return &jsonSchema{types: []string{"string"}, minLength: minLen, maxLength: maxLen, pattern: p}
}

func object(required []string, props ...property) *jsonSchema {
	return &jsonSchema{types: []string{"object"}, props: props, required: required}
}

// nullable is Keystone's validation.nullable: null is also accepted.
func nullable(s *jsonSchema) *jsonSchema {
	n := *s
	n.types = append(slices.Clone(s.types), "null")
	if n.enum != nil {
		n.enum = append(slices.Clone(s.enum), nil)
	}
	return &n
}

// updateOf is the update form of a create schema: nothing is required but
// at least one member must be given.
func updateOf(s *jsonSchema) *jsonSchema {
	u := *s
	u.required, u.minProps = nil, 1
	return &u
}

// Keystone's parameter types (keystone/common/validation/parameter_types.py).
var (
	booleanType     = &jsonSchema{types: []string{"boolean"}, enum: []any{true, false}}
	nameType        = str(1, 255, nonBlank)
	idString        = str(1, 64, idPattern)
	descriptionType = str(0, 0, nil)
	urlType         = str(0, 225, urlPattern)
	anyString       = str(0, 0, nil)
	// resourceName is the name of projects and domains: 64 characters.
	resourceName = str(1, 64, nonBlank)
)

// User options Keystone knows (keystone/identity/backends/resource_options.py).
const (
	optLockPassword = "lock_password"
	optMFARules     = "multi_factor_auth_rules"
	optMFAEnabled   = "multi_factor_auth_enabled"
)

// userOptions is the schema of a user's "options": the registered options
// only, each nullable (null removes it).
var userOptions = &jsonSchema{types: []string{"object"}, closed: true, props: []property{
	{"ignore_change_password_upon_first_use", nullable(booleanType)},
	{"ignore_password_expiry", nullable(booleanType)},
	{"ignore_lockout_failure_attempts", nullable(booleanType)},
	{optLockPassword, nullable(booleanType)},
	{"ignore_user_inactivity", nullable(booleanType)},
	{optMFARules, nullable(&jsonSchema{types: []string{"array"}, unique: true,
		items: &jsonSchema{types: []string{"array"}, items: anyString, minItems: 1, unique: true}})},
	{optMFAEnabled, nullable(booleanType)},
}}

// immutableOption is the options schema of projects and roles.
var immutableOption = &jsonSchema{types: []string{"object"}, closed: true,
	props: []property{{"immutable", nullable(booleanType)}}}

var (
	userCreate = object([]string{"name"},
		property{"default_project_id", nullable(idString)},
		property{"description", nullable(descriptionType)},
		property{"domain_id", idString},
		property{"enabled", booleanType},
		property{"federated", &jsonSchema{types: []string{"array"}, items: object([]string{"idp_id", "protocols"},
			property{"idp_id", anyString},
			property{"protocols", &jsonSchema{types: []string{"array"}, minItems: 1,
				items: object([]string{"protocol_id", "unique_id"}, property{"protocol_id", anyString}, property{"unique_id", anyString})}},
		)}},
		property{"name", nameType},
		property{"password", &jsonSchema{types: []string{"string", "null"}}},
		property{"options", userOptions},
	)
	userUpdate = updateOf(userCreate)

	passwordChange = &jsonSchema{types: []string{"object"}, closed: true, required: []string{"original_password", "password"},
		props: []property{{"original_password", anyString}, {"password", anyString}}}

	projectCreate = object([]string{"name"},
		property{"description", nullable(descriptionType)},
		property{"domain_id", nullable(idString)},
		property{"enabled", booleanType},
		property{"is_domain", booleanType},
		property{"parent_id", nullable(idString)},
		property{"name", resourceName},
		property{"tags", &jsonSchema{types: []string{"array"}, items: str(1, 255, tagPattern), maxItems: 80, unique: true}},
		property{"options", immutableOption},
	)
	projectUpdate = updateOf(projectCreate)

	roleCreate = object([]string{"name"},
		property{"name", nameType},
		property{"description", descriptionType},
		property{"options", immutableOption},
	)

	serviceCreate = object([]string{"type"},
		property{"enabled", booleanType},
		property{"name", nameType},
		property{"type", str(1, 255, nil)},
	)
	serviceUpdate = updateOf(serviceCreate)

	endpointCreate = object([]string{"interface", "service_id", "url"},
		property{"enabled", booleanType},
		property{"interface", &jsonSchema{types: []string{"string"}, enum: []any{"admin", "internal", "public"}}},
		property{"region_id", anyString},
		property{"region", anyString},
		property{"service_id", anyString},
		property{"url", urlType},
	)
	endpointUpdate = updateOf(endpointCreate)
)

// validate checks v against s and returns Keystone's 400 for the first
// violation.
func (s *jsonSchema) validate(v any) error {
	path, msg := s.check(nil, v)
	if msg == "" {
		return nil
	}
	if len(path) == 0 {
		return errs.E(errs.Invalid, "%s", msg)
	}
	return errs.E(errs.Invalid, "Invalid input for field '%s': %s", strings.Join(path, "/"), msg)
}

// check returns the path to and the message of the first violation, or an
// empty message.
func (s *jsonSchema) check(path []string, v any) ([]string, string) {
	if len(s.types) > 0 && !slices.ContainsFunc(s.types, func(t string) bool { return isType(v, t) }) {
		quoted := make([]string, len(s.types))
		for i, t := range s.types {
			quoted[i] = pyRepr(t)
		}
		return path, pyRepr(v) + " is not of type " + strings.Join(quoted, ", ")
	}
	if s.enum != nil && !slices.ContainsFunc(s.enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		return path, pyRepr(v) + " is not one of " + pyRepr(s.enum)
	}
	if str, ok := v.(string); ok {
		n := utf8.RuneCountInString(str)
		switch {
		case n < s.minLength:
			return path, pyRepr(v) + " is too short"
		case s.maxLength > 0 && n > s.maxLength:
			return path, pyRepr(v) + " is too long"
		case s.pattern != nil && !s.pattern.match(str):
			return path, pyRepr(v) + " does not match " + pyRepr(s.pattern.text)
		}
	}
	if obj, ok := v.(map[string]any); ok {
		for _, p := range s.props {
			if pv, ok := obj[p.name]; ok {
				if at, msg := p.schema.check(append(slices.Clip(path), p.name), pv); msg != "" {
					return at, msg
				}
			}
		}
		for _, name := range s.required {
			if _, ok := obj[name]; !ok {
				return path, pyRepr(name) + " is a required property"
			}
		}
		if len(obj) < s.minProps {
			return path, pyRepr(v) + " does not have enough properties"
		}
		if s.closed {
			var extra []string
			for k := range obj {
				if !slices.ContainsFunc(s.props, func(p property) bool { return p.name == k }) {
					extra = append(extra, pyRepr(k))
				}
			}
			if len(extra) > 0 {
				slices.Sort(extra)
				verb := "was"
				if len(extra) > 1 {
					verb = "were"
				}
				return path, fmt.Sprintf("Additional properties are not allowed (%s %s unexpected)", strings.Join(extra, ", "), verb)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if s.items != nil {
			for i, e := range arr {
				if at, msg := s.items.check(append(slices.Clip(path), strconv.Itoa(i)), e); msg != "" {
					return at, msg
				}
			}
		}
		switch {
		case len(arr) < s.minItems:
			return path, pyRepr(v) + " is too short"
		case s.maxItems > 0 && len(arr) > s.maxItems:
			return path, pyRepr(v) + " is too long"
		case s.unique && !uniqueItems(arr):
			return path, pyRepr(v) + " has non-unique elements"
		}
	}
	return nil, ""
}

func isType(v any, t string) bool {
	switch v.(type) {
	case nil:
		return t == "null"
	case bool:
		return t == "boolean"
	case string:
		return t == "string"
	case json.Number:
		return t == "number"
	case []any:
		return t == "array"
	case map[string]any:
		return t == "object"
	}
	return false
}

func uniqueItems(arr []any) bool {
	for i := range arr {
		for j := i + 1; j < len(arr); j++ {
			if reflect.DeepEqual(arr[i], arr[j]) {
				return false
			}
		}
	}
	return true
}

// pyRepr renders a decoded JSON value as Python's repr does, as it appears
// in Keystone's validation messages.
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return pyStringRepr(x)
	case json.Number:
		return pyNumberRepr(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // Python keeps the request's order, which decoding lost
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = pyStringRepr(k) + ": " + pyRepr(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

func pyStringRepr(s string) string {
	quote := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// pyNumberRepr: JSON integers are Python ints, anything with a fraction or
// an exponent a float, whose repr always shows a fraction or an exponent.
func pyNumberRepr(n json.Number) string {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
		return s
	}
	f, err := n.Float64()
	switch {
	case err != nil || math.IsInf(f, 0):
		return "inf"
	case f == 0 || math.Abs(f) >= 1e-4 && math.Abs(f) < 1e16:
		out := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(out, ".") {
			out += ".0"
		}
		return out
	}
	return strconv.FormatFloat(f, 'e', -1, 64)
}
