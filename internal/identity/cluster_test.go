package identity

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// peer is a second node on e's database: its own state directory (no key
// file shared), served through its own handler.
func peer(t *testing.T, e *env, d *db.DB) (*Service, *apitest.Client) {
	t.Helper()
	s, err := newService(context.Background(), testConfig(t, e.cfg.Identity.PublicURL), d, quietLogger(), 4)
	if err != nil {
		t.Fatal(err)
	}
	return s, &apitest.Client{T: t, Handler: s.Handler()}
}

// TestTokensAcrossNodes: nodes that share only the database accept each
// other's tokens, see each other's writes at once (a user made on one node
// logs in and is accepted on the next, before any poll), and read their
// own writes through any node.
func TestTokensAcrossNodes(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		b, bc := peer(t, e, d)
		admin := e.token("admin", adminPW, "admin")
		if _, err := b.Validator().Validate(t.Context(), admin); err != nil {
			t.Fatalf("a token of node A on node B: %v", err)
		}
		// Made on A after B loaded its snapshot; B has not polled.
		tok, uid, pid := e.user("newcomer", "member")
		c, err := b.Validator().Validate(t.Context(), tok)
		if err != nil || c.UserID != uid || c.ProjectID != pid || !c.HasRole("member") {
			t.Fatalf("a new user's token on node B: %+v, %v", c, err)
		}
		p := e.MustJSON(201, e.Do(admin, "POST", "/v3/projects", map[string]any{"project": map[string]any{"name": "seen-on-b"}}))
		id := apitest.Dig(p, "project", "id").(string)
		bc.Must(200, bc.Do(admin, "GET", "/v3/projects/"+id, nil))
		bc.Must(201, bc.Do("", "POST", "/v3/auth/tokens", passwordAuth("newcomer", "newcomer-pw", "newcomer")))
		// Refusals stay refusals: a forged token, and a revoked one.
		if _, err := b.Validator().Validate(t.Context(), tok[:len(tok)-4]+"AAAA"); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("forged token: %v", err)
		}
		e.Must(204, e.Do(admin, "DELETE", "/v3/auth/tokens", nil, "X-Subject-Token", tok))
		bc.Must(404, bc.Do(admin, "GET", "/v3/auth/tokens", nil, "X-Subject-Token", tok))
	})
}

// TestKeyRotation: after a rotation new tokens are signed with the new key
// on every node, the tokens signed before stay valid until they expire, a
// node that has not polled yet accepts a token of the new key, and the old
// key cannot vouch for a token expiring past its window.
func TestKeyRotation(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		b, _ := peer(t, e, d)
		ctx := t.Context()
		before := e.token("admin", adminPW, "admin")
		old := e.s.signer()
		lifetime := e.cfg.Identity.TokenExpiration

		// The next key signs at once.
		if k, err := RotateTokenKey(ctx, d, Rotation{Lifetime: lifetime}); err != nil || k.State != KeySigning {
			t.Fatalf("rotate: %+v, %v", k, err)
		}
		if err := e.s.poll(ctx); err != nil {
			t.Fatal(err)
		}
		after := e.token("admin", adminPW, "admin")
		if _, err := open(old, after); err == nil {
			t.Fatal("the new token is signed with the old key")
		}
		// B has not polled: it learns the key when the token arrives.
		for name, tok := range map[string]string{"before": before, "after": after} {
			for node, s := range map[string]*Service{"A": e.s, "B": b} {
				if _, err := s.Validator().Validate(ctx, tok); err != nil {
					t.Errorf("token issued %s the rotation on node %s: %v", name, node, err)
				}
			}
		}
		keys, _ := TokenKeys(ctx, d, lifetime)
		if len(keys) != 2 || keys[0].State != KeyVerifying || keys[1].State != KeySigning || keys[0].VerifiesUntil.IsZero() {
			t.Fatalf("keys after rotating: %+v", keys)
		}

		// The retired key signs nothing that outlives its window.
		p, err := open(old, before)
		if err != nil {
			t.Fatal(err)
		}
		p.ExpiresAt = time.Now().Add(10 * lifetime)
		forged, _ := seal(old, p)
		if _, err := e.s.Validator().Validate(ctx, forged); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("a long-lived token of the retired key: %v", err)
		}

		// Keys whose tokens have all expired go with the next rotation.
		for i, k := range keys { // made four and three lifetimes ago
			if _, err := d.ExecContext(ctx, `UPDATE identity_token_keys SET signs_from = ? WHERE id = ?`,
				db.Timestamp{Time: time.Now().Add(time.Duration(i-4) * lifetime)}, k.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := RotateTokenKey(ctx, d, Rotation{Lifetime: lifetime}); err != nil {
			t.Fatal(err)
		}
		if keys, _ = TokenKeys(ctx, d, lifetime); len(keys) != 2 {
			t.Errorf("after pruning: %+v", keys)
		}

		// A staged key verifies but does not sign yet.
		if err := e.s.poll(ctx); err != nil {
			t.Fatal(err)
		}
		signing := e.s.signer()
		staged, err := RotateTokenKey(ctx, d, Rotation{Lifetime: lifetime, Delay: time.Hour})
		if err != nil || staged.State != KeyStaged {
			t.Fatalf("rotate: %+v, %v", staged, err)
		}
		if err := e.s.poll(ctx); err != nil {
			t.Fatal(err)
		}
		if string(e.s.signer().key) != string(signing.key) {
			t.Fatal("a staged key signs")
		}
		if keys, _ = TokenKeys(ctx, d, lifetime); len(keys) != 3 || keys[1].State != KeySigning || keys[2].State != KeyStaged {
			t.Fatalf("keys after staging: %+v", keys)
		}
	})
}

// TestAutomaticRotation: nodes rotating at the same moment add one key.
func TestAutomaticRotation(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		if _, err := d.ExecContext(t.Context(), `UPDATE identity_token_keys SET created_at = ?`,
			db.Timestamp{Time: time.Now().Add(-2 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		b, _ := peer(t, e, d)
		if err := e.s.poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, s := range []*Service{e.s, b, e.s, b} {
			wg.Go(func() {
				if err := s.rotateIfDue(t.Context(), time.Minute); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if keys, _ := TokenKeys(t.Context(), d, time.Hour); len(keys) != 2 {
			t.Fatalf("keys after concurrent rotations: %+v", keys)
		}
		if err := e.s.rotateIfDue(t.Context(), time.Minute); err != nil {
			t.Fatal(err)
		}
		if keys, _ := TokenKeys(t.Context(), d, time.Hour); len(keys) != 2 {
			t.Fatalf("a rotation before it was due: %+v", keys)
		}
	})
}

// TestLegacyKeyImported: the key file of a release before the keys moved
// into the database becomes the first key, so its tokens stay valid.
func TestLegacyKeyImported(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		cfg := testConfig(t, "http://127.0.0.1:21099")
		raw := make([]byte, keySize)
		for i := range raw {
			raw[i] = byte(i)
		}
		path := KeyPath(cfg.Default.StatePath)
		os.MkdirAll(filepath.Dir(path), 0o700)
		os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600)
		s, err := newService(t.Context(), cfg, d, quietLogger(), 4)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Bootstrap(t.Context(), BootstrapOptions{Password: adminPW}); err != nil {
			t.Fatal(err)
		}
		p, err := s.authenticate(authRequestForScoped(t, "admin", adminPW, "admin"))
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := seal(newSigner(raw), p)
		if _, err := s.Validator().Validate(context.Background(), tok); err != nil {
			t.Fatalf("a token of the imported key: %v", err)
		}
	})
}
