package simrun

import (
	"io"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

type discard struct{}

func (discard) WriteAt(b []byte, _ int64) (int, error) { return len(b), nil }

// steadyState returns a sender with a large object half sent and a
// receiver that has taken everything so far, and the packets of the next
// poll.
func steadyState(t testing.TB, parity int, shared, withArena bool) (*sender.Sender, *receiver.Receiver, time.Time) {
	now := time.Unix(0, 0)
	s, err := sender.New(sender.Config{NodeID: 1, Rate: 1e9, Parity: parity, AutoParity: parity / 2}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendFile(patternReader{size: 1 << 30}, 1<<30, []byte("big")); err != nil {
		t.Fatal(err)
	}
	rcfg := receiver.Config{NodeID: 2, SharedPayloads: shared, Sink: func(receiver.ObjectInfo) (io.WriterAt, error) { return discard{}, nil }}
	if withArena {
		rcfg.Arena = &arena
	}
	r, err := receiver.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	var out framing.Outbox
	for range 200 {
		out.Reset()
		now = s.Poll(now, &out)
		for i := range out.Len() {
			b, _ := out.Packet(i)
			if shared {
				b = arena.keep(b)
			}
			_ = r.HandlePacket(now, Group, b)
		}
		r.Events()
		s.Events()
	}
	return s, r, now
}

// packetArena hands out copies of packets that stay unchanged for a while
// (the last 64 MiB of them), as receiver.Config.SharedPayloads needs,
// without allocating.
type packetArena struct {
	buf   []byte
	off   int
	last  int // where the packet kept last starts
	found int // payloads Find placed
}

var arena packetArena

func (a *packetArena) keep(b []byte) []byte {
	if a.buf == nil {
		a.buf = make([]byte, 64<<20)
	}
	if a.off+len(b) > len(a.buf) {
		a.off = 0
	}
	c := a.buf[a.off : a.off+len(b) : a.off+len(b)]
	copy(c, b)
	a.last = a.off
	a.off += len(b)
	return c
}

// Find places p only if it ends the packet kept last, as a payload the
// receiver handles at once does: enough for receiver.Config.Arena.
func (a *packetArena) Find(p []byte) (uint32, bool) {
	if n := a.off - a.last; len(p) == 0 || len(p) > n || &a.buf[a.off-len(p)] != &p[0] {
		return 0, false
	}
	a.found++
	return uint32(a.off - len(p)), true
}

func (a *packetArena) At(pos uint32, n int) []byte { return a.buf[pos : int(pos)+n : int(pos)+n] }

// TestEngineAllocs: in the steady state of a transfer, neither engine
// allocates per packet, whether the receiver copies symbols or keeps them
// by reference or by position in an arena.
func TestEngineAllocs(t *testing.T) {
	for _, c := range []struct {
		parity        int
		shared, arena bool
	}{{0, false, false}, {8, false, false}, {8, true, false}, {8, true, true}} {
		parity := c.parity
		s, r, now := steadyState(t, parity, c.shared, c.arena)
		var out framing.Outbox
		pkts := 0
		allocs := testing.AllocsPerRun(200, func() {
			out.Reset()
			now = s.Poll(now, &out)
			for i := range out.Len() {
				b, _ := out.Packet(i)
				if c.shared {
					b = arena.keep(b)
				}
				if err := r.HandlePacket(now, Group, b); err != nil {
					t.Fatal(err)
				}
				pkts++
			}
			r.Poll(now, &out)
			r.Events()
			s.Events()
		})
		if pkts < 200 {
			t.Fatalf("only %d packets in 200 polls", pkts)
		}
		if c.arena && arena.found < pkts {
			t.Fatalf("arena: %d of %d payloads kept by position", arena.found, pkts)
		}
		if allocs != 0 {
			t.Errorf("parity %d, shared %v, arena %v: %v allocations per poll (%d packets)", parity, c.shared, c.arena, allocs, pkts)
		}
	}
}

// BenchmarkEnginePacket measures one packet through sender and receiver
// engines (no network), with -benchmem showing allocations per packet.
func BenchmarkEnginePacket(b *testing.B) {
	s, r, now := steadyState(b, 8, false, false)
	var out framing.Outbox
	b.ReportAllocs()
	b.SetBytes(1400)
	n := 0
	for b.Loop() {
		if n == 0 {
			out.Reset()
			now = s.Poll(now, &out)
			n = out.Len()
			if n == 0 {
				now = now.Add(time.Millisecond)
				continue
			}
		}
		n--
		p, _ := out.Packet(n)
		_ = r.HandlePacket(now, Group, p)
	}
}
