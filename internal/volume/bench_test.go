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
	benchListPage(b, "volumes", func(ctx context.Context, tx *db.Tx, typeID, _ string, i int, id string) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO volumes (id, project_id, user_id, name, size, status, type_id,
			availability_zone, created_at) VALUES (?, ?, 'u', ?, 1, 'available', ?, 'nova', ?)`,
			id, projA, fmt.Sprintf("v%d", i), typeID, db.Now())
		return err
	})
}

// BenchmarkListSnapshotsPage is BenchmarkListVolumesPage for snapshots
// (of one volume).
func BenchmarkListSnapshotsPage(b *testing.B) {
	benchListPage(b, "snapshots", func(ctx context.Context, tx *db.Tx, typeID, volumeID string, i int, id string) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO snapshots (id, volume_id, project_id, user_id, name, status,
			volume_size, volume_type_id, created_at) VALUES (?, ?, ?, 'u', ?, 'available', 1, ?, ?)`,
			id, volumeID, projA, fmt.Sprintf("s%d", i), typeID, db.Now())
		return err
	})
}

// benchListPage fills projA with n rows of collection through insert
// (which also gets the default type and a volume to hang rows on) and
// times GET <collection>/detail?limit=50 from the middle.
func benchListPage(b *testing.B, collection string, insert func(ctx context.Context, tx *db.Tx, typeID, volumeID string, i int, id string) error) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("%s=%d", collection, n), func(b *testing.B) {
			d := dbtest.Open(b, "sqlite")
			e := newBenchEnv(b, d)
			ctx := context.Background()
			var typeID string
			if err := d.QueryRowContext(ctx, `SELECT id FROM volume_types LIMIT 1`).Scan(&typeID); err != nil {
				b.Fatal(err)
			}
			volumeID := uuid.NewString()
			var marker string
			err := d.InTx(ctx, func(tx *db.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO volumes (id, project_id, user_id, size, status, type_id,
					availability_zone, created_at) VALUES (?, 'bench-owner', 'u', 1, 'available', ?, 'nova', ?)`,
					volumeID, typeID, db.Now()); err != nil {
					return err
				}
				for i := range n {
					id := uuid.NewString()
					if i == n/2 {
						marker = id
					}
					if err := insert(ctx, tx, typeID, volumeID, i, id); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			path := "/v3/" + projA + "/" + collection + "/detail?limit=50&marker=" + marker
			c := apitest.Client{T: b, Handler: e}
			b.ResetTimer()
			for b.Loop() {
				c.Must(200, c.Do("member", "GET", path, nil))
			}
		})
	}
}
