package simrun

import (
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

// BenchmarkReceiverFile measures the receiver engine alone taking a 16 MiB
// file at 1 % loss, the losses rebuilt from parity or sent again at the end: the CPU a
// file receiver spends per byte outside the kernel.
func BenchmarkReceiverFile(b *testing.B) {
	const size = 16 << 20
	now := time.Unix(0, 0)
	s, err := sender.New(sender.Config{NodeID: 1, Rate: 1e12, Parity: 8, AutoParity: 3}, now)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.SendFile(patternReader{size: size}, size, []byte("f")); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var pkts, lost [][]byte
	var out framing.Outbox
	for range 20000 { // the file, its parity and a few flushes
		out.Reset()
		now = s.Poll(now, &out)
		for i := range out.Len() {
			p, _ := out.Packet(i)
			c := append([]byte(nil), p...)
			if rng.Float64() >= 0.01 {
				pkts = append(pkts, c)
			} else {
				lost = append(lost, c)
			}
		}
		s.Events()
		now = now.Add(time.Millisecond)
	}
	// What parity did not rebuild comes again at the end, as a repair would.
	pkts = append(pkts, lost...)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		done := false
		r, err := receiver.New(receiver.Config{NodeID: 2, Sink: func(receiver.ObjectInfo) (io.WriterAt, error) { return discard{}, nil }})
		if err != nil {
			b.Fatal(err)
		}
		t := time.Unix(0, 0)
		for _, p := range pkts {
			_ = r.HandlePacket(t, Group, p)
			for _, e := range r.Events() {
				done = done || e.Kind == receiver.EventCompleted
			}
		}
		if !done {
			b.Fatalf("not complete: %d packets, %+v", len(pkts), r.Stats())
		}
	}
}
