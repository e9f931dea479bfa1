// Package s3client builds the S3 client that Ashlar's S3-compatible stores
// (the image store and the backup store) share, and classifies its errors.
// The stores keep their own option names, defaults and error messages; what
// is here is what must not differ between them: path-style requests to any
// S3-compatible server, checksums only where S3 requires them, quick retries
// without a retry quota, and one reading of what an S3 error means.
package s3client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// DefaultRegion is the region of a store that names none.
const DefaultRegion = "us-east-1"

// Options describe one client. Every field but UnsignedPayload must be set
// by the caller, whose store documents its own defaults (Region excepted:
// empty means DefaultRegion).
type Options struct {
	// Endpoint is the server's http(s) URL, already validated.
	Endpoint *url.URL
	// Region signs requests; empty means DefaultRegion.
	Region string
	// AccessKey and SecretKey sign requests (SigV4).
	AccessKey, SecretKey string
	// IdleConns is the connection pool size per host.
	IdleConns int
	// ResponseTimeout bounds the wait for a response's headers.
	ResponseTimeout time.Duration
	// MaxAttempts bounds the tries of one request; MaxBackoff the wait
	// between two.
	MaxAttempts int
	MaxBackoff  time.Duration
	// UnsignedPayload leaves the body out of the SigV4 signature, saving a
	// sha256 pass over every byte sent: for callers that verify their data
	// themselves (use an https endpoint to protect the bytes in transit).
	UnsignedPayload bool
}

// New builds a client from o. It does not contact the server.
func New(o Options) *s3.Client {
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = o.IdleConns
			t.ResponseHeaderTimeout = o.ResponseTimeout
		})
	opts := s3.Options{
		Region:       o.Region,
		BaseEndpoint: aws.String(strings.TrimRight(o.Endpoint.String(), "/")),
		// Path-style URLs work with any S3-compatible server, no bucket DNS.
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, ""),
		HTTPClient:   httpClient,
		// No retry quota: its exhaustion is a confusing error, and the
		// attempts are few anyway.
		Retryer: retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = o.MaxAttempts
			so.MaxBackoff = o.MaxBackoff
			so.RateLimiter = ratelimit.None
		}),
		// aws-sdk-go-v2 >= 1.73 would otherwise add CRC32 trailers, which
		// many S3-compatible servers refuse.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if o.UnsignedPayload {
		opts.APIOptions = []func(*middleware.Stack) error{v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware}
	}
	return s3.New(opts)
}

// CreateBucket creates bucket in when it does not exist; a bucket that
// already exists and is ours counts as created. The error is the client's,
// for the caller to map.
func CreateBucket(ctx context.Context, c *s3.Client, in *s3.CreateBucketInput) error {
	_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: in.Bucket})
	if err != nil && IsNotFound(err) {
		_, err = c.CreateBucket(ctx, in)
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			err = nil
		}
	}
	return err
}

// APICode returns the S3 error code of err ("NoSuchKey", ...), or "".
func APICode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// APIMessage returns the S3 error message of err, or "".
func APIMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

// HTTPStatus returns the HTTP status of the response that err reports, or
// 0 when there was none.
func HTTPStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// IsNotFound reports whether err says the key or the bucket does not exist
// (a HEAD's 404 has no body, so no code, to tell which).
func IsNotFound(err error) bool {
	switch APICode(err) {
	case "NoSuchKey", "NotFound", "NoSuchBucket":
		return true
	}
	return HTTPStatus(err) == http.StatusNotFound
}

// IsFull reports whether err says the object is too large or the server or
// bucket is full (MinIO reports a disk that fills up mid-upload as a 500
// whose message says so).
func IsFull(err error) bool {
	switch APICode(err) {
	case "EntityTooLarge", "XMinioStorageFull", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded":
		return true
	}
	return HTTPStatus(err) == http.StatusRequestEntityTooLarge ||
		strings.Contains(strings.ToLower(APIMessage(err)), "no space left on device")
}

// Canceled returns ctx's error when err is the caller's own cancellation
// (not a store failure), and nil otherwise.
func Canceled(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return ctx.Err()
	}
	return nil
}
