package volume

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// testGlance is a small Glance v2 endpoint for the volume tests: stores
// info, image records, data upload honouring X-Image-Meta-Store, download
// and delete. It is confined to tests; the client under test is the real
// glanceclient.HTTP talking to it over HTTP.
type testGlance struct {
	srv     *httptest.Server
	mu      sync.Mutex
	images  map[string]map[string]any
	data    map[string][]byte
	stores  []map[string]string
	sizeCap int64
	// uploadHeaders records the X-Image-Meta-Store of every upload.
	uploadStores []string
	tokens       []string
	// beforeCreate, when set, runs as an image create arrives.
	beforeCreate func(fields map[string]any)
}

func newTestGlance(t *testing.T) *testGlance {
	g := &testGlance{images: map[string]map[string]any{}, data: map[string][]byte{},
		stores: []map[string]string{{"id": "fast", "default": "true"}, {"id": "cheap"}, {"id": "web", "read-only": "true"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/info/stores", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		writeJSON(w, 200, map[string]any{"stores": g.stores})
	})
	mux.HandleFunc("POST /v2/images", func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "bad json", 400)
			return
		}
		if cf, _ := m["container_format"].(string); cf != "" && cf != "bare" && cf != "ovf" {
			http.Error(w, "400 Bad Request\n\nUnable to set 'container_format' to '"+cf+"'.", 400)
			return
		}
		if g.beforeCreate != nil {
			g.beforeCreate(m)
		}
		id := uuid.NewString()
		if v, ok := m["id"].(string); ok {
			id = v
		}
		m["id"], m["status"], m["size"] = id, "queued", nil
		if _, ok := m["visibility"]; !ok {
			m["visibility"] = "shared"
		}
		if _, ok := m["protected"]; !ok {
			m["protected"] = false
		}
		g.mu.Lock()
		g.images[id] = m
		g.mu.Unlock()
		writeJSON(w, 201, m)
	})
	mux.HandleFunc("GET /v2/images/{id}", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		m, ok := g.images[r.PathValue("id")]
		if !ok {
			http.Error(w, "404 Not Found\n\nNo image found with ID "+r.PathValue("id"), 404)
			return
		}
		writeJSON(w, 200, m)
	})
	mux.HandleFunc("DELETE /v2/images/{id}", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if _, ok := g.images[r.PathValue("id")]; !ok {
			http.Error(w, "not found", 404)
			return
		}
		delete(g.images, r.PathValue("id"))
		delete(g.data, r.PathValue("id"))
		w.WriteHeader(204)
	})
	mux.HandleFunc("PUT /v2/images/{id}/file", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		store := r.Header.Get("X-Image-Meta-Store")
		g.mu.Lock()
		m, ok := g.images[id]
		g.uploadStores = append(g.uploadStores, store)
		g.tokens = append(g.tokens, r.Header.Get("X-Auth-Token"))
		capBytes := g.sizeCap
		g.mu.Unlock()
		if !ok {
			http.Error(w, "not found", 404)
			return
		}
		if store == "" {
			store = "fast"
		}
		known := false
		for _, s := range g.stores {
			known = known || s["id"] == store
		}
		if !known {
			http.Error(w, "400 Bad Request\n\nUnknown scheme", 400)
			return
		}
		// Keep the first keepBytes for checks; hash and count the rest.
		h := md5.New()
		var head bytes.Buffer
		n, err := io.Copy(io.MultiWriter(h, &limitedBuffer{&head, keepBytes}), r.Body)
		if err != nil {
			http.Error(w, "read", 400)
			return
		}
		if capBytes > 0 && n > capBytes {
			http.Error(w, "413 Request Entity Too Large\n\nImage exceeds the storage quota", 413)
			return
		}
		g.mu.Lock()
		g.data[id] = head.Bytes()
		m["status"], m["size"], m["stores"], m["checksum"] = "active", n, store, hex.EncodeToString(h.Sum(nil))
		g.mu.Unlock()
		w.WriteHeader(204)
	})
	mux.HandleFunc("GET /v2/images/{id}/file", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		b, ok := g.data[r.PathValue("id")]
		g.mu.Unlock()
		if !ok {
			w.WriteHeader(204)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	})
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

// addImage registers an active image with data.
func (g *testGlance) addImage(fields map[string]any, data []byte) string {
	id := uuid.NewString()
	m := map[string]any{"id": id, "status": "active", "size": len(data), "disk_format": "raw",
		"container_format": "bare", "min_disk": 0, "min_ram": 0, "visibility": "public", "protected": false,
		"checksum": "x", "stores": "fast"}
	for k, v := range fields {
		m[k] = v
	}
	g.mu.Lock()
	g.images[id] = m
	g.data[id] = data
	g.mu.Unlock()
	return id
}

// image returns a copy of the image's fields (handlers keep changing the
// original under g.mu) and its kept data.
func (g *testGlance) image(id string) (map[string]any, []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.images[id]), g.data[id]
}

func (g *testGlance) imageCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.images)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// keepBytes is how much of each uploaded image the test Glance keeps.
const keepBytes = 4 << 20

// limitedBuffer keeps at most max bytes and discards the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
