package volume

// Encryption types of volume types (/types/{id}/encryption) and the
// encryption metadata of a volume (/volumes/{id}/encryption). They are
// metadata for the clients that encrypt (Nova's os-brick): Ashlar does not
// encrypt volumes, so its volumes have no encryption key and show
// "encrypted": false whatever their type says.

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// controlLocations are the values control_location may take.
var controlLocations = []string{"front-end", "back-end"}

// encryptionRequest is a validated encryption create or update body.
type encryptionRequest struct {
	u encryptionUpdate
	// body is the request's object, echoed back with key_size a number,
	// as Cinder does (unknown keys included, which are not stored).
	body map[string]any
}

// parseEncryption validates a body against Cinder's volume_type_encryption
// schema; create requires provider and control_location.
func parseEncryption(r *http.Request, create bool) (*encryptionRequest, error) {
	in, err := decodeEntity(r, "encryption")
	if err != nil {
		return nil, err
	}
	req := &encryptionRequest{body: in}
	u := &req.u
	if create {
		for _, k := range []string{"provider", "control_location"} {
			if _, ok := in[k]; !ok {
				return nil, invalidInput("encryption", in, "'%s' is a required property", k)
			}
		}
	}
	if v, ok := in["provider"]; ok {
		p, isString := v.(string)
		if !isString {
			return nil, invalidInput("provider", v, "%s is not of type 'string'", pyRepr(v, true))
		}
		if len([]rune(p)) > 255 {
			return nil, invalidInput("provider", v, "'%s' is too long", p)
		}
		u.Provider = &p
	}
	if v, ok := in["control_location"]; ok {
		cl, err := oneOf("control_location", v, controlLocations)
		if err != nil {
			return nil, err
		}
		u.ControlLocation = &cl
	}
	if _, ok := in["cipher"]; ok {
		if u.Cipher, err = optString(in, "cipher", 255); err != nil {
			return nil, err
		}
		u.SetCipher = true
	}
	if v, ok := in["key_size"]; ok {
		if u.KeySize, err = parseKeySize(v); err != nil {
			return nil, err
		}
		u.SetKeySize = true
		if u.KeySize != nil {
			in["key_size"] = *u.KeySize
		}
	}
	return req, nil
}

// parseKeySize reads key_size: null, an integer, or a string of one,
// between 0 and 2147483647.
func parseKeySize(v any) (*int64, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return nil, invalidInput("key_size", v, "%s is not of type 'string', 'integer', 'null'", pyRepr(v, true))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, errs.E(errs.Invalid, "Invalid input received: key_size must be an integer.")
	}
	if _, isNumber := v.(json.Number); isNumber && n < 0 {
		return nil, invalidInput("key_size", v, "%d is less than the minimum of 0", n)
	}
	if _, isNumber := v.(json.Number); isNumber && n > math.MaxInt32 {
		return nil, invalidInput("key_size", v, "%d is greater than the maximum of 2147483647", n)
	}
	return &n, nil
}

// encryptionType checks the request's type exists and returns its id.
func (s *Service) encryptionType(r *http.Request, q db.Querier) (string, error) {
	id := r.PathValue("type_id")
	ok, err := typeExists(r.Context(), q, id)
	if err == nil && !ok {
		err = errs.E(errs.NotFound, "Volume type %s could not be found.", id)
	}
	return id, err
}

// refuseEncryptionInUse is Cinder's refusal to change the encryption of a
// type that volumes have: what is encrypted stays as it was encrypted.
func refuseEncryptionInUse(r *http.Request, q db.Querier, typeID, verb string) error {
	inUse, err := typeInUse(r.Context(), q, typeID)
	if err == nil && inUse {
		err = errs.E(errs.Invalid, "Cannot %s encryption specs. Volume type in use.", verb)
	}
	return err
}

// encryptionView is a type's encryption specs as Cinder shows them: every
// column of its encryption row.
func encryptionView(e *encryption) map[string]any {
	if e == nil {
		return map[string]any{}
	}
	return map[string]any{"volume_type_id": e.TypeID, "encryption_id": e.EncryptionID, "provider": e.Provider,
		"cipher": e.Cipher, "key_size": e.KeySize, "control_location": e.ControlLocation, "deleted": false,
		"created_at": fmtTime(e.CreatedAt), "updated_at": fmtTime(e.UpdatedAt), "deleted_at": nil}
}

// typeEncryption loads the request's type's encryption specs (nil when
// it has none) for a reader allowed to see them.
func (s *Service) typeEncryption(r *http.Request) (string, *encryption, error) {
	if err := enforce(r, "volume_extension:volume_type_encryption:get", ""); err != nil {
		return "", nil, err
	}
	id, err := s.encryptionType(r, s.deps.DB)
	if err != nil {
		return "", nil, err
	}
	e, err := getEncryption(r.Context(), s.deps.DB, id)
	return id, e, err
}

func (s *Service) showEncryption(w http.ResponseWriter, r *http.Request) error {
	_, e, err := s.typeEncryption(r)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, encryptionView(e))
}

// showEncryptionItem serves GET /types/{id}/encryption/{key}: one field of
// the encryption view.
func (s *Service) showEncryptionItem(w http.ResponseWriter, r *http.Request) error {
	id, e, err := s.typeEncryption(r)
	if err != nil {
		return err
	}
	key := r.PathValue("key")
	v, ok := encryptionView(e)[key]
	if !ok {
		return encryptionNotFound(id)
	}
	return reply(w, http.StatusOK, map[string]any{key: v})
}

func (s *Service) createEncryption(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:volume_type_encryption:create", ""); err != nil {
		return err
	}
	req, err := parseEncryption(r, true)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		typeID := r.PathValue("type_id")
		if err := refuseEncryptionInUse(r, tx, typeID, "create"); err != nil {
			return err
		}
		if _, err := s.encryptionType(r, tx); err != nil {
			return err
		}
		if old, err := getEncryption(ctx, tx, typeID); err != nil || old != nil {
			if err == nil {
				err = errs.E(errs.Invalid, "Volume type encryption for type %s already exists.", typeID)
			}
			return err
		}
		e := &encryption{TypeID: typeID, EncryptionID: uuid.NewString(), Provider: req.u.Provider, Cipher: req.u.Cipher,
			KeySize: req.u.KeySize, ControlLocation: req.u.ControlLocation, CreatedAt: db.Now()}
		req.body["volume_type_id"], req.body["encryption_id"] = e.TypeID, e.EncryptionID
		return insertEncryption(ctx, tx, e)
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"encryption": req.body})
}

// updateEncryption serves PUT /types/{id}/encryption/{anything}: Cinder
// ignores the last segment (tempest sends "provider").
func (s *Service) updateEncryption(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:volume_type_encryption:update", ""); err != nil {
		return err
	}
	req, err := parseEncryption(r, false)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		typeID, err := s.encryptionType(r, tx)
		if err != nil {
			return err
		}
		if err := refuseEncryptionInUse(r, tx, typeID, "update"); err != nil {
			return err
		}
		changed, err := updateEncryption(ctx, tx, typeID, req.u)
		if err == nil && !changed {
			err = encryptionNotFound(typeID)
		}
		return err
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"encryption": req.body})
}

// deleteEncryption serves DELETE /types/{id}/encryption/{anything}.
func (s *Service) deleteEncryption(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:volume_type_encryption:delete", ""); err != nil {
		return err
	}
	ctx := r.Context()
	typeID := r.PathValue("type_id")
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := refuseEncryptionInUse(r, tx, typeID, "delete"); err != nil {
			return err
		}
		deleted, err := deleteEncryption(ctx, tx, typeID)
		if err == nil && !deleted {
			err = encryptionNotFound(typeID)
		}
		return err
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// volumeEncryptionView is a volume's encryption metadata (Cinder's
// volume_encryption_metadata_get): its key id, always null here, and its
// type's encryption specs if the type has any.
func volumeEncryptionView(e *encryption) map[string]any {
	m := map[string]any{"encryption_key_id": nil}
	if e != nil {
		m["control_location"], m["cipher"], m["key_size"], m["provider"] = e.ControlLocation, e.Cipher, e.KeySize, e.Provider
	}
	return m
}

// volumeEncryption reads the request's volume's encryption metadata.
func (s *Service) volumeEncryption(r *http.Request) (map[string]any, error) {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_encryption_metadata")
	if err != nil {
		return nil, err
	}
	var e *encryption
	if v.TypeID != nil {
		if e, err = getEncryption(ctx, s.deps.DB, *v.TypeID); err != nil {
			return nil, err
		}
	}
	return volumeEncryptionView(e), nil
}

func (s *Service) showVolumeEncryption(w http.ResponseWriter, r *http.Request) error {
	m, err := s.volumeEncryption(r)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, m)
}

// showVolumeEncryptionItem answers one field's bare value, as Cinder does.
func (s *Service) showVolumeEncryptionItem(w http.ResponseWriter, r *http.Request) error {
	m, err := s.volumeEncryption(r)
	if err != nil {
		return err
	}
	v, ok := m[r.PathValue("key")]
	if !ok {
		return errResourceNotFound
	}
	return reply(w, http.StatusOK, v)
}
