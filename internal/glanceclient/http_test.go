package glanceclient

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// fakeGlance mimics the Glance v2 responses the client relies on (bodies,
// statuses and webob error dialects as recorded in glance-behaviour.md).
type fakeGlance struct {
	mu     sync.Mutex
	images map[string]map[string]any
	data   map[string][]byte
	next   int
	// lastStoreHeader is the X-Image-Meta-Store of the last upload.
	lastStoreHeader string
	lastCType       string
	lastLength      int64
}

const goodToken = "tok"

func newFake(t *testing.T) (*fakeGlance, *HTTP) {
	f := &fakeGlance{images: map[string]map[string]any{}, data: map[string][]byte{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

// webobError renders an error as webob does, negotiated on Accept.
func webobError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	title := http.StatusText(status)
	code := fmt.Sprintf("%d %s", status, title)
	switch a := r.Header.Get("Accept"); {
	case strings.Contains(a, "application/json"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"message": msg + "<br /><br />\n\n\n", "code": code, "title": title})
	case a == "" || strings.Contains(a, "text/plain"):
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s\n\n%s\n\n   ", code, msg)
	default:
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html>\n <head>\n  <title>%s</title>\n </head>\n <body>\n  <h1>%s</h1>\n  %s<br /><br />\n\n\n\n </body>\n</html>", code, code, html.EscapeString(msg))
	}
}

func (f *fakeGlance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Auth-Token") != goodToken {
		webobError(w, r, 401, "The request you have made requires authentication.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	path := r.URL.Path
	id, sub, _ := strings.Cut(strings.TrimPrefix(path, "/v2/images/"), "/")
	switch {
	case r.Method == "GET" && path == "/v2/info/stores":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"stores": [{"id": "fast", "description": "Fast store", "default": "true"},
			{"id": "cheap"}, {"id": "web", "description": "Read-only HTTP store", "read-only": "true"}]}`)
	case r.Method == "POST" && path == "/v2/images":
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			webobError(w, r, 400, "Malformed JSON in request body.")
			return
		}
		if _, ok := m["status"]; ok {
			webobError(w, r, 403, "Attribute 'status' is read-only.")
			return
		}
		f.next++
		m["id"] = fmt.Sprintf("img-%d", f.next)
		m["status"] = "queued"
		m["size"], m["virtual_size"], m["checksum"] = nil, nil, nil
		m["protected"], m["min_disk"], m["owner"] = false, 0, "p1"
		f.images[m["id"].(string)] = m
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(m)
	case strings.HasPrefix(path, "/v2/images/"):
		img, ok := f.images[id]
		if !ok {
			webobError(w, r, 404, "No image found with ID "+id)
			return
		}
		switch {
		case r.Method == "GET" && sub == "":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(img)
		case r.Method == "DELETE" && sub == "":
			delete(f.images, id)
			w.WriteHeader(204)
		case r.Method == "PUT" && sub == "file":
			f.lastStoreHeader, f.lastCType, f.lastLength = r.Header.Get("X-Image-Meta-Store"), r.Header.Get("Content-Type"), r.ContentLength
			if r.Header.Get("Content-Type") != "application/octet-stream" {
				webobError(w, r, 415, "The request media type "+r.Header.Get("Content-Type")+" is not supported by this server.")
				return
			}
			store := r.Header.Get("X-Image-Meta-Store")
			switch store {
			case "", "fast", "cheap":
			case "web":
				webobError(w, r, 410, "Error in store configuration. Adding images to store is disabled.")
				return
			default:
				webobError(w, r, 400, "Store for identifier "+store+" not found")
				return
			}
			if img["status"] != "queued" {
				webobError(w, r, 409, fmt.Sprintf("Image status transition from %s to saving is not allowed", img["status"]))
				return
			}
			md, sh := md5.New(), sha512.New()
			var buf bytes.Buffer
			n, err := io.Copy(io.MultiWriter(md, sh, &buf), io.LimitReader(r.Body, 1<<20+1))
			if err != nil {
				return
			}
			if n > 1<<20 {
				webobError(w, r, 413, "The incoming image is too large: The provided image is too large.")
				return
			}
			if store == "" {
				store = "fast"
			}
			img["status"], img["size"], img["stores"] = "active", n, store
			img["checksum"], img["os_hash_value"] = hex.EncodeToString(md.Sum(nil)), hex.EncodeToString(sh.Sum(nil))
			f.data[id] = buf.Bytes()
			w.WriteHeader(204)
		case r.Method == "GET" && sub == "file":
			d, ok := f.data[id]
			if !ok {
				w.WriteHeader(204)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(d)
		default:
			webobError(w, r, 405, "The method is not allowed for this resource.")
		}
	default:
		webobError(w, r, 404, "The resource could not be found.")
	}
}

func TestStores(t *testing.T) {
	_, c := newFake(t)
	got, err := c.Stores(context.Background(), goodToken)
	if err != nil {
		t.Fatal(err)
	}
	want := []Store{{ID: "fast", Description: "Fast store", Default: true}, {ID: "cheap"},
		{ID: "web", Description: "Read-only HTTP store", ReadOnly: true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Stores = %+v, want %+v", got, want)
	}
}

func TestImageLifecycle(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	img := mustCreate(t, c, map[string]any{"name": "vol-img", "disk_format": "raw",
		"container_format": "bare", "visibility": "private", "protected": false, "hw_disk_bus": "scsi"})
	if img.ID == "" || img.Status != "queued" || img.Name != "vol-img" || img.DiskFormat != "raw" ||
		img.Visibility != "private" || img.Owner != "p1" || img.Properties["hw_disk_bus"] != "scsi" {
		t.Fatalf("created image %+v", img)
	}
	if _, ok := img.Properties["name"]; ok {
		t.Error("core field name also in Properties")
	}
	data := bytes.Repeat([]byte("ashlar"), 1000)
	if err := c.Upload(ctx, goodToken, img.ID, "cheap", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if f.lastStoreHeader != "cheap" || f.lastCType != "application/octet-stream" || f.lastLength != int64(len(data)) {
		t.Fatalf("upload sent store %q type %q length %d", f.lastStoreHeader, f.lastCType, f.lastLength)
	}
	wantStored(t, c, goodToken, img.ID, "cheap", data)
	if err := c.DeleteImage(ctx, goodToken, img.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetImage(ctx, goodToken, img.ID); !errs.Is(err, errs.NotFound) || errs.Message(err) != "No image found with ID "+img.ID {
		t.Fatalf("get deleted image: %v (%q)", err, errs.Message(err))
	}
}

// mustCreate creates an image with fields as goodToken, failing the test
// when that fails.
func mustCreate(t *testing.T, c Client, fields map[string]any) *Image {
	t.Helper()
	img, err := c.CreateImage(context.Background(), goodToken, fields)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// wantStored checks that image id is active in store with data (size and
// MD5 checksum) and serves data back.
func wantStored(t *testing.T, c Client, token, id, store string, data []byte) {
	t.Helper()
	ctx := context.Background()
	got, err := c.GetImage(ctx, token, id)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	if got.Status != "active" || got.Size != int64(len(data)) || got.Stores != store || got.Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("after upload: %+v", got)
	}
	rc, err := c.Download(ctx, token, id)
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("download: %v, %d bytes", err, len(back))
	}
}

func TestUploadDefaultStoreAndChunked(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	img := mustCreate(t, c, map[string]any{"name": "x", "disk_format": "qcow2", "container_format": "bare"})
	// Size unknown: chunked, and no store header.
	if err := c.Upload(ctx, goodToken, img.ID, "", io.MultiReader(strings.NewReader("abc")), -1); err != nil {
		t.Fatal(err)
	}
	if f.lastStoreHeader != "" || f.lastLength != -1 {
		t.Fatalf("store header %q, length %d", f.lastStoreHeader, f.lastLength)
	}
	got, _ := c.GetImage(ctx, goodToken, img.ID)
	if got.Stores != "fast" || got.Size != 3 {
		t.Fatalf("image %+v", got)
	}
	// An image without data downloads as Invalid.
	empty := mustCreate(t, c, map[string]any{"name": "e"})
	if _, err := c.Download(ctx, goodToken, empty.ID); !errs.Is(err, errs.Invalid) {
		t.Fatalf("download without data: %v", err)
	}
}

func TestErrors(t *testing.T) {
	_, c := newFake(t)
	ctx := context.Background()
	img := mustCreate(t, c, map[string]any{"name": "e", "disk_format": "raw", "container_format": "bare"})
	small := func() io.Reader { return strings.NewReader("data") }
	cases := []struct {
		name string
		call func() error
		kind errs.Kind
		msg  string
	}{
		{"bad token", func() error { _, err := c.Stores(ctx, "nope"); return err },
			errs.Unauthorized, "The request you have made requires authentication."},
		{"unknown store", func() error { return c.Upload(ctx, goodToken, img.ID, "nosuch", small(), 4) },
			errs.Invalid, "Store for identifier nosuch not found"},
		{"read-only store", func() error { return c.Upload(ctx, goodToken, img.ID, "web", small(), 4) },
			errs.Gone, "Error in store configuration. Adding images to store is disabled."},
		{"too large", func() error {
			return c.Upload(ctx, goodToken, img.ID, "", bytes.NewReader(make([]byte, 2<<20)), 2<<20)
		}, errs.TooLarge, "The incoming image is too large: The provided image is too large."},
		{"missing image", func() error { return c.Upload(ctx, goodToken, "nope", "", small(), 4) },
			errs.NotFound, "No image found with ID nope"},
		{"read-only attribute", func() error {
			_, err := c.CreateImage(ctx, goodToken, map[string]any{"status": "active"})
			return err
		}, errs.Forbidden, "Attribute 'status' is read-only."},
		{"delete missing", func() error { return c.DeleteImage(ctx, goodToken, "nope") },
			errs.NotFound, "No image found with ID nope"},
		{"second upload", func() error {
			if err := c.Upload(ctx, goodToken, img.ID, "", small(), 4); err != nil {
				return err
			}
			return c.Upload(ctx, goodToken, img.ID, "", small(), 4)
		}, errs.Conflict, "Image status transition from active to saving is not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errs.Is(err, tc.kind) || errs.Message(err) != tc.msg {
				t.Fatalf("got %v (kind %v, message %q), want kind %v message %q", err, errs.KindOf(err), errs.Message(err), tc.kind, tc.msg)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	c, _ := New("http://"+addr, nil)
	if _, err := c.Stores(context.Background(), goodToken); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("refused connection: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
	}))
	defer srv.Close()
	c, _ = New(srv.URL+"/v2", nil)
	if _, err := c.GetImage(context.Background(), goodToken, "x"); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("503: %v", err)
	}
}

func TestUploadSourceError(t *testing.T) {
	_, c := newFake(t)
	ctx := context.Background()
	img := mustCreate(t, c, map[string]any{"name": "e", "disk_format": "raw", "container_format": "bare"})
	boom := errors.New("volume read failed")
	src := io.MultiReader(strings.NewReader("part"), errReader{boom})
	if err := c.Upload(ctx, goodToken, img.ID, "", src, 100); !errors.Is(err, boom) {
		t.Fatalf("Upload with failing source = %v, want the source's error", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestErrorText(t *testing.T) {
	cases := []struct{ ctype, body, msg, detail string }{
		{"application/json", `{"message": "No image found with ID x<br /><br />\n\n\n", "code": "404 Not Found", "title": "Not Found"}`, "No image found with ID x", ""},
		{"application/json", `{"message": "Access was denied to this resource.<br /><br />\nAttribute 'os_glance_foo' is reserved.\n\n", "code": "403 Forbidden", "title": "Forbidden"}`,
			"Access was denied to this resource.", "Attribute 'os_glance_foo' is reserved."},
		{"text/html; charset=UTF-8", "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID x<br /><br />\n\n\n\n </body>\n</html>", "No image found with ID x", ""},
		{"text/plain; charset=UTF-8", "404 Not Found\n\nNo image found with ID x\n\n   ", "No image found with ID x", ""},
		{"application/json", `{"itemNotFound": {"code": 404, "message": "Volume x could not be found."}}`, "Volume x could not be found.", ""},
	}
	for _, c := range cases {
		msg, detail := errorText(c.ctype, []byte(c.body))
		if msg != c.msg || detail != c.detail {
			t.Errorf("errorText(%q) = %q, %q; want %q, %q", c.body, msg, detail, c.msg, c.detail)
		}
	}
}

func TestNewInvalidURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9292", "ftp://x", "http://"} {
		if _, err := New(u, nil); !errs.Is(err, errs.Invalid) {
			t.Errorf("New(%q) = %v", u, err)
		}
	}
	c, err := New("http://h:9292/v2/", nil)
	if err != nil || c.Endpoint() != "http://h:9292" {
		t.Fatalf("endpoint %v %v", c, err)
	}
}

// TestUploadFile covers the sendfile path: an *os.File body is sent as is
// and left open for the caller.
func TestUploadFile(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	img := mustCreate(t, c, map[string]any{"name": "f", "disk_format": "raw", "container_format": "bare"})
	data := bytes.Repeat([]byte{1, 2, 3, 0, 0, 0, 0, 9}, 40000)
	p := t.TempDir() + "/vol"
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if err := c.Upload(ctx, goodToken, img.ID, "fast", file, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.data[img.ID], data) || f.lastLength != int64(len(data)) {
		t.Fatalf("stored %d bytes (length header %d), want %d", len(f.data[img.ID]), f.lastLength, len(data))
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		t.Fatalf("the caller's file was closed: %v", err)
	}
}

// TestUploadOnFreshConnection: uploads never go out on a kept-alive
// connection (which the server may have closed while idle: a streamed body
// cannot be replayed), while other calls reuse theirs.
func TestUploadOnFreshConnection(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]int{} // requests per connection
	var order []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		conns[r.RemoteAddr]++
		order = append(order, r.Method+" "+r.RemoteAddr)
		mu.Unlock()
		w.WriteHeader(204)
	}))
	srv.Start()
	defer srv.Close()
	c, _ := New(srv.URL, nil)
	ctx := context.Background()
	for range 3 {
		if err := c.DeleteImage(ctx, goodToken, "x"); err != nil {
			t.Fatal(err)
		}
		if err := c.Upload(ctx, goodToken, "img", "", io.MultiReader(strings.NewReader("abc")), 3); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, o := range order {
		method, addr, _ := strings.Cut(o, " ")
		if method == "PUT" && conns[addr] != 1 {
			t.Fatalf("an upload shared its connection: %v", order)
		}
	}
	deletes := 0
	for _, o := range order {
		if strings.HasPrefix(o, "DELETE") && conns[strings.TrimPrefix(o, "DELETE ")] == 3 {
			deletes++
		}
	}
	if deletes != 3 {
		t.Fatalf("other calls did not keep their connection alive: %v", order)
	}
}

// Every request about one image refuses an id that is a dot segment (or
// empty) as not found, without a request: the server would resolve such
// a path to another resource (the fuzzer's imageRef "." reached the image
// list).
func TestDotSegmentIDs(t *testing.T) {
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func(id string) error{
		"GetImage":    func(id string) error { _, err := c.GetImage(ctx, goodToken, id); return err },
		"Upload":      func(id string) error { return c.Upload(ctx, goodToken, id, "", strings.NewReader("x"), 1) },
		"Download":    func(id string) error { _, err := c.Download(ctx, goodToken, id); return err },
		"DeleteImage": func(id string) error { return c.DeleteImage(ctx, goodToken, id) },
	}
	for name, call := range calls {
		for _, id := range []string{"", ".", ".."} {
			if err := call(id); !errs.Is(err, errs.NotFound) {
				t.Errorf("%s(%q) = %v, want not found", name, id, err)
			}
		}
	}
	if requests != 0 {
		t.Errorf("%d requests reached the server", requests)
	}
}
