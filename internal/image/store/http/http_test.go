package http_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	httpstore "github.com/ashlar-dev/ashlar/internal/image/store/http"
	"github.com/ashlar-dev/ashlar/internal/image/store/storetest"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

// fileServer serves dir under /images/ with net/http's FileServer (Range,
// HEAD, 416 and all).
func fileServer(t *testing.T) (dir string, srv *httptest.Server) {
	t.Helper()
	dir = t.TempDir()
	mux := http.NewServeMux()
	mux.Handle("/images/", http.StripPrefix("/images/", http.FileServer(http.Dir(dir))))
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return dir, srv
}

func seed(dir string) func(t *testing.T, key string, data []byte) {
	return func(t *testing.T, key string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, key), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConformance(t *testing.T) {
	dir, srv := fileServer(t)
	d, err := httpstore.Open(httpstore.Config{BaseURL: srv.URL + "/images"})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(*testing.T) store.Driver { return d }, storetest.Options{
		ReadOnly: true, Seed: seed(dir)})
}

// TestConformanceFullURLKeys runs the suite with keys that are whole URLs
// (Glance's location form) and no base URL.
func TestConformanceFullURLKeys(t *testing.T) {
	dir, srv := fileServer(t)
	d, err := httpstore.New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(*testing.T) store.Driver { return urlKeys{d, srv.URL + "/images/"} },
		storetest.Options{ReadOnly: true, Seed: seed(dir)})
}

// urlKeys turns the suite's keys into full URLs.
type urlKeys struct {
	*httpstore.Driver
	prefix string
}

func (u urlKeys) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	return u.Driver.Put(ctx, u.prefix+key, r)
}
func (u urlKeys) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	return u.Driver.Get(ctx, u.prefix+key, off, n)
}
func (u urlKeys) Delete(ctx context.Context, key string) error {
	return u.Driver.Delete(ctx, u.prefix+key)
}
func (u urlKeys) Size(ctx context.Context, key string) (int64, error) {
	return u.Driver.Size(ctx, u.prefix+key)
}

func TestURL(t *testing.T) {
	d, err := httpstore.New("https://images.example.com/pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]string{
		"abc":                                  "https://images.example.com/pub/abc",
		"dir/a b":                              "https://images.example.com/pub/dir/a%20b",
		"https://images.example.com/pub/x.img": "https://images.example.com/pub/x.img",
	}
	for key, want := range good {
		if got, err := d.URL(key); err != nil || got != want {
			t.Errorf("URL(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, key := range []string{"../etc/passwd", "a/../../b", "http://images.example.com/pub/x",
		"https://evil.example.com/pub/x", "https://images.example.com/other/x",
		"https://images.example.com/pub/../other/x"} {
		if got, err := d.URL(key); !errs.Is(err, errs.Invalid) {
			t.Errorf("URL(%q) = %q, %v; want Invalid", key, got, err)
		}
	}
	noBase, _ := httpstore.New("", nil)
	if _, err := noBase.URL("abc"); !errs.Is(err, errs.Invalid) {
		t.Errorf("relative key without base URL: %v, want Invalid", err)
	}
	if _, err := httpstore.New("ftp://x/", nil); !errs.Is(err, errs.Invalid) {
		t.Errorf("ftp base URL: %v, want Invalid", err)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		opts     map[string]string
		want     httpstore.Config
		problems []string
	}{
		{nil, httpstore.Config{}, nil},
		{map[string]string{httpstore.OptBaseURL: "https://web.example.com/img/"}, httpstore.Config{BaseURL: "https://web.example.com/img"}, nil},
		{map[string]string{httpstore.OptBaseURL: "ftp://web.example.com/"}, httpstore.Config{BaseURL: "ftp://web.example.com"},
			[]string{`[store:web] http_store_base_url: "ftp://web.example.com" is not an http(s) URL`}},
		{map[string]string{httpstore.OptBaseURL: "web.example.com"}, httpstore.Config{BaseURL: "web.example.com"},
			[]string{`[store:web] http_store_base_url: "web.example.com" is not an http(s) URL`}},
	}
	for _, tt := range tests {
		o := config.NewOptions(config.Store{ID: "web", Type: "http", Options: tt.opts})
		c := httpstore.ParseConfig(o)
		var problems []string
		for _, p := range o.Problems() {
			problems = append(problems, p.String())
		}
		if c != tt.want || !slices.Equal(problems, tt.problems) {
			t.Errorf("ParseConfig(%v) = %+v, %q; want %+v, %q", tt.opts, c, problems, tt.want, tt.problems)
		}
	}
}

// TestServerBehaviours covers servers that are not a tidy file server.
func TestServerBehaviours(t *testing.T) {
	data := storetest.Data(100000, 7)
	redirects := func(n int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			hop, _ := strconv.Atoi(r.URL.Query().Get("hop"))
			if hop < n {
				http.Redirect(w, r, fmt.Sprintf("%s?hop=%d", r.URL.Path, hop+1), http.StatusFound)
				return
			}
			http.ServeContent(w, r, "x", timeZero, bytes.NewReader(data))
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/norange", func(w http.ResponseWriter, r *http.Request) {
		// Ignores Range and sends the whole body, chunked (no length).
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.Method == http.MethodHead {
			return
		}
		w.(http.Flusher).Flush()
		_, _ = w.Write(data)
	})
	mux.HandleFunc("/redirect5", redirects(5))
	mux.HandleFunc("/redirect6", redirects(6))
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/forbidden", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusGone)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	d, err := httpstore.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read := func(key string, off, n int64) ([]byte, error) {
		rc, err := d.Get(ctx, key, off, n)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}

	t.Run("server ignoring Range", func(t *testing.T) {
		if b, err := read("norange", 1000, 500); err != nil || !bytes.Equal(b, data[1000:1500]) {
			t.Fatalf("ranged read = %d bytes, %v", len(b), err)
		}
		if b, err := read("norange", 99990, -1); err != nil || !bytes.Equal(b, data[99990:]) {
			t.Fatalf("tail read = %d bytes, %v", len(b), err)
		}
		if _, err := read("norange", 200000, -1); !errs.Is(err, errs.BadRange) {
			t.Fatalf("read past end = %v, want BadRange", err)
		}
		// No length on HEAD nor on a range request: the size is unknown
		// (counting a whole image to learn it is not worth it).
		if n, err := d.Size(ctx, "norange"); !errs.Is(err, errs.Unavailable) {
			t.Fatalf("Size without any length = %d, %v; want Unavailable", n, err)
		}
	})
	t.Run("5 redirects are followed", func(t *testing.T) {
		if b, err := read("redirect5", 0, -1); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("read = %d bytes, %v", len(b), err)
		}
	})
	t.Run("6 redirects are too many", func(t *testing.T) {
		if _, err := read("redirect6", 0, -1); !errs.Is(err, errs.Unavailable) {
			t.Fatalf("read = %v, want Unavailable", err)
		}
	})
	for key, kind := range map[string]errs.Kind{"broken": errs.Unavailable, "forbidden": errs.Unavailable,
		"gone": errs.NotFound, "missing": errs.NotFound} {
		t.Run(key, func(t *testing.T) {
			if _, err := read(key, 0, -1); !errs.Is(err, kind) {
				t.Fatalf("Get = %v, want %v", err, kind)
			}
			if _, err := d.Size(ctx, key); !errs.Is(err, kind) {
				t.Fatalf("Size = %v, want %v", err, kind)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		d, _ := httpstore.New(fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
		if _, err := d.Size(ctx, "x"); !errs.Is(err, errs.Unavailable) {
			t.Fatalf("Size = %v, want Unavailable", err)
		}
		if _, err := d.Get(ctx, "x", 0, -1); !errs.Is(err, errs.Unavailable) {
			t.Fatalf("Get = %v, want Unavailable", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := d.Get(cctx, "redirect5", 0, -1); err != context.Canceled {
			t.Fatalf("Get = %v, want context.Canceled", err)
		}
	})
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on loopback: %s", srv.URL)
	}
}

var timeZero time.Time

// BenchmarkHTTP reads from an httptest file server (Get only: read-only).
func BenchmarkHTTP(b *testing.B) {
	dir := b.TempDir()
	mux := http.NewServeMux()
	mux.Handle("/images/", http.StripPrefix("/images/", http.FileServer(http.Dir(dir))))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	d, err := httpstore.New(srv.URL+"/images/", nil)
	if err != nil {
		b.Fatal(err)
	}
	storetest.Bench(b, d, storetest.BenchOptions{
		ScratchDir: b.TempDir(),
		Seed: func(b *testing.B, key string, size int64) {
			f, err := os.Create(filepath.Join(dir, key))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if _, err := io.Copy(f, storetest.NewSource(size)); err != nil {
				b.Fatal(err)
			}
		},
	})
}
