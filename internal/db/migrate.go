package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// Migration files live in migrations/, one numbering range per owner so that
// services can add tables independently:
//
//	00001-00999 foundation   01000-01999 identity   02000-02999 image
//	03000-03999 volume       04000-04999 tasks
//
//go:embed migrations/*.sql
var migrations embed.FS

func (db *DB) provider() (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	if db.Postgres() {
		dialect = goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	// Out-of-order: a later release may add a migration in a lower range.
	return goose.NewProvider(dialect, db.sql, sub, goose.WithAllowOutofOrder(true))
}

// Migrate applies every pending migration.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating %s database: %w", db.Engine, err)
	}
	return nil
}

// MigrationStatus is one migration and whether it has been applied.
type MigrationStatus struct {
	Version int64
	Name    string
	Applied bool
}

// Status lists every known migration with its state.
func (db *DB) Status(ctx context.Context) ([]MigrationStatus, error) {
	p, err := db.provider()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{Version: s.Source.Version, Name: s.Source.Path,
			Applied: s.State == goose.StateApplied})
	}
	return out, nil
}

// CheckCurrent returns an error naming `ashlar db migrate` when any
// migration is pending.
func (db *DB) CheckCurrent(ctx context.Context) error {
	st, err := db.Status(ctx)
	if err != nil {
		return err
	}
	pending := 0
	for _, s := range st {
		if !s.Applied {
			pending++
		}
	}
	if pending > 0 {
		return fmt.Errorf("the %s schema is behind: %d migration(s) pending; run `ashlar db migrate` first", db.Engine, pending)
	}
	return nil
}

// MigrateTo applies the pending migrations up to and including version:
// tests use it to build the schema of an older release.
func (db *DB) MigrateTo(ctx context.Context, version int64) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return fmt.Errorf("migrating %s database to %d: %w", db.Engine, version, err)
	}
	return nil
}
