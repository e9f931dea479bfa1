package image

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// benchClients is the number of concurrent clients of BenchmarkListVsShow.
const benchClients = 16

// BenchmarkListVsShow serves GET /v2/images?limit=25 and GET
// /v2/images/{id} to 16 concurrent HTTP clients (keep-alive, one real
// listener) over 300 images visible to a project member in three ways
// (own, public, shared and accepted), each with properties, tags and a
// store copy. The two requests alternate in rounds (b.N of each in all),
// so that a machine whose speed drifts affects both alike; it reports both
// rates and list/show, the share of the show rate a page of 25 reaches
// (the target is >= 0.33), and the process CPU per request of each (on
// SQLite everything but the kernel's share of the HTTP traffic: client,
// server and database). Both engines; PostgreSQL when
// ASHLAR_TEST_POSTGRES_URL is set.
//
//	go test -run '^$' -bench ListVsShow -benchtime 4000x ./internal/image/
func BenchmarkListVsShow(b *testing.B) {
	for _, engine := range dbtest.Engines {
		b.Run(engine, func(b *testing.B) {
			e := newEnv(b, dbtest.Open(b, engine), "")
			ids := benchImages(e, 100)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * benchClients}}
			var next atomic.Uint64
			show := func() string { return "/v2/images/" + ids[next.Add(1)%uint64(len(ids))] }
			list := func() string { return "/v2/images?limit=25" }
			const rounds = 10
			var showWall, listWall, showCPU, listCPU time.Duration
			b.ResetTimer()
			for r := range rounds {
				n := b.N / rounds
				if r < b.N%rounds {
					n++
				}
				w, cpu := clients(b, c, e.srv.URL, n, show)
				showWall, showCPU = showWall+w, showCPU+cpu
				w, cpu = clients(b, c, e.srv.URL, n, list)
				listWall, listCPU = listWall+w, listCPU+cpu
			}
			b.StopTimer()
			showRate, listRate := float64(b.N)/showWall.Seconds(), float64(b.N)/listWall.Seconds()
			b.ReportMetric(showRate, "show-req/s")
			b.ReportMetric(listRate, "list25-req/s")
			b.ReportMetric(listRate/showRate, "list/show")
			b.ReportMetric(float64(showCPU.Microseconds())/float64(b.N), "show-cpu-us")
			b.ReportMetric(float64(listCPU.Microseconds())/float64(b.N), "list25-cpu-us")
			b.ReportMetric(0, "ns/op") // an op is one show and one list; the rates say more
		})
	}
}

// clients sends n GETs of base+path() as alice from benchClients goroutines
// and returns the wall time and the process CPU time they took. Each client
// reads and drops the body, like a load generator: the clients share the
// CPUs with the server, and the test harness's way of keeping every body
// would be charged to the server.
func clients(b *testing.B, c *http.Client, base string, n int, path func() string) (wall, cpu time.Duration) {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), processCPU()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for left.Add(-1) >= 0 {
				req, _ := http.NewRequest("GET", base+path(), nil)
				req.Header.Set("X-Auth-Token", "alice")
				req.Header.Set("Accept", "application/json")
				res, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, err = io.CopyBuffer(io.Discard, res.Body, buf)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK {
					b.Errorf("status %d: %v", res.StatusCode, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), processCPU() - cpu0
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchImages makes 3*perKind images alice (p1) sees: her own, public ones
// of the admin, and bob's shared with p1 and accepted; each has three
// properties, two tags and one 1 KiB copy in a store.
func benchImages(e *env, perKind int) []string {
	e.t.Helper()
	data := make([]byte, 1024)
	var ids []string
	for i := range 3 * perKind {
		owner, extra := "alice", ""
		switch i % 3 {
		case 1:
			owner, extra = "admin", `,"visibility":"public"`
		case 2:
			owner = "bob"
		}
		id := e.create(owner, fmt.Sprintf(`{"name":"bench-%d","disk_format":"raw","container_format":"bare",`+
			`"os_distro":"debian","os_version":"12","hw_disk_bus":"virtio","tags":["bench","t%d"]%s}`, i, i%7, extra))
		e.Must(204, e.Do(owner, "PUT", "/v2/images/"+id+"/file", data))
		if owner == "bob" {
			e.Must(200, e.Do("bob", "POST", "/v2/images/"+id+"/members", `{"member":"p1"}`))
			e.Must(200, e.Do("alice", "PUT", "/v2/images/"+id+"/members/p1", `{"status":"accepted"}`))
		}
		ids = append(ids, id)
	}
	return ids
}
