package s3client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ashlar-dev/ashlar/internal/s3client"
)

// respErr is what the SDK returns for an S3 error response: the API error
// wrapped in the HTTP response error.
func respErr(status int, code, msg string) error {
	var api error
	if code != "" {
		api = &smithy.GenericAPIError{Code: code, Message: msg}
	} else {
		api = errors.New(msg)
	}
	return fmt.Errorf("operation error: %w", &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: api}})
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name           string
		err            error
		notFound, full bool
		code, msg      string
		status         int
	}{
		{"missing key", respErr(404, "NoSuchKey", "gone"), true, false, "NoSuchKey", "gone", 404},
		{"missing bucket", respErr(404, "NoSuchBucket", ""), true, false, "NoSuchBucket", "", 404},
		{"HEAD 404 without a body", respErr(404, "", "not found"), true, false, "", "", 404},
		{"quota", respErr(403, "QuotaExceeded", ""), false, true, "QuotaExceeded", "", 403},
		{"MinIO full", respErr(507, "XMinioStorageFull", ""), false, true, "XMinioStorageFull", "", 507},
		{"too large", respErr(413, "", "big"), false, true, "", "", 413},
		{"disk filled mid-upload", respErr(500, "InternalError", "write: No space left on device"), false, true, "InternalError", "write: No space left on device", 500},
		{"denied", respErr(403, "AccessDenied", "no"), false, false, "AccessDenied", "no", 403},
		{"no response", errors.New("connection refused"), false, false, "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s3client.IsNotFound(tc.err); got != tc.notFound {
				t.Errorf("IsNotFound = %v, want %v", got, tc.notFound)
			}
			if got := s3client.IsFull(tc.err); got != tc.full {
				t.Errorf("IsFull = %v, want %v", got, tc.full)
			}
			if got := s3client.APICode(tc.err); got != tc.code {
				t.Errorf("APICode = %q, want %q", got, tc.code)
			}
			if got := s3client.APIMessage(tc.err); got != tc.msg {
				t.Errorf("APIMessage = %q, want %q", got, tc.msg)
			}
			if got := s3client.HTTPStatus(tc.err); got != tc.status {
				t.Errorf("HTTPStatus = %d, want %d", got, tc.status)
			}
		})
	}
}

// TestCanceled: only the caller's own cancellation is reported as such; a
// server timeout while the caller still waits is a store failure.
func TestCanceled(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	wrapped := fmt.Errorf("request: %w", context.Canceled)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"caller canceled", canceled, wrapped, context.Canceled},
		{"caller canceled, other error", canceled, errors.New("refused"), nil},
		{"caller still waiting", context.Background(), fmt.Errorf("x: %w", context.DeadlineExceeded), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s3client.Canceled(tc.ctx, tc.err); !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Errorf("Canceled = %v, want %v", got, tc.want)
			}
		})
	}
}
