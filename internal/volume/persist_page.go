package volume

// Keyset paging, shared by the lists of volumes and transfers.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// keyset pages a list ordered by a sort expression, then by id: a page
// after a marker seeks past the marker's (sort key, id) with a row-value
// comparison, which both engines answer from a (sort key, id) index, so a
// page costs O(offset+limit) rows however many match.
type keyset struct {
	Col, IDCol string
	Desc       bool
	// After is the marker's sort key and id; nil on the first page.
	After         []any
	Offset, Limit int
}

// markerKey reads a marker row's sort key and id with query, which
// selects the sort expression of the row whose id is its first argument
// (then more, for further conditions); notFound when there is no such row.
func markerKey(ctx context.Context, q db.Querier, notFound error, query, marker string, more ...any) ([]any, error) {
	var key any
	err := q.QueryRowContext(ctx, query, append([]any{marker}, more...)...).Scan(&key)
	if db.IsNoRows(err) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	return []any{key, marker}, nil
}

// seek adds the condition of rows after the marker to a WHERE clause
// ("" when there is none yet).
func (k keyset) seek(where string, args []any) (string, []any) {
	if k.After == nil {
		return where, args
	}
	cmp := ">"
	if k.Desc {
		cmp = "<"
	}
	cond := "(" + k.Col + ", " + k.IDCol + ") " + cmp + " (?, ?)"
	if where == "" {
		where = " WHERE " + cond
	} else {
		where += " AND " + cond
	}
	return where, append(args, k.After...)
}

// tail is the ORDER BY and LIMIT of the page, one row longer than it so
// the caller learns whether more follow.
func (k keyset) tail() (string, []any) {
	dir := " ASC"
	if k.Desc {
		dir = " DESC"
	}
	return " ORDER BY " + k.Col + dir + ", " + k.IDCol + dir + " LIMIT ? OFFSET ?", []any{k.Limit + 1, k.Offset}
}
