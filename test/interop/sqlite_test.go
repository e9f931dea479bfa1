package interop

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSQLiteSingleNode: a second `ashlar serve` on the SQLite database of
// a running one is refused at start with a clear error, and the first
// keeps serving.
func TestSQLiteSingleNode(t *testing.T) {
	requireInterop(t)
	a := startAshlar(t, "sqlite-lock", ashlarOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(ctx, append(baseEnv(), "ASHLAR_ADMIN_PASSWORD="+adminPassword), a.dir, ashlarBinary(t),
		"serve", "--config", a.configPath)
	if r.Err == nil || !strings.Contains(r.Stderr, "is in use by another Ashlar process") ||
		!strings.Contains(r.Stderr, "run several nodes on PostgreSQL") {
		t.Fatalf("second node on one SQLite database: %v\nstderr:\n%s", r.Err, lastLines(r.Stderr, 10))
	}
	waitHTTP(t, a.proc, a.imageURL+"/healthcheck", 5*time.Second)
	t.Logf("refused: %s", strings.TrimSpace(lastLines(r.Stderr, 1)))
}
