package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
	"time"
)

// Tokens are self-contained and signed, like Keystone's fernet tokens but
// authenticated with HMAC-SHA256 only (their content is ids and times, not
// secrets). Layout, before base64url (no padding):
//
//	version(1) methods(1) issued_at(8, unix µs) expires_at(8, unix µs)
//	audit_id(16) chain_id(16) len(1) user_id len(1) project_id  mac(32)
//
// chain_id is the audit id of the token first issued with a password; a
// rescoped token carries its parent's chain, as Keystone's audit_ids do.
const (
	tokenVersion = 1
	macSize      = sha256.Size
	auditSize    = 16
	fixedSize    = 1 + 1 + 8 + 8 + auditSize + auditSize
	keySize      = 32
)

// Authentication method bits of a token.
const (
	methodPassword uint8 = 1 << iota
	methodToken
)

// payload is what a token says.
type payload struct {
	Methods   uint8
	IssuedAt  time.Time
	ExpiresAt time.Time
	AuditID   [auditSize]byte
	ChainID   [auditSize]byte
	UserID    string
	ProjectID string
}

func (p *payload) methodNames() []string {
	var out []string
	if p.Methods&methodPassword != 0 {
		out = append(out, "password")
	}
	if p.Methods&methodToken != 0 {
		out = append(out, "token")
	}
	return out
}

// auditIDs renders Keystone's audit_ids: the token's own, then its chain's
// when the token was rescoped from another.
func (p *payload) auditIDs() []string {
	ids := []string{encodeAudit(p.AuditID)}
	if p.ChainID != p.AuditID {
		ids = append(ids, encodeAudit(p.ChainID))
	}
	return ids
}

func encodeAudit(a [auditSize]byte) string { return base64.RawURLEncoding.EncodeToString(a[:]) }

func decodeAudit(s string) ([auditSize]byte, bool) {
	var a [auditSize]byte
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != auditSize {
		return a, false
	}
	copy(a[:], b)
	return a, true
}

var errBadToken = errors.New("malformed or forged token")

// signer holds the token key and a pool of HMACs keyed with it: a pooled
// HMAC's Reset skips the key schedule that hmac.New computes every time.
type signer struct {
	key  []byte
	pool sync.Pool
}

func newSigner(key []byte) *signer {
	k := &signer{key: key}
	k.pool.New = func() any { return hmac.New(sha256.New, key) }
	return k
}

// mac appends the HMAC-SHA256 of b to out.
func (k *signer) mac(out, b []byte) []byte {
	m := k.pool.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	out = m.Sum(out)
	k.pool.Put(m)
	return out
}

// seal signs p and returns the token string.
func seal(key *signer, p *payload) (string, error) {
	if len(p.UserID) > 255 || len(p.ProjectID) > 255 {
		return "", errors.New("id too long for a token")
	}
	b := make([]byte, 0, fixedSize+2+len(p.UserID)+len(p.ProjectID)+macSize)
	b = append(b, tokenVersion, p.Methods)
	b = binary.BigEndian.AppendUint64(b, uint64(p.IssuedAt.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(p.ExpiresAt.UnixMicro()))
	b = append(b, p.AuditID[:]...)
	b = append(b, p.ChainID[:]...)
	b = append(b, byte(len(p.UserID)))
	b = append(b, p.UserID...)
	b = append(b, byte(len(p.ProjectID)))
	b = append(b, p.ProjectID...)
	b = key.mac(b, b)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// open verifies a token's signature and decodes it. It does not look at
// expiry or revocation.
func open(key *signer, token string) (*payload, error) {
	if len(token) > 1024 {
		return nil, errBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < fixedSize+2+macSize || b[0] != tokenVersion {
		return nil, errBadToken
	}
	body, mac := b[:len(b)-macSize], b[len(b)-macSize:]
	var sum [macSize]byte
	if !hmac.Equal(key.mac(sum[:0], body), mac) {
		return nil, errBadToken
	}
	p := &payload{Methods: body[1]}
	p.IssuedAt = time.UnixMicro(int64(binary.BigEndian.Uint64(body[2:10]))).UTC()
	p.ExpiresAt = time.UnixMicro(int64(binary.BigEndian.Uint64(body[10:18]))).UTC()
	copy(p.AuditID[:], body[18:34])
	copy(p.ChainID[:], body[34:50])
	rest := body[fixedSize:]
	str := func() (string, bool) {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return "", false
		}
		s := string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
		return s, true
	}
	var ok1, ok2 bool
	p.UserID, ok1 = str()
	p.ProjectID, ok2 = str()
	if !ok1 || !ok2 || len(rest) != 0 || p.UserID == "" {
		return nil, errBadToken
	}
	return p, nil
}

func newAuditID() [auditSize]byte {
	var a [auditSize]byte
	_, _ = rand.Read(a[:])
	return a
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
