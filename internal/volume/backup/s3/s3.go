// Package s3 is the backup store that keeps backup objects in one bucket
// of an S3-compatible server (AWS S3, Ceph RGW, MinIO): Cinder's s3 backup
// driver, with its option names. Each object is sent in one PutObject,
// which S3 makes visible complete or not at all.
package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/s3client"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
)

// The [backup] options of the s3 driver (Cinder's names, plus a region).
const (
	OptEndpoint  = "backup_s3_endpoint_url"
	OptAccessKey = "backup_s3_store_access_key"
	OptSecretKey = "backup_s3_store_secret_key"
	OptBucket    = "backup_s3_store_bucket"
	OptRegion    = "backup_s3_region"
	OptRetries   = "backup_s3_retry_max_attempts"
	OptTimeout   = "backup_s3_timeout"
)

// Config is an s3 backup store's configuration.
type Config struct {
	Endpoint             string
	Bucket               string
	AccessKey, SecretKey string
	// Region defaults to us-east-1.
	Region string
	// MaxAttempts bounds the tries of one request (default 4).
	MaxAttempts int
	// Timeout bounds one request (default 60 s).
	Timeout time.Duration
	// Connections is the connection pool size (default 16).
	Connections int
}

// Store keeps backup objects in one bucket.
type Store struct {
	client *s3.Client
	bucket string
	ready  bool
	mu     sync.Mutex
}

// Interface guard.
var _ backup.Store = (*Store)(nil)

// New builds the store; it does not contact the server (the bucket is
// created, when missing, by the first Put).
func New(c Config) (*Store, error) {
	if c.Endpoint == "" || c.Bucket == "" || c.AccessKey == "" || c.SecretKey == "" {
		return nil, errs.E(errs.Invalid, "%s, %s, %s and %s are required for the s3 backup driver", OptEndpoint, OptBucket, OptAccessKey, OptSecretKey)
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errs.E(errs.Invalid, "%s %q is not an http(s) URL", OptEndpoint, c.Endpoint)
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 4
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Connections <= 0 {
		c.Connections = 16
	}
	client := s3client.New(s3client.Options{Endpoint: u, Region: c.Region,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey,
		IdleConns: c.Connections, ResponseTimeout: c.Timeout,
		MaxAttempts: c.MaxAttempts, MaxBackoff: 2 * time.Second,
		// Chunks carry their own sha256, which every restore verifies: no
		// second sha256 pass over every byte sent for SigV4.
		UnsignedPayload: true})
	return &Store{client: client, bucket: c.Bucket}, nil
}

// Client returns the S3 client (tests inspect the bucket with it).
func (s *Store) Client() *s3.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// ensureBucket creates the bucket if it is missing, as Cinder's driver
// does, once per process.
func (s *Store) ensureBucket(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	err := s3client.CreateBucket(ctx, s.client, &s3.CreateBucketInput{Bucket: &s.bucket})
	if err != nil {
		return mapErr(ctx, err, "bucket "+s.bucket)
	}
	s.ready = true
	return nil
}

// Put implements backup.Store.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key,
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	if err != nil {
		return mapErr(ctx, err, key)
	}
	return nil
}

// Get implements backup.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, mapErr(ctx, err, key)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if out.ContentLength != nil && *out.ContentLength > 0 {
		buf.Grow(int(*out.ContentLength))
	}
	if _, err := io.Copy(&buf, out.Body); err != nil {
		return nil, mapErr(ctx, err, key)
	}
	return buf.Bytes(), nil
}

// Delete implements backup.Store (S3 deletes of missing keys succeed).
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !s3client.IsNotFound(err) {
		return mapErr(ctx, err, key)
	}
	return nil
}

// List implements backup.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if s3client.APICode(err) == "NoSuchBucket" {
				return nil, nil
			}
			return nil, mapErr(ctx, err, prefix)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// mapErr maps an S3 client error to the backup.Store contract: the
// caller's cancellation stays ctx's error; a full bucket or server is
// errs.TooLarge; what is not a definite answer is errs.Unavailable.
func mapErr(ctx context.Context, err error, what string) error {
	if cerr := s3client.Canceled(ctx, err); cerr != nil {
		return cerr
	}
	switch {
	case s3client.IsNotFound(err):
		return errs.Wrap(errs.NotFound, err, "backup object "+what+" not found")
	case s3client.IsFull(err), s3client.HTTPStatus(err) == http.StatusInsufficientStorage:
		return errs.Wrap(errs.TooLarge, err, "backup storage is full")
	}
	return errs.Wrap(errs.Unavailable, err, fmt.Sprintf("S3 backup storage failed (%s)", what))
}
