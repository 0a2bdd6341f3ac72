package session

import (
	"testing"
	"time"
)

// TestArrival: a kernel receive timestamp becomes engine time that keeps
// now's monotonic reading; missing or implausible stamps count as now.
func TestArrival(t *testing.T) {
	now := time.Now()
	wall := now.UnixNano()
	for _, c := range []struct {
		name string
		ts   int64
		want time.Duration // arrival - now
	}{
		{"none", 0, 0},
		{"waited 5 ms", wall - 5e6, -5 * time.Millisecond},
		{"in the future", wall + 1e9, 0},
		{"a minute ago: a clock step", wall - 60e9, 0},
	} {
		got := arrival(now, c.ts)
		if d := got.Sub(now); d < c.want-time.Microsecond || d > c.want+time.Microsecond {
			t.Errorf("%s: arrival - now = %v, want %v", c.name, d, c.want)
		}
		if got.Round(0) == got {
			t.Errorf("%s: arrival lost the monotonic clock reading", c.name)
		}
	}
}
