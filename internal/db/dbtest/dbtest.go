// Package dbtest gives tests a fresh, migrated database on every engine.
//
// SQLite always runs. PostgreSQL runs when ASHLAR_TEST_POSTGRES_URL is set
// (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable); each
// test gets its own database, dropped afterwards. Without the variable the
// PostgreSQL tests skip, except under CI=true where that is a failure.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// EnvPostgres names the variable holding the PostgreSQL server URL.
const EnvPostgres = "ASHLAR_TEST_POSTGRES_URL"

// Engines are the subtest names ForEach uses.
var Engines = []string{"sqlite", "postgres"}

// ForEach runs fn once per engine as subtests named after the engine.
func ForEach(t *testing.T, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	for _, engine := range Engines {
		t.Run(engine, func(t *testing.T) {
			fn(t, Open(t, engine))
		})
	}
}

// Open returns a fresh migrated database of the given engine, closed (and
// for PostgreSQL dropped) when the test ends.
func Open(t testing.TB, engine string) *db.DB {
	t.Helper()
	conn := Connection(t, engine)
	ctx := context.Background()
	d, err := db.Open(ctx, conn)
	if err != nil {
		t.Fatalf("open %s: %v", engine, err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", engine, err)
	}
	return d
}

// Connection returns the connection URL of a fresh, empty database of the
// given engine (not migrated), for tests that start a whole server.
func Connection(t testing.TB, engine string) string {
	t.Helper()
	switch engine {
	case "sqlite":
		return "sqlite:///" + filepath.Join(t.TempDir(), "test.db")
	case "postgres":
		return postgresDatabase(t)
	}
	t.Fatalf("unknown engine %q", engine)
	return ""
}

// SkipOrFail skips the test with msg, or fails it when CI=true, where every
// real dependency must be present.
func SkipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing dependency is a failure)", msg)
	}
	t.Skip(msg)
}

func postgresDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		SkipOrFail(t, EnvPostgres+" is not set; skipping the PostgreSQL run "+
			"(e.g. "+EnvPostgres+"=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "ashlar_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		SkipOrFail(t, "postgres at "+base+" is not usable: "+err.Error())
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := a.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping %s: %v", name, err)
		}
	})
	return "postgresql://" + replaceDatabase(strings.TrimPrefix(strings.TrimPrefix(base, "postgresql://"), "postgres://"), name)
}

// replaceDatabase swaps the database name in "user@host:port/db?query".
func replaceDatabase(rest, name string) string {
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i:]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest + "/" + name + query
}
