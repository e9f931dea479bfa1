package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// BenchmarkValidate measures the hot path the image and volume APIs call on
// every request, against baselines measured in the same run: one
// HMAC-SHA256 over the token bytes (keyed afresh, as a naive verifier
// does, and pooled, as Validate does), the least any signed-token check
// costs.
//
//	go test -run '^$' -bench Validate -benchmem ./internal/identity/
func BenchmarkValidate(b *testing.B) {
	ctx := context.Background()
	d := dbtest.Open(b, "sqlite")
	s, err := newService(ctx, testConfig(b, "http://127.0.0.1:21099"), d, quietLogger(), 4)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Bootstrap(ctx, BootstrapOptions{Password: adminPW}); err != nil {
		b.Fatal(err)
	}
	p, err := s.authenticate(authRequestForScoped(b, "admin", adminPW, "admin"))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := seal(s.signer(), p)
	if err != nil {
		b.Fatal(err)
	}
	v := s.Validator()
	if c, err := v.Validate(ctx, tok); err != nil || !c.IsAdmin() {
		b.Fatal(c, err)
	}
	b.Run("baseline-hmac-sha256", func(b *testing.B) {
		b.ReportAllocs()
		tb := []byte(tok)
		var sum [sha256.Size]byte
		for b.Loop() {
			m := hmac.New(sha256.New, s.signer().key)
			m.Write(tb)
			m.Sum(sum[:0])
		}
	})
	// The same HMAC with the pooled, pre-keyed state Validate uses: the
	// difference to "validate" is everything but the signature check.
	b.Run("baseline-pooled-hmac", func(b *testing.B) {
		b.ReportAllocs()
		tb := []byte(tok)
		var sum [sha256.Size]byte
		for b.Loop() {
			s.signer().mac(sum[:0], tb)
		}
	})
	b.Run("validate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validate-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Validate(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// The same with 1000 more users and 1000 live revocations: the cost
	// does not grow with the data set.
	exp := db.Timestamp{Time: time.Now().Add(time.Hour)}
	err = s.write(ctx, func(tx *db.Tx) error {
		for i := range 1000 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO identity_users (id, name, domain_id, tokens_valid_after, created_at)
				VALUES (?, ?, 'default', ?, ?)`, newID(), fmt.Sprintf("user%d", i), db.Now(), db.Now()); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO identity_revocations (audit_id, expires_at) VALUES (?, ?)`,
				encodeAudit(newAuditID()), exp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if n := len(s.snap.Load().revoked); n != 1000 {
		b.Fatalf("%d revocations loaded", n)
	}
	b.Run("validate-1000-users-1000-revocations", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
