package volume

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// BenchmarkListVolumesPage lists one 50-volume detail page from the middle
// of projects holding 1k and 100k volumes: keyset paging keeps the cost
// per page flat (compare the two sub-benchmarks' ns/op).
func BenchmarkListVolumesPage(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("volumes=%d", n), func(b *testing.B) {
			d := dbtest.Open(b, "sqlite")
			e := newBenchEnv(b, d)
			ctx := context.Background()
			var typeID string
			if err := d.QueryRowContext(ctx, `SELECT id FROM volume_types LIMIT 1`).Scan(&typeID); err != nil {
				b.Fatal(err)
			}
			var marker string
			err := d.InTx(ctx, func(tx *db.Tx) error {
				for i := range n {
					id := uuid.NewString()
					if i == n/2 {
						marker = id
					}
					if _, err := tx.ExecContext(ctx, `INSERT INTO volumes (id, project_id, user_id, name, size, status, type_id,
						availability_zone, created_at) VALUES (?, ?, 'u', ?, 1, 'available', ?, 'nova', ?)`,
						id, projA, fmt.Sprintf("v%d", i), typeID, db.Now()); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			path := "/v3/" + projA + "/volumes/detail?limit=50&marker=" + marker
			c := apitest.Client{T: b, Handler: e}
			b.ResetTimer()
			for b.Loop() {
				c.Must(200, c.Do("member", "GET", path, nil))
			}
		})
	}
}
