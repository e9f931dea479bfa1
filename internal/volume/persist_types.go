package volume

// Persistence of volume types: the types, their extra specs and the
// projects private types are shared with. Every SQL statement about types
// is here.

import (
	"context"
	"sort"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// volType is a volume type with its extra specs.
type volType struct {
	ID          string
	Name        string
	Description *string
	IsPublic    bool
	CreatedAt   db.Timestamp
	UpdatedAt   db.Timestamp
	ExtraSpecs  map[string]string
}

const typeCols = `id, name, description, is_public, created_at, updated_at`

func scanType(sc db.Row) (*volType, error) {
	t := &volType{}
	err := sc.Scan(&t.ID, &t.Name, &t.Description, &t.IsPublic, &t.CreatedAt, &t.UpdatedAt)
	return t, err
}

// insertDefaultType creates the default type unless a type of that name
// exists.
func insertDefaultType(ctx context.Context, q db.Querier, name string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO volume_types (id, name, description, is_public, created_at)
		VALUES (?, ?, ?, TRUE, ?) ON CONFLICT (name) DO NOTHING`, uuid.NewString(), name, "Default Volume Type", db.Now())
	return err
}

// typeNotFound is the 404 for a type looked up as key.
func typeNotFound(key string) error {
	return errs.E(errs.NotFound, "Volume type with id %s could not be found.", key)
}

// typeByID loads a type and its specs by id.
func typeByID(ctx context.Context, q db.Querier, id string) (*volType, error) {
	return queryType(ctx, q, id, `WHERE id = ?`, id)
}

// typeByName loads a type and its specs by name; a missing type is
// reported under key.
func typeByName(ctx context.Context, q db.Querier, name, key string) (*volType, error) {
	return queryType(ctx, q, key, `WHERE name = ?`, name)
}

// typeByIDOrName loads a type whose id, else whose name, is s.
func typeByIDOrName(ctx context.Context, q db.Querier, s string) (*volType, error) {
	return queryType(ctx, q, s, `WHERE id = ? OR name = ? ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END LIMIT 1`, s, s, s)
}

func queryType(ctx context.Context, q db.Querier, key, where string, args ...any) (*volType, error) {
	t, err := scanType(q.QueryRowContext(ctx, `SELECT `+typeCols+` FROM volume_types `+where, args...))
	if db.IsNoRows(err) {
		return nil, typeNotFound(key)
	}
	if err != nil {
		return nil, err
	}
	return t, loadSpecs(ctx, q, t)
}

func loadSpecs(ctx context.Context, q db.Querier, t *volType) error {
	t.ExtraSpecs = map[string]string{}
	return db.EachRow(ctx, q, func(r db.Row) error {
		var k string
		var v *string
		if err := r.Scan(&k, &v); err != nil {
			return err
		}
		t.ExtraSpecs[k] = deref(v)
		return nil
	}, `SELECT key, value FROM volume_type_extra_specs WHERE type_id = ?`, t.ID)
}

// typeExists reports whether a type with id exists.
func typeExists(ctx context.Context, q db.Querier, id string) (bool, error) {
	var got string
	err := q.QueryRowContext(ctx, `SELECT id FROM volume_types WHERE id = ?`, id).Scan(&got)
	if db.IsNoRows(err) {
		return false, nil
	}
	return err == nil, err
}

// typeListing selects which types a list shows.
type typeListing int

const (
	// typesVisible: public types and the private ones shared with a project.
	typesVisible typeListing = iota
	// typesPrivate: private types only.
	typesPrivate
	// typesAll: every type.
	typesAll
)

// listTypes returns up to 1000 types, newest first, with their specs.
// project is the project private types must be shared with (typesVisible).
func listTypes(ctx context.Context, q db.Querier, which typeListing, project string) ([]*volType, error) {
	query := `SELECT ` + typeCols + ` FROM volume_types`
	var args []any
	switch which {
	case typesVisible:
		query += ` WHERE is_public = TRUE OR id IN (SELECT type_id FROM volume_type_projects WHERE project_id = ?)`
		args = append(args, project)
	case typesPrivate:
		query += ` WHERE is_public = FALSE`
	}
	types, err := db.QueryRows(ctx, q, scanType, query+` ORDER BY created_at DESC, id DESC LIMIT 1000`, args...)
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		if err := loadSpecs(ctx, q, t); err != nil {
			return nil, err
		}
	}
	return types, nil
}

// typeConflict is the 409 for a second type of one name.
func typeConflict(name string) error {
	return errs.E(errs.Conflict, "Volume Type %s already exists.", name)
}

// insertType writes a new type (without its specs).
func insertType(ctx context.Context, tx *db.Tx, t *volType) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES (?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.Description, t.IsPublic, t.CreatedAt)
	if db.IsUniqueViolation(err) {
		return typeConflict(t.Name)
	}
	return err
}

// updateTypeRow writes a type's name, description, visibility and
// updated_at.
func updateTypeRow(ctx context.Context, q db.Querier, t *volType) error {
	_, err := q.ExecContext(ctx, `UPDATE volume_types SET name = ?, description = ?, is_public = ?, updated_at = ? WHERE id = ?`,
		t.Name, t.Description, t.IsPublic, t.UpdatedAt, t.ID)
	if db.IsUniqueViolation(err) {
		return typeConflict(t.Name)
	}
	return err
}

// deleteTypeRow removes a type; its specs and access go with it.
func deleteTypeRow(ctx context.Context, q db.Querier, id string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM volume_types WHERE id = ?`, id)
	return err
}

// typeInUse reports whether any volume has the type.
func typeInUse(ctx context.Context, q db.Querier, typeID string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM volumes WHERE type_id = ?`, typeID).Scan(&n)
	return n > 0, err
}

// putSpecs upserts a type's extra specs (nil values are stored as NULL)
// and touches the type's updated_at when there were any.
func putSpecs(ctx context.Context, tx *db.Tx, typeID string, specs map[string]*string) error {
	keys := make([]string, 0, len(specs))
	for k := range specs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO volume_type_extra_specs (type_id, key, value) VALUES (?, ?, ?)
			ON CONFLICT (type_id, key) DO UPDATE SET value = excluded.value`, typeID, k, specs[k]); err != nil {
			return err
		}
	}
	if len(keys) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE volume_types SET updated_at = ? WHERE id = ?`, db.Now(), typeID)
	return err
}

// deleteSpec removes one extra spec; false when the type had no such key.
func deleteSpec(ctx context.Context, q db.Querier, typeID, key string) (bool, error) {
	return db.Changed(ctx, q, `DELETE FROM volume_type_extra_specs WHERE type_id = ? AND key = ?`, typeID, key)
}

// typeAccessible reports whether a private type is shared with project.
func typeAccessible(ctx context.Context, q db.Querier, typeID, project string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM volume_type_projects WHERE type_id = ? AND project_id = ?`, typeID, project).Scan(&n)
	return n > 0, err
}

// addTypeAccess shares a private type with project.
func addTypeAccess(ctx context.Context, q db.Querier, typeID, project string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO volume_type_projects (type_id, project_id) VALUES (?, ?)`, typeID, project)
	if db.IsUniqueViolation(err) {
		return errs.E(errs.Conflict, "Volume type access for %s / %s combination already exists.", typeID, project)
	}
	return err
}

// removeTypeAccess stops sharing a type with project; false when it was
// not shared.
func removeTypeAccess(ctx context.Context, q db.Querier, typeID, project string) (bool, error) {
	return db.Changed(ctx, q, `DELETE FROM volume_type_projects WHERE type_id = ? AND project_id = ?`, typeID, project)
}

// typeAccessProjects lists the projects a type is shared with, in order.
func typeAccessProjects(ctx context.Context, q db.Querier, typeID string) ([]string, error) {
	return db.QueryRows(ctx, q, func(r db.Row) (string, error) {
		var p string
		err := r.Scan(&p)
		return p, err
	}, `SELECT project_id FROM volume_type_projects WHERE type_id = ? ORDER BY project_id`, typeID)
}
