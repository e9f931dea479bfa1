package identity

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
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

// TestReadKeyFile: the key file of an older release is read for import;
// none is no key, and a corrupt one an error.
func TestReadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token.key")
	if k, err := readKeyFile(path); k != "" || err != nil {
		t.Errorf("no file: %q, %v", k, err)
	}
	want := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, keySize))
	os.WriteFile(path, []byte(want+"\n"), 0o600)
	if k, err := readKeyFile(path); k != want || err != nil {
		t.Errorf("key file: %q, %v", k, err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := readKeyFile(path); err == nil {
		t.Error("accepted a corrupt key file")
	}
}
