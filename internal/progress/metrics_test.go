package progress

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ashlar-dev/ashlar/internal/task"
)

func TestCollector(t *testing.T) {
	now := time.Now()
	held := []task.Live{
		{Kind: "image.upload", Store: "fast", Done: 100, Total: 400, Started: now.Add(-10 * time.Second), Moved: now},
		{Kind: "image.upload", Store: "fast", Done: 50, Total: -1, Started: now.Add(-10 * time.Second), Moved: now.Add(-time.Hour)},
		{Kind: "volume.upload", Store: "cheap", Done: 7, Total: 7, Started: now.Add(-time.Second), Moved: now},
	}
	c := NewCollector(func() []task.Live { return held }, time.Minute)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP ashlar_transfer_bytes_in_flight Bytes moved so far by the operations running on this node.
# TYPE ashlar_transfer_bytes_in_flight gauge
ashlar_transfer_bytes_in_flight{operation="image.upload",store="fast"} 150
ashlar_transfer_bytes_in_flight{operation="volume.upload",store="cheap"} 7
# HELP ashlar_transfers_running Operations moving data on this node.
# TYPE ashlar_transfers_running gauge
ashlar_transfers_running{operation="image.upload",store="fast"} 2
ashlar_transfers_running{operation="volume.upload",store="cheap"} 1
# HELP ashlar_transfers_stalled Running operations that moved no bytes for longer than [DEFAULT] progress_stall_after.
# TYPE ashlar_transfers_stalled gauge
ashlar_transfers_stalled{operation="image.upload",store="fast"} 1
ashlar_transfers_stalled{operation="volume.upload",store="cheap"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ashlar_transfer_bytes_in_flight",
		"ashlar_transfers_running", "ashlar_transfers_stalled"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "ashlar_transfer_rate_bytes_per_second"); n != 2 {
		t.Errorf("rate series: %d, want 2", n)
	}
}
