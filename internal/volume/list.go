package volume

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// maxLimit is the largest page (Cinder's osapi_max_limit default).
const maxLimit = 1000

// listRequest is a validated volume list (or summary) query.
type listRequest struct {
	filter volumeFilter
	page   listPage
}

// parseList reads a volume list query (parseListQuery).
func parseList(r *http.Request) (*listRequest, error) {
	l := &listRequest{}
	var err error
	if l.page, l.filter.scope, err = parseListQuery(r, l.apply); err != nil {
		return nil, err
	}
	if _, ok := sortColumns[l.page.SortKey]; !ok {
		return nil, errs.E(errs.Invalid, "Invalid input received: Invalid sort key %s.", l.page.SortKey)
	}
	return l, nil
}

// parseListQuery reads what the volume and snapshot lists share, as Cinder
// does: limit, then offset, then the project scope, then in key order (so
// that of several bad parameters the same one is always reported) the
// marker and sort parameters, handing the others to filter.
func parseListQuery(r *http.Request, filter func(key, val string) error) (listPage, scope, error) {
	q := r.URL.Query()
	p := listPage{SortKey: "created_at", SortDesc: true, Limit: maxLimit}
	var err error
	if q.Has("limit") {
		if p.Limit, err = parseLimit(q.Get("limit")); err != nil {
			return p, scope{}, err
		}
	}
	if q.Has("offset") {
		if p.Offset, err = parseOffset(q.Get("offset")); err != nil {
			return p, scope{}, err
		}
	}
	sc := projectScope(caller(r).IsAdmin(), caller(r).ProjectID, q)
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		ok, err := p.apply(key, q.Get(key))
		if !ok {
			err = filter(key, q.Get(key))
		}
		if err != nil {
			return p, sc, err
		}
	}
	return p, sc, nil
}

// parseSortedList is parseListQuery for the snapshot and backup lists,
// which sort by name (display_name) from microversion nameSort and refuse
// a sort key not in columns without naming it.
func parseSortedList(r *http.Request, filter func(key, val string) error, nameSort microversion, columns map[string]string) (listPage, scope, error) {
	page, sc, err := parseListQuery(r, filter)
	if err != nil {
		return page, sc, err
	}
	if page.SortKey == "name" && versionOf(r) >= nameSort {
		page.SortKey = "display_name"
	}
	if _, ok := columns[page.SortKey]; !ok {
		return page, sc, errs.E(errs.Invalid, "Invalid input received: Invalid sort key")
	}
	return page, sc, nil
}

// parseLimit reads limit as Cinder's _get_limit_param: an integer >= 0,
// at most maxLimit.
func parseLimit(s string) (int, error) {
	n, ok := pyInt(s)
	if !ok {
		return 0, errs.E(errs.Invalid, "limit param must be an integer")
	}
	if n < 0 {
		return 0, errs.E(errs.Invalid, "limit param must be positive")
	}
	return int(min(n, maxLimit)), nil
}

// parseOffset reads offset as Cinder's _get_offset_param (oslo's
// validate_integer between 0 and DB_MAX_INT).
func parseOffset(s string) (int, error) {
	n, ok := pyInt(s)
	switch {
	case !ok:
		return 0, errs.E(errs.Invalid, "offset must be an integer")
	case n < 0:
		return 0, errs.E(errs.Invalid, "offset must be >= 0")
	case n > math.MaxInt32:
		return 0, errs.E(errs.Invalid, "offset must be <= %d", math.MaxInt32)
	}
	return int(n), nil
}

// projectScope is whose volumes (or snapshots) a list shows: the caller's
// project; for admins with all_tenants, every project or the one
// project_id names.
func projectScope(admin bool, project string, q url.Values) scope {
	allTenants := false
	if at := q.Get("all_tenants"); at != "" && admin {
		allTenants, _ = parseBool("all_tenants", at)
	}
	switch pid := q.Get("project_id"); {
	case allTenants && pid != "":
		return scope{ProjectID: pid}
	case allTenants:
		return scope{AllProjects: true}
	}
	return scope{ProjectID: project}
}

// apply reads a name or status query parameter into f; ok reports that
// key was one.
func (f *listFilter) apply(key, val string) (ok bool) {
	switch key {
	case "name", "display_name":
		f.Names = append(f.Names, val)
	case "status":
		f.Status = &val
	default:
		return false
	}
	return true
}

// apply reads one query parameter into the filter; parameters it does not
// know are ignored, as are limit, offset and the project scope's.
func (l *listRequest) apply(key, val string) error {
	f := &l.filter
	if f.listFilter.apply(key, val) {
		return nil
	}
	switch key {
	case "availability_zone":
		f.AZ = &val
	case "bootable":
		b, err := parseBool("bootable", val)
		if err != nil {
			return err
		}
		f.Bootable = &b
	case "metadata":
		md, err := parseDictParam(val)
		if err != nil {
			return errs.E(errs.Invalid, "Invalid input received: metadata filter %q is not a dict.", val)
		}
		f.Metadata = md
	}
	return nil
}

// apply reads a marker or sort query parameter into p; ok reports that
// key was one.
func (p *listPage) apply(key, val string) (ok bool, err error) {
	switch key {
	case "marker":
		p.Marker = val
	case "sort_key":
		p.SortKey = val
	case "sort_dir":
		return true, p.setDirection(val)
	case "sort":
		k, d, _ := strings.Cut(strings.Split(val, ",")[0], ":")
		p.SortKey = strings.TrimSpace(k)
		if d != "" {
			return true, p.setDirection(d)
		}
	default:
		return false, nil
	}
	return true, nil
}

func (p *listPage) setDirection(d string) error {
	if d != "asc" && d != "desc" {
		return errs.E(errs.Invalid, "Invalid input received: Invalid sort direction: %s.", d)
	}
	p.SortDesc = d == "desc"
	return nil
}

// parseDictParam reads a dict query value, JSON or Python literal style
// ({'k': 'v'}), as clients send it.
func parseDictParam(s string) (map[string]string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		if err := json.Unmarshal([]byte(strings.ReplaceAll(s, "'", `"`)), &m); err != nil {
			return nil, err
		}
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = scalarString(v)
	}
	return out, nil
}

// listQuery authorizes a volume list or summary and reads its query.
func listQuery(r *http.Request) (*listRequest, error) {
	if err := enforce(r, "volume:get_all", ""); err != nil {
		return nil, err
	}
	return parseList(r)
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, detail bool) error {
	l, err := listQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var vols []*vol
	var more bool
	// the page and the metadata shown with it, from one snapshot
	err = s.deps.DB.InReadTx(ctx, func(tx *db.Tx) error {
		if err := checkMarker(r, tx, l.page.Marker); err != nil {
			return err
		}
		var err error
		if vols, more, err = listVolumes(ctx, tx, l.filter, l.page); err != nil || !detail {
			return err
		}
		return loadKVs(ctx, tx, vols)
	})
	if err != nil {
		return err
	}
	view := func(r *http.Request, v *vol) map[string]any {
		if detail {
			return s.volumeView(r, v, viewShow)
		}
		return map[string]any{"id": v.ID, "name": v.Name, "links": s.volumeLinks(r, v.ID)}
	}
	return reply(w, http.StatusOK, listBody(s, r, "volumes", "/volumes", detail, vols, more, l.page.Limit,
		func(v *vol) string { return v.ID }, view))
}

// checkOwnedMarker refuses a list marker of another project's (unless the
// caller is an admin) with foreign; get loads the marker's row through q
// (its error, such as NotFound, is returned as it is).
func checkOwnedMarker[T owned](r *http.Request, q db.Querier, marker string, get func(context.Context, db.Querier, string) (T, error),
	foreign func(string) error) error {
	if marker == "" {
		return nil
	}
	row, err := get(r.Context(), q, marker)
	if err == nil && !visible(r, row) {
		return foreign(marker)
	}
	return err
}

// readOwnedPage reads page of a list of project-owned rows (filtered by f)
// in one read transaction, so that the page and what is shown with it
// agree: the marker is checked (checkOwnedMarker with get and foreign),
// list reads the page, then load (when not nil) reads through the same
// transaction what the view shows with the rows (metadata, a count).
func readOwnedPage[T owned, F any](r *http.Request, d *db.DB, page listPage,
	get func(context.Context, db.Querier, string) (T, error), foreign func(string) error,
	list func(context.Context, db.Querier, F, listPage) ([]T, bool, error), f F,
	load func(context.Context, db.Querier, []T) error) (rows []T, more bool, err error) {
	ctx := r.Context()
	err = d.InReadTx(ctx, func(tx *db.Tx) error {
		if err := checkOwnedMarker(r, tx, page.Marker, get, foreign); err != nil {
			return err
		}
		var err error
		if rows, more, err = list(ctx, tx, f, page); err != nil || load == nil {
			return err
		}
		return load(ctx, tx, rows)
	})
	return rows, more, err
}

// markerNotFound is Cinder's 404 for a list marker that names no row the
// caller may see.
func markerNotFound(marker string) error {
	return errs.E(errs.NotFound, "Marker %s could not be found.", marker)
}

// checkMarker refuses a marker that is no volume the caller may see.
func checkMarker(r *http.Request, q db.Querier, marker string) error {
	if marker == "" {
		return nil
	}
	v, err := getVolumeRow(r.Context(), q, marker)
	if errs.KindOf(err) == errs.NotFound || err == nil && !visible(r, v) {
		return markerNotFound(marker)
	}
	return err
}

func (s *Service) volumeSummary(w http.ResponseWriter, r *http.Request) error {
	mv := versionOf(r)
	if mv < 12 {
		return errResourceNotFound
	}
	l, err := listQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	count, size, err := summarizeVolumes(ctx, s.deps.DB, l.filter)
	if err != nil {
		return err
	}
	sum := map[string]any{"total_count": count, "total_size": size}
	if mv >= 36 {
		values, err := metadataValues(ctx, s.deps.DB, l.filter)
		if err != nil {
			return err
		}
		md := map[string]any{}
		for k, vs := range values {
			if len(vs) == 1 {
				md[k] = vs[0]
			} else {
				md[k] = vs
			}
		}
		sum["metadata"] = md
	}
	return reply(w, http.StatusOK, map[string]any{"volume-summary": sum})
}

// listBody is the body of a list page of collection ("/volumes"): the
// rows, each as view shows it, under name, and when the page is not empty
// the collectionLinks to the next page under name_links; id is a row's id.
func listBody[T any](s *Service, r *http.Request, name, collection string, detail bool, rows []T, more bool, limit int,
	id func(T) string, view func(*http.Request, T) map[string]any) map[string]any {
	out := make([]any, 0, len(rows))
	for _, row := range rows {
		out = append(out, view(r, row))
	}
	resp := map[string]any{name: out}
	if len(rows) > 0 {
		if links := s.collectionLinks(r, collection, detail, id(rows[len(rows)-1]), len(rows), more, limit); links != nil {
			resp[name+"_links"] = links
		}
	}
	return resp
}

// collectionLinks are the links of a page of n items of collection
// ("/volumes") ending with item last, nil when it has none. Like Cinder,
// a page links to the next when more follow and whenever a page asked for
// with a limit is full (the next one may be empty): clients page until a
// short page.
func (s *Service) collectionLinks(r *http.Request, collection string, detail bool, last string, n int, more bool, limit int) []map[string]string {
	if !more && !(r.URL.Query().Has("limit") && n == limit) {
		return nil
	}
	q := r.URL.Query()
	q.Set("marker", last)
	q.Set("limit", strconv.Itoa(limit))
	path := collection
	if detail {
		path += "/detail"
	}
	return []map[string]string{{"rel": "next", "href": s.linkBase(r) + path + "?" + q.Encode()}}
}
