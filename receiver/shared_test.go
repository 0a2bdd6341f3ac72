package receiver

import (
	"bytes"
	"testing"

	"time"

	"github.com/shoalnet/shoal/fec"
)

// TestSharedPayloads: a receiver keeping symbols by reference, or by
// position in an arena, rebuilds a block from parity and pads a short last
// symbol exactly as one copying them, and never writes into the packets it
// was handed. With an arena a block waiting for symbols holds no slices.
func TestSharedPayloads(t *testing.T) {
	for _, size := range []int{350, 400} { // one block of 4 symbols of 100 bytes, the last 50 or 100
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
		for _, mode := range []string{"copied", "shared", "arena"} {
			ar := &testArena{mem: make([]byte, 0, 4096)}
			cfg := Config{SharedPayloads: mode != "copied"}
			if mode == "arena" {
				cfg.Arena = ar
			}
			r := newRx(t, cfg)
			var p pkt
			// Symbols 0 and 2 are lost; parity 0 and 1 stand in for them.
			pkts := [][]byte{
				ar.keep(p.data(t, 1, uint64(size), 0, 1, src[1])),
				ar.keep(p.data(t, 1, uint64(size), 0, 3, obj[300:])),
				ar.keep(p.data(t, 1, uint64(size), 0, 4, par[0])),
				ar.keep(p.data(t, 1, uint64(size), 0, 5, par[1])),
			}
			kept := make([][]byte, len(pkts))
			for i, b := range pkts {
				kept[i] = bytes.Clone(b)
				handle(t, r, t0, b)
				if mode != "arena" || i == len(pkts)-1 {
					continue
				}
				bb := r.remotes[0].objs[0].blocks[0]
				// A short symbol is copied: the block takes its slices then.
				if detached := size == 400 || i == 0; bb.detached != detached || (bb.syms == nil) != detached {
					t.Fatalf("size %d, %d symbols in: detached %v (%d slices), want %v", size, i+1, bb.detached, len(bb.syms), detached)
				}
			}
			done := find(events(r), EventCompleted)
			if len(done) != 1 || !bytes.Equal(done[0].Data, obj) {
				t.Fatalf("size %d, %s: completed %d objects, data equal %v", size, mode, len(done), len(done) == 1 && bytes.Equal(done[0].Data, obj))
			}
			for i := range pkts {
				if !bytes.Equal(pkts[i], kept[i]) {
					t.Errorf("size %d, %s: packet %d was modified", size, mode, i)
				}
			}
			if st := r.Stats(); st.FECRecovered != 2 {
				t.Errorf("size %d, %s: recovered %d symbols, want 2", size, mode, st.FECRecovered)
			}
		}
	}
}

// testArena is an Arena that packets are copied into, never reused.
type testArena struct{ mem []byte }

func (a *testArena) keep(b []byte) []byte {
	if len(a.mem)+len(b) > cap(a.mem) {
		panic("testArena: full")
	}
	k := len(a.mem)
	a.mem = append(a.mem, b...)
	return a.mem[k:len(a.mem):len(a.mem)]
}

func (a *testArena) Find(p []byte) (uint32, bool) {
	for i := range a.mem {
		if &a.mem[i] == &p[0] && i+len(p) <= len(a.mem) {
			return uint32(i), true
		}
	}
	return 0, false
}

func (a *testArena) At(pos uint32, n int) []byte { return a.mem[pos : int(pos)+n : int(pos)+n] }

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
