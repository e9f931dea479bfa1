package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Token signing keys live in the database (identity_token_keys), so every
// node sharing it signs and verifies with the same keys, and rotate
// without logging anyone out:
//
//   - a rotation adds a key that starts signing KeyStagingDelay later
//     (every node polls the database more often than that, so each has
//     the key before any token signed with it reaches it);
//   - the previous keys keep verifying the tokens they signed until those
//     have expired: a retired key verifies only tokens that expire within
//     a token lifetime of its retirement, so a leaked old key cannot mint
//     long-lived tokens;
//   - keys no token can need any more are deleted by the next rotation.

// KeyStagingDelay is how long after a rotation the new key starts signing.
const KeyStagingDelay = 3 * PollInterval

// clockSkew is the allowance for nodes' clocks in the key windows.
const clockSkew = time.Minute

// tokenKey is one key of the keyring.
type tokenKey struct {
	id        string
	signer    *signer
	createdAt time.Time
	signsFrom time.Time
	// retiredAt is when the next key took over signing (zero: the newest).
	retiredAt time.Time
}

// keyring is the keys a snapshot holds, oldest first.
type keyring []*tokenKey

// signing returns the key that signs at now: the newest whose signs_from
// has come (the oldest key when none has, which only a clock far behind
// the others sees).
func (kr keyring) signing(now time.Time) *tokenKey {
	for i := len(kr) - 1; i >= 0; i-- {
		if !now.Before(kr[i].signsFrom) {
			return kr[i]
		}
	}
	return kr[0]
}

// open verifies token with the keys, newest first, and decodes it. A token
// a retired key verifies must expire within lifetime of the retirement.
func (kr keyring) open(token string, lifetime time.Duration) (*payload, error) {
	for i := len(kr) - 1; i >= 0; i-- {
		k := kr[i]
		p, err := open(k.signer, token)
		if err != nil {
			continue
		}
		if !k.retiredAt.IsZero() && p.ExpiresAt.After(k.retiredAt.Add(lifetime+clockSkew)) {
			return nil, errBadToken
		}
		return p, nil
	}
	return nil, errBadToken
}

// newKeyring orders keys and sets their retirements.
func newKeyring(keys []*tokenKey) keyring {
	for i := range keys {
		if i+1 < len(keys) {
			keys[i].retiredAt = keys[i+1].signsFrom
		}
	}
	return keys
}

// KeyState is where a key is in its life.
type KeyState string

// The states of a token key.
const (
	// KeyStaged will sign from its SignsFrom; it verifies already.
	KeyStaged KeyState = "staged"
	// KeySigning signs the tokens issued now.
	KeySigning KeyState = "signing"
	// KeyVerifying no longer signs; it verifies the tokens it signed
	// until they have expired.
	KeyVerifying KeyState = "verifying"
	// KeyExpired verifies nothing; the next rotation deletes it.
	KeyExpired KeyState = "expired"
)

// KeyInfo describes a token key, never its secret.
type KeyInfo struct {
	ID                              string
	CreatedAt, SignsFrom, RetiredAt time.Time
	// VerifiesUntil is when the last token the key may have signed
	// expires (zero while it signs).
	VerifiesUntil time.Time
	State         KeyState
}

func (kr keyring) info(now time.Time, lifetime time.Duration) []KeyInfo {
	signing := kr.signing(now)
	out := make([]KeyInfo, len(kr))
	for i, k := range kr {
		ki := KeyInfo{ID: k.id, CreatedAt: k.createdAt, SignsFrom: k.signsFrom, RetiredAt: k.retiredAt}
		if !k.retiredAt.IsZero() {
			ki.VerifiesUntil = k.retiredAt.Add(lifetime)
		}
		switch {
		case k == signing:
			ki.State = KeySigning
		case now.Before(k.signsFrom):
			ki.State = KeyStaged
		case now.After(ki.VerifiesUntil):
			ki.State = KeyExpired
		default:
			ki.State = KeyVerifying
		}
		out[i] = ki
	}
	return out
}

// TokenKeys lists the token keys of the database, oldest first, as they
// are at now for tokens of the given lifetime.
func TokenKeys(ctx context.Context, d *db.DB, lifetime time.Duration) ([]KeyInfo, error) {
	keys, err := readKeys(ctx, d)
	if err != nil {
		return nil, err
	}
	return newKeyring(keys).info(time.Now(), lifetime), nil
}

func newSecret() string {
	k := make([]byte, keySize)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// ensureKey gives an empty keyring its first key: the key file an older
// release kept under the state path, when there is one (so the tokens it
// signed stay valid), else a random key. Nodes starting together agree:
// the first key has a fixed id and only one insert wins.
func ensureKey(ctx context.Context, d *db.DB, legacyPath string) error {
	n, err := countKeys(ctx, d)
	if err != nil || n > 0 {
		return err
	}
	secret, err := readKeyFile(legacyPath)
	if err != nil {
		return err
	}
	if secret == "" {
		secret = newSecret()
	}
	err = d.InTx(ctx, func(tx *db.Tx) error {
		if err := insertKey(ctx, tx, "initial", secret, time.Now(), time.Unix(0, 0)); err != nil {
			return err
		}
		return bumpGeneration(ctx, tx, newID())
	})
	if db.IsUniqueViolation(err) {
		return nil // another node was first
	}
	return err
}

// readKeyFile returns the base64 key an older release kept at path, or ""
// when there is none.
func readKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading token key: %w", err)
	}
	s := string(trimSpace(b))
	if k, err := base64.StdEncoding.DecodeString(s); err != nil || len(k) < keySize {
		return "", fmt.Errorf("token key %s is not %d base64 bytes", path, keySize)
	}
	return s, nil
}

// successorID is the id a rotation gives the key after id: two nodes
// rotating at once insert the same id, and one of them loses.
func successorID(id string) string {
	sum := sha256.Sum256([]byte("successor of " + id))
	return hex.EncodeToString(sum[:16])
}

// Rotation says how RotateTokenKey rotates.
type Rotation struct {
	// Lifetime is the token lifetime ([identity] token_expiration): how
	// long a retired key keeps verifying.
	Lifetime time.Duration
	// Delay is how long the new key waits before it signs: use
	// KeyStagingDelay, so every node has loaded it first.
	Delay time.Duration
	// IfOlderThan, when set, rotates only when the newest key was created
	// longer ago than that (automatic rotation).
	IfOlderThan time.Duration
}

// RotateTokenKey adds a key that starts signing after o.Delay (and after
// every key before it) and deletes the keys that no token can need any
// more; the tokens signed so far stay valid until they expire. Every node
// picks the new key up at its next poll. It returns the new key, or a
// zero KeyInfo when IfOlderThan says the newest key is young enough. A
// rotation racing another fails with errs.Conflict.
func RotateTokenKey(ctx context.Context, d *db.DB, o Rotation) (KeyInfo, error) {
	var added KeyInfo
	err := d.InTx(ctx, func(tx *db.Tx) error {
		keys, err := readKeys(ctx, tx)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return errs.E(errs.Conflict, "there is no token key to rotate: start a node first")
		}
		now := time.Now()
		newest := keys[len(keys)-1]
		if o.IfOlderThan > 0 && now.Sub(newest.createdAt) < o.IfOlderThan {
			return nil
		}
		// Keys sign in the order they were made.
		from := now.Add(o.Delay)
		if !from.After(newest.signsFrom) {
			from = newest.signsFrom.Add(time.Microsecond)
		}
		k := &tokenKey{id: successorID(newest.id), createdAt: now, signsFrom: from}
		if err := insertKey(ctx, tx, k.id, newSecret(), k.createdAt, k.signsFrom); err != nil {
			if db.IsUniqueViolation(err) {
				return errs.E(errs.Conflict, "another rotation of the token keys happened at the same time")
			}
			return err
		}
		kr := newKeyring(append(keys, k))
		for _, old := range kr[:len(kr)-1] {
			if now.After(old.retiredAt.Add(o.Lifetime + clockSkew)) {
				if err := deleteKey(ctx, tx, old.id); err != nil {
					return err
				}
			}
		}
		added = KeyInfo{ID: k.id, CreatedAt: k.createdAt, SignsFrom: k.signsFrom, State: KeyStaged}
		if !now.Before(from) {
			added.State = KeySigning
		}
		return bumpGeneration(ctx, tx, newID())
	})
	return added, err
}

// signer is the key that signs the tokens issued now.
func (s *Service) signer() *signer { return s.snap.Load().keys.signing(s.now()).signer }

// rotateIfDue rotates the keys when the newest is older than every (the
// [identity] token_key_rotation interval); any node may do it, and when
// several do at once, one rotation wins.
func (s *Service) rotateIfDue(ctx context.Context, every time.Duration) error {
	kr := s.snap.Load().keys
	if every <= 0 || time.Since(kr[len(kr)-1].createdAt) < every {
		return nil // (checked again in the rotation's transaction)
	}
	k, err := RotateTokenKey(ctx, s.db, Rotation{Lifetime: s.cfg.Identity.TokenExpiration, Delay: KeyStagingDelay,
		IfOlderThan: every})
	if errs.Is(err, errs.Conflict) || err == nil && k.ID == "" {
		return s.reload(ctx) // another node rotated
	}
	if err != nil {
		return err
	}
	s.logger.Info("identity: rotated the token signing key", "key", k.ID, "signs_from", k.SignsFrom)
	return s.reload(ctx)
}
