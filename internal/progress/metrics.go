package progress

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/task"
)

// Collector exports the progress of the work this node holds, per
// operation (task kind) and store, read at scrape time from the runner's
// live counters: nothing is added to the data path.
type Collector struct {
	held       func() []task.Live
	stallAfter time.Duration
	now        func() time.Time

	inFlight, total, rate, running, stalled *prometheus.Desc
}

// NewCollector returns a collector of held's work (task.Runner.Held).
func NewCollector(held func() []task.Live, stallAfter time.Duration) *Collector {
	labels := []string{"operation", "store"}
	return &Collector{held: held, stallAfter: stallAfter, now: time.Now,
		inFlight: prometheus.NewDesc("ashlar_transfer_bytes_in_flight",
			"Bytes moved so far by the operations running on this node.", labels, nil),
		total: prometheus.NewDesc("ashlar_transfer_bytes_expected",
			"Bytes the operations running on this node will move, where known.", labels, nil),
		rate: prometheus.NewDesc("ashlar_transfer_rate_bytes_per_second",
			"Sum of the average rates of the operations running on this node.", labels, nil),
		running: prometheus.NewDesc("ashlar_transfers_running",
			"Operations moving data on this node.", labels, nil),
		stalled: prometheus.NewDesc("ashlar_transfers_stalled",
			"Running operations that moved no bytes for longer than [DEFAULT] progress_stall_after.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.total, c.rate, c.running, c.stalled} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ op, store string }
	type sums struct{ done, total, rate, running, stalled float64 }
	agg := map[key]*sums{}
	now := c.now()
	for _, l := range c.held() {
		v := OfLive(l, now, c.stallAfter)
		k := key{v.Kind, v.Store}
		s := agg[k]
		if s == nil {
			s = &sums{}
			agg[k] = s
		}
		s.done += float64(v.Done)
		if v.Total > 0 {
			s.total += float64(v.Total)
		}
		s.rate += v.Rate
		s.running++
		if v.Stalled {
			s.stalled++
		}
	}
	for k, s := range agg {
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, s.done, k.op, k.store)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, s.total, k.op, k.store)
		ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, s.rate, k.op, k.store)
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, s.running, k.op, k.store)
		ch <- prometheus.MustNewConstMetric(c.stalled, prometheus.GaugeValue, s.stalled, k.op, k.store)
	}
}

// Interface guard.
var _ prometheus.Collector = (*Collector)(nil)
