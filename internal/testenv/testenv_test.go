package testenv

import (
	"net/http"
	"testing"
)

func TestStartMinIO(t *testing.T) {
	m := StartMinIO(t)
	resp, err := http.Get(m.Endpoint + "/minio/health/live")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health = %d", resp.StatusCode)
	}
	// An unsigned request is refused: the server enforces credentials.
	resp, err = http.Get(m.Endpoint + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous ListBuckets = %d, want 403", resp.StatusCode)
	}
	m.Stop()
	select {
	case <-m.exited:
	default:
		t.Fatal("MinIO still running after Stop")
	}
	if _, err := http.Get(m.Endpoint + "/minio/health/live"); err == nil {
		t.Fatal("MinIO still answering after Stop")
	}
}
