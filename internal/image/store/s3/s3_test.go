package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/s3"
	"github.com/ashlar-dev/ashlar/internal/image/store/storetest"
	"github.com/ashlar-dev/ashlar/internal/testenv"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var bucketSeq int

// newDriver returns a driver on a fresh bucket of the package's MinIO,
// created on first Put, with S3's smallest part size so multipart
// boundaries are cheap to cross.
func newDriver(t testing.TB, mutate func(*s3.Config)) *s3.Driver {
	t.Helper()
	m := testenv.SharedMinIO(t)
	bucketSeq++
	c := s3.Config{
		Endpoint:     m.Endpoint,
		Bucket:       fmt.Sprintf("test-%d-%d", os.Getpid(), bucketSeq),
		AccessKey:    m.AccessKey,
		SecretKey:    m.SecretKey,
		Region:       m.Region,
		CreateBucket: true,
		PartSize:     5 << 20,
		Concurrency:  2,
	}
	if mutate != nil {
		mutate(&c)
	}
	d, err := s3.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func uploads(t *testing.T, d *s3.Driver, prefix string) []string {
	t.Helper()
	var left []string
	err := d.ListUploads(context.Background(), prefix, func(key, id string) error {
		left = append(left, key+"#"+id)
		return nil
	})
	if err != nil {
		t.Fatalf("ListUploads: %v", err)
	}
	return left
}

func TestConformance(t *testing.T) {
	d := newDriver(t, nil)
	storetest.Run(t, func(*testing.T) store.Driver { return d }, storetest.Options{
		Leftovers:  func(t *testing.T, key string) []string { return uploads(t, d, key) },
		ExtraSizes: []int{10<<20 - 1, 10 << 20, 10<<20 + 1},
	})
}

func TestOpen(t *testing.T) {
	m := testenv.SharedMinIO(t)
	ok := map[string]string{
		s3.OptHost: m.Endpoint, s3.OptBucket: "open-test", s3.OptAccessKey: m.AccessKey,
		s3.OptSecretKey: m.SecretKey, s3.OptCreateBucketOnPut: "true", s3.OptChunkSize: "8",
		s3.OptThreadPools: "3",
	}
	d, err := s3.Open(context.Background(), config.Store{ID: "cheap", Type: "s3", Options: ok})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(context.Background(), "k", strings.NewReader("v")); err != nil {
		t.Fatalf("Put through an opened store: %v", err)
	}
	bad := []map[string]string{
		{},
		{s3.OptHost: m.Endpoint, s3.OptBucket: "b", s3.OptAccessKey: "a"},
		with(ok, s3.OptChunkSize, "4"),
		with(ok, s3.OptChunkSize, "x"),
		with(ok, s3.OptThreadPools, "0"),
		with(ok, s3.OptCreateBucketOnPut, "maybe"),
		with(ok, s3.OptHost, "http://[::1"),
	}
	for i, o := range bad {
		if _, err := s3.Open(context.Background(), config.Store{ID: "x", Type: "s3", Options: o}); !errs.Is(err, errs.Invalid) {
			t.Errorf("case %d: Open(%v) = %v, want Invalid", i, o, err)
		}
	}
}

func with(m map[string]string, k, v string) map[string]string {
	c := map[string]string{}
	for a, b := range m {
		c[a] = b
	}
	c[k] = v
	return c
}

// TestUnavailable: a server that is not there, refused credentials and a
// missing bucket (not to be created) are all 503-class errors.
func TestUnavailable(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*s3.Config){
		"unreachable":        func(c *s3.Config) { c.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", port) },
		"wrong secret":       func(c *s3.Config) { c.SecretKey = "wrong-secret-key" },
		"missing bucket":     func(c *s3.Config) { c.CreateBucket = false },
		"unknown access key": func(c *s3.Config) { c.AccessKey = "nobody" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			d := newDriver(t, mutate)
			ctx := context.Background()
			_, err := d.Put(ctx, "k", bytes.NewReader(storetest.Data(100, 1)))
			if !errs.Is(err, errs.Unavailable) {
				t.Fatalf("Put = %v (kind %v), want Unavailable", err, errs.KindOf(err))
			}
			_, err = d.Put(ctx, "k", bytes.NewReader(storetest.Data(7<<20, 1)))
			if !errs.Is(err, errs.Unavailable) {
				t.Fatalf("multipart Put = %v (kind %v), want Unavailable", err, errs.KindOf(err))
			}
			if _, err := d.Size(ctx, "k"); !errs.Is(err, errs.Unavailable) {
				t.Fatalf("Size = %v (kind %v), want Unavailable", err, errs.KindOf(err))
			}
			if _, err := d.Get(ctx, "k", 0, -1); !errs.Is(err, errs.Unavailable) {
				t.Fatalf("Get = %v (kind %v), want Unavailable", err, errs.KindOf(err))
			}
		})
	}
}

// TestPartSizeGrowth checks the part-size schedule that lets uploads of
// unknown length reach S3's maximum object size.
func TestPartSizeGrowth(t *testing.T) {
	d := newDriver(t, func(c *s3.Config) { c.PartSize = 10 << 20 })
	cases := []struct {
		part int32
		want int64
	}{{1, 10 << 20}, {1000, 10 << 20}, {1001, 20 << 20}, {2001, 40 << 20}, {9001, 5 << 30}, {10000, 5 << 30}}
	for _, c := range cases {
		if got := s3.PartSizeFor(d, c.part); got != c.want {
			t.Errorf("part %d: size %d, want %d", c.part, got, c.want)
		}
	}
	var total int64
	for n := int32(1); n <= 10000; n++ {
		total += s3.PartSizeFor(d, n)
	}
	if total < 5<<40 {
		t.Errorf("10,000 parts hold %d bytes, want >= 5 TiB", total)
	}
}

// TestAbortUploads: the crash-recovery sweep removes uploads a killed
// process left behind.
func TestAbortUploads(t *testing.T) {
	d := newDriver(t, nil)
	ctx := context.Background()
	if _, err := d.Put(ctx, "seed", strings.NewReader("x")); err != nil { // creates the bucket
		t.Fatal(err)
	}
	for _, k := range []string{"orphan-1", "orphan-2"} {
		if _, err := d.Client().CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{
			Bucket: strPtr(d.Bucket()), Key: strPtr(k)}); err != nil {
			t.Fatal(err)
		}
	}
	// MinIO lists the uploads of one exact key only (AWS takes any
	// prefix), so the sweep is run per key here.
	for _, k := range []string{"orphan-1", "orphan-2"} {
		if left := uploads(t, d, k); len(left) != 1 {
			t.Fatalf("uploads of %s before sweep: %v", k, left)
		}
		if err := d.AbortUploads(ctx, k); err != nil {
			t.Fatal(err)
		}
		if left := uploads(t, d, k); len(left) != 0 {
			t.Fatalf("uploads of %s after sweep: %v", k, left)
		}
	}
}

func strPtr(s string) *string { return &s }
