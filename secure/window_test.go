package secure

import (
	"math/rand/v2"
	"testing"
)

// TestWindowModel checks the replay window against a plain model (every
// counter accepted so far, and the highest): a counter is new if it was
// never accepted and is less than Window below the highest.
func TestWindowModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for run := range 50 {
		var p peer
		base := uint64(1) << 40
		p.top, p.seen[0] = base, 1
		seen := map[uint64]bool{base: true}
		top := base
		for i := range 3000 {
			var c uint64
			switch r.IntN(4) {
			case 0: // ahead, by a little or a lot
				c = top + 1 + uint64(r.IntN(70))
				if r.IntN(20) == 0 {
					c = top + uint64(r.IntN(3*Window))
				}
			default: // behind, in or out of the window
				c = top - uint64(r.IntN(Window+200))
			}
			want := !seen[c] && (c > top || top-c < Window)
			got := p.check(c) == nil
			if got != want {
				t.Fatalf("run %d step %d: counter top-%d: accepted %v, model %v", run, i, int64(top-c), got, want)
			}
			if got {
				p.accept(c)
				seen[c] = true
				top = max(top, c)
			}
			if p.top != top {
				t.Fatalf("top %d, model %d", p.top, top)
			}
		}
	}
}
