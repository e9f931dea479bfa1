package identity

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/policy"
)

// collection is one kind of admin API resource (projects, users, roles,
// services, endpoints, domains). Keystone serves them all alike: list with
// filters, show, create and update from a validated body whose unknown
// members become "extra", delete; the generic handlers below do that, and
// each kind supplies only what differs.
type collection[T entity] struct {
	member, plural string // JSON keys, policy action names and messages: "endpoint", "endpoints"
	// items is the kind's part of the snapshot, by id; lists are in order.
	items func(*snapshot) map[string]T
	order func(a, b T) int
	// attrs are the list filters Keystone honours for the kind, each with
	// the item's value: a string, a bool, or nil when it has none.
	attrs  map[string]func(T) any
	render func(*Service, T) map[string]any
	// showAllowed decides who may GET one item; the identity:get_<member>
	// policy when nil.
	showAllowed func(c *auth.Caller, id string) error

	// createSchema and updateSchema are Keystone's request schemas.
	createSchema, updateSchema *jsonSchema
	// nullBody: a request without the member object is validated as null
	// (Keystone reads services and endpoints with .get(member)), else as {}.
	nullBody bool
	// attributes are the members the kind keeps in columns; every other
	// member of a create or update is extra.
	attributes []string
	// build makes a new item from a validated create body.
	build func(*Service, map[string]any) (T, error)
	// change applies a validated update body to a copy of an item.
	change func(*Service, T, map[string]any) error
	clone  func(T) T
	// insert, update and remove write an item.
	insert, update, remove func(context.Context, *db.Tx, T) error
	// immutable refuses updates and deletes of some items (default roles).
	immutable func(T) bool
	// echoExtra: the update answer also shows the extras as "extra", a
	// compatibility quirk of Keystone's users and projects.
	echoExtra bool
}

func (k *collection[T]) list(s *Service) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
		if err := allow(c, "identity:list_"+k.plural, policy.Target{}); err != nil {
			return err
		}
		all := slices.SortedFunc(maps.Values(k.items(s.snap.Load())), k.order)
		return s.list(w, r, k.plural, k.filter(s, r, all))
	}
}

// filter renders the items that pass the list filters of r's query.
func (k *collection[T]) filter(s *Service, r *http.Request, items []T) []map[string]any {
	fs := parseFilters(r.URL.Query(), slices.Collect(maps.Keys(k.attrs)))
	var out []map[string]any
	for _, item := range items {
		if matchAll(fs, func(a string) any { return k.attrs[a](item) }) {
			out = append(out, k.render(s, item))
		}
	}
	return out
}

// find looks an item up by id.
func (k *collection[T]) find(snap *snapshot, id string) (T, bool) {
	item, ok := k.items(snap)[id]
	return item, ok
}

// lookup finds the item of the URL's {id}.
func (k *collection[T]) lookup(s *Service, r *http.Request) (T, error) {
	id := r.PathValue("id")
	item, ok := k.find(s.snap.Load(), id)
	if !ok {
		return item, notFound(k.member, id)
	}
	return item, nil
}

// stored is item as the snapshot holds it after a write (stored defaults
// filled in), or item itself should it be gone again already.
func (k *collection[T]) stored(s *Service, item T) T {
	if got, ok := k.find(s.snap.Load(), item.base().ID); ok {
		return got
	}
	return item
}

func (k *collection[T]) show(s *Service) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
		var err error
		if k.showAllowed != nil {
			err = k.showAllowed(c, r.PathValue("id"))
		} else {
			err = allow(c, "identity:get_"+k.member, policy.Target{})
		}
		if err != nil {
			return err
		}
		item, err := k.lookup(s, r)
		if err != nil {
			return err
		}
		return k.reply(w, s, http.StatusOK, item, false)
	}
}

func (k *collection[T]) create(s *Service) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
		if err := allow(c, "identity:create_"+k.member, policy.Target{}); err != nil {
			return err
		}
		in, err := k.body(r, k.createSchema)
		if err != nil {
			return err
		}
		in = normalizeKeys(in)
		item, err := k.build(s, in)
		if err != nil {
			return err
		}
		item.base().ID = newID()
		item.base().Extra = extras(nil, in, k.attributes)
		if err := s.write(r.Context(), func(tx *db.Tx) error { return k.insert(r.Context(), tx, item) }); err != nil {
			return err
		}
		return k.reply(w, s, http.StatusCreated, k.stored(s, item), false)
	}
}

func (k *collection[T]) patch(s *Service) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
		if err := allow(c, "identity:update_"+k.member, policy.Target{}); err != nil {
			return err
		}
		old, err := k.lookup(s, r)
		if err != nil {
			return err
		}
		in, err := k.body(r, k.updateSchema)
		if err != nil {
			return err
		}
		if err := k.checkMutable("update", old); err != nil {
			return err
		}
		item := k.clone(old)
		if err := k.change(s, item, in); err != nil {
			return err
		}
		item.base().Extra = extras(old.base().Extra, in, k.attributes)
		if err := s.write(r.Context(), func(tx *db.Tx) error { return k.update(r.Context(), tx, item) }); err != nil {
			return err
		}
		return k.reply(w, s, http.StatusOK, k.stored(s, item), k.echoExtra)
	}
}

func (k *collection[T]) delete(s *Service) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
		if err := allow(c, "identity:delete_"+k.member, policy.Target{}); err != nil {
			return err
		}
		item, err := k.lookup(s, r)
		if err != nil {
			return err
		}
		if err := k.checkMutable("delete", item); err != nil {
			return err
		}
		if err := s.write(r.Context(), func(tx *db.Tx) error { return k.remove(r.Context(), tx, item) }); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// checkMutable refuses to update or delete (verb) an immutable item, in
// Keystone's words.
func (k *collection[T]) checkMutable(verb string, item T) error {
	if k.immutable != nil && k.immutable(item) {
		return errs.E(errs.Forbidden, "Unable to %s immutable %s resource: `%s. Set resource option \"immutable\" to false first.", verb, k.member, item.base().ID)
	}
	return nil
}

func (k *collection[T]) reply(w http.ResponseWriter, s *Service, code int, item T, echoExtra bool) error {
	m := k.render(s, item)
	if echoExtra {
		m["extra"] = overlay(item.base().Extra, nil)
	}
	api.WriteJSON(w, code, map[string]any{k.member: m})
	return nil
}

// body reads the request's member object and validates it against sc.
func (k *collection[T]) body(r *http.Request, sc *jsonSchema) (map[string]any, error) {
	return memberBody(r, k.member, k.nullBody, sc)
}

// memberBody reads the member object of a request body ({"user": {...}}),
// treating a missing one as Keystone does (null or {}), and validates it.
func memberBody(r *http.Request, member string, nullWhenMissing bool, sc *jsonSchema) (map[string]any, error) {
	var b map[string]any
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return nil, err
	}
	v, ok := b[member]
	if !ok && !nullWhenMissing {
		v = map[string]any{}
	}
	if err := sc.validate(v); err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

var keyNormalizer = strings.NewReplacer(":", "_", "-", "_")

// normalizeKeys spells member names as Keystone stores them on create:
// ':' and '-' become '_'.
func normalizeKeys(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[keyNormalizer.Replace(k)] = v
	}
	return out
}

// extras merges the members of in that are not attributes into old, as
// Keystone keeps them: as given, null included ("links" is the server's).
func extras(old, in map[string]any, attributes []string) map[string]any {
	out := maps.Clone(old)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range in {
		if k != "extra" && k != "links" && !slices.Contains(attributes, k) {
			out[k] = v
		}
	}
	return out
}

// withExtra is an entity's JSON: its extras, then its attributes (which an
// extra never hides), then its self link.
func (s *Service) withExtra(e entity, plural string, attrs map[string]any) map[string]any {
	m := overlay(e.base().Extra, attrs)
	m["links"] = s.self(plural, e.base().ID)
	return m
}

// overlay is extra with attrs set over it.
func overlay(extra, attrs map[string]any) map[string]any {
	m := make(map[string]any, len(extra)+len(attrs)+1)
	maps.Copy(m, extra)
	maps.Copy(m, attrs)
	return m
}

// Typed readers of validated bodies: the schema has checked the types.

func strField(in map[string]any, key string) (string, bool) {
	v, ok := in[key]
	if !ok {
		return "", false
	}
	s, _ := v.(string) // null reads as ""
	return s, true
}

// set copies in[key] to *dst when the body gives it (and not as null).
func set[V string | bool](dst *V, in map[string]any, key string) {
	if v, ok := in[key].(V); ok {
		*dst = v
	}
}
