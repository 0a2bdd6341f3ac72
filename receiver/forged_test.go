package receiver

import (
	"runtime"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// forgedSenders are 64 fake sender ids as a host on the group can run
// them: each announces a 256 MiB in-memory object and a stream of
// 65,000-byte symbols, and opens a new block of one with every packet.
func forgedSenders() []*peer {
	ps := make([]*peer, 0, 128)
	for i := range 64 {
		id := uint32(0x0d000100 + i)
		ps = append(ps,
			&peer{id: id, inst: 7, fti: framing.FTI{TransferLength: 256 << 20, SymbolLength: 1400, MaxBlockLen: 64, Parity: 16}},
			&peer{id: id, inst: 7, flag: framing.FlagStream, fti: framing.FTI{TransferLength: 1 << 30, SymbolLength: 65000, MaxBlockLen: 255}})
	}
	return ps
}

// TestPollVisitsOnlyDueSenders: a session's loop polls its receiver after
// every batch of packets and every timer, and Poll used to run every
// sender's timers and walk its objects each time, so 64 forged ids made
// every pass of a sending session's loop cost 64 senders' worth of work.
// Poll now looks at a sender only when one of its timers is due or
// something changed it: a Poll with nothing due does a step per sender,
// and one after a packet does the work of that packet's sender.
func TestPollVisitsOnlyDueSenders(t *testing.T) {
	r := newRx(t, Config{})
	ps := forgedSenders()
	now := t0
	var out framing.Outbox
	for round := range 4 {
		for i, p := range ps {
			var payload []byte
			if i%2 == 0 {
				payload = seg(1400)
			} else {
				payload = streamSeg(seg(1000), round == 0)
			}
			handle(t, r, now, p.pkt(t, uint16(1+i%2), uint32(round), 0, payload))
			now = now.Add(100 * time.Microsecond)
		}
	}
	if len(r.remotes) != 64 {
		t.Fatalf("%d senders tracked, want 64", len(r.remotes))
	}
	out.Reset()
	next := r.Poll(now, &out)
	if !next.After(now) {
		t.Fatalf("Poll wants to run again at %v, now is %v: something is due", next, now)
	}
	w := r.work
	out.Reset()
	if again := r.Poll(now, &out); !again.Equal(next) {
		t.Fatalf("a second Poll at the same time wants %v, the first %v", again, next)
	}
	if steps := r.work - w; steps > 64 || out.Len() > 0 {
		t.Fatalf("a Poll with nothing due took %d steps and sent %d packets; want a step per sender (64) and none", steps, out.Len())
	}
	// A packet from one sender: the next Poll does that sender's work,
	// not every sender's.
	handle(t, r, now, ps[0].pkt(t, 1, 9, 0, seg(1400)))
	w = r.work
	out.Reset()
	r.Poll(now, &out)
	one := r.work - w
	r.pollEvery = true
	w = r.work
	out.Reset()
	r.Poll(now, &out)
	all := r.work - w
	if one > 64+all/8 {
		t.Fatalf("a Poll after one sender's packet took %d steps; visiting every sender takes %d", one, all)
	}
}

// TestForgedBlockCostsItsBytes: a forged packet that opens a new block
// used to make the receiver allocate and clear 16 KiB of symbol slots (a
// 65,000-byte one for a stream of such symbols) for its few bytes; a
// sending session on a group where 64 fake ids each opened a block a
// round spent a large part of its CPU on it. A block's first symbol now
// costs its own size; the slots come with the second.
func TestForgedBlockCostsItsBytes(t *testing.T) {
	r := newRx(t, Config{})
	ps := forgedSenders()
	const rounds = 8
	pkts := make([][]byte, 0, rounds*len(ps))
	for round := range rounds {
		for i, p := range ps {
			var payload []byte
			if i%2 == 0 {
				payload = seg(1400)
			} else {
				payload = streamSeg(seg(1000), round == 0)
			}
			pkts = append(pkts, p.pkt(t, uint16(1+i%2), uint32(round), 0, payload))
		}
	}
	// The first round sets up the senders and their objects: what is
	// measured is a packet that opens a block of a known object.
	for _, b := range pkts[:len(ps)] {
		handle(t, r, t0, b)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, b := range pkts[len(ps):] {
		handle(t, r, t0, b)
	}
	runtime.ReadMemStats(&after)
	// Each packet's own bytes and the block's bookkeeping (a slice header
	// and, in a stream, an arrival time per symbol of the block): about
	// 8 KiB a packet on average, against 40 KiB when slots came first.
	per := (after.TotalAlloc - before.TotalAlloc) / uint64(len(pkts)-len(ps))
	if per > 12<<10 {
		t.Fatalf("a forged packet opening a block allocated %d bytes on average, want at most 12 KiB", per)
	}
	if st := r.Stats(); st.DataSymbols != uint64(len(pkts)) {
		t.Fatalf("%d symbols stored, want %d", st.DataSymbols, len(pkts))
	}
}
