package s3_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
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

// wantUploads fails the test unless key has n unfinished multipart uploads.
func wantUploads(t *testing.T, d *s3.Driver, key string, n int, when string) {
	t.Helper()
	if left := uploads(t, d, key); len(left) != n {
		t.Fatalf("uploads of %s %s: %v, want %d", key, when, left, n)
	}
}

func TestConformance(t *testing.T) {
	d := newDriver(t, nil)
	storetest.Run(t, func(*testing.T) store.Driver { return d }, storetest.Options{
		Leftovers:  func(t *testing.T, key string) []string { return uploads(t, d, key) },
		ExtraSizes: []int{10<<20 - 1, 10 << 20, 10<<20 + 1},
	})
}

// parse runs ParseConfig on opts, returning the config and the problems.
func parse(opts map[string]string) (s3.Config, []string) {
	o := config.NewOptions(config.Store{ID: "cheap", Type: "s3", Options: opts})
	c := s3.ParseConfig(o)
	var problems []string
	for _, p := range o.Problems() {
		problems = append(problems, p.String())
	}
	return c, problems
}

var validOptions = map[string]string{s3.OptHost: "127.0.0.1:9000", s3.OptBucket: "b", s3.OptAccessKey: "ak", s3.OptSecretKey: "sk"}

func TestParseConfig(t *testing.T) {
	c, problems := parse(with(with(with(with(validOptions, s3.OptCreateBucketOnPut, "yes"), s3.OptChunkSize, "8"),
		s3.OptThreadPools, "3"), s3.OptRegion, "eu-west-1"))
	want := s3.Config{Endpoint: "127.0.0.1:9000", Bucket: "b", AccessKey: "ak", SecretKey: "sk", Region: "eu-west-1",
		CreateBucket: true, PartSize: 8 << 20, Concurrency: 3}
	if c != want || problems != nil {
		t.Fatalf("ParseConfig = %+v, %v; want %+v", c, problems, want)
	}
	bad := []struct {
		opts map[string]string
		want []string
	}{
		{map[string]string{}, []string{"[store:cheap] s3_store_host: required for an s3 store",
			"[store:cheap] s3_store_bucket: required for an s3 store", "[store:cheap] s3_store_access_key: required for an s3 store",
			"[store:cheap] s3_store_secret_key: required for an s3 store"}},
		{with(validOptions, s3.OptChunkSize, "4"), []string{"[store:cheap] s3_store_large_object_chunk_size: 4 is below the minimum 5"}},
		{with(validOptions, s3.OptChunkSize, "5121"), []string{"[store:cheap] s3_store_large_object_chunk_size: 5121 is above the maximum 5120"}},
		{with(validOptions, s3.OptChunkSize, "x"), []string{`[store:cheap] s3_store_large_object_chunk_size: "x" is not an integer`}},
		{with(validOptions, s3.OptThreadPools, "0"), []string{"[store:cheap] s3_store_thread_pools: 0 is below the minimum 1"}},
		{with(validOptions, s3.OptCreateBucketOnPut, "maybe"), []string{`[store:cheap] s3_store_create_bucket_on_put: "maybe" is not a boolean (true/false)`}},
		{with(validOptions, s3.OptHost, "http://[::1"), []string{`[store:cheap] s3_store_host: "http://[::1" is not an http(s) URL or host[:port]`}},
		{with(validOptions, s3.OptHost, "ftp://h"), []string{`[store:cheap] s3_store_host: "ftp://h" is not an http(s) URL or host[:port]`}},
	}
	for _, b := range bad {
		if _, problems := parse(b.opts); !slices.Equal(problems, b.want) {
			t.Errorf("ParseConfig(%v) problems:\n%s\nwant:\n%s", b.opts, strings.Join(problems, "\n"), strings.Join(b.want, "\n"))
		}
	}
}

// TestOpen: a driver built from parsed options works against MinIO and
// describes its store without the credentials.
func TestOpen(t *testing.T) {
	m := testenv.SharedMinIO(t)
	c, problems := parse(map[string]string{
		s3.OptHost: m.Endpoint, s3.OptBucket: "open-test", s3.OptAccessKey: m.AccessKey,
		s3.OptSecretKey: m.SecretKey, s3.OptCreateBucketOnPut: "true", s3.OptChunkSize: "8",
		s3.OptThreadPools: "3",
	})
	if problems != nil {
		t.Fatal(problems)
	}
	d, err := s3.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(context.Background(), "k", strings.NewReader("v")); err != nil {
		t.Fatalf("Put through an opened store: %v", err)
	}
	want := map[string]any{"s3_store_bucket": "open-test", "s3_store_host": m.Endpoint}
	if got := d.Properties(); !maps.Equal(got, want) {
		t.Errorf("Properties = %v, want %v", got, want)
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
	d, err := s3.New(s3.Config{Endpoint: "127.0.0.1:1", Bucket: "b", AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
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
	// prefix), so the sweep is run per key here. Recover is what the image
	// service calls for an image stuck in saving.
	for key, sweep := range map[string]func(context.Context, string) error{"orphan-1": d.AbortUploads, "orphan-2": d.Recover} {
		wantUploads(t, d, key, 1, "before the sweep")
		if err := sweep(ctx, key); err != nil {
			t.Fatal(err)
		}
		wantUploads(t, d, key, 0, "after the sweep")
	}
	if err := d.Recover(ctx, "never-uploaded"); err != nil {
		t.Fatalf("Recover with nothing to do: %v", err)
	}
}

func strPtr(s string) *string { return &s }

// BenchmarkS3 runs against the package's MinIO with the production part
// size and concurrency (10 MiB, 2).
func BenchmarkS3(b *testing.B) {
	d := newDriver(b, func(c *s3.Config) { c.PartSize, c.Concurrency = 0, 0 })
	storetest.Bench(b, d, storetest.BenchOptions{ScratchDir: b.TempDir()})
}

// TestStoreFull runs MinIO on a 64 MiB tmpfs (needs root to mount; skips
// otherwise). Single-request uploads that no longer fit are "store full"
// (413). A multipart upload that fills the disk is 413 when MinIO answers
// with its "no space left" 500, but MinIO may instead reset the connection
// while the part is still being sent, which cannot be told from a network
// failure (503); either way no object and no parts remain, and a small
// upload works once space is freed.
func TestStoreFull(t *testing.T) {
	mnt := testenv.Tmpfs(t, "64m")
	m := testenv.StartMinIOIn(t, mnt)
	d, err := s3.New(s3.Config{Endpoint: m.Endpoint, Bucket: "full", AccessKey: m.AccessKey,
		SecretKey: m.SecretKey, CreateBucket: true, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Fill the disk with single-request objects until one is refused.
	var stored []string
	for i := 0; ; i++ {
		if i > 40 {
			t.Fatal("64 MiB store never filled up")
		}
		key := fmt.Sprintf("fill-%d", i)
		_, err := d.Put(ctx, key, storetest.NewSource(4<<20))
		if err == nil {
			stored = append(stored, key)
			continue
		}
		// MinIO mostly says "no space left" (413), but now and then fails the
		// request mid-body (IncompleteBody, or a reset connection): 503.
		if !errs.Is(err, errs.TooLarge) && !errs.Is(err, errs.Unavailable) {
			t.Fatalf("Put into a full store = %v (kind %v), want TooLarge (or Unavailable)", err, errs.KindOf(err))
		}
		if _, err := d.Size(ctx, key); !errs.Is(err, errs.NotFound) {
			t.Fatalf("Size after refused Put = %v, want NotFound", err)
		}
		break
	}
	if len(stored) < 2 {
		t.Fatalf("only %d objects fit before the store was full", len(stored))
	}
	// Free half, then a multipart upload larger than the disk.
	for _, k := range stored[:len(stored)/2] {
		if err := d.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	_, err = d.Put(ctx, "big", storetest.NewSource(100<<20))
	if !errs.Is(err, errs.TooLarge) && !errs.Is(err, errs.Unavailable) {
		t.Fatalf("100 MiB Put into a 64 MiB store = %v (kind %v), want TooLarge (or Unavailable after a reset)",
			err, errs.KindOf(err))
	}
	t.Logf("multipart into a full store: kind %v", errs.KindOf(err))
	if _, err := d.Size(ctx, "big"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("Size after failed Put = %v, want NotFound", err)
	}
	if left := uploads(t, d, "big"); len(left) != 0 {
		t.Fatalf("failed Put left uploads %v", left)
	}
	// Once space is freed (MinIO purges deleted data in the background), a
	// later upload works.
	for _, k := range stored[len(stored)/2:] {
		if err := d.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := d.Put(ctx, "after", storetest.NewSource(1<<20))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Put after freeing space: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestKilledMidUpload kills (SIGKILL) a process in the middle of a
// multipart Put: no object appears, and Recover, what the image service
// runs at start-up for an image stuck in saving, removes the stored parts.
func TestKilledMidUpload(t *testing.T) {
	storetest.PutInChild(func(config string) (store.Driver, error) {
		var c s3.Config
		if err := json.Unmarshal([]byte(config), &c); err != nil {
			return nil, err
		}
		return s3.New(c)
	}, 256<<10)
	d := newDriver(t, nil)
	ctx := context.Background()
	if _, err := d.Put(ctx, "seed", strings.NewReader("x")); err != nil { // creates the bucket
		t.Fatal(err)
	}
	m := testenv.SharedMinIO(t)
	cfg, _ := json.Marshal(s3.Config{Endpoint: m.Endpoint, Bucket: d.Bucket(), AccessKey: m.AccessKey,
		SecretKey: m.SecretKey, PartSize: 5 << 20, Concurrency: 1})
	kill := storetest.StartPutChild(t, string(cfg))
	// Wait until the upload has stored a part.
	apitest.Eventually(t, 30*time.Second, func() bool {
		var ids []string
		_ = d.ListUploads(ctx, "img", func(k, id string) error { ids = append(ids, id); return nil })
		if len(ids) != 1 {
			return false
		}
		out, err := d.Client().ListParts(ctx, &s3api.ListPartsInput{Bucket: strPtr(d.Bucket()),
			Key: strPtr("img"), UploadId: &ids[0]})
		return err == nil && len(out.Parts) > 0
	}, func() string { return "child never stored a part" })
	kill()
	if _, err := d.Size(ctx, "img"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("Size of the killed upload = %v, want NotFound", err)
	}
	wantUploads(t, d, "img", 1, "after the kill")
	if err := d.Recover(ctx, "img"); err != nil {
		t.Fatal(err)
	}
	wantUploads(t, d, "img", 0, "after Recover")
}
