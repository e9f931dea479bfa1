package glanceclient

import (
	"bytes"
	"context"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

// TestRealGlance runs the client against a real glance-api (or any Glance
// v2 endpoint, testenv.RealGlance) with stores fast (default), cheap and
// the read-only web, as in the interop suite's Glance peer.
func TestRealGlance(t *testing.T) {
	u, tok := testenv.RealGlance(t)
	c, err := New(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stores, err := c.Stores(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Store{}
	for _, s := range stores {
		byID[s.ID] = s
	}
	if !byID["fast"].Default || byID["cheap"].Default || !byID["web"].ReadOnly || byID["cheap"].ReadOnly {
		t.Fatalf("stores %+v", stores)
	}
	img, err := c.CreateImage(ctx, tok, map[string]any{"name": "ashlar-client-test", "disk_format": "raw",
		"container_format": "bare", "visibility": "private", "ashlar_prop": "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteImage(ctx, tok, img.ID)
	if img.Status != "queued" || img.Properties["ashlar_prop"] != "x" {
		t.Fatalf("created %+v", img)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 70000)
	err = c.Upload(ctx, tok, img.ID, "nosuch", bytes.NewReader(data), int64(len(data)))
	if !errs.Is(err, errs.Invalid) || errs.Message(err) != "Store for identifier nosuch not found" {
		t.Fatalf("unknown store: %v (%q)", err, errs.Message(err))
	}
	err = c.Upload(ctx, tok, img.ID, "web", bytes.NewReader(data), int64(len(data)))
	if !errs.Is(err, errs.Gone) || errs.Message(err) != "Error in store configuration. Adding images to store is disabled." {
		t.Fatalf("read-only store: %v (%q)", err, errs.Message(err))
	}
	if err := c.Upload(ctx, tok, img.ID, "cheap", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	wantStored(t, c, tok, img.ID, "cheap", data)
	err = c.Upload(ctx, tok, img.ID, "", bytes.NewReader(data), int64(len(data)))
	if !errs.Is(err, errs.Conflict) {
		t.Fatalf("second upload: %v", err)
	}
	if err := c.DeleteImage(ctx, tok, img.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetImage(ctx, tok, img.ID); !errs.Is(err, errs.NotFound) {
		t.Fatalf("deleted image: %v", err)
	}
}
