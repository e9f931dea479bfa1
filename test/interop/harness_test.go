package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/testenv"
)

// Port range the suite may listen on (and hand to the peers it starts).
const (
	portMin = 15000
	portMax = 15999
)

var (
	// logRoot holds every log and state directory of this run; it is kept
	// when a test fails (or ASHLAR_INTEROP_KEEP=1) and printed.
	logRoot string
	// binDir holds the ashlar binary built once per run.
	binDir    string
	buildOnce sync.Once
	ashlarBin string
	buildErr  error
	nextPort  atomic.Int64
)

func TestMain(m *testing.M) {
	code := run(m)
	os.Exit(code)
}

func run(m *testing.M) int {
	if !enabled() {
		return m.Run()
	}
	var err error
	if logRoot, err = os.MkdirTemp("", "ashlar-interop-"); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	if binDir, err = os.MkdirTemp("", "ashlar-interop-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// Start somewhere in the range, so two runs on one machine seldom
	// race for the same ports (freePort still checks each one).
	nextPort.Store(portMin + int64(os.Getpid()%((portMax-portMin)/2)))
	code := testenv.Main(m) // stops the shared Ceph cluster, if a test started it
	if code != 0 || os.Getenv("ASHLAR_INTEROP_KEEP") == "1" {
		fmt.Fprintf(os.Stderr, "interop: logs and state kept in %s\n", logRoot)
	} else {
		os.RemoveAll(logRoot)
	}
	return code
}

func enabled() bool { return os.Getenv("ASHLAR_INTEROP") == "1" }

// requireInterop skips the test unless the interop suite is enabled.
func requireInterop(t *testing.T) {
	t.Helper()
	if !enabled() {
		t.Skip("interop suite: set ASHLAR_INTEROP=1 to run it (make test and scripts/interop.sh do)")
	}
}

// logTook, deferred at the start of a test, logs how long the test took:
// the interop tests are long, and CI's log says which took the time.
func logTook(t *testing.T, start time.Time) {
	t.Logf("%s took %s", t.Name(), time.Since(start).Round(time.Second))
}

// requireTools skips (or, under CI=true, fails) when a command the test
// needs is not installed; scripts/setup.sh installs them.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("interop: missing %s (scripts/setup.sh installs the Debian packages)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// logDir returns a fresh directory under the kept log root for one test
// part and arranges for its path to be printed when the test fails.
func logDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp(logRoot, strings.NewReplacer("/", "_", " ", "_").Replace(name)+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of %s kept in %s", name, dir)
		}
	})
	return dir
}

// freePort returns a port of the suite's range that nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	for range portMax - portMin + 1 {
		p := int(nextPort.Add(1) - 1)
		if p > portMax {
			nextPort.Store(portMin + 1)
			p = portMin
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatalf("no free port in %d-%d", portMin, portMax)
	return 0
}

// repoRoot is the module root (tests run in test/interop).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", dir, err)
	}
	return dir
}

// ashlarTags are the build tags of the ashlar the suite runs: those of
// the suite itself (the Ceph drivers when it is built with them).
var ashlarTags string

// ashlarBinary builds ./cmd/ashlar once per run.
func ashlarBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		ashlarBin = filepath.Join(binDir, "ashlar")
		args := []string{"build", "-o", ashlarBin}
		if ashlarTags != "" {
			args = append(args, "-tags", ashlarTags)
		}
		cmd := exec.Command("go", append(args, "./cmd/ashlar")...)
		cmd.Dir = repoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/ashlar: %v\n%s", err, out)
		}
		t.Logf("built ashlar in %s", time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return ashlarBin
}

// proc is a process the suite started; stop kills its whole process group
// (the pid it was started with), so workers it forked go too.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startProc starts argv with its own process group, output to logPath,
// and stops it (by pid) when the test ends.
func startProc(t *testing.T, name, logPath string, env []string, dir string, argv ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	cmd.Dir = dir
	// Pdeathsig: if the test binary is killed (go test -timeout), the
	// process goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Logf("started %s (pid %d, log %s)", name, cmd.Process.Pid, logPath)
	t.Cleanup(p.stop)
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 15 s.
func (p *proc) stop() {
	pid := p.cmd.Process.Pid
	if !p.exited() {
		syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
	}
	// Children that outlived their parent are still in the group.
	syscall.Kill(-pid, syscall.SIGKILL)
}

// tail returns the last n bytes of the process log.
func (p *proc) tail(n int64) string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// waitHTTP polls url until it answers with a status below 500 or the
// process exits or timeout passes.
func waitHTTP(t *testing.T, p *proc, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			t.Fatalf("%s exited (%v) before %s answered; log %s:\n%s", p.name, p.err, url, p.logPath, p.tail(4000))
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	msg := fmt.Sprintf("%s did not answer within %s: %v", url, timeout, last)
	if p != nil {
		msg += fmt.Sprintf("; log %s:\n%s", p.logPath, p.tail(4000))
	}
	t.Fatal(msg)
}

// cmdResult is the outcome of one command run.
type cmdResult struct {
	Stdout, Stderr string
	Err            error
	Took           time.Duration
}

// runCmd runs argv with env (the whole environment) and a timeout.
func runCmd(ctx context.Context, env []string, dir string, argv ...string) cmdResult {
	start := time.Now()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out: %w", err)
	}
	return cmdResult{Stdout: out.String(), Stderr: errb.String(), Err: err, Took: time.Since(start)}
}

// baseEnv is the process environment without OS_* variables, so a
// developer's own cloud settings never leak into the suite.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
