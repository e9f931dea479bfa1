package upload

import (
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/glanceclient"
)

// sink is a stand-in for Glance's PUT /v2/images/{id}/file: it hashes the
// data as Glance does (md5 and sha512, one thread, 64 KiB chunks) and, when
// dir is set, keeps it in dir/<id>.
type sink struct {
	dir string
	// noHash only counts the bytes: it measures the sending side alone.
	noHash bool
	mu     sync.Mutex
	// per image id
	stores map[string]string
	md5s   map[string]string
	sizes  map[string]int64
}

func newSink(t testing.TB, keep bool) (*sink, glanceclient.Client) {
	s := &sink{stores: map[string]string{}, md5s: map[string]string{}, sizes: map[string]int64{}}
	if keep {
		s.dir = t.TempDir()
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := glanceclient.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v2/images/"), "/file")
	if r.Method != http.MethodPut || !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	store := r.Header.Get("X-Image-Meta-Store")
	if store == "web" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGone)
		io.WriteString(w, `{"message": "Error in store configuration. Adding images to store is disabled.<br /><br />\n\n\n", "code": "410 Gone", "title": "Gone"}`)
		return
	}
	var out io.Writer = io.Discard
	if s.dir != "" {
		f, err := os.Create(filepath.Join(s.dir, id))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		out = f
	}
	md, sh := md5.New(), sha512.New()
	var n int64
	var err error
	if s.noHash {
		// Not io.Copy: io.Discard would read in 8 KiB pieces.
		n, err = hashCopy(out, r.Body)
	} else {
		n, err = hashCopy(out, r.Body, md, sh)
	}
	if err != nil {
		return
	}
	s.mu.Lock()
	s.stores[id], s.md5s[id], s.sizes[id] = store, hex.EncodeToString(md.Sum(nil)), n
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// hashCopy copies src to dst in 64 KiB chunks, feeding each chunk to md5
// and then sha512 in this goroutine, as glance_store does.
func hashCopy(dst io.Writer, src io.Reader, hs ...hash.Hash) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := io.ReadFull(src, buf)
		if k > 0 {
			for _, h := range hs {
				h.Write(buf[:k])
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (s *sink) path(id string) string { return filepath.Join(s.dir, id) }
