package volume

// Persistence of list pages: the keyset paging the volume and snapshot
// lists share.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// listPage is where a list page (of volumes or snapshots) starts and how
// long it is.
type listPage struct {
	SortKey  string // a key of the list's sort columns
	SortDesc bool
	// Marker is the id of the last row of the previous page, or "".
	Marker string
	Offset int
	Limit  int
}

// keyset pages a list by (col, id): the rows after the marker's in the
// page's order, found by an index seek, so a page costs O(offset+limit)
// rows however many match.
type keyset struct {
	table, alias string // "volumes", "v": the table the query selects from
	col          string // the sort expression, over alias
}

// page completes a list query: sel (SELECT ... FROM, up to the WHERE)
// with where (" WHERE ..." or "") and its args, the seek past p.Marker,
// the order and LIMIT/OFFSET of p. It asks for one row more than p.Limit,
// which trimPage takes off to tell that more rows follow.
func (k keyset) page(ctx context.Context, q db.Querier, sel, where string, args []any, p listPage) (string, []any, error) {
	id := k.alias + ".id"
	cmp, dir := ">", "ASC"
	if p.SortDesc {
		cmp, dir = "<", "DESC"
	}
	if p.Marker != "" {
		var key any
		if err := q.QueryRowContext(ctx, `SELECT `+k.col+` FROM `+k.table+` `+k.alias+` WHERE `+id+` = ?`, p.Marker).Scan(&key); err != nil {
			return "", nil, err
		}
		// A row-value comparison lets both engines seek the (project,
		// sort key, id) index instead of scanning up to the marker.
		seek := "(" + k.col + ", " + id + ") " + cmp + " (?, ?)"
		if where == "" {
			where = " WHERE " + seek
		} else {
			where += " AND " + seek
		}
		args = append(args, key, p.Marker)
	}
	query := sel + where + ` ORDER BY ` + k.col + ` ` + dir + `, ` + id + ` ` + dir + ` LIMIT ? OFFSET ?`
	return query, append(args, p.Limit+1, p.Offset), nil
}

// pageRows reads one keyset-paged page of rows, scanned by scan: the query
// of k.page. more reports that further rows follow. A marker that names
// no row is sql.ErrNoRows.
func pageRows[T any](ctx context.Context, q db.Querier, k keyset, sel, where string, args []any, p listPage,
	scan func(db.Row) (T, error)) (rows []T, more bool, err error) {
	query, args, err := k.page(ctx, q, sel, where, args, p)
	if err != nil {
		return nil, false, err
	}
	rows, err = db.QueryRows(ctx, q, scan, query, args...)
	if err != nil {
		return nil, false, err
	}
	return trimPage(rows, p.Limit)
}

// trimPage cuts the extra row keyset.page asked for; more reports that it
// was there.
func trimPage[T any](rows []T, limit int) ([]T, bool, error) {
	if len(rows) > limit {
		return rows[:limit], true, nil
	}
	return rows, false, nil
}
