package identity

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// Reading the identity data set into a snapshot (snapshot.go), and the
// generation stamp that tells a process its snapshot is stale.

// genKey names the generation stamp in ashlar_meta: a fresh value with
// every write (Service.write), compared by every poll.
const genKey = "identity_generation"

// readGeneration returns the stored generation, "" before the first write.
func readGeneration(ctx context.Context, q db.Querier) (string, error) {
	var gen string
	err := q.QueryRowContext(ctx, "SELECT value FROM ashlar_meta WHERE name = ?", genKey).Scan(&gen)
	if db.IsNoRows(err) {
		return "", nil
	}
	return gen, err
}

// bumpGeneration stores a new generation, in the transaction of a write.
func bumpGeneration(ctx context.Context, tx *db.Tx, gen string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO ashlar_meta (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, genKey, gen)
	return err
}

// loadSnapshot reads the whole identity data set.
func loadSnapshot(ctx context.Context, d *db.DB) (*snapshot, error) {
	// every table from one moment: a user is never loaded without the
	// role assignment committed with it
	return db.Snapshot(ctx, d, func(q db.Querier) (*snapshot, error) { return readSnapshot(ctx, q) })
}

// readSnapshot reads every identity table through d.
func readSnapshot(ctx context.Context, d db.Querier) (*snapshot, error) {
	s := &snapshot{
		domains: map[string]*domain{}, domainByName: map[string]*domain{},
		projects: map[string]*project{}, projByName: map[[2]string]*project{},
		users: map[string]*user{}, userByName: map[[2]string]*user{},
		roles: map[string]*role{}, roleByName: map[string]*role{},
		serviceByID: map[string]*catalogService{}, endpointByID: map[string]*endpoint{},
		direct: map[[2]string][]string{}, callers: map[[2]string]*callerBase{}, revoked: map[[auditSize]byte]bool{},
	}
	// The generation is read first: were the tables not read in one
	// snapshot, a write racing with this load would leave the snapshot
	// stamped older than its content, and the next poll would reload.
	var err error
	if s.gen, err = readGeneration(ctx, d); err != nil {
		return nil, fmt.Errorf("reading identity generation: %w", err)
	}
	type loader struct {
		q    string
		read func(db.Row) error
	}
	loaders := []loader{
		{"SELECT id, name, description, enabled FROM identity_domains", func(r db.Row) error {
			x := &domain{}
			if err := r.Scan(&x.ID, &x.Name, &x.Description, &x.Enabled); err != nil {
				return err
			}
			s.domains[x.ID], s.domainByName[x.Name] = x, x
			return nil
		}},
		{"SELECT id, name, domain_id, description, enabled, extra FROM identity_projects", func(r db.Row) error {
			x := &project{}
			if err := r.Scan(&x.ID, &x.Name, &x.DomainID, &x.Description, &x.Enabled, jsonColumn{&x.Extra}); err != nil {
				return err
			}
			s.projects[x.ID], s.projByName[[2]string{x.DomainID, x.Name}] = x, x
			return nil
		}},
		{`SELECT id, name, domain_id, password_hash, enabled, default_project_id, tokens_valid_after, extra, options,
			email, description FROM identity_users`, func(r db.Row) error {
			x := &user{}
			var va db.Timestamp
			var email, description string
			if err := r.Scan(&x.ID, &x.Name, &x.DomainID, &x.PasswordHash, &x.Enabled, &x.DefaultProj, &va,
				jsonColumn{&x.Extra}, jsonColumn{&x.Options}, &email, &description); err != nil {
				return err
			}
			x.ValidAfter = va.Time
			legacyExtras(x.Extra, map[string]string{"email": email, "description": description})
			s.users[x.ID], s.userByName[[2]string{x.DomainID, x.Name}] = x, x
			return nil
		}},
		{"SELECT id, name, description, extra FROM identity_roles", func(r db.Row) error {
			x := &role{}
			if err := r.Scan(&x.ID, &x.Name, &x.Description, jsonColumn{&x.Extra}); err != nil {
				return err
			}
			s.roles[x.ID], s.roleByName[x.Name] = x, x
			return nil
		}},
		{"SELECT user_id, project_id, role_id FROM identity_assignments ORDER BY user_id, project_id, role_id", func(r db.Row) error {
			var a assignment
			if err := r.Scan(&a.UserID, &a.ProjectID, &a.RoleID); err != nil {
				return err
			}
			s.assignments = append(s.assignments, a)
			k := [2]string{a.UserID, a.ProjectID}
			s.direct[k] = append(s.direct[k], a.RoleID)
			return nil
		}},
		{"SELECT id, type, name, enabled, extra, description FROM identity_services ORDER BY type, name, id", func(r db.Row) error {
			x := &catalogService{}
			var description string
			if err := r.Scan(&x.ID, &x.Type, &x.Name, &x.Enabled, jsonColumn{&x.Extra}, &description); err != nil {
				return err
			}
			legacyExtras(x.Extra, map[string]string{"description": description})
			s.services, s.serviceByID[x.ID] = append(s.services, x), x
			return nil
		}},
		{"SELECT id, service_id, interface, region, url, enabled, extra FROM identity_endpoints ORDER BY service_id, interface, id", func(r db.Row) error {
			x := &endpoint{}
			if err := r.Scan(&x.ID, &x.ServiceID, &x.Interface, &x.Region, &x.URL, &x.Enabled, jsonColumn{&x.Extra}); err != nil {
				return err
			}
			s.endpoints, s.endpointByID[x.ID] = append(s.endpoints, x), x
			return nil
		}},
		{"SELECT audit_id, expires_at FROM identity_revocations", func(r db.Row) error {
			var id string
			var exp db.Timestamp
			if err := r.Scan(&id, &exp); err != nil {
				return err
			}
			if a, ok := decodeAudit(id); ok && exp.Time.After(time.Now()) {
				s.revoked[a] = true
			}
			return nil
		}},
	}
	for _, l := range loaders {
		if err := db.EachRow(ctx, d, l.read, l.q); err != nil {
			return nil, fmt.Errorf("loading identity data: %w", err)
		}
	}
	keys, err := readKeys(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("loading token keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("loading token keys: the database has none")
	}
	s.keys = newKeyring(keys)
	return s, nil
}

// readKeys reads the token keys, oldest first.
func readKeys(ctx context.Context, q db.Querier) ([]*tokenKey, error) {
	return db.QueryRows(ctx, q, func(r db.Row) (*tokenKey, error) {
		k := &tokenKey{}
		var secret string
		var created, from db.Timestamp
		if err := r.Scan(&k.id, &secret, &created, &from); err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(secret)
		if err != nil || len(raw) < keySize {
			return nil, fmt.Errorf("token key %s is not %d base64 bytes", k.id, keySize)
		}
		k.signer, k.createdAt, k.signsFrom = newSigner(raw), created.Time, from.Time
		return k, nil
	}, `SELECT id, secret, created_at, signs_from FROM identity_token_keys ORDER BY signs_from, id`)
}

func countKeys(ctx context.Context, q db.Querier) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM identity_token_keys`).Scan(&n)
	return n, err
}

func insertKey(ctx context.Context, tx *db.Tx, id, secret string, created, signsFrom time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_token_keys (id, secret, created_at, signs_from) VALUES (?, ?, ?, ?)`,
		id, secret, db.Timestamp{Time: created.UTC()}, db.Timestamp{Time: signsFrom.UTC()})
	return err
}

func deleteKey(ctx context.Context, tx *db.Tx, id string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM identity_token_keys WHERE id = ?`, id)
	return err
}
