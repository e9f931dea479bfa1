package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

func TestRebind(t *testing.T) {
	pg := &db.DB{Engine: "postgres"}
	lite := &db.DB{Engine: "sqlite"}
	tests := []struct{ in, pg, lite string }{
		{"SELECT 1", "SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2", "a = ? AND b = ?"},
		{"a = '?' AND b = ?", "a = '?' AND b = $1", "a = '?' AND b = ?"},
	}
	for _, tt := range tests {
		if got := pg.Rebind(tt.in); got != tt.pg {
			t.Errorf("pg Rebind(%q) = %q, want %q", tt.in, got, tt.pg)
		}
		if got := lite.Rebind(tt.in); got != tt.lite {
			t.Errorf("sqlite Rebind(%q) = %q, want %q", tt.in, got, tt.lite)
		}
	}
}

func TestMigrateStatusAndRoundTrip(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if err := d.CheckCurrent(ctx); err != nil {
			t.Fatalf("CheckCurrent after Migrate: %v", err)
		}
		st, err := d.Status(ctx)
		if err != nil || len(st) == 0 {
			t.Fatalf("Status = %v, %v", st, err)
		}
		// Migrate is idempotent.
		if err := d.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		now := db.Now()
		err = d.InTx(ctx, func(tx *db.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO ashlar_meta (name, value) VALUES (?, ?)", "t", now)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var got db.Timestamp
		if err := d.QueryRowContext(ctx, "SELECT value FROM ashlar_meta WHERE name = ?", "t").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Time.Equal(now.Time) {
			t.Errorf("timestamp round trip: got %v want %v", got, now)
		}
		_, err = d.ExecContext(ctx, "INSERT INTO ashlar_meta (name, value) VALUES (?, ?)", "t", "x")
		if !db.IsUniqueViolation(err) {
			t.Errorf("duplicate insert: got %v, want a unique violation", err)
		}
		// A failed transaction leaves nothing behind.
		boom := errors.New("boom")
		err = d.InTx(ctx, func(tx *db.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO ashlar_meta (name, value) VALUES (?, ?)", "u", "1"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx error = %v", err)
		}
		if err := d.QueryRowContext(ctx, "SELECT value FROM ashlar_meta WHERE name = ?", "u").Scan(new(string)); !db.IsNoRows(err) {
			t.Errorf("rolled-back row is visible: %v", err)
		}
	})
}

func TestTimestampOrderIsTextOrder(t *testing.T) {
	a := db.Timestamp{time.Date(2026, 1, 2, 3, 4, 5, 100000, time.UTC)}
	b := db.Timestamp{time.Date(2026, 1, 2, 3, 4, 5, 900000000, time.UTC)}
	va, _ := a.Value()
	vb, _ := b.Value()
	if !(va.(string) < vb.(string)) {
		t.Errorf("%v !< %v", va, vb)
	}
}

func TestPendingMigrationIsReported(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		// Pretend the newest migration was never applied.
		st, _ := d.Status(ctx)
		last := st[len(st)-1].Version
		if _, err := d.ExecContext(ctx, "DELETE FROM goose_db_version WHERE version_id = ?", last); err != nil {
			t.Fatal(err)
		}
		err := d.CheckCurrent(ctx)
		if err == nil || !contains(err.Error(), "ashlar db migrate") {
			t.Fatalf("CheckCurrent = %v, want an error naming ashlar db migrate", err)
		}
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestInReadTxSnapshot: a read transaction keeps seeing the database as it
// was at its first read while a writer commits beside it, on both engines,
// and does not block that writer; outside it, the next statement sees the
// commit. (A reader of an image's row and then its locations must not see
// a half-done import.)
func TestInReadTxSnapshot(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if _, err := d.ExecContext(ctx, "INSERT INTO ashlar_meta (name, value) VALUES (?, ?)", "snap", "old"); err != nil {
			t.Fatal(err)
		}
		read := func(q db.Querier) string {
			var v string
			if err := q.QueryRowContext(ctx, "SELECT value FROM ashlar_meta WHERE name = ?", "snap").Scan(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		var first, second string
		err := d.InReadTx(ctx, func(tx *db.Tx) error {
			first = read(tx)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := d.InTx(wctx, func(w *db.Tx) error {
				_, err := w.ExecContext(wctx, "UPDATE ashlar_meta SET value = ? WHERE name = ?", "new", "snap")
				return err
			}); err != nil {
				return err // a writer blocked by the reader would time out here
			}
			second = read(tx)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if first != "old" || second != "old" {
			t.Errorf("inside the read transaction: %q then %q, want old both times", first, second)
		}
		if got := read(d); got != "new" {
			t.Errorf("after it: %q, want new", got)
		}
	})
}

// TestSnapshot: given the pool, Snapshot reads inside a transaction; given
// a transaction, it reads in that one.
func TestSnapshot(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		inTx := func(q db.Querier) (bool, error) { _, ok := q.(*db.Tx); return ok, nil }
		if got, err := db.Snapshot(ctx, d, inTx); err != nil || !got {
			t.Errorf("Snapshot(pool) read in a transaction = %v, %v; want true", got, err)
		}
		err := d.InTx(ctx, func(tx *db.Tx) error {
			got, err := db.Snapshot(ctx, tx, func(q db.Querier) (bool, error) { return q == db.Querier(tx), nil })
			if err != nil || !got {
				t.Errorf("Snapshot(tx) did not read in that transaction: %v, %v", got, err)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// Two processes (here: two handles) on one SQLite file: the second is
// refused while the first holds the node lock, and admitted after.
func TestLockSingleNode(t *testing.T) {
	ctx := context.Background()
	conn := dbtest.Connection(t, "sqlite")
	first, err := db.Open(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.LockSingleNode(); err != nil {
		t.Fatal(err)
	}
	second, err := db.Open(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.LockSingleNode(); err == nil || !strings.Contains(err.Error(), "in use by another Ashlar process") {
		t.Fatalf("second node on one SQLite file: %v", err)
	}
	first.Close()
	if err := second.LockSingleNode(); err != nil {
		t.Fatalf("after the first node stopped: %v", err)
	}
}

// upgraded returns a fresh database of engine at schema version, holding
// what stmts insert, migrated to the current schema: what an upgrade from
// the release at version finds.
func upgraded(t *testing.T, engine string, version int64, stmts ...string) *db.DB {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, dbtest.Connection(t, engine))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.MigrateTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := d.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// Volume work recorded by a release before the task system is carried
// over as pending tasks when the schema is migrated.
func TestVolumeWorkBecomesTasks(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(engine, func(t *testing.T) {
			d := upgraded(t, engine, 3001, `INSERT INTO volume_work (id, volume_id, kind, payload, attempts, request_id, created_at)
VALUES ('w1', 'v1', 'upload', '{"image_id":"i1"}', 2, 'req-1', '2026-01-02T03:04:05.000000Z')`)
			var kind, subject, payload, state, req string
			var attempts int
			if err := d.QueryRowContext(context.Background(), `SELECT kind, subject, payload, state, attempts, request_id FROM tasks WHERE id = 'w1'`).
				Scan(&kind, &subject, &payload, &state, &attempts, &req); err != nil {
				t.Fatal(err)
			}
			if kind != "volume.upload" || subject != "v1" || payload != `{"image_id":"i1"}` || state != "pending" || attempts != 2 || req != "req-1" {
				t.Fatalf("carried over as %s %s %s %s %d %s", kind, subject, payload, state, attempts, req)
			}
		})
	}
}

// What the image service's old recovery recorded is carried over as
// tasks whose lease has run out: uploads to roll back, imports to give up.
func TestImageRecoveryBecomesTasks(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(engine, func(t *testing.T) {
			d := upgraded(t, engine, 4001,
				`INSERT INTO image_pending_objects (image_id, store, object_key, heartbeat_at, node) VALUES ('i1', 'fast', 'i1', '2026-01-02T03:04:05.000000Z', 'http://x')`,
				`INSERT INTO image_pending_objects (image_id, store, object_key, heartbeat_at, node) VALUES ('i2', 'os_glance_staging_store', 'i2', '2026-01-02T03:04:05.000000Z', 'http://x')`,
				`INSERT INTO image_tasks (id, image_id, type, status, owner, user_id, request_id, input, message, created_at, updated_at)
VALUES ('t1', 'i3', 'api_image_import', 'processing', 'p', 'u', 'r', '{}', '', '2026-01-02T03:04:05.000000Z', '2026-01-02T03:04:05.000000Z')`,
				`INSERT INTO image_tasks (id, image_id, type, status, owner, user_id, request_id, input, message, created_at, updated_at)
VALUES ('t2', 'i4', 'api_image_import', 'success', 'p', 'u', 'r', '{}', '', '2026-01-02T03:04:05.000000Z', '2026-01-02T03:04:05.000000Z')`,
			)
			ctx := context.Background()
			got, err := db.QueryRows(ctx, d, func(r db.Row) (string, error) {
				var kind, subject, payload, state, until string
				err := r.Scan(&kind, &subject, &payload, &state, &until)
				if until > "2000" {
					t.Errorf("%s of %s: lease until %s, want run out", kind, subject, until)
				}
				return kind + " " + subject + " " + payload + " " + state, err
			}, `SELECT kind, subject, payload, state, lease_until FROM tasks ORDER BY subject`)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				`image.upload i1 {"store":"fast","key":"i1","during":"saving"} running`,
				`image.upload i2 {"store":"os_glance_staging_store","key":"i2","during":"uploading"} running`,
				`image.import i3 {"task_id":"t1"} running`,
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("tasks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if _, err := d.ExecContext(ctx, `SELECT 1 FROM image_pending_objects`); err == nil {
				t.Error("image_pending_objects still exists")
			}
		})
	}
}

func TestQueryRowsAndChanged(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		for _, name := range []string{"q1", "q2", "q3"} {
			if _, err := d.ExecContext(ctx, "INSERT INTO ashlar_meta (name, value) VALUES (?, ?)", name, "v"+name); err != nil {
				t.Fatal(err)
			}
		}
		scan := func(r db.Row) (string, error) {
			var name, value string
			err := r.Scan(&name, &value)
			return name + "=" + value, err
		}
		got, err := db.QueryRows(ctx, d, scan, "SELECT name, value FROM ashlar_meta WHERE name IN ("+db.Placeholders(2)+") ORDER BY name", "q3", "q1")
		if err != nil || strings.Join(got, " ") != "q1=vq1 q3=vq3" {
			t.Errorf("QueryRows = %q, %v", got, err)
		}
		if got, err := db.QueryRows(ctx, d, scan, "SELECT name, value FROM ashlar_meta WHERE name = ?", "none"); err != nil || got == nil || len(got) != 0 {
			t.Errorf("QueryRows of no rows = %q, %v", got, err)
		}
		if _, err := db.QueryRows(ctx, d, scan, "SELECT name FROM ashlar_meta"); err == nil {
			t.Error("QueryRows: a failing scan is no error")
		}
		m, err := db.QueryMap(ctx, d, db.Pair[string, string], "SELECT name, value FROM ashlar_meta WHERE name IN ("+db.Placeholders(2)+")", "q3", "q1")
		if err != nil || len(m) != 2 || m["q1"] != "vq1" || m["q3"] != "vq3" {
			t.Errorf("QueryMap = %v, %v", m, err)
		}
		if _, err := db.QueryMap(ctx, d, db.Pair[string, string], "SELECT name FROM ashlar_meta"); err == nil {
			t.Error("QueryMap: a failing scan is no error")
		}
		for _, tt := range []struct {
			name string
			want bool
		}{{"q2", true}, {"q2", false}, {"none", false}} {
			if ok, err := db.Changed(ctx, d, "DELETE FROM ashlar_meta WHERE name = ?", tt.name); err != nil || ok != tt.want {
				t.Errorf("Changed(delete %s) = %v, %v; want %v", tt.name, ok, err, tt.want)
			}
		}
	})
}
