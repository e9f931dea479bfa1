package identity

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// The statements of Bootstrap. Each creates a row only when it is missing
// (ON CONFLICT DO NOTHING, then a read of the row that won), so processes
// bootstrapping one database at once all succeed and agree on the ids.

// ensureDefaultDomain creates the Default domain unless it exists.
func ensureDefaultDomain(ctx context.Context, tx *db.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_domains (id, name, description, enabled)
		VALUES (?, 'Default', 'The default domain', TRUE) ON CONFLICT DO NOTHING`, DefaultDomainID)
	return err
}

// ensureRole returns the id of the role named name, creating it if missing.
func ensureRole(ctx context.Context, tx *db.Tx, name string) (string, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO identity_roles (id, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, newID(), name); err != nil {
		return "", err
	}
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM identity_roles WHERE name = ?`, name).Scan(&id)
	return id, err
}

// ensureProject returns the id of the enabled project name in domainID,
// creating it with description if missing.
func ensureProject(ctx context.Context, tx *db.Tx, domainID, name, description string, now db.Timestamp) (string, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO identity_projects (id, name, domain_id, description, enabled, created_at)
		VALUES (?, ?, ?, ?, TRUE, ?) ON CONFLICT DO NOTHING`, newID(), name, domainID, description, now); err != nil {
		return "", err
	}
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM identity_projects WHERE domain_id = ? AND name = ?`, domainID, name).Scan(&id)
	return id, err
}

// ensureUser returns the id of the user name in domainID, creating it
// enabled, with passwordHash and defaultProject, if missing; created
// reports whether this call created it.
func ensureUser(ctx context.Context, tx *db.Tx, domainID, name, passwordHash, defaultProject string, now db.Timestamp) (id string, created bool, err error) {
	ins, err := tx.ExecContext(ctx, `INSERT INTO identity_users (id, name, domain_id, password_hash, enabled,
		default_project_id, tokens_valid_after, created_at) VALUES (?, ?, ?, ?, TRUE, ?, ?, ?) ON CONFLICT DO NOTHING`,
		newID(), name, domainID, passwordHash, defaultProject, now, now)
	if err != nil {
		return "", false, err
	}
	n, _ := ins.RowsAffected()
	err = tx.QueryRowContext(ctx, `SELECT id FROM identity_users WHERE domain_id = ? AND name = ?`, domainID, name).Scan(&id)
	return id, n == 1, err
}

// setPasswordHash changes a user's password; tokens issued before now stop
// being valid.
func setPasswordHash(ctx context.Context, tx *db.Tx, userID, passwordHash string, now db.Timestamp) error {
	_, err := tx.ExecContext(ctx, `UPDATE identity_users SET password_hash = ?, tokens_valid_after = ? WHERE id = ?`,
		passwordHash, now, userID)
	return err
}

// ensureService returns the id of the first catalog service of type typ
// named name, creating it (enabled, with description) if there is none.
func ensureService(ctx context.Context, tx *db.Tx, typ, name, description string) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM identity_services WHERE type = ? AND name = ? ORDER BY id LIMIT 1`,
		typ, name).Scan(&id)
	if db.IsNoRows(err) {
		id = newID()
		_, err = tx.ExecContext(ctx, `INSERT INTO identity_services (id, type, name, extra, enabled) VALUES (?, ?, ?, ?, TRUE)`,
			id, typ, name, jsonText(map[string]any{"description": description}))
	}
	return id, err
}

// ensureEndpoint points the first endpoint of serviceID with iface in
// region at url, creating it (enabled) if there is none.
func ensureEndpoint(ctx context.Context, tx *db.Tx, serviceID, iface, region, url string) error {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM identity_endpoints WHERE service_id = ? AND interface = ? AND region = ? ORDER BY id LIMIT 1`,
		serviceID, iface, region).Scan(&id)
	switch {
	case db.IsNoRows(err):
		_, err = tx.ExecContext(ctx, `INSERT INTO identity_endpoints (id, service_id, interface, region, url, enabled) VALUES (?, ?, ?, ?, ?, TRUE)`,
			newID(), serviceID, iface, region, url)
	case err == nil:
		_, err = tx.ExecContext(ctx, `UPDATE identity_endpoints SET url = ? WHERE id = ?`, url, id)
	}
	return err
}
