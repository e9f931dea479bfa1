package storetest

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// A driver's crash test kills a process in the middle of a Put (SIGKILL: no
// clean-up code runs) and checks what the next process finds. The process
// is the test binary itself, run again as a child:
//
//	func TestKilledMidUpload(t *testing.T) {
//		storetest.PutInChild(open, chunk) // in the child: Puts until killed
//		kill := storetest.StartPutChild(t, config)
//		// wait until the upload has written something, then
//		kill()
//		// and check what is left
//	}

// childEnv carries the child's driver configuration.
const childEnv = "ASHLAR_STORETEST_PUT_CHILD"

// endless is a reader that never ends: an upload still running. Each Read
// waits a millisecond and gives at most chunk bytes.
type endless struct{ chunk int }

func (e endless) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return min(len(p), e.chunk), nil
}

// PutInChild is the child's side of StartPutChild: in the process it
// started, it opens a driver with open(config) and Puts an endless object
// under key "img", reading at most chunk bytes a millisecond, until it is
// killed; it never returns there. Anywhere else it returns at once.
func PutInChild(open func(config string) (store.Driver, error), chunk int) {
	config := os.Getenv(childEnv)
	if config == "" {
		return
	}
	d, err := open(config)
	if err != nil {
		os.Exit(3)
	}
	_, _ = d.Put(context.Background(), "img", endless{chunk})
	os.Exit(4) // not reached: the parent kills the child first
}

// StartPutChild runs the calling test again in a child process, where
// PutInChild opens its driver from config and Puts an endless object, and
// returns a function that kills the child with SIGKILL and waits for it.
// The child is killed when the test ends, if not before.
func StartPutChild(t *testing.T, config string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$")
	cmd.Env = append(os.Environ(), childEnv+"="+config)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill = func() {
		if killed {
			return
		}
		killed = true
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Error(err)
		}
		_ = cmd.Wait()
	}
	t.Cleanup(kill)
	return kill
}
