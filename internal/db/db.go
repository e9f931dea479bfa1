// Package db opens Ashlar's metadata database (SQLite embedded, PostgreSQL in
// production) behind one database/sql code path, and runs its migrations.
//
// Queries are written once with `?` placeholders; DB and Tx rewrite them to
// `$n` for PostgreSQL. Portable SQL only: TEXT ids (UUIDs), TEXT timestamps
// through Timestamp, BOOLEAN, BIGINT, INSERT ... ON CONFLICT.
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// DB is a database handle that knows its engine.
type DB struct {
	sql *sql.DB
	// Engine is config.EngineSQLite or config.EnginePostgres.
	Engine string
	// path is the SQLite database file.
	path string
	lock io.Closer
}

// Open connects to the database named by an SQLAlchemy-style connection URL.
// It does not migrate; see Migrate and CheckCurrent.
func Open(ctx context.Context, connection string) (*DB, error) {
	engine, dsn, err := config.ParseConnection(connection)
	if err != nil {
		return nil, err
	}
	var sdb *sql.DB
	switch engine {
	case config.EngineSQLite:
		if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("creating database directory: %w", err)
			}
		}
		// WAL lets readers run beside the one writer; immediate write
		// transactions take the lock up front so they wait (busy_timeout)
		// instead of failing on lock upgrade.
		sdb, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)"+
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err == nil {
			sdb.SetMaxOpenConns(8)
		}
	case config.EnginePostgres:
		sdb, err = sql.Open("pgx", dsn)
		if err == nil {
			sdb.SetMaxOpenConns(20)
			sdb.SetConnMaxIdleTime(5 * time.Minute)
		}
	}
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sdb.PingContext(pctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("connecting to %s database: %w", engine, err)
	}
	d := &DB{sql: sdb, Engine: engine}
	if engine == config.EngineSQLite {
		d.path = dsn
	}
	return d, nil
}

// Close closes the pool and drops the process lock, if taken.
func (db *DB) Close() error {
	if db.lock != nil {
		db.lock.Close()
	}
	return db.sql.Close()
}

// LockSingleNode makes this process the only node on an SQLite database:
// it takes an exclusive lock on <file>.lock, held until Close, and fails
// with a clear error when another process holds it. SQLite is the embedded
// single-node database; the task system relies on this to take over a
// dead predecessor's work at start. PostgreSQL is shared by design and is
// not locked.
func (db *DB) LockSingleNode() error {
	if db.Postgres() || db.lock != nil {
		return nil
	}
	l, err := lockFile(db.path + ".lock")
	if err != nil {
		return fmt.Errorf("the SQLite database %s is in use by another Ashlar process (SQLite serves one node; "+
			"run several nodes on PostgreSQL): %w", db.path, err)
	}
	db.lock = l
	return nil
}

// SQL returns the underlying pool, for libraries that need *sql.DB.
func (db *DB) SQL() *sql.DB { return db.sql }

// Postgres reports whether the engine is PostgreSQL.
func (db *DB) Postgres() bool { return db.Engine == config.EnginePostgres }

// Rebind rewrites `?` placeholders for the engine. A `?` inside a quoted
// string literal is left alone.
func (db *DB) Rebind(q string) string {
	if !db.Postgres() || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n, inQuote := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
		case c == '?' && !inQuote:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ExecContext runs a statement.
func (db *DB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.sql.ExecContext(ctx, db.Rebind(q), values(args)...)
}

// QueryContext runs a query.
func (db *DB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.sql.QueryContext(ctx, db.Rebind(q), values(args)...)
}

// QueryRowContext runs a query returning at most one row.
func (db *DB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return db.sql.QueryRowContext(ctx, db.Rebind(q), values(args)...)
}

// values resolves driver.Valuer arguments up front: modernc's parameter
// checker refuses struct types even when they implement Valuer.
func values(args []any) []any {
	out := args
	for i, a := range args {
		if v, ok := a.(driver.Valuer); ok {
			if &out[0] == &args[0] {
				out = append([]any(nil), args...)
			}
			out[i], _ = v.Value()
		}
	}
	return out
}

// Tx is a transaction with the same placeholder rewriting as DB.
type Tx struct {
	tx *sql.Tx
	db *DB
}

// ExecContext runs a statement in the transaction.
func (t *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.db.Rebind(q), values(args)...)
}

// QueryContext runs a query in the transaction.
func (t *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.db.Rebind(q), values(args)...)
}

// QueryRowContext runs a single-row query in the transaction.
func (t *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.db.Rebind(q), values(args)...)
}

// Postgres reports whether the engine is PostgreSQL.
func (t *Tx) Postgres() bool { return t.db.Postgres() }

// Querier is what DB and Tx have in common, for code that runs in either.
type Querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	Postgres() bool
}

var (
	_ Querier = (*DB)(nil)
	_ Querier = (*Tx)(nil)
)

// InTx runs fn in a write transaction, committing when fn returns nil and
// rolling back otherwise. On SQLite the transaction is BEGIN IMMEDIATE.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(&Tx{tx: stx, db: db}); err != nil {
		_ = stx.Rollback()
		return err
	}
	return stx.Commit()
}

// InReadTx runs fn in a read-only transaction that sees one snapshot of the
// database throughout, so that a row and the rows that belong to it, read
// in several statements, are from the same moment: outside a transaction
// (and in PostgreSQL's default READ COMMITTED) every statement sees the
// latest commit, and a reader can see an image's old status beside its new
// locations. On PostgreSQL the transaction is REPEATABLE READ; on SQLite a
// deferred transaction, which in WAL mode keeps the snapshot of its first
// read and takes no write lock.
func (db *DB) InReadTx(ctx context.Context, fn func(tx *Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Postgres() {
		opts.Isolation = sql.LevelRepeatableRead
	}
	stx, err := db.sql.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = stx.Rollback() }() // read-only: nothing to keep
	return fn(&Tx{tx: stx, db: db})
}

// Snapshot runs read against q; when q is the pool rather than a
// transaction, inside InReadTx, so that a loader of several statements (a
// row, then what belongs to it) reads one moment of the database.
func Snapshot[T any](ctx context.Context, q Querier, read func(q Querier) (T, error)) (T, error) {
	pool, ok := q.(*DB)
	if !ok {
		return read(q)
	}
	var out T
	err := pool.InReadTx(ctx, func(tx *Tx) error {
		var err error
		out, err = read(tx)
		return err
	})
	return out, err
}

// IsUniqueViolation reports whether err is a unique-constraint failure on
// either engine, so callers can map it to a Conflict.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}

// ErrNoRows is sql.ErrNoRows, re-exported so callers need not import database/sql.
var ErrNoRows = sql.ErrNoRows

// IsNoRows reports whether err is sql.ErrNoRows.
func IsNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// TimeFormat is how Timestamp is stored: fixed width, UTC, so that text
// order is time order on both engines.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// Timestamp is a time stored as fixed-width UTC text. The zero value is NULL.
type Timestamp struct{ Time time.Time }

// IsZero reports whether t is unset.
func (t Timestamp) IsZero() bool { return t.Time.IsZero() }

// String formats t like the database stores it.
func (t Timestamp) String() string { return t.Time.UTC().Format(TimeFormat) }

// Now returns the current time truncated to what the database keeps.
func Now() Timestamp { return Timestamp{time.Now().UTC().Truncate(time.Microsecond)} }

// Value implements driver.Valuer.
func (t Timestamp) Value() (driver.Value, error) {
	if t.IsZero() {
		return nil, nil
	}
	return t.Time.UTC().Format(TimeFormat), nil
}

// Scan implements sql.Scanner.
func (t *Timestamp) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		t.Time = time.Time{}
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	case time.Time:
		t.Time = v.UTC()
		return nil
	}
	return fmt.Errorf("timestamp: cannot scan %T", src)
}

func (t *Timestamp) parse(s string) error {
	v, err := time.Parse(TimeFormat, s)
	if err != nil {
		if v, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("timestamp: %w", err)
		}
	}
	t.Time = v.UTC()
	return nil
}
