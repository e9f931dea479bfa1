package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// The writes of the admin API and of token revocation, one function per
// statement group; reads come from the snapshot (persist_snapshot.go loads
// it). Each runs inside Service.write's transaction.

// jsonColumn scans a JSON object stored as text (extra, options).
type jsonColumn struct{ m *map[string]any }

// Scan implements sql.Scanner.
func (j jsonColumn) Scan(src any) error {
	var b []byte
	switch x := src.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	case nil:
	default:
		return fmt.Errorf("JSON column: unexpected %T", src)
	}
	*j.m = map[string]any{}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(j.m)
}

// jsonText is the stored form of a JSON object column.
func jsonText(m map[string]any) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		// Values come from decoded JSON; they always encode.
		panic(err)
	}
	return string(b)
}

func insertProject(ctx context.Context, tx *db.Tx, p *project) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_projects (id, name, domain_id, description, enabled, extra, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, p.ID, p.Name, p.DomainID, p.Description, p.Enabled, jsonText(p.Extra), db.Now())
	return orConflict(err, "project", "name "+p.Name)
}

func updateProject(ctx context.Context, tx *db.Tx, p *project) error {
	_, err := tx.ExecContext(ctx, `UPDATE identity_projects SET name = ?, description = ?, enabled = ?, extra = ? WHERE id = ?`,
		p.Name, p.Description, p.Enabled, jsonText(p.Extra), p.ID)
	return orConflict(err, "project", "name "+p.Name)
}

func deleteProject(ctx context.Context, tx *db.Tx, p *project) error {
	return execAll(ctx, tx, p.ID,
		`DELETE FROM identity_assignments WHERE project_id = ?`,
		`UPDATE identity_users SET default_project_id = '' WHERE default_project_id = ?`,
		`DELETE FROM identity_projects WHERE id = ?`)
}

// insertUser stores a new user; the legacy email and description columns
// stay empty (those are extras now).
func insertUser(ctx context.Context, tx *db.Tx, u *user) error {
	now := db.Now()
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_users (id, name, domain_id, password_hash, enabled, default_project_id,
		extra, options, tokens_valid_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Name, u.DomainID, u.PasswordHash, u.Enabled, u.DefaultProj, jsonText(u.Extra), jsonText(u.Options), now, now)
	return orConflict(err, "user", "name "+u.Name+" at domain ID "+u.DomainID)
}

// updateUser writes u, moving any legacy email and description into extra
// (u.Extra already holds them, see legacyExtras).
func updateUser(ctx context.Context, tx *db.Tx, u *user) error {
	_, err := tx.ExecContext(ctx, `UPDATE identity_users SET name = ?, password_hash = ?, enabled = ?, default_project_id = ?,
		extra = ?, options = ?, email = '', description = '', tokens_valid_after = ? WHERE id = ?`,
		u.Name, u.PasswordHash, u.Enabled, u.DefaultProj, jsonText(u.Extra), jsonText(u.Options), db.Timestamp{Time: u.ValidAfter}, u.ID)
	return orConflict(err, "user", "name "+u.Name+" at domain ID "+u.DomainID)
}

func deleteUser(ctx context.Context, tx *db.Tx, u *user) error {
	return execAll(ctx, tx, u.ID,
		`DELETE FROM identity_assignments WHERE user_id = ?`,
		`DELETE FROM identity_users WHERE id = ?`)
}

func insertRole(ctx context.Context, tx *db.Tx, r *role) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_roles (id, name, description, extra) VALUES (?, ?, ?, ?)`,
		r.ID, r.Name, r.Description, jsonText(r.Extra))
	return orConflict(err, "role", "name "+r.Name)
}

func updateRole(ctx context.Context, tx *db.Tx, r *role) error {
	_, err := tx.ExecContext(ctx, `UPDATE identity_roles SET name = ?, description = ?, extra = ? WHERE id = ?`,
		r.Name, r.Description, jsonText(r.Extra), r.ID)
	return orConflict(err, "role", "name "+r.Name)
}

func deleteRole(ctx context.Context, tx *db.Tx, r *role) error {
	return execAll(ctx, tx, r.ID,
		`DELETE FROM identity_assignments WHERE role_id = ?`,
		`DELETE FROM identity_roles WHERE id = ?`)
}

func insertService(ctx context.Context, tx *db.Tx, c *catalogService) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_services (id, type, name, enabled, extra) VALUES (?, ?, ?, ?, ?)`,
		c.ID, c.Type, c.Name, c.Enabled, jsonText(c.Extra))
	return err
}

func updateService(ctx context.Context, tx *db.Tx, c *catalogService) error {
	_, err := tx.ExecContext(ctx, `UPDATE identity_services SET type = ?, name = ?, enabled = ?, extra = ?, description = '' WHERE id = ?`,
		c.Type, c.Name, c.Enabled, jsonText(c.Extra), c.ID)
	return err
}

func deleteService(ctx context.Context, tx *db.Tx, c *catalogService) error {
	return execAll(ctx, tx, c.ID,
		`DELETE FROM identity_endpoints WHERE service_id = ?`,
		`DELETE FROM identity_services WHERE id = ?`)
}

func insertEndpoint(ctx context.Context, tx *db.Tx, e *endpoint) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_endpoints (id, service_id, interface, region, url, enabled, extra)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, e.ID, e.ServiceID, e.Interface, e.Region, e.URL, e.Enabled, jsonText(e.Extra))
	return err
}

func updateEndpoint(ctx context.Context, tx *db.Tx, e *endpoint) error {
	_, err := tx.ExecContext(ctx, `UPDATE identity_endpoints SET service_id = ?, interface = ?, region = ?, url = ?, enabled = ?, extra = ?
		WHERE id = ?`, e.ServiceID, e.Interface, e.Region, e.URL, e.Enabled, jsonText(e.Extra), e.ID)
	return err
}

func deleteEndpoint(ctx context.Context, tx *db.Tx, e *endpoint) error {
	return execAll(ctx, tx, e.ID, `DELETE FROM identity_endpoints WHERE id = ?`)
}

func insertGrant(ctx context.Context, tx *db.Tx, a assignment) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_assignments (user_id, project_id, role_id) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, a.UserID, a.ProjectID, a.RoleID)
	return err
}

func deleteGrant(ctx context.Context, tx *db.Tx, a assignment) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM identity_assignments WHERE user_id = ? AND project_id = ? AND role_id = ?`,
		a.UserID, a.ProjectID, a.RoleID)
	return err
}

// insertRevocation records a revoked token's audit id until expires, and
// drops the revocations whose tokens have expired by now.
func insertRevocation(ctx context.Context, tx *db.Tx, auditID string, expires time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM identity_revocations WHERE expires_at < ?`, db.Now()); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_revocations (audit_id, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		auditID, db.Timestamp{Time: expires})
	return err
}

// orConflict is err, or Keystone's 409 when err is a unique violation.
func orConflict(err error, kind, what string) error {
	if db.IsUniqueViolation(err) {
		return conflict(kind, what)
	}
	return err
}

// execAll runs statements that each take one id, in order.
func execAll(ctx context.Context, tx *db.Tx, id string, stmts ...string) error {
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return err
		}
	}
	return nil
}
