package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ceph is a running one-node Ceph cluster (scripts/ceph-cluster.sh): pools
// "volumes" and "images", users admin, cinder and glance, keyrings found
// through Conf.
type Ceph struct {
	// Dir holds the cluster's data, logs and keyrings.
	Dir string
	// Conf is the cluster's ceph.conf; it names the keyrings.
	Conf string
	// FSID is the cluster's fsid.
	FSID string
	// MonV1Port is the monitor's msgr v1 port (os-brick's mon_host).
	MonV1Port int
}

var sharedCeph struct {
	once sync.Once
	c    *Ceph
	err  error
	own  bool // started here: Main stops it
}

// CephEnabled reports whether the tests that need a live Ceph cluster
// should run: ASHLAR_CEPH=1 (make test sets it) or ASHLAR_INTEROP=1.
func CephEnabled() bool {
	return os.Getenv("ASHLAR_CEPH") == "1" || os.Getenv("ASHLAR_INTEROP") == "1"
}

// SharedCeph returns the test binary's Ceph cluster, bootstrapping it on
// first use (about 30 s) in a temporary directory on free ports. The
// package's TestMain must call Main, which stops and removes it. Without
// ASHLAR_CEPH=1 (or ASHLAR_INTEROP=1) the test is skipped. With
// ASHLAR_TEST_CEPH_DIR set, the cluster that scripts/ceph-cluster.sh
// started in that directory is used instead (and left running), which
// saves the bootstrap while developing. When the cluster
// cannot be started (no Ceph installed) it is skipped too, or failed under
// CI=true.
func SharedCeph(t testing.TB) *Ceph {
	t.Helper()
	if !CephEnabled() {
		if CI() {
			t.Fatal("CI=true: the Ceph tests need ASHLAR_CEPH=1")
		}
		t.Skip("set ASHLAR_CEPH=1 to run the tests against a real Ceph cluster")
	}
	for _, tool := range []string{"ceph-mon", "ceph-osd", "ceph-mgr"} {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFatal(t, "%s not found (scripts/setup.sh installs Ceph)", tool)
		}
	}
	sharedCeph.once.Do(func() {
		if dir := os.Getenv("ASHLAR_TEST_CEPH_DIR"); dir != "" {
			sharedCeph.c, sharedCeph.err = existingCeph(dir)
			return
		}
		sharedCeph.c, sharedCeph.err = startCeph()
		sharedCeph.own = sharedCeph.err == nil
	})
	if sharedCeph.err != nil {
		SkipOrFatal(t, "starting Ceph: %v", sharedCeph.err)
	}
	return sharedCeph.c
}

// cephScript is scripts/ceph-cluster.sh of this source tree.
func cephScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "ceph-cluster.sh")
}

func startCeph() (*Ceph, error) {
	dir, err := os.MkdirTemp("", "ashlar-ceph-")
	if err != nil {
		return nil, err
	}
	var out []byte
	for range 3 { // a port taken between FreePort and the monitor's bind
		v2, err1 := FreePort()
		v1, err2 := FreePort()
		if err1 != nil || err2 != nil || v1 == v2 {
			continue
		}
		cmd := exec.Command(cephScript(), "start", dir)
		cmd.Env = append(os.Environ(), "CEPH_MON_PORT="+strconv.Itoa(v2), "CEPH_MON_V1_PORT="+strconv.Itoa(v1))
		out, err = cmd.CombinedOutput()
		if err == nil {
			fsid, rerr := os.ReadFile(filepath.Join(dir, "fsid"))
			if rerr != nil {
				return nil, rerr
			}
			return &Ceph{Dir: dir, Conf: filepath.Join(dir, "ceph.conf"), FSID: strings.TrimSpace(string(fsid)), MonV1Port: v1}, nil
		}
		_ = exec.Command(cephScript(), "wipe", dir).Run()
	}
	return nil, fmt.Errorf("%s start: %v\n%s", cephScript(), err, out)
}

// existingCeph describes the cluster ceph-cluster.sh started in dir.
func existingCeph(dir string) (*Ceph, error) {
	fsid, err := os.ReadFile(filepath.Join(dir, "fsid"))
	if err != nil {
		return nil, fmt.Errorf("ASHLAR_TEST_CEPH_DIR: %w", err)
	}
	conf := filepath.Join(dir, "ceph.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		return nil, err
	}
	c := &Ceph{Dir: dir, Conf: conf, FSID: strings.TrimSpace(string(fsid))}
	if _, rest, ok := strings.Cut(string(b), "v1:127.0.0.1:"); ok {
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		c.MonV1Port, _ = strconv.Atoi(rest[:max(end, 0)])
	}
	return c, nil
}

// Keyring is the path of user's keyring ("cinder", "glance", "admin").
func (c *Ceph) Keyring(user string) string {
	return filepath.Join(c.Dir, "keyring", "ceph.client."+user+".keyring")
}

// Stop stops the cluster's daemons and removes its data.
func (c *Ceph) Stop() {
	_ = exec.Command(cephScript(), "wipe", c.Dir).Run()
}
