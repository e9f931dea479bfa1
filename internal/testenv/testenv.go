// Package testenv starts the real external servers tests need — today the
// pinned MinIO S3 server — on 127.0.0.1 with throwaway state, and finds
// the external tools they run (Tool).
//
// A missing server binary or tool skips the test locally and fails it
// when CI=true, so CI can never go green by silently skipping the S3 suite.
// scripts/setup.sh builds the binary into the cache ($ASHLAR_CACHE, default
// ~/.cache/ashlar); tests never download anything.
package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MinIOVersion is the pinned MinIO module version (see scripts/setup.sh).
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// CI reports whether the tests run under CI (CI=true), where missing test
// servers are failures, not skips.
func CI() bool { return os.Getenv("CI") == "true" }

// CacheDir is where setup.sh puts built test servers.
func CacheDir() string {
	if d := os.Getenv("ASHLAR_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "ashlar-cache")
	}
	return filepath.Join(home, ".cache", "ashlar")
}

// MinIOPath is the pinned MinIO binary's path.
func MinIOPath() string {
	return filepath.Join(CacheDir(), "minio-"+MinIOVersion, "minio")
}

// SkipOrFatal skips the test, or fails it under CI=true: for a missing
// dependency that CI must have.
func SkipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Tool returns the path of the command name, skipping the test when it is
// not installed (failing it under CI=true); pkg is the Debian package that
// provides it.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFatal(t, "%s not found (install %s)", name, pkg)
	}
	return p
}

// RealGlance returns the Glance v2 endpoint ASHLAR_TEST_GLANCE_URL and the
// token ASHLAR_TEST_GLANCE_TOKEN to send it, for the tests that run against
// a real Glance (the interop suite's peer); it skips the test when no URL
// is set, as such a Glance is opt-in, not something CI must have.
func RealGlance(t testing.TB) (url, token string) {
	t.Helper()
	url = os.Getenv("ASHLAR_TEST_GLANCE_URL")
	if url == "" {
		t.Skip("ASHLAR_TEST_GLANCE_URL not set")
	}
	return url, os.Getenv("ASHLAR_TEST_GLANCE_TOKEN")
}

// Tmpfs mounts a tmpfs of size (mount's size= option, e.g. "64m") on a
// fresh directory, unmounted when the test ends, for tests of a full
// filesystem. It skips the test where mounting is not allowed (not root).
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	return mnt
}

// MinIO is a running MinIO server.
type MinIO struct {
	// Endpoint is the S3 endpoint URL, http://127.0.0.1:<port>.
	Endpoint string
	// AccessKey and SecretKey are the (random) root credentials.
	AccessKey, SecretKey string
	// Region is the region MinIO answers for.
	Region string
	// Dir is the data directory.
	Dir string

	cmd     *exec.Cmd
	log     *bytes.Buffer
	logMu   sync.Mutex
	exited  chan struct{}
	stopped sync.Once
}

// StartMinIO starts a MinIO server for this test and stops it when the test
// ends. Prefer SharedMinIO to start one per package.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	return StartMinIOIn(t, t.TempDir())
}

// StartMinIOIn is StartMinIO with the data kept under dir (a small
// filesystem, to test a full store).
func StartMinIOIn(t testing.TB, dir string) *MinIO {
	t.Helper()
	requireMinIO(t)
	m, err := startMinIO(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

var shared struct {
	once sync.Once
	m    *MinIO
	dir  string
	err  error
}

// SharedMinIO returns the package's MinIO, starting it on first use. The
// package's TestMain must call Main so the server is stopped at the end.
func SharedMinIO(t testing.TB) *MinIO {
	t.Helper()
	requireMinIO(t)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "ashlar-minio-")
		if shared.err == nil {
			shared.m, shared.err = startMinIO(shared.dir)
		}
	})
	if shared.err != nil {
		t.Fatalf("starting MinIO: %v", shared.err)
	}
	return shared.m
}

// Main runs the tests and then stops the shared servers:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared.m != nil {
		shared.m.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	if sharedCeph.own {
		sharedCeph.c.Stop()
	}
	return code
}

func requireMinIO(t testing.TB) {
	t.Helper()
	if fi, err := os.Stat(MinIOPath()); err != nil || fi.Mode()&0o111 == 0 {
		SkipOrFatal(t, "MinIO not found at %s (run scripts/setup.sh)", MinIOPath())
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startMinIO starts MinIO with its data under base; a port taken between
// FreePort and MinIO's bind is retried.
func startMinIO(base string) (*MinIO, error) {
	var err error
	for attempt := range 3 {
		var m *MinIO
		m, err = startMinIOOnce(filepath.Join(base, fmt.Sprintf("minio-%d", attempt)))
		if err == nil {
			return m, nil
		}
	}
	return nil, err
}

func startMinIOOnce(dir string) (*MinIO, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	consolePort, err := FreePort()
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		Endpoint:  fmt.Sprintf("http://127.0.0.1:%d", port),
		AccessKey: "ak" + randomHex(8),
		SecretKey: "sk" + randomHex(16),
		Region:    "us-east-1",
		Dir:       dir,
		log:       &bytes.Buffer{},
		exited:    make(chan struct{}),
	}
	cmd := exec.Command(MinIOPath(), "server", dir,
		"--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", consolePort), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_REGION="+m.Region,
	)
	cmd.Stdout = (*lockedWriter)(m)
	cmd.Stderr = (*lockedWriter)(m)
	// If the test binary dies (killed by a timeout), take MinIO with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", MinIOPath(), err)
	}
	m.cmd = cmd
	go func() { _ = cmd.Wait(); close(m.exited) }()
	if err := m.waitReady(60 * time.Second); err != nil {
		m.Stop()
		return nil, fmt.Errorf("MinIO not ready: %w\n%s", err, m.Log())
	}
	return m, nil
}

type lockedWriter MinIO

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	if w.log.Len() < 1<<20 {
		w.log.Write(p)
	}
	return len(p), nil
}

// Log returns what MinIO printed so far.
func (m *MinIO) Log() string {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	return m.log.String()
}

func (m *MinIO) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			return errors.New("MinIO exited during start-up")
		default:
		}
		// Live first; then the S3 API itself, which answers 503 ("server
		// not initialized") for a moment after live turns 200 and 403 to
		// an anonymous ListBuckets once it serves requests.
		if status(c, m.Endpoint+"/minio/health/live") == http.StatusOK &&
			status(c, m.Endpoint+"/minio/health/ready") == http.StatusOK &&
			status(c, m.Endpoint+"/") == http.StatusForbidden {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not serving S3 requests within %v", m.Endpoint, timeout)
}

// status is the status code of a GET, or 0 if it failed.
func status(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Stop stops the server by its pid: SIGTERM, then SIGKILL after 10 s.
func (m *MinIO) Stop() {
	m.stopped.Do(func() {
		if m.cmd == nil || m.cmd.Process == nil {
			return
		}
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	})
}
