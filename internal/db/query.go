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
