package receiver

import (
	"runtime"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// TestForgedBlockCostsItsSymbols: a packet announcing 255-symbol blocks of
// 65,535-byte symbols used to allocate and clear the whole 16.7 MB block
// buffer at once, so a few hundred forged one-packet streams a second kept
// a receiver's CPU busy clearing memory, and charged it all against the
// buffer. A block's buffer now grows, and is charged, with the symbols
// that arrive.
func TestForgedBlockCostsItsSymbols(t *testing.T) {
	r := newRx(t, Config{})
	forged := &peer{id: 0x0c000001, inst: 9, flag: framing.FlagStream,
		fti: framing.FTI{TransferLength: 1 << 30, SymbolLength: 65535, MaxBlockLen: 255}}
	pkts := make([][]byte, 16)
	for i := range pkts {
		pkts[i] = forged.pkt(t, uint16(i), 0, 254, streamSeg(seg(1000), true))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, b := range pkts {
		handle(t, r, t0, b)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Fatalf("16 forged one-packet streams allocated %d bytes, want at most 1 MiB each", d)
	}
	// Nor are they charged the whole block against the buffer (16 of them
	// took 256 MiB, so a real sender beside 64 forged ones found no room):
	// a symbol's worth each, and their bitmaps.
	if b := r.Stats().BufferBytes; b > 16*(65535+8+blockWindow/8) {
		t.Fatalf("16 forged one-packet streams hold %d buffer bytes, want a symbol and a bitmap each", b)
	}
	// The symbols are still where they belong: a real stream's symbols
	// arriving out of order deliver the stream intact (the growing buffer
	// moves symbols as it grows).
	rs := newRx(t, Config{})
	real := &peer{id: senderID, inst: 1, flag: framing.FlagStream,
		fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 1400, MaxBlockLen: 64}}
	want := make([]byte, 0, 64*1390)
	order := make([]int, 64)
	for i := range order {
		order[i] = (i*37 + 5) % 64 // a permutation of 0..63
	}
	for _, i := range order {
		d := make([]byte, 1392)
		for j := range d {
			d[j] = byte(i*7 + j)
		}
		handle(t, rs, t0, real.pkt(t, 1, 0, uint16(i), streamSeg(d, i == 0)))
	}
	for i := range 64 {
		for j := range 1392 {
			want = append(want, byte(i*7+j))
		}
	}
	var got []byte
	for _, e := range events(rs) {
		if e.Kind == EventStreamData {
			got = append(got, e.Data...)
		}
	}
	if string(got) != string(want) {
		t.Fatalf("stream delivered %d bytes, want %d intact", len(got), len(want))
	}
}

// TestPausedSenderNotEvicted: with MaxSenders tracked, forged source ids
// arriving one a millisecond used to push out the least recently heard
// sender, so a real sender that paused for longer than MaxSenders forged
// packets (as one does between repair cycles) lost its objects. The forged
// ids now take each other's places.
func TestPausedSenderNotEvicted(t *testing.T) {
	r := newRx(t, Config{})
	p := &pkt{inst: 1}
	now := t0
	const size = 4000 // 10 blocks
	for sym := range uint16(4) {
		handle(t, r, now, p.data(t, 1, size, 0, sym, seg(100)))
	}
	fake := &peer{inst: 9, fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}}
	for i := range uint32(200) { // 200 ms of forged ids, 100 of them
		now = now.Add(time.Millisecond)
		fake.id = 0x0c000000 + i%100
		handle(t, r, now, fake.pkt(t, 1, 0, 0, seg(100)))
	}
	for _, e := range events(r) {
		if e.Sender == senderID && (e.Kind == EventSenderGone || e.Kind == EventAborted) {
			t.Fatalf("the real sender, paused 200 ms, was pushed out: %+v", e)
		}
	}
	for b := uint32(1); b < 10; b++ {
		for sym := range uint16(4) {
			handle(t, r, now, p.data(t, 1, size, b, sym, seg(100)))
		}
	}
	if c := find(events(r), EventCompleted); len(c) != 1 || c[0].Sender != senderID {
		t.Fatalf("completed %+v, want the real object", c)
	}
	// A sender silent for longer than a second is still evictable: the
	// table stays open to new senders.
	now = now.Add(2 * time.Second)
	fake.id = 0x0c100000
	handle(t, r, now, fake.pkt(t, 1, 0, 0, seg(100)))
	fake.id = 0x0c100001
	now = now.Add(time.Millisecond)
	handle(t, r, now, fake.pkt(t, 1, 0, 0, seg(100)))
	if r.remote(senderID) != nil && r.remote(0x0c100001) == nil {
		t.Fatal("new sender refused while the table held idle ones")
	}
}

// TestNewSenderNotPushedOut: a real sender that starts while forged ids
// that have each sent more than its first packet fill MaxSenders, and keep
// arriving, is not pushed out before it could send anything: it completes
// its object.
func TestNewSenderNotPushedOut(t *testing.T) {
	r := newRx(t, Config{})
	now := t0
	fake := &peer{inst: 9, fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}}
	n := 0
	forge := func() {
		fake.id = 0x0c000000 + uint32(n%64)
		handle(t, r, now, fake.pkt(t, 1, uint32(n/64), 0, seg(100)))
		n++
	}
	for range 1920 { // 30 packets from each of 64 ids, one a millisecond
		now = now.Add(time.Millisecond)
		forge()
	}
	events(r)
	p := &pkt{inst: 1}
	const size = 4000 // 10 blocks, a block every 10 ms
	for b := range uint32(10) {
		for sym := range uint16(4) {
			handle(t, r, now, p.data(t, 1, size, b, sym, seg(100)))
		}
		for range 10 {
			now = now.Add(time.Millisecond)
			forge()
		}
	}
	ev := events(r)
	for _, e := range ev {
		if e.Sender == senderID && (e.Kind == EventSenderGone || e.Kind == EventAborted) {
			t.Fatalf("the new real sender was pushed out: %+v", e)
		}
	}
	if c := find(ev, EventCompleted); len(c) != 1 || c[0].Sender != senderID {
		t.Fatalf("completed %+v, want the real object", c)
	}
}

// TestNewSenderFirstPacketSmall: forged ids that filled MaxSenders a
// moment before a real sender started pushed it out after its first,
// small packet (a probe), before its data came: a young sender is judged
// at its pace, not by the few bytes it had time to send.
func TestNewSenderFirstPacketSmall(t *testing.T) {
	r := newRx(t, Config{})
	now := t0
	fake := &peer{inst: 9, fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 1000, MaxBlockLen: 4, Parity: 2}}
	n := 0
	forge := func() {
		fake.id = 0x0c000000 + uint32(n%64)
		handle(t, r, now, fake.pkt(t, 1, uint32(n/64), 0, seg(1000)))
		n++
	}
	for range 128 { // two packets from each of 64 ids
		now = now.Add(time.Millisecond)
		forge()
	}
	p := &pkt{inst: 1}
	handle(t, r, now, p.cmd(t, framing.Cmd{Flavor: framing.FlavorFlush,
		Ref: framing.SymbolRef{FECID: framing.FECRS8, ObjectID: 1}})) // a small first packet
	const size = 64 * 4 * 100 // then a block a millisecond
	for b := range uint32(64) {
		now = now.Add(time.Millisecond)
		forge()
		for sym := range uint16(4) {
			handle(t, r, now, p.data(t, 1, size, b, sym, seg(100)))
		}
	}
	ev := events(r)
	for _, e := range ev {
		if e.Sender == senderID && (e.Kind == EventSenderGone || e.Kind == EventAborted) {
			t.Fatalf("the new real sender was pushed out: %+v", e)
		}
	}
	if c := find(ev, EventCompleted); len(c) != 1 || c[0].Sender != senderID {
		t.Fatalf("completed %+v, want the real object", c)
	}
}

// TestStalledSenderKeepsObject: a real sender silent for more than a
// second with an object all but complete (waiting for acknowledgements,
// or held back by a slow receiver) was the first to go when forged ids
// arrived, and the object was lost. It is now judged by what it sent.
func TestStalledSenderKeepsObject(t *testing.T) {
	r := newRx(t, Config{})
	p := &pkt{inst: 1}
	now := t0
	const size = 40 * 4 * 100
	for b := range uint32(39) {
		for sym := range uint16(4) {
			handle(t, r, now, p.data(t, 1, size, b, sym, seg(100)))
		}
	}
	fake := &peer{inst: 9, fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}}
	now = now.Add(2 * time.Second)
	for i := range uint32(200) {
		now = now.Add(time.Millisecond)
		fake.id = 0x0c000000 + i%100
		handle(t, r, now, fake.pkt(t, 1, 0, 0, seg(100)))
	}
	for sym := range uint16(4) {
		handle(t, r, now, p.data(t, 1, size, 39, sym, seg(100)))
	}
	ev := events(r)
	for _, e := range ev {
		if e.Sender == senderID && (e.Kind == EventSenderGone || e.Kind == EventAborted) {
			t.Fatalf("the stalled real sender was pushed out: %+v", e)
		}
	}
	if c := find(ev, EventCompleted); len(c) != 1 || c[0].Sender != senderID {
		t.Fatalf("completed %+v, want the real object", c)
	}
}
