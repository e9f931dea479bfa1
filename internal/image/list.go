package image

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Paging limits (Glance's limit_param_default and api_limit_max).
const (
	defaultLimit = 25
	maxLimit     = 1000
)

var sortKeys = []string{"name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at"}

// sortExpr is the SQL expression for a sort key; NULLs become a value that
// sorts first ascending on both engines so keyset paging stays exact.
func sortExpr(k string) string {
	switch k {
	case "name", "container_format", "disk_format":
		return "COALESCE(" + k + ", '')"
	case "size":
		return "COALESCE(size, -1)"
	}
	return k
}

type sortSpec struct {
	key string
	asc bool
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

// listParams are the query parameters that are not property filters.
var listParams = []string{"limit", "marker", "sort", "sort_key", "sort_dir", "visibility", "member_status",
	"name", "status", "owner", "tag", "size_min", "size_max", "size", "created_at", "updated_at", "os_hidden",
	"protected", "disk_format", "container_format", "id", "checksum", "os_hash_value"}

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	ctx := r.Context()
	if err := readable(c, "get_images"); err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	limit := defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.fail(w, r, errs.E(errs.Invalid, "limit param must be an integer"))
			return
		}
		if n < 0 {
			s.fail(w, r, errs.E(errs.Invalid, "limit param must be positive"))
			return
		}
		limit = min(n, maxLimit)
	}
	specs, err := parseSort(q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var where []string
	var args []any
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }

	memberStatus := q.Get("member_status")
	if memberStatus == "" {
		memberStatus = "accepted"
	}
	if !slices.Contains([]string{"accepted", "pending", "rejected", "all"}, memberStatus) {
		s.fail(w, r, errs.E(errs.Invalid, "Invalid status: %s", memberStatus))
		return
	}
	memberCond := "EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id AND m.member = ?"
	memberArgs := []any{c.ProjectID}
	if memberStatus != "all" {
		memberCond += " AND m.status = ?"
		memberArgs = append(memberArgs, memberStatus)
	}
	memberCond += ")"
	vis := q.Get("visibility")
	switch vis {
	case "", "all":
		if !c.IsAdmin() {
			cond := "(owner = ? OR visibility = 'public' OR (visibility = 'shared' AND " + memberCond + ")"
			if vis == "all" {
				cond += " OR visibility = 'community'"
			}
			add(cond+")", append([]any{c.ProjectID}, memberArgs...)...)
		} else if vis == "" && q.Has("member_status") {
			add("(visibility <> 'shared' OR owner = ? OR "+memberCond+")", append([]any{c.ProjectID}, memberArgs...)...)
		}
	case "public", "community":
		add("visibility = ?", vis)
	case "private":
		if c.IsAdmin() {
			add("visibility = 'private'")
		} else {
			add("visibility = 'private' AND owner = ?", c.ProjectID)
		}
	case "shared":
		if c.IsAdmin() && !q.Has("member_status") {
			add("visibility = 'shared'")
		} else {
			add("visibility = 'shared' AND (owner = ? OR "+memberCond+")", append([]any{c.ProjectID}, memberArgs...)...)
		}
	default:
		s.fail(w, r, errs.E(errs.Invalid, "Invalid visibility value: %s", vis))
		return
	}
	hidden := false
	if v := q.Get("os_hidden"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, errs.E(errs.Invalid, "Invalid value '%s' for 'os_hidden' filter. Valid values are 'true' or 'false'.", v))
			return
		}
		hidden = b
	}
	add("os_hidden = ?", hidden)
	if v := q.Get("protected"); v != "" {
		if v != "true" && v != "false" {
			s.fail(w, r, errs.E(errs.Invalid, "Invalid value '%s' for 'protected' filter. Valid values are 'true' or 'false'.", v))
			return
		}
		add("protected = ?", v == "true")
	}
	for _, col := range []string{"name", "status", "owner", "disk_format", "container_format", "id", "checksum", "os_hash_value"} {
		v := q.Get(col)
		if v == "" {
			continue
		}
		if list, ok := strings.CutPrefix(v, "in:"); ok {
			vals := strings.Split(list, ",")
			ph := strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",")
			a := make([]any, len(vals))
			for i, x := range vals {
				a[i] = strings.Trim(x, `"`)
			}
			add(col+" IN ("+ph+")", a...)
		} else {
			add(col+" = ?", v)
		}
	}
	for _, t := range q["tag"] {
		add("EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = images.id AND t.tag = ?)", t)
	}
	for _, b := range []struct{ p, op string }{{"size_min", ">="}, {"size_max", "<="}, {"size", "="}} {
		if v := q.Get(b.p); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				s.fail(w, r, errs.E(errs.Invalid, "Invalid value for %s: %s", b.p, v))
				return
			}
			add("size "+b.op+" ?", n)
		}
	}
	for _, col := range []string{"created_at", "updated_at"} {
		for _, v := range q[col] {
			op, val, ok := strings.Cut(v, ":")
			sqlOp := map[string]string{"gte": ">=", "lte": "<=", "gt": ">", "lt": "<", "eq": "=", "neq": "<>"}[op]
			if !ok || sqlOp == "" {
				op, val, sqlOp = "eq", v, "="
			}
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				s.fail(w, r, errs.E(errs.Invalid, "Invalid time format for %s.", col))
				return
			}
			ts := db.Timestamp{Time: t}
			if sqlOp == ">" || sqlOp == "<=" {
				// stored values have microseconds; the filter has seconds
				ts = db.Timestamp{Time: t.Add(time.Second - time.Microsecond)}
			}
			add(col+" "+sqlOp+" ?", ts)
		}
	}
	for k, vs := range q {
		if slices.Contains(listParams, k) {
			continue
		}
		add("EXISTS (SELECT 1 FROM image_properties p WHERE p.image_id = images.id AND p.name = ? AND p.value = ?)", k, vs[0])
	}
	if m := q.Get("marker"); m != "" {
		mim, err := loadImage(ctx, s.deps.DB, m)
		if err == nil {
			var ok bool
			ok, err = s.visible(ctx, c, mim)
			if err == nil && !ok {
				err = errs.E(errs.NotFound, "")
			}
		}
		if errs.Is(err, errs.NotFound) {
			s.fail(w, r, errs.E(errs.Invalid, "No image found with ID %s", m))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		cond, a := keyset(specs, mim)
		add(cond, a...)
	}
	var order []string
	for _, sp := range specs {
		d := " DESC"
		if sp.asc {
			d = " ASC"
		}
		order = append(order, sortExpr(sp.key)+d)
	}
	query := "SELECT " + imageCols + " FROM images"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY " + strings.Join(order, ", ") + " LIMIT ?"
	args = append(args, limit)
	var ims []*Image
	err = s.deps.DB.InReadTx(ctx, func(tx *db.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			im, err := scanImage(rows)
			if err != nil {
				return err
			}
			ims = append(ims, im)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()                // before the next query on the transaction's one connection
		return attach(ctx, tx, ims) // the page and what is attached, from one snapshot
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views := make([]object, 0, len(ims))
	for _, im := range ims {
		views = append(views, s.view(im))
	}
	first := url.Values{}
	for k, v := range q {
		if k != "marker" {
			first[k] = v
		}
	}
	firstURL := "/v2/images"
	if enc := first.Encode(); enc != "" {
		firstURL += "?" + enc
	}
	body := object{{"images", views}, {"first", firstURL}, {"schema", "/v2/schemas/images"}}
	if limit > 0 && len(ims) == limit {
		next := url.Values{}
		for k, v := range first {
			next[k] = v
		}
		next.Set("marker", ims[len(ims)-1].ID)
		body = append(body, kv{"next", "/v2/images?" + next.Encode()})
	}
	api.WriteJSON(w, http.StatusOK, body)
}

// keyset returns the condition selecting rows strictly after the marker
// in the sort order: (k1 after v1) OR (k1 = v1 AND k2 after v2) ...
func keyset(specs []sortSpec, m *Image) (string, []any) {
	val := func(k string) any {
		switch k {
		case "name":
			return deref(m.Name)
		case "status":
			return m.Status
		case "container_format":
			return deref(m.ContainerFormat)
		case "disk_format":
			return deref(m.DiskFormat)
		case "size":
			if m.Size == nil {
				return int64(-1)
			}
			return *m.Size
		case "id":
			return m.ID
		case "created_at":
			return m.CreatedAt
		case "updated_at":
			return m.UpdatedAt
		}
		return nil
	}
	var ors []string
	var args []any
	for i, sp := range specs {
		var ands []string
		for _, prev := range specs[:i] {
			ands = append(ands, sortExpr(prev.key)+" = ?")
			args = append(args, val(prev.key))
		}
		op := " < ?"
		if sp.asc {
			op = " > ?"
		}
		ands = append(ands, sortExpr(sp.key)+op)
		args = append(args, val(sp.key))
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", args
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
