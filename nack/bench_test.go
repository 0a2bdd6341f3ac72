package nack

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// lossyObject is a receiver's state after a 5% loss of an object of 20
// blocks of 64 source and 8 parity symbols (FEC id 5), the sender having
// sent all source symbols and 2 parity symbols per block.
func lossyObject(tb testing.TB, p *Pool, id uint16, seed uint64) *Object {
	rng := rand.New(rand.NewPCG(seed, 99))
	o := newObject(tb, p, id, Layout{Blocks: 20, MaxBlockLen: 64, Parity: 8})
	for blk := range uint32(20) {
		for s := range 66 {
			if rng.Float64() >= 0.05 {
				o.Receive(blk, uint16(s), 64)
			}
		}
	}
	return o
}

// receiverNacks are the NACKs of n receivers of lossyObject.
func receiverNacks(tb testing.TB, n int, erasures bool) [][]byte {
	p := NewPool(64, 256)
	b, _ := NewBuilder(framing.FECRS8, 0, 256)
	b.Erasures = erasures
	var out [][]byte
	for i := range n {
		o := lossyObject(tb, p, 1, uint64(i))
		b.Reset(nil, 1400)
		b.AddObject(o, true)
		out = append(out, append([]byte(nil), b.Content()...))
		o.Release()
	}
	return out
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p := NewPool(64, 256)
	o := lossyObject(t, p, 1, 1)
	o.SetInfoPending(true)
	b, _ := NewBuilder(framing.FECRS8, 0, 256)
	buf := make([]byte, 0, 1400)
	s := NewSuppressor(64, 256)
	a := NewAggregator(64, 256)
	nacks := receiverNacks(t, 8, false)
	eras := receiverNacks(t, 8, true)
	var rx Object
	m := NewBitmask(65536)
	i := 0
	for name, fn := range map[string]func(){
		"Object.Receive": func() {
			if err := rx.Init(p, 9, Layout{Blocks: 4, MaxBlockLen: 64, Parity: 8}); err != nil {
				t.Fatal(err)
			}
			for s := range 70 {
				rx.Receive(uint32(s%4), uint16(s), 64)
			}
			rx.Release()
		},
		"Builder": func() {
			b.Reset(buf[:0], 1400)
			b.AddMissingObject(65535)
			b.AddObject(o, true)
			b.Content()
		},
		"Builder.Erasures": func() {
			b.Erasures = true
			b.Reset(buf[:0], 1400)
			b.AddObject(o, false)
			b.Content()
			b.Erasures = false
		},
		"Suppressor": func() {
			s.Reset()
			s.Add(nacks[i%8], 0)
			s.Add(eras[i%8], 0)
			s.Covers(o, true)
			s.CoversObject(3)
			i++
		},
		"Aggregator": func() {
			a.Reset(0)
			for _, c := range nacks {
				a.Add(c, 0)
			}
			a.Add(eras[0], 0)
			for pl := a.Plan(); pl.Next(); {
				_ = pl.Repair()
			}
		},
		"Bitmask": func() {
			m.SetRange(100, 40000)
			m.Clear(555)
			for s, e := m.NextRun(0); s >= 0; s, e = m.NextRun(e) {
			}
			_ = m.Count()
			m.Reset()
		},
		"timers": func() {
			_ = BackoffDelay(0.3, time.Second, 1000) + NackHoldoff(time.Millisecond, 4) + AggregationWindow(time.Millisecond, 4)
		},
	} {
		if n := testing.AllocsPerRun(50, fn); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

// BenchmarkBuildNack builds the NACK for a 5%-lossy object of 20 blocks.
func BenchmarkBuildNack(b *testing.B) {
	for _, erasures := range []bool{false, true} {
		name := "symbols"
		if erasures {
			name = "erasures"
		}
		b.Run(name, func(b *testing.B) {
			o := lossyObject(b, NewPool(64, 256), 1, 1)
			bl, _ := NewBuilder(framing.FECRS8, 0, 256)
			bl.Erasures = erasures
			buf := make([]byte, 0, 1400)
			var n int
			for b.Loop() {
				bl.Reset(buf[:0], 1400)
				bl.AddObject(o, true)
				n = len(bl.Content())
			}
			b.ReportMetric(float64(n), "content-bytes")
		})
	}
}

// BenchmarkAggregateNack merges one receiver's NACK into a sender's window
// of 32 receivers' NACKs.
func BenchmarkAggregateNack(b *testing.B) {
	nacks := receiverNacks(b, 32, false)
	a := NewAggregator(256, 256)
	a.Reset(0)
	i := 0
	for b.Loop() {
		if i%32 == 0 {
			a.Reset(0)
		}
		if err := a.Add(nacks[i%32], 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAggregatePlan lists the repair plan of 32 receivers' NACKs.
func BenchmarkAggregatePlan(b *testing.B) {
	a := NewAggregator(256, 256)
	a.Reset(0)
	for _, c := range receiverNacks(b, 32, false) {
		a.Add(c, 0)
	}
	for b.Loop() {
		for p := a.Plan(); p.Next(); {
			_ = p.Repair()
		}
	}
}

// BenchmarkSuppress merges an overheard NACK and asks whether it covers a
// receiver's needs.
func BenchmarkSuppress(b *testing.B) {
	nacks := receiverNacks(b, 2, false)
	o := lossyObject(b, NewPool(64, 256), 1, 0)
	s := NewSuppressor(256, 256)
	for b.Loop() {
		s.Reset()
		s.Add(nacks[1], 0)
		s.Covers(o, true)
	}
}

// BenchmarkReceive records one symbol of a 64+8 block.
func BenchmarkReceive(b *testing.B) {
	p := NewPool(64, 256)
	var o Object
	o.Init(p, 1, Layout{Blocks: MaxBlocks, MaxBlockLen: 64, Parity: 8})
	var blk uint32
	var sym int
	for b.Loop() {
		if o.Receive(blk, uint16(sym), 64) == BlockComplete {
			blk, sym = blk+1, 0
			if blk == MaxBlocks {
				b.StopTimer()
				o.Init(p, 1, Layout{Blocks: MaxBlocks, MaxBlockLen: 64, Parity: 8})
				blk = 0
				b.StartTimer()
			}
			continue
		}
		sym++
	}
}
