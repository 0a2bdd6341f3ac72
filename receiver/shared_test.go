package receiver

import (
	"bytes"
	"testing"

	"time"

	"github.com/shoalnet/shoal/fec"
)

// TestSharedPayloads: a receiver keeping symbols by reference rebuilds a
// block from parity and pads a short last symbol exactly as one copying
// them, and never writes into the packets it was handed.
func TestSharedPayloads(t *testing.T) {
	const size = 350 // one block of 4 symbols of 100 bytes, the last 50
	obj := make([]byte, size)
	for i := range obj {
		obj[i] = byte(i*7 + 3)
	}
	src := make([][]byte, 4)
	for i := range src {
		src[i] = make([]byte, 100) // zero padded, as the sender encodes
		copy(src[i], obj[i*100:])
	}
	par := [][]byte{make([]byte, 100), make([]byte, 100)}
	c, err := fec.RS8(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Encode(src, par); err != nil {
		t.Fatal(err)
	}
	for _, shared := range []bool{false, true} {
		r := newRx(t, Config{SharedPayloads: shared})
		var p pkt
		// Symbols 0 and 2 are lost; parity 0 and 1 stand in for them.
		pkts := [][]byte{
			p.data(t, 1, size, 0, 1, src[1]),
			p.data(t, 1, size, 0, 3, obj[300:]),
			p.data(t, 1, size, 0, 4, par[0]),
			p.data(t, 1, size, 0, 5, par[1]),
		}
		kept := make([][]byte, len(pkts))
		for i, b := range pkts {
			kept[i] = bytes.Clone(b)
			handle(t, r, t0, b)
		}
		done := find(events(r), EventCompleted)
		if len(done) != 1 || !bytes.Equal(done[0].Data, obj) {
			t.Fatalf("shared=%v: completed %d objects, data equal %v", shared, len(done), len(done) == 1 && bytes.Equal(done[0].Data, obj))
		}
		for i := range pkts {
			if !bytes.Equal(pkts[i], kept[i]) {
				t.Errorf("shared=%v: packet %d was modified", shared, i)
			}
		}
		if st := r.Stats(); st.FECRecovered != 2 {
			t.Errorf("shared=%v: recovered %d symbols, want 2", shared, st.FECRecovered)
		}
	}
}

// TestUniformBackoff: UniformBackoff spreads NACK back-offs evenly over the
// window, where the default piles them up near its end.
func TestUniformBackoff(t *testing.T) {
	const window = 100 * time.Millisecond
	for _, uniform := range []bool{false, true} {
		r := newRx(t, Config{UniformBackoff: uniform})
		var sum time.Duration
		const n = 4000
		for range n {
			d := time.Duration(r.backoffFraction(r.cfg.Rand.Float64(), 1000) * float64(window))
			if d < 0 || d > window {
				t.Fatalf("delay %v outside [0, %v]", d, window)
			}
			sum += d
		}
		mean := sum / n
		if uniform && (mean < 46*time.Millisecond || mean > 54*time.Millisecond) {
			t.Errorf("uniform: mean delay %v, want about half of %v", mean, window)
		}
		if !uniform && mean < 80*time.Millisecond {
			t.Errorf("exponential: mean delay %v, want most of %v", mean, window)
		}
	}
}
