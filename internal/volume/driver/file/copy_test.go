package file

import (
	"testing"

	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// readAhead advises every data range once, in order, up to its window
// beyond what the copy has taken (this take included), and splits a range
// the window cuts.
func TestReadAhead(t *testing.T) {
	type advice struct{ off, n int64 }
	cases := []struct {
		name   string
		ranges []driver.Extent
		window int64
		takes  []int64 // what the copy takes, in order
		want   [][]advice
	}{
		{"small ranges, all in the window at once",
			[]driver.Extent{{Offset: 0, Length: 10}, {Offset: 100, Length: 10}, {Offset: 200, Length: 10}}, 64,
			[]int64{10, 10, 10},
			[][]advice{{{0, 10}, {100, 10}, {200, 10}}, nil, nil}},
		{"a window that cuts ranges",
			[]driver.Extent{{Offset: 0, Length: 30}, {Offset: 100, Length: 30}}, 20,
			[]int64{20, 10, 20, 10},
			[][]advice{{{0, 30}, {100, 10}}, {{110, 10}}, {{120, 10}}, nil}},
		{"one range larger than the window",
			[]driver.Extent{{Offset: 4096, Length: 100}}, 40,
			[]int64{40, 40, 20},
			[][]advice{{{4096, 80}}, {{4176, 20}}, nil}},
		{"no ranges", nil, 40, []int64{0}, [][]advice{nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []advice
			a := &readAhead{ranges: c.ranges, window: c.window, advise: func(off, n int64) { got = append(got, advice{off, n}) }}
			var taken, advised int64
			for i, n := range c.takes {
				got = nil
				a.advance(n)
				taken += n
				for _, g := range got {
					advised += g.n
				}
				if len(got) != len(c.want[i]) {
					t.Fatalf("take %d: advised %v, want %v", i, got, c.want[i])
				}
				for j := range got {
					if got[j] != c.want[i][j] {
						t.Fatalf("take %d: advised %v, want %v", i, got, c.want[i])
					}
				}
				if advised-taken > c.window {
					t.Fatalf("take %d: %d bytes advised ahead, window %d", i, advised-taken, c.window)
				}
			}
		})
	}
}
