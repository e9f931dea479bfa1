package volume

// Helpers of the persistence files (persist_*.go), which hold every SQL
// statement of the service except the work queue's (work.go).

import (
	"context"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// placeholders returns n comma-separated `?`.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// execAffected runs a statement and reports whether it changed any row.
func execAffected(ctx context.Context, q db.Querier, query string, args ...any) (bool, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
