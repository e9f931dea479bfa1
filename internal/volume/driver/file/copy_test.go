package file

import (
	"testing"

	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// readAhead advises every data range once, in order, up to its window
// beyond what the copy has done, and splits a range the window cuts.
func TestReadAhead(t *testing.T) {
	type advice struct{ off, n int64 }
	cases := []struct {
		name   string
		ranges []driver.Extent
		window int64
		done   []int64 // what the copy has done at each call, in order
		want   [][]advice
	}{
		{"small ranges, all in the window at once",
			[]driver.Extent{{Offset: 0, Length: 10}, {Offset: 100, Length: 10}, {Offset: 200, Length: 10}}, 64,
			[]int64{0, 10, 10, 10},
			[][]advice{{{0, 10}, {100, 10}, {200, 10}}, nil, nil, nil}},
		{"a window that cuts ranges",
			[]driver.Extent{{Offset: 0, Length: 30}, {Offset: 100, Length: 30}}, 20,
			[]int64{0, 20, 10, 20, 10},
			[][]advice{{{0, 20}}, {{20, 10}, {100, 10}}, {{110, 10}}, {{120, 10}}, nil}},
		{"one range larger than the window, copied in parts",
			[]driver.Extent{{Offset: 4096, Length: 100}}, 40,
			[]int64{0, 40, 25, 15, 20},
			[][]advice{{{4096, 40}}, {{4136, 40}}, {{4176, 20}}, nil, nil}},
		{"no ranges", nil, 40, []int64{0}, [][]advice{nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []advice
			a := &readAhead{ranges: c.ranges, window: c.window, advise: func(off, n int64) { got = append(got, advice{off, n}) }}
			var copied, advised int64
			for i, n := range c.done {
				got = nil
				a.advance(n)
				copied += n
				for _, g := range got {
					advised += g.n
				}
				if len(got) != len(c.want[i]) {
					t.Fatalf("call %d: advised %v, want %v", i, got, c.want[i])
				}
				for j := range got {
					if got[j] != c.want[i][j] {
						t.Fatalf("call %d: advised %v, want %v", i, got, c.want[i])
					}
				}
				if advised-copied > c.window {
					t.Fatalf("call %d: %d bytes advised ahead, window %d", i, advised-copied, c.window)
				}
			}
		})
	}
}
