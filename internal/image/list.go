package image

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// GET /v2/images: the query is parsed into a listQuery, which
// persist_images.go turns into SQL.

// Paging limits (Glance's limit_param_default and api_limit_max).
const (
	defaultLimit = 25
	maxLimit     = 1000
)

var sortKeys = []string{"name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at"}

type sortSpec struct {
	key string
	asc bool
}

// listQuery is a parsed image list request.
type listQuery struct {
	limit int
	sort  []sortSpec
	// visibility is "", "all" or one visibility.
	visibility        string
	memberStatus      string
	memberStatusGiven bool
	hidden            bool
	protected         *bool
	columns           []columnFilter
	tags              []string
	ranges            []rangeFilter
	// props are custom property filters: name, value.
	props  [][2]string
	marker string
	// links is the query without the marker, for the first and next links.
	links url.Values
}

// columnFilter is col = value, or col IN values ("in:a,b").
type columnFilter struct {
	col    string
	values []string
}

// rangeFilter compares a size or time column.
type rangeFilter struct {
	col, op string
	value   any
}

// listParams are the query parameters that are not property filters.
var listParams = []string{"limit", "marker", "sort", "sort_key", "sort_dir", "visibility", "member_status",
	"name", "status", "owner", "tag", "size_min", "size_max", "size", "created_at", "updated_at", "os_hidden",
	"protected", "disk_format", "container_format", "id", "checksum", "os_hash_value"}

func parseList(q url.Values) (*listQuery, error) {
	lq := &listQuery{marker: q.Get("marker"), tags: q["tag"], links: url.Values{}}
	for k, v := range q {
		if k != "marker" {
			lq.links[k] = v
		}
	}
	var err error
	if lq.limit, err = parseLimit(q.Get("limit")); err != nil {
		return nil, err
	}
	if lq.sort, err = parseSort(q); err != nil {
		return nil, err
	}
	for _, parse := range []func(*listQuery, url.Values) error{parseVisibility, parseFlags, parseColumns, parseSizes, parseTimes} {
		if err := parse(lq, q); err != nil {
			return nil, err
		}
	}
	lq.props = propertyFilters(q)
	return lq, nil
}

func parseLimit(v string) (int, error) {
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errs.E(errs.Invalid, "limit param must be an integer")
	}
	if n < 0 {
		return 0, errs.E(errs.Invalid, "limit param must be positive")
	}
	return min(n, maxLimit), nil
}

func parseSort(q url.Values) ([]sortSpec, error) {
	var specs []sortSpec
	checkKey := func(k string) error {
		if !slices.Contains(sortKeys, k) {
			return errs.E(errs.Invalid, "Invalid sort key: %s. It must be one of the following: %s.", k, strings.Join(sortKeys, ", "))
		}
		return nil
	}
	checkDir := func(d string) (bool, error) {
		switch d {
		case "asc":
			return true, nil
		case "desc", "":
			return false, nil
		}
		return false, errs.E(errs.Invalid, "Invalid sort direction: %s", d)
	}
	if v := q.Get("sort"); v != "" {
		if q.Has("sort_key") || q.Has("sort_dir") {
			return nil, errs.E(errs.Invalid, "The sort param cannot be used with sort_key and sort_dir params.")
		}
		for _, part := range strings.Split(v, ",") {
			k, d, _ := strings.Cut(strings.TrimSpace(part), ":")
			if err := checkKey(k); err != nil {
				return nil, err
			}
			asc, err := checkDir(d)
			if err != nil {
				return nil, err
			}
			specs = append(specs, sortSpec{k, asc})
		}
	} else {
		dirs := q["sort_dir"]
		for i, k := range q["sort_key"] {
			if err := checkKey(k); err != nil {
				return nil, err
			}
			d := ""
			if i < len(dirs) {
				d = dirs[i]
			} else if len(dirs) == 1 {
				d = dirs[0]
			}
			asc, err := checkDir(d)
			if err != nil {
				return nil, err
			}
			specs = append(specs, sortSpec{k, asc})
		}
		if len(specs) == 0 {
			asc := false
			if len(dirs) > 0 {
				var err error
				if asc, err = checkDir(dirs[0]); err != nil {
					return nil, err
				}
			}
			specs = append(specs, sortSpec{"created_at", asc})
		}
	}
	if !slices.ContainsFunc(specs, func(s sortSpec) bool { return s.key == "id" }) {
		specs = append(specs, sortSpec{"id", specs[len(specs)-1].asc})
	}
	return specs, nil
}

// parseVisibility reads member_status (default accepted) and visibility.
func parseVisibility(lq *listQuery, q url.Values) error {
	lq.memberStatus, lq.memberStatusGiven = q.Get("member_status"), q.Has("member_status")
	if lq.memberStatus == "" {
		lq.memberStatus = "accepted"
	}
	if !slices.Contains([]string{"accepted", "pending", "rejected", "all"}, lq.memberStatus) {
		return errs.E(errs.Invalid, "Invalid status: %s", lq.memberStatus)
	}
	lq.visibility = q.Get("visibility")
	if lq.visibility != "" && lq.visibility != "all" && !slices.Contains(visibilities, lq.visibility) {
		return errs.E(errs.Invalid, "Invalid visibility value: %s", lq.visibility)
	}
	return nil
}

// parseFlags reads os_hidden (hidden images are left out by default) and protected.
func parseFlags(lq *listQuery, q url.Values) error {
	if v := q.Get("os_hidden"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errs.E(errs.Invalid, "Invalid value '%s' for 'os_hidden' filter. Valid values are 'true' or 'false'.", v)
		}
		lq.hidden = b
	}
	if v := q.Get("protected"); v != "" {
		if v != "true" && v != "false" {
			return errs.E(errs.Invalid, "Invalid value '%s' for 'protected' filter. Valid values are 'true' or 'false'.", v)
		}
		b := v == "true"
		lq.protected = &b
	}
	return nil
}

// parseColumns reads the equality filters; "in:a,b" lists several values.
func parseColumns(lq *listQuery, q url.Values) error {
	for _, col := range []string{"name", "status", "owner", "disk_format", "container_format", "id", "checksum", "os_hash_value"} {
		v := q.Get(col)
		if v == "" {
			continue
		}
		f := columnFilter{col: col, values: []string{v}}
		if list, ok := strings.CutPrefix(v, "in:"); ok {
			f.values = strings.Split(list, ",")
			for i, x := range f.values {
				f.values[i] = strings.Trim(x, `"`)
			}
		}
		lq.columns = append(lq.columns, f)
	}
	return nil
}

func parseSizes(lq *listQuery, q url.Values) error {
	for _, b := range []struct{ p, op string }{{"size_min", ">="}, {"size_max", "<="}, {"size", "="}} {
		if v := q.Get(b.p); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return errs.E(errs.Invalid, "Invalid value for %s: %s", b.p, v)
			}
			lq.ranges = append(lq.ranges, rangeFilter{"size", b.op, n})
		}
	}
	return nil
}

// parseTimes reads created_at / updated_at filters ("gte:2026-01-01T00:00:00Z").
func parseTimes(lq *listQuery, q url.Values) error {
	ops := map[string]string{"gte": ">=", "lte": "<=", "gt": ">", "lt": "<", "eq": "=", "neq": "<>"}
	for _, col := range []string{"created_at", "updated_at"} {
		for _, v := range q[col] {
			op, val, ok := strings.Cut(v, ":")
			sqlOp := ops[op]
			if !ok || sqlOp == "" {
				val, sqlOp = v, "="
			}
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				return errs.E(errs.Invalid, "Invalid time format for %s.", col)
			}
			ts := db.Timestamp{Time: t}
			if sqlOp == ">" || sqlOp == "<=" {
				// stored values have microseconds; the filter has seconds
				ts = db.Timestamp{Time: t.Add(time.Second - time.Microsecond)}
			}
			lq.ranges = append(lq.ranges, rangeFilter{col, sqlOp, ts})
		}
	}
	return nil
}

// propertyFilters are the parameters that name custom properties.
func propertyFilters(q url.Values) [][2]string {
	var out [][2]string
	for k, vs := range q {
		if !slices.Contains(listParams, k) {
			out = append(out, [2]string{k, vs[0]})
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

func (s *Service) list(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	ctx := r.Context()
	if err := readable(c, "get_images"); err != nil {
		return err
	}
	lq, err := parseList(r.URL.Query())
	if err != nil {
		return err
	}
	var marker *Image
	if lq.marker != "" {
		if marker, err = s.getVisible(ctx, c, lq.marker); err != nil {
			if errs.Is(err, errs.NotFound) {
				err = errs.E(errs.Invalid, "No image found with ID %s", lq.marker)
			}
			return err
		}
	}
	ims, err := listImages(ctx, s.deps.DB, c, lq, marker)
	if err != nil {
		return err
	}
	firstURL := "/v2/images"
	if enc := lq.links.Encode(); enc != "" {
		firstURL += "?" + enc
	}
	buf := getBuffer()
	defer putBuffer(buf)
	b := append((*buf)[:0], `{"images":[`...)
	for i, im := range ims {
		if i > 0 {
			b = append(b, ',')
		}
		b = s.appendView(b, c, im)
	}
	b = appendString(append(b, `],"first":`...), firstURL)
	b = append(b, `,"schema":"/v2/schemas/images"`...)
	if lq.limit > 0 && len(ims) == lq.limit {
		next := url.Values{}
		for k, v := range lq.links {
			next[k] = v
		}
		next.Set("marker", ims[len(ims)-1].ID)
		b = appendString(append(b, `,"next":`...), "/v2/images?"+next.Encode())
	}
	*buf = append(b, '}')
	writeBody(w, http.StatusOK, *buf)
	return nil
}
