package volume

// Persistence of volume type encryption specs.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// encryption is a type's encryption specs.
type encryption struct {
	TypeID, EncryptionID string
	Provider, Cipher     *string
	KeySize              *int64
	ControlLocation      *string
	CreatedAt, UpdatedAt db.Timestamp
}

// encryptionNotFound is Cinder's 404 for a type without encryption specs.
func encryptionNotFound(typeID string) error {
	return errs.E(errs.NotFound, "Volume type encryption for type %s does not exist.", typeID)
}

// getEncryption loads a type's encryption specs; nil when it has none.
func getEncryption(ctx context.Context, q db.Querier, typeID string) (*encryption, error) {
	e := &encryption{}
	err := q.QueryRowContext(ctx, `SELECT type_id, encryption_id, provider, cipher, key_size, control_location,
		created_at, updated_at FROM volume_type_encryption WHERE type_id = ?`, typeID).Scan(&e.TypeID, &e.EncryptionID,
		&e.Provider, &e.Cipher, &e.KeySize, &e.ControlLocation, &e.CreatedAt, &e.UpdatedAt)
	if db.IsNoRows(err) {
		return nil, nil
	}
	return e, err
}

// insertEncryption records a type's encryption specs.
func insertEncryption(ctx context.Context, q db.Querier, e *encryption) error {
	_, err := q.ExecContext(ctx, `INSERT INTO volume_type_encryption (type_id, encryption_id, provider, cipher, key_size,
		control_location, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.TypeID, e.EncryptionID, e.Provider, e.Cipher, e.KeySize, e.ControlLocation, e.CreatedAt)
	return err
}

// encryptionUpdate holds the specs an update sets; nil fields are kept.
type encryptionUpdate struct {
	Provider, Cipher, ControlLocation *string
	// KeySize is set when SetKeySize (it may be set to NULL).
	KeySize               *int64
	SetKeySize, SetCipher bool
}

// updateEncryption changes a type's encryption specs; false when it has
// none.
func updateEncryption(ctx context.Context, q db.Querier, typeID string, u encryptionUpdate) (bool, error) {
	set, args := `updated_at = ?`, []any{db.Now()}
	add := func(col string, v any) { set, args = set+", "+col+" = ?", append(args, v) }
	if u.Provider != nil {
		add("provider", *u.Provider)
	}
	if u.ControlLocation != nil {
		add("control_location", *u.ControlLocation)
	}
	if u.SetCipher {
		add("cipher", u.Cipher)
	}
	if u.SetKeySize {
		add("key_size", u.KeySize)
	}
	return db.Changed(ctx, q, `UPDATE volume_type_encryption SET `+set+` WHERE type_id = ?`, append(args, typeID)...)
}

// deleteEncryption removes a type's encryption specs; false when it had
// none.
func deleteEncryption(ctx context.Context, q db.Querier, typeID string) (bool, error) {
	return db.Changed(ctx, q, `DELETE FROM volume_type_encryption WHERE type_id = ?`, typeID)
}
