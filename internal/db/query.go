package db

import (
	"context"
	"strings"
)

// Row is what a query's single row and its rows have in common, so one
// scan function serves QueryRowContext and QueryRows.
type Row interface{ Scan(dest ...any) error }

// EachRow runs query through q and calls fn with each row in turn,
// stopping at fn's first error.
func EachRow(ctx context.Context, q Querier, fn func(Row) error, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// QueryRows runs query through q and returns every row as scan reads it;
// no rows is an empty slice, not nil, so that it renders as a JSON [].
func QueryRows[T any](ctx context.Context, q Querier, scan func(Row) (T, error), query string, args ...any) ([]T, error) {
	out := []T{}
	err := EachRow(ctx, q, func(r Row) error {
		v, err := scan(r)
		out = append(out, v)
		return err
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QueryMap runs query through q and returns its rows as scan reads each
// into a key and a value (a later row replaces an earlier one's value).
// With an error, the map holds the rows read before it.
func QueryMap[K comparable, V any](ctx context.Context, q Querier, scan func(Row) (K, V, error), query string, args ...any) (map[K]V, error) {
	out := map[K]V{}
	err := EachRow(ctx, q, func(r Row) error {
		k, v, err := scan(r)
		if err != nil {
			return err
		}
		out[k] = v
		return nil
	}, query, args...)
	return out, err
}

// Pair is the scan function of QueryMap for rows of two columns, the key
// and the value.
func Pair[K comparable, V any](r Row) (k K, v V, err error) {
	err = r.Scan(&k, &v)
	return k, v, err
}

// Changed runs a statement through q and reports whether it changed any
// row: for a conditional update or delete, whether its condition held.
func Changed(ctx context.Context, q Querier, query string, args ...any) (bool, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Placeholders is n comma-separated `?`, for an IN (...) list.
func Placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
