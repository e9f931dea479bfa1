package identity

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	key := newSigner(make([]byte, keySize))
	now := time.Now().UTC().Truncate(time.Microsecond)
	tests := []payload{
		{Methods: methodPassword, IssuedAt: now, ExpiresAt: now.Add(time.Hour), AuditID: newAuditID(), UserID: "u", ProjectID: "p"},
		{Methods: methodPassword | methodToken, IssuedAt: now, ExpiresAt: now.Add(time.Minute), AuditID: newAuditID(), ChainID: newAuditID(), UserID: "0123456789abcdef0123456789abcdef"},
	}
	for _, p := range tests {
		tok, err := seal(key, &p)
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) > 255 {
			t.Errorf("token is %d bytes; keep it under 255 like Keystone's", len(tok))
		}
		got, err := open(key, tok)
		if err != nil || *got != p {
			t.Errorf("open(seal(%+v)) = %+v, %v", p, got, err)
		}
	}
	if _, err := seal(key, &payload{UserID: string(make([]byte, 300))}); err == nil {
		t.Error("sealed an oversized id")
	}
}

func TestLoadKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "token.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := loadKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if string(k) != string(keys[0]) || len(k) != keySize {
			t.Fatal("concurrent loadKey calls disagree on the key")
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi, err)
	}
	again, err := loadKey(path)
	if err != nil || string(again) != string(keys[0]) {
		t.Errorf("reload: %v", err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := loadKey(path); err == nil {
		t.Error("accepted a corrupt key file")
	}
}
