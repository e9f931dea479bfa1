//go:build linux

package main

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// The reference must do the work it stands for: every byte written and
// hashed, whatever the size relative to its chunks.
func TestDurableCopy(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, chunkSize - 1, chunkSize, chunks*chunkSize + 12345} {
		data := make([]byte, n)
		rand.Read(data)
		path := filepath.Join(dir, "obj")
		// Short reads, as from a socket: the copy must not depend on full ones.
		res, err := durableCopy(path, io.LimitReader(&shortReader{bytes.NewReader(data)}, int64(n)))
		if err != nil {
			t.Fatal(n, err)
		}
		got, _ := os.ReadFile(path)
		m, s := md5.Sum(data), sha512.Sum512(data)
		if !bytes.Equal(got, data) || res.size != int64(n) || res.md5 != hex.EncodeToString(m[:]) || res.sha512 != hex.EncodeToString(s[:]) {
			t.Errorf("%d bytes: wrote %d bytes, result %v", n, len(got), res)
		}
	}
}

// A body that fails part-way leaves no file behind.
func TestDurableCopyReadError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "obj")
	broken := io.MultiReader(bytes.NewReader(make([]byte, 3*chunkSize)), errReader{})
	if _, err := durableCopy(path, broken); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file left after a failed copy: %v", err)
	}
}

// serve's handler writes a PUT body under its name.
func TestServePut(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewServer(handler(dir))
	defer srv.Close()
	req, _ := http.NewRequest("PUT", srv.URL+"/.benchref-1", bytes.NewReader([]byte("hello")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, _ := os.ReadFile(filepath.Join(dir, ".benchref-1")); resp.StatusCode != http.StatusCreated || string(got) != "hello" {
		t.Errorf("status %d, file %q", resp.StatusCode, got)
	}
}

type shortReader struct{ r io.Reader }

func (s *shortReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 1000)]) }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
