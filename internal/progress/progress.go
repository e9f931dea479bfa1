// Package progress turns the byte counters of durable work (internal/task)
// into what users and operators read: a View with percent, rate, ETA and a
// stalled flag, the same everywhere the progress is shown (Glance's image
// tasks, Cinder's snapshot progress and Ashlar's volume progress, the
// Prometheus metrics, the dashboard, `ashlar transfers`). It only reads;
// the counting is Task.Reader / Task.Add on the data path.
package progress

import (
	"fmt"
	"math"
	"time"

	"github.com/ashlar-dev/ashlar/internal/task"
)

// DefaultStallAfter is [DEFAULT] progress_stall_after's default: work
// whose bytes have not moved for this long is flagged stalled.
const DefaultStallAfter = 60 * time.Second

// View is one operation's progress as shown.
type View struct {
	// TaskID, Kind, Subject, ProjectID and Store name the work.
	TaskID, Kind, Subject, ProjectID, Store string
	State                                   task.State
	// Done of Total bytes (Total -1: not known).
	Done, Total int64
	// Percent is 0-100, or -1 when Total is not known.
	Percent int
	// Rate is the attempt's average in bytes per second.
	Rate float64
	// Started is when the current attempt started (zero: not yet).
	Started time.Time
	// ETA is the expected time left at Rate; -1 when it cannot be told
	// (total unknown, nothing moved yet, or finished).
	ETA time.Duration
	// Stalled: running work that moves counted bytes (it has set a total
	// or counted some), and no bytes for longer than the stall limit. Work
	// that counts no bytes (a snapshot made by the backend at once, a
	// revert) is never stalled: its silence says nothing.
	Stalled bool
	// Error is why a failed operation failed.
	Error string
	// Created and Finished bound the operation.
	Created, Finished time.Time
}

// Of returns the view of a task row as of now; stallAfter is the stall
// limit (0: never stalled).
func Of(i task.Info, now time.Time, stallAfter time.Duration) View {
	v := View{TaskID: i.ID, Kind: i.Kind, Subject: i.Subject, ProjectID: i.ProjectID, Store: i.Store, State: i.State,
		Done: i.BytesDone, Total: i.BytesTotal, Rate: i.Rate(now), Started: i.StartedAt,
		Stalled: i.Stalled(now, stallAfter), Created: i.CreatedAt, Finished: i.FinishedAt}
	if i.State == task.Failed {
		v.Error = i.LastError
	}
	v.Stalled = v.Stalled && v.counts()
	v.fill(now)
	return v
}

// OfLive returns the view of a task this node holds (task.Runner.Held),
// fresher than its row.
func OfLive(l task.Live, now time.Time, stallAfter time.Duration) View {
	v := View{TaskID: l.ID, Kind: l.Kind, Subject: l.Subject, ProjectID: l.ProjectID, Store: l.Store,
		State: task.Running, Done: l.Done, Total: l.Total, Started: l.Started}
	if el := now.Sub(l.Started); el > 0 {
		v.Rate = float64(l.Done) / el.Seconds()
	}
	v.Stalled = stallAfter > 0 && !l.Moved.IsZero() && now.Sub(l.Moved) > stallAfter && v.counts()
	v.fill(now)
	return v
}

// counts reports whether the work counts bytes at all.
func (v *View) counts() bool { return v.Total >= 0 || v.Done > 0 }

// fill computes Percent and ETA from the counters.
func (v *View) fill(now time.Time) {
	v.Percent, v.ETA = -1, -1
	if v.State == task.Done {
		v.Percent, v.ETA = 100, 0
		return
	}
	if v.Total > 0 {
		v.Percent = int(min(100, v.Done*100/v.Total))
		if v.State == task.Running && v.Rate > 0 && v.Done < v.Total {
			secs := float64(v.Total-v.Done) / v.Rate
			if secs < math.MaxInt64/float64(time.Second) {
				v.ETA = time.Duration(secs * float64(time.Second)).Round(time.Second)
			}
		}
	} else if v.Total == 0 {
		v.Percent = 0
	}
}

// Message is the one-line progress text of Glance's task message and
// the Ashlar-Progress header: bytes, percent when the total is known,
// rate, and "stalled" when it is.
func (v View) Message() string {
	if v.Done == 0 && v.Total <= 0 {
		switch v.State {
		case task.Done:
			return "done"
		case task.Failed:
			return "failed"
		case task.Pending:
			return "waiting to start"
		}
	}
	s := "copied " + Bytes(v.Done)
	if v.Total >= 0 {
		s += " of " + Bytes(v.Total)
	}
	if v.Percent >= 0 {
		s += fmt.Sprintf(" (%d%%)", v.Percent)
	}
	if v.State == task.Running && v.Rate > 0 {
		s += " at " + Bytes(int64(v.Rate)) + "/s"
	}
	if v.Stalled {
		s += "; stalled: no data moved recently"
	}
	return s
}

// Bytes formats n bytes in binary units ("1.5 GiB", "512 B").
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Percent is Cinder's progress string ("NN%") of a view whose total is
// known; fallback (the stored value) otherwise.
func Percent(v View, fallback string) string {
	if v.Percent < 0 {
		return fallback
	}
	return fmt.Sprintf("%d%%", v.Percent)
}
