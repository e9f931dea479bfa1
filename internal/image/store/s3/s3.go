// Package s3 is the S3-compatible image-store driver (Glance's "s3" store),
// built on the AWS SDK for Go v2 S3 client.
//
// A Put streams: objects smaller than one part go up in a single PutObject;
// larger ones in a multipart upload whose parts are read into a fixed number
// of part buffers (memory is bounded by (s3_store_thread_pools + 1) x part
// size whatever the object size). The part size starts at
// s3_store_large_object_chunk_size and doubles every 1000 parts, so an
// upload of unknown length is never stopped by S3's 10,000-part limit.
// Any failure (reader error, ctx cancellation, S3 error) aborts the
// multipart upload on a context detached from the canceled one, so no
// object and no stored parts remain.
//
// Requests use path-style URLs (any S3-compatible server, no bucket DNS)
// and compute checksums only when S3 requires them (aws-sdk-go-v2 >=
// 1.73 would otherwise add CRC32 trailers that many third-party servers
// refuse).
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/s3client"
)

// The [store:<id>] keys of an s3 store (Glance's names).
const (
	OptHost              = "s3_store_host"
	OptBucket            = "s3_store_bucket"
	OptAccessKey         = "s3_store_access_key"
	OptSecretKey         = "s3_store_secret_key"
	OptCreateBucketOnPut = "s3_store_create_bucket_on_put"
	OptRegion            = "s3_store_region"
	OptChunkSize         = "s3_store_large_object_chunk_size" // MiB
	OptThreadPools       = "s3_store_thread_pools"
)

const (
	mib = 1 << 20
	// minPartSize is S3's smallest part (all but the last).
	minPartSize = 5 * mib
	// maxPartSize is S3's largest part.
	maxPartSize = 5 << 30
	// maxParts is S3's part count limit.
	maxParts = 10000
	// partsPerStep parts are uploaded at one part size before it doubles.
	partsPerStep = 1000
	// abortTimeout bounds the clean-up of a failed upload.
	abortTimeout = 30 * time.Second
)

// Config is an s3 store's configuration.
type Config struct {
	// Endpoint is the S3 endpoint URL (http:// or https://).
	Endpoint string
	Bucket   string
	// AccessKey and SecretKey sign requests (SigV4).
	AccessKey, SecretKey string
	// Region defaults to us-east-1.
	Region string
	// CreateBucket creates a missing bucket at the first Put.
	CreateBucket bool
	// PartSize is the first multipart part size in bytes (default 10 MiB,
	// at least 5 MiB); objects smaller than it are sent in one PutObject.
	PartSize int64
	// Concurrency is the number of parts uploaded at once (default 2).
	Concurrency int
}

// Driver stores objects in one S3 bucket.
type Driver struct {
	// locPrefix is "s3://host" or "s3+https://host" (Glance's scheme).
	locPrefix string
	// host is s3_store_host as configured, shown in the store's properties.
	host        string
	client      *s3.Client
	bucket      string
	create      bool
	partSize    int64
	concurrency int
	// bucketReady is set once the bucket is known to exist (create mode).
	bucketReady atomic.Bool
	bucketMu    sync.Mutex
	// bufs recycles part buffers of the initial part size.
	bufs sync.Pool
}

// ParseConfig reads an s3 store's [store:<id>] options; problems are
// recorded in o. Fields left zero take New's defaults.
func ParseConfig(o *config.Options) Config {
	c := Config{
		Endpoint:     o.String(OptHost, ""),
		Bucket:       o.String(OptBucket, ""),
		AccessKey:    o.Secret(OptAccessKey),
		SecretKey:    o.Secret(OptSecretKey),
		Region:       o.String(OptRegion, ""),
		CreateBucket: o.Bool(OptCreateBucketOnPut, false),
		PartSize:     o.Int(OptChunkSize, 0, minPartSize/mib, maxPartSize/mib) * mib,
		Concurrency:  int(o.Int(OptThreadPools, 0, 1, 64)),
	}
	for _, kv := range [][2]string{{OptHost, c.Endpoint}, {OptBucket, c.Bucket}, {OptAccessKey, c.AccessKey}, {OptSecretKey, c.SecretKey}} {
		if kv[1] == "" {
			o.Problem(kv[0], "required for an s3 store")
		}
	}
	if c.Endpoint != "" {
		if _, err := endpointURL(c.Endpoint); err != nil {
			o.Problem(OptHost, "%v", err)
		}
	}
	return c
}

// endpointURL parses an s3_store_host: an http(s) URL, or a host[:port]
// meaning http:// (Glance's rule).
func endpointURL(host string) (*url.URL, error) {
	s := host
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL or host[:port]", host)
	}
	return u, nil
}

// New builds a driver from c, valid as ParseConfig reads it (zero fields
// take their defaults). It does not contact the server: a store that is down
// at start-up is reported by the first request (errs.Unavailable), not by a
// failed start.
func New(c Config) (*Driver, error) {
	u, err := endpointURL(c.Endpoint)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, OptHost)
	}
	if c.PartSize == 0 {
		c.PartSize = 10 * mib
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	client := s3client.New(s3client.Options{Endpoint: u, Region: c.Region,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey,
		IdleConns: 4 * c.Concurrency, ResponseTimeout: 5 * time.Minute,
		// Retries: few and quick, so an unreachable store fails fast
		// (503) instead of holding the client's request for tens of
		// seconds.
		MaxAttempts: 3, MaxBackoff: time.Second})
	scheme := "s3"
	if u.Scheme == "https" {
		scheme = "s3+https"
	}
	d := &Driver{locPrefix: scheme + "://" + u.Host + strings.TrimRight(u.Path, "/"), host: c.Endpoint,
		client: client, bucket: c.Bucket, create: c.CreateBucket, partSize: c.PartSize, concurrency: c.Concurrency}
	d.bufs.New = func() any { b := make([]byte, d.partSize); return &b }
	return d, nil
}

// Location returns s3://<host>/<bucket>/<key> (s3+https:// for a TLS
// endpoint): Glance's location form, without the credentials Glance embeds.
func (d *Driver) Location(key string) (string, error) {
	return d.locPrefix + "/" + d.bucket + "/" + (&url.URL{Path: key}).EscapedPath(), nil
}

// Client returns the underlying S3 client (tests inspect the bucket with it).
func (d *Driver) Client() *s3.Client { return d.client }

// Bucket returns the bucket name.
func (d *Driver) Bucket() string { return d.bucket }

// Properties implements store.Describer: what GET /v2/info/stores/detail
// shows of an s3 store (never the credentials).
func (d *Driver) Properties() map[string]any {
	return map[string]any{"s3_store_bucket": d.bucket, "s3_store_host": d.host}
}

// ensureBucket creates the bucket on the first Put when the store is
// configured to (Glance's s3_store_create_bucket_on_put).
func (d *Driver) ensureBucket(ctx context.Context) error {
	if !d.create || d.bucketReady.Load() {
		return nil
	}
	d.bucketMu.Lock()
	defer d.bucketMu.Unlock()
	if d.bucketReady.Load() {
		return nil
	}
	in := &s3.CreateBucketInput{Bucket: &d.bucket}
	if r := d.client.Options().Region; r != s3client.DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(r)}
	}
	err := s3client.CreateBucket(ctx, d.client, in)
	if err != nil {
		return d.mapErr(ctx, err, "cannot create bucket")
	}
	d.bucketReady.Store(true)
	return nil
}

func (d *Driver) getBuf(size int64) *[]byte {
	if size == d.partSize {
		return d.bufs.Get().(*[]byte)
	}
	b := make([]byte, size)
	return &b
}

func (d *Driver) putBuf(b *[]byte) {
	if int64(len(*b)) == d.partSize {
		d.bufs.Put(b)
	}
}

// partSizeFor returns the size of part n (1-based): the initial size,
// doubled every partsPerStep parts, capped at S3's maximum.
func (d *Driver) partSizeFor(n int32) int64 {
	s := d.partSize << ((n - 1) / partsPerStep)
	return min(s, maxPartSize)
}

// readPart fills buf from r. It returns the bytes read and whether r is
// exhausted; a reader error is returned as is unless ctx was canceled, in
// which case ctx's error wins (the reader failing is its symptom).
func readPart(ctx context.Context, r io.Reader, buf []byte) (int, bool, error) {
	n, err := io.ReadFull(r, buf)
	switch {
	case ctx.Err() != nil:
		return n, false, ctx.Err()
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return n, true, nil
	case err != nil:
		return n, false, fmt.Errorf("reading image data: %w", err)
	}
	return n, false, nil
}

// Put implements the store.Driver method. An existing object is replaced
// only when the new one is complete.
func (d *Driver) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := d.ensureBucket(ctx); err != nil {
		return 0, err
	}
	bp := d.getBuf(d.partSize)
	n, eof, err := readPart(ctx, r, *bp)
	if err != nil {
		d.putBuf(bp)
		return 0, err
	}
	if eof {
		defer d.putBuf(bp)
		_, err := d.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &d.bucket,
			Key:           &key,
			Body:          bytes.NewReader((*bp)[:n]),
			ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return 0, d.mapErr(ctx, err, "cannot write to store")
		}
		return int64(n), nil
	}
	return d.putMultipart(ctx, key, r, bp, n)
}

// putMultipart uploads first (a full part already read) and the rest of r
// as a multipart upload, aborting it on any failure.
func (d *Driver) putMultipart(ctx context.Context, key string, r io.Reader, first *[]byte, firstLen int) (total int64, err error) {
	created, err := d.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &d.bucket, Key: &key})
	if err != nil {
		d.putBuf(first)
		return 0, d.mapErr(ctx, err, "cannot write to store")
	}
	uploadID := created.UploadId

	// Part uploads run on upCtx so the first failure stops the others.
	upCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		parts    []types.CompletedPart
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel(err)
	}
	slots := make(chan struct{}, d.concurrency)
	upload := func(num int32, bp *[]byte, n int) {
		defer wg.Done()
		defer func() { <-slots }()
		defer d.putBuf(bp)
		out, err := d.client.UploadPart(upCtx, &s3.UploadPartInput{
			Bucket:        &d.bucket,
			Key:           &key,
			UploadId:      uploadID,
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader((*bp)[:n]),
			ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			fail(d.mapErr(ctx, err, "cannot write to store"))
			return
		}
		mu.Lock()
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		mu.Unlock()
	}

	var (
		num  int32 = 1
		bp         = first
		n          = firstLen
		eof  bool
		rerr error
	)
	for {
		total += int64(n)
		if n > 0 || num == 1 {
			select {
			case slots <- struct{}{}:
			case <-upCtx.Done():
			}
			if upCtx.Err() != nil {
				d.putBuf(bp)
				break
			}
			wg.Add(1)
			go upload(num, bp, n)
		} else {
			d.putBuf(bp)
		}
		if eof {
			break
		}
		num++
		if num > maxParts {
			rerr = errs.E(errs.TooLarge, "image exceeds the S3 store's largest object")
			break
		}
		bp = d.getBuf(d.partSizeFor(num))
		n, eof, rerr = readPart(upCtx, r, *bp)
		if rerr != nil {
			d.putBuf(bp)
			break
		}
		if n == 0 && eof {
			d.putBuf(bp)
			break
		}
	}
	wg.Wait()
	if rerr != nil {
		fail(rerr)
	}
	if firstErr == nil && ctx.Err() != nil {
		fail(ctx.Err())
	}
	if firstErr == nil {
		slices.SortFunc(parts, func(a, b types.CompletedPart) int {
			return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber))
		})
		// Every byte is stored; finishing must not be cut short by a
		// cancellation racing the response (S3 could complete the object
		// while the client sees an error and then aborts nothing).
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		_, err := d.client.CompleteMultipartUpload(cctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &d.bucket,
			Key:             &key,
			UploadId:        uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		ccancel()
		if err == nil {
			return total, nil
		}
		fail(d.mapErr(ctx, err, "cannot write to store"))
	}
	d.abort(ctx, key, uploadID)
	// A reader failing because ctx was canceled reports the cancellation.
	if ctx.Err() != nil && !errors.Is(firstErr, ctx.Err()) && !errs.Is(firstErr, errs.TooLarge) {
		return 0, ctx.Err()
	}
	return 0, firstErr
}

// abort discards a multipart upload's parts. It runs on a context that
// survives the caller's cancellation: a client going away is the very case
// that must not leave parts behind.
func (d *Driver) abort(ctx context.Context, key string, uploadID *string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	// All part uploads have returned by now, so one successful abort
	// frees every stored part; a failed one is retried once.
	for range 2 {
		if d.abortUpload(actx, key, aws.ToString(uploadID)) == nil {
			return
		}
	}
}

// abortUpload aborts the multipart upload id of key; one already gone
// (NoSuchUpload) counts as aborted.
func (d *Driver) abortUpload(ctx context.Context, key, id string) error {
	_, err := d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &d.bucket, Key: &key, UploadId: &id})
	var nsu *types.NoSuchUpload
	if err == nil || errors.As(err, &nsu) {
		return nil
	}
	return d.mapErr(ctx, err, "cannot abort upload")
}

// Get implements the store.Driver method.
func (d *Driver) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if length == 0 {
		return store.EmptyGet(ctx, d, key, offset, false)
	}
	in := &s3.GetObjectInput{Bucket: &d.bucket, Key: &key}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := d.client.GetObject(ctx, in)
	if err != nil {
		if isInvalidRange(err) {
			// Reading at the very end is empty, not an error.
			return store.EmptyGet(ctx, d, key, offset, true)
		}
		return nil, d.mapErr(ctx, err, "cannot read from store")
	}
	return out.Body, nil
}

// Size implements the store.Driver method.
func (d *Driver) Size(ctx context.Context, key string) (int64, error) {
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &d.bucket, Key: &key})
	if err != nil {
		if s3client.IsNotFound(err) && !d.create {
			// A HEAD's 404 has no body to tell a missing key from a
			// missing bucket; a missing bucket is a broken store.
			if _, berr := d.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &d.bucket}); berr != nil && s3client.IsNotFound(berr) {
				return 0, errs.Wrap(errs.Unavailable, berr, fmt.Sprintf("S3 bucket %q does not exist", d.bucket))
			}
		}
		return 0, d.mapErr(ctx, err, "cannot read from store")
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Delete implements the store.Driver method. S3 deletes of missing keys
// succeed, so existence is checked first to report NotFound.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if _, err := d.Size(ctx, key); err != nil {
		return err
	}
	if _, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &d.bucket, Key: &key}); err != nil {
		return d.mapErr(ctx, err, "cannot delete from store")
	}
	return nil
}

// List implements store.Lister over the whole bucket. A bucket that does
// not exist yet (created on first Put) holds no keys.
func (d *Driver) List(ctx context.Context, fn func(key string) error) error {
	p := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{Bucket: &d.bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if s3client.IsNotFound(err) {
				return nil
			}
			return d.mapErr(ctx, err, "cannot list store")
		}
		for _, o := range page.Contents {
			if err := fn(aws.ToString(o.Key)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListUploads calls fn for every unfinished multipart upload under prefix
// (leftovers of crashed processes; tests check that failed Puts leave none).
// MinIO treats prefix as one exact key; AWS S3 as a prefix.
func (d *Driver) ListUploads(ctx context.Context, prefix string, fn func(key, uploadID string) error) error {
	in := &s3.ListMultipartUploadsInput{Bucket: &d.bucket, Prefix: aws.String(prefix)}
	for {
		out, err := d.client.ListMultipartUploads(ctx, in)
		if err != nil {
			if s3client.IsNotFound(err) {
				return nil
			}
			return d.mapErr(ctx, err, "cannot list uploads")
		}
		for _, u := range out.Uploads {
			if err := fn(aws.ToString(u.Key), aws.ToString(u.UploadId)); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// AbortUploads aborts every unfinished multipart upload under prefix: the
// crash-recovery sweep for parts that a killed process left behind.
func (d *Driver) AbortUploads(ctx context.Context, prefix string) error {
	return d.ListUploads(ctx, prefix, func(key, id string) error { return d.abortUpload(ctx, key, id) })
}

// Recover implements store.Recoverer: it aborts the unfinished multipart
// uploads of exactly key, which a process killed mid-Put leaves behind
// (S3 keeps their parts, and bills them, until aborted).
func (d *Driver) Recover(ctx context.Context, key string) error {
	return d.ListUploads(ctx, key, func(k, id string) error {
		if k != key {
			return nil
		}
		return d.abortUpload(ctx, k, id)
	})
}

func isInvalidRange(err error) bool {
	return s3client.APICode(err) == "InvalidRange" || s3client.HTTPStatus(err) == http.StatusRequestedRangeNotSatisfiable
}

// mapErr maps an S3 client error to the store error contract. The
// caller's cancellation is returned as ctx.Err() (not a store failure);
// anything that is not a definite answer from S3 (connection refused,
// timeouts, 5xx) means the store is unavailable (503), like Glance's
// RemoteServiceUnavailable.
func (d *Driver) mapErr(ctx context.Context, err error, msg string) error {
	if cerr := s3client.Canceled(ctx, err); cerr != nil {
		return cerr
	}
	code, status := s3client.APICode(err), s3client.HTTPStatus(err)
	switch {
	case code == "NoSuchBucket":
		if d.create {
			return errs.Wrap(errs.NotFound, err, "object not found in store")
		}
		return errs.Wrap(errs.Unavailable, err, fmt.Sprintf("S3 bucket %q does not exist", d.bucket))
	case s3client.IsNotFound(err):
		return errs.Wrap(errs.NotFound, err, "object not found in store")
	case s3client.IsFull(err):
		return errs.Wrap(errs.TooLarge, err, "Image storage media is full")
	case code == "InvalidRange":
		return errs.Wrap(errs.BadRange, err, "requested range not satisfiable")
	case code == "IncompleteBody":
		// We always send the whole body; MinIO answers this when it
		// fails to store one mid-way (seen when its disk fills up).
		return errs.Wrap(errs.Unavailable, err, "S3 store failed to store the data")
	case code == "AccessDenied", code == "InvalidAccessKeyId", code == "SignatureDoesNotMatch",
		status == http.StatusForbidden, status == http.StatusUnauthorized:
		return errs.Wrap(errs.Unavailable, err, "S3 store refused the credentials")
	case code != "" && status >= 400 && status < 500:
		return errs.Wrap(errs.Other, err, msg)
	}
	return errs.Wrap(errs.Unavailable, err, "S3 store is unavailable")
}
