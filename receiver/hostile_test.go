package receiver

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/framing"
)

// peer builds NORM_DATA from any source id with any FTI: hostile tests
// forge what a host on the group could send.
type peer struct {
	id   uint32
	inst uint16
	seq  uint16
	fti  framing.FTI
	flag framing.ObjectFlags
}

func (p *peer) pkt(t testing.TB, obj uint16, blk uint32, sym uint16, payload []byte) []byte {
	t.Helper()
	ext, err := framing.AppendFTI(nil, framing.FECRS8, p.fti)
	if err != nil {
		t.Fatal(err)
	}
	p.seq++
	m := framing.Data{Header: framing.Header{Type: framing.TypeData, Sequence: p.seq, SourceID: p.id},
		SenderFields: framing.SenderFields{InstanceID: p.inst, GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)},
		FECID:        framing.FECRS8, ObjectID: obj, Flags: p.flag,
		PayloadID: framing.PayloadID{Block: blk, Symbol: sym}, Ext: ext, Payload: payload}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *peer) cmd(t testing.TB, c framing.Cmd) []byte {
	t.Helper()
	p.seq++
	c.Header = framing.Header{Type: framing.TypeCmd, Sequence: p.seq, SourceID: p.id}
	c.SenderFields = framing.SenderFields{InstanceID: p.inst, GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)}
	b, err := c.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// streamSeg is a stream source symbol: the payload header and data.
func streamSeg(data []byte, msgStart bool) []byte {
	h := framing.StreamHeader{Len: uint16(len(data))}
	if msgStart {
		h.MsgStart = 1
	}
	return append(framing.AppendStreamHeader(nil, h), data...)
}

// realObject sends a complete data object of size bytes (100-byte segments,
// blocks of 4) from the real test sender and reports whether it completed.
func realObject(t *testing.T, r *Receiver, p *pkt, now time.Time, obj uint16, size int) bool {
	t.Helper()
	part, err := fec.NewPartition(uint64(size), 100, 4)
	if err != nil {
		t.Fatal(err)
	}
	for b := range part.Blocks() {
		for i := range part.BlockLen(b) {
			_, n := part.Segment(b, i)
			_ = r.HandlePacket(now, from, p.data(t, obj, uint64(size), uint32(b), uint16(i), seg(n)))
		}
	}
	for _, e := range events(r) {
		if e.Kind == EventCompleted && e.Sender == senderID && e.Object == obj && len(e.Data) == size {
			return true
		}
	}
	return false
}

// TestStreamGivesBackBuffers: a finished stream gives back its last
// block's buffer. A real 150 kB stream used to leave 90,112 bytes held; 16
// one-packet forged streams with 65,535-byte symbols and 255-symbol blocks
// held 16.7 MB each, so later objects were refused with ErrBufferLimit.
func TestStreamGivesBackBuffers(t *testing.T) {
	r := newRx(t, Config{})
	real := &peer{id: senderID, inst: 1, flag: framing.FlagStream,
		fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 1400, MaxBlockLen: 64}}
	const size = 150_000
	n := 0
	for i := 0; n < size; i++ {
		l := min(1400, size-n)
		handle(t, r, t0, real.pkt(t, 1, uint32(i/64), uint16(i%64), streamSeg(seg(l), i == 0)))
		n += l
	}
	end := size/1400 + 1
	handle(t, r, t0, real.pkt(t, 1, uint32(end/64), uint16(end%64), streamSeg(nil, false)))
	got := 0
	done := false
	for _, e := range events(r) {
		switch e.Kind {
		case EventStreamData:
			got += len(e.Data)
		case EventCompleted:
			done = true
		}
	}
	if !done || got != size {
		t.Fatalf("stream: %d bytes delivered, completed %v", got, done)
	}
	if st := r.Stats(); st.BufferBytes != 0 {
		t.Fatalf("%d buffer bytes held after the stream completed, want 0", st.BufferBytes)
	}

	forged := &peer{id: 0x0c000001, inst: 9, flag: framing.FlagStream,
		fti: framing.FTI{TransferLength: 1 << 30, SymbolLength: 65535, MaxBlockLen: 255}}
	for obj := range uint16(16) {
		handle(t, r, t0, forged.pkt(t, obj, 0, 0, streamSeg(nil, false)))
	}
	if st := r.Stats(); st.BufferBytes != 0 {
		t.Fatalf("%d buffer bytes held after 16 forged one-packet streams, want 0", st.BufferBytes)
	}
	if !realObject(t, r, &pkt{inst: 1}, t0, 2, 1000) {
		t.Fatal("a real object was not received after the forged streams")
	}
}

// TestOneSenderCannotReserveBuffer: a NORM_DATA announcing a 255 MiB
// object kept in memory, never passed, used to reserve the whole buffer at
// once, so every other sender's objects were refused.
func TestOneSenderCannotReserveBuffer(t *testing.T) {
	r := newRx(t, Config{})
	fake := &peer{id: 0x0c000001, inst: 9, fti: framing.FTI{TransferLength: 255 << 20, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}}
	handle(t, r, t0, fake.pkt(t, 1, 0, 0, seg(100)))
	if st := r.Stats(); st.BufferBytes > 1<<20 {
		t.Fatalf("%d bytes held for one symbol of an announced 255 MiB object", st.BufferBytes)
	}
	if !realObject(t, r, &pkt{inst: 1}, t0, 1, 1000) {
		t.Fatalf("real object refused: %+v", r.Stats())
	}
}

// TestBufferShare: a forged sender that really sends data may fill an idle
// buffer, but a real sender then gets its share back: the forged object is
// aborted to make room.
func TestBufferShare(t *testing.T) {
	const limit = 64 << 10
	r := newRx(t, Config{MaxBufferBytes: limit})
	fake := &peer{id: 0x0c000001, inst: 9, fti: framing.FTI{TransferLength: 1_000_000, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}}
	var fakeErr error
	for i := 0; i < 4000 && fakeErr == nil; i++ {
		handle(t, r, t0, fake.pkt(t, 1, uint32(i/4), uint16(i%4), seg(100)))
		for _, e := range events(r) {
			if e.Kind == EventAborted {
				fakeErr = e.Err
			}
		}
	}
	if !errors.Is(fakeErr, ErrBufferLimit) {
		t.Fatalf("forged object not refused at the limit: %v", fakeErr)
	}
	// Again, up to what it can hold (data grows by doubling: 51,200 bytes).
	for i := 0; i < 4*120; i++ {
		handle(t, r, t0, fake.pkt(t, 2, uint32(i/4), uint16(i%4), seg(100)))
	}
	if st := r.Stats(); st.BufferBytes < limit/2 || st.BufferBytes > limit {
		t.Fatalf("forged sender holds %d bytes, want most of the %d", st.BufferBytes, limit)
	}
	events(r)
	if !realObject(t, r, &pkt{inst: 1}, t0, 1, 20_000) {
		t.Fatalf("real 20 kB object not received beside the forged sender: %+v", r.Stats())
	}
	st := r.Stats()
	if st.Preempted == 0 || st.BufferBytes > limit {
		t.Fatalf("stats %+v: want a preemption and the buffer within %d", st, limit)
	}
}

// TestBlockShare: one forged sender used to take every MaxBlocks slot
// with one symbol each of 4,096 blocks, so a real sender's blocks found no
// room.
func TestBlockShare(t *testing.T) {
	r := newRx(t, Config{})
	fake := &peer{id: 0x0c000001, inst: 9, fti: framing.FTI{TransferLength: 4 * 4096 * 400, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}}
	for b := range uint32(4096) {
		handle(t, r, t0, fake.pkt(t, 1, b, 0, seg(100)))
	}
	if f := r.pool.Free(); f != 0 {
		t.Fatalf("%d block slots free, want the forged sender to hold all 4096 (it was alone)", f)
	}
	if !realObject(t, r, &pkt{inst: 1}, t0, 1, 2000) {
		t.Fatalf("real object not received beside 4096 forged blocks: %+v", r.Stats())
	}
	if st := r.Stats(); st.Preempted == 0 || r.blocks > 4096 {
		t.Fatalf("stats %+v, %d blocks", st, r.blocks)
	}
}

// TestFakeSendersDoNotLockOut: 64 forged source ids used to fill
// MaxSenders, and the real sender arriving after them was refused. While
// it keeps sending, more forged ids take each other's places, not its.
func TestFakeSendersDoNotLockOut(t *testing.T) {
	r := newRx(t, Config{})
	now := t0
	fake := &peer{inst: 9, fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4, Parity: 2}}
	for i := range uint32(64) {
		fake.id = 0x0c000000 + i
		handle(t, r, now, fake.pkt(t, 1, 0, 0, seg(100)))
		now = now.Add(time.Millisecond)
	}
	events(r)
	p := &pkt{inst: 1}
	if !realObject(t, r, p, now, 1, 1000) {
		t.Fatalf("real sender not served after 64 forged ids: %+v", r.Stats())
	}
	// 100 more forged ids, one per millisecond, while the real sender
	// sends a packet every 10 ms.
	for i := range uint32(100) {
		fake.id = 0x0d000000 + i
		now = now.Add(time.Millisecond)
		handle(t, r, now, fake.pkt(t, 1, 0, 0, seg(100)))
		if i%10 == 9 {
			handle(t, r, now, p.data(t, 2, 1000, 0, uint16(i/10%4), seg(100)))
		}
	}
	for _, e := range events(r) {
		if e.Kind == EventSenderGone && e.Sender == senderID {
			t.Fatal("the real sender was evicted for a forged one")
		}
	}
	if !realObject(t, r, p, now, 3, 1000) {
		t.Fatal("real sender not served after 164 forged ids")
	}
	if st := r.Stats(); st.SendersEvicted != 101 || len(r.remotes) != 64 {
		t.Fatalf("%d senders evicted, %d tracked; want 101 and 64", st.SendersEvicted, len(r.remotes))
	}
}

// TestBitmapCounted: an object's bitmap of complete blocks counts against
// the buffer (a stream's 2 MiB one did not), and one the buffer cannot hold
// is refused before it is made. It covers a window of blocks, not every
// block number a stream or a 2^24-block object announces.
func TestBitmapCounted(t *testing.T) {
	r := newRx(t, Config{})
	s := &peer{id: senderID, inst: 1, flag: framing.FlagStream, fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4}}
	handle(t, r, t0, s.pkt(t, 1, 0, 1, streamSeg(seg(10), false)))
	if st := r.Stats(); st.BufferBytes < blockWindow/8 || st.BufferBytes > 64<<10 {
		t.Fatalf("%d buffer bytes held for a pending stream, want its %d-byte bitmap and one block", st.BufferBytes, blockWindow/8)
	}
	// 2^24 - 1 one-byte blocks.
	huge := &peer{id: senderID, inst: 1, flag: framing.FlagFile, fti: framing.FTI{TransferLength: 1<<24 - 1, SymbolLength: 1, MaxBlockLen: 1}}
	before := r.Stats().BufferBytes
	handle(t, r, t0, huge.pkt(t, 2, 0, 0, seg(1)))
	if d := r.Stats().BufferBytes - before; d != blockWindow/8+1 {
		t.Fatalf("a 2^24-block object holds %d bytes, want its %d-byte bitmap and its data", d, blockWindow/8)
	}
	// Block 100,000 is beyond the window while block 1 is missing.
	if err := r.HandlePacket(t0, from, huge.pkt(t, 2, 100_000, 0, seg(1))); err != nil || r.Stats().BlocksAhead != 1 {
		t.Fatalf("block beyond the window: %v, stats %+v", err, r.Stats())
	}
	small := newRx(t, Config{MaxBufferBytes: 4 << 10})
	handle(t, small, t0, huge.pkt(t, 3, 0, 0, seg(1)))
	if ab := find(events(small), EventAborted); len(ab) != 1 || !errors.Is(ab[0].Err, ErrBufferLimit) {
		t.Fatalf("8 KiB bitmap beyond a 4 KiB buffer: aborted %+v, want ErrBufferLimit", ab)
	}
	if st := small.Stats(); st.BufferBytes != 0 || st.QuotaRefused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFarIDsBoundedWork: packets naming far blocks or object ids (a stream
// starting near block 2^24, a SQUELCH there, a FLUSH 30,000 objects on)
// cost work bounded by the state, not by the numbers they carry.
func TestFarIDsBoundedWork(t *testing.T) {
	r := newRx(t, Config{})
	s := &peer{id: senderID, inst: 1, flag: framing.FlagStream, fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4}}
	bound := uint64(1000 + 4*int(r.window())) // the loops over a sender's object ids
	step := func(what string, b []byte) {
		t.Helper()
		w := r.work
		_ = r.HandlePacket(t0, from, b)
		var out framing.Outbox
		r.Poll(t0.Add(time.Second), &out)
		if d := r.work - w; d > bound {
			t.Fatalf("%s: %d steps, want at most %d", what, d, bound)
		}
	}
	step("stream near block 2^24", s.pkt(t, 1, streamBlocks-2, 0, streamSeg(seg(10), true)))
	step("squelch near block 2^24", s.cmd(t, framing.Cmd{Flavor: framing.FlavorSquelch,
		Ref: framing.SymbolRef{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: streamBlocks - 1}}}))
	step("flush 30,000 objects on", s.cmd(t, framing.Cmd{Flavor: framing.FlavorFlush,
		Ref: framing.SymbolRef{FECID: 5, ObjectID: 30001}}))
	step("data 30,000 objects on", s.pkt(t, 30001, 0, 0, streamSeg(seg(10), true)))
	if o := r.remote(senderID); o == nil || uint16(o.maxObj-o.base) > r.window() {
		t.Fatal("object window wider than its bound")
	}
}

// failWriter fails every write, as a full disk does.
type failWriter struct{}

func (failWriter) WriteAt([]byte, int64) (int, error) { return 0, io.ErrShortWrite }

// TestNoAckForAborted: an object whose write failed is finished but not
// held; a watermark request for it, or for any later object, is not
// acknowledged. It used to be, because holdsThrough tested "finished".
func TestNoAckForAborted(t *testing.T) {
	r := newRx(t, Config{Sink: func(info ObjectInfo) (io.WriterAt, error) {
		if info.Object == 3 {
			return failWriter{}, nil
		}
		return nil, nil
	}})
	p := &pkt{inst: 7}
	handle(t, r, t0, p.data(t, 3, 5, 0, 0, []byte("hello")))
	if ab := find(events(r), EventAborted); len(ab) != 1 || !errors.Is(ab[0].Err, io.ErrShortWrite) {
		t.Fatalf("aborted %+v, want the failed write", ab)
	}
	acks := func(obj uint16, at time.Time) int {
		flush := framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: obj},
			Content: framing.AppendNodeID(nil, myID)}
		handle(t, r, at, p.cmd(t, flush))
		n := 0
		for _, m := range poll(r, at, at.Add(100*time.Millisecond)) {
			if m.Type == framing.TypeAck && m.Ack.AckType == framing.AckFlush {
				n++
			}
		}
		return n
	}
	if n := acks(3, t0.Add(time.Millisecond)); n != 0 {
		t.Fatalf("%d ACK(FLUSH) for an object whose write failed, want 0", n)
	}
	handle(t, r, t0.Add(time.Second), p.data(t, 4, 5, 0, 0, []byte("world")))
	if len(find(events(r), EventCompleted)) != 1 {
		t.Fatal("object 4 not completed")
	}
	if n := acks(4, t0.Add(time.Second)); n != 0 {
		t.Fatalf("%d ACK(FLUSH) for a watermark past a lost object, want 0", n)
	}

	// A receiver that holds everything still acknowledges.
	ok := newRx(t, Config{})
	q := &pkt{inst: 7}
	handle(t, ok, t0, q.data(t, 3, 5, 0, 0, []byte("hello")))
	handle(t, ok, t0, q.cmd(t, framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 3},
		Content: framing.AppendNodeID(nil, myID)}))
	n := 0
	for _, m := range poll(ok, t0, t0.Add(100*time.Millisecond)) {
		if m.Type == framing.TypeAck && m.Ack.AckType == framing.AckFlush {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d ACK(FLUSH) from a receiver holding the object, want 1", n)
	}
}

// TestMemoryObjectGrowsWithData: an object kept in memory takes memory as
// its data arrives. A packet for the end of a large object does not make
// the receiver allocate the whole of it; blocks arriving out of order, a
// first block lost and repaired last or the whole object backwards, are
// delivered intact.
func TestMemoryObjectGrowsWithData(t *testing.T) {
	const size = 1_000_000 // 2,500 blocks of 4 segments
	pattern := fuzzBytes(senderID, 1, 0, size)
	sym := func(b, i int) []byte { return pattern[(b*4+i)*100 : (b*4+i+1)*100] }
	for _, order := range []string{"first block last", "backwards"} {
		t.Run(order, func(t *testing.T) {
			r := newRx(t, Config{})
			p := &pkt{inst: 1}
			var blocks []int
			switch order {
			case "first block last":
				for b := 1; b < 2500; b++ {
					blocks = append(blocks, b)
				}
				blocks = append(blocks, 0)
			case "backwards":
				for b := 2499; b >= 0; b-- {
					blocks = append(blocks, b)
				}
			}
			peak := int64(0)
			for _, b := range blocks {
				for i := range 4 {
					handle(t, r, t0, p.data(t, 1, size, uint32(b), uint16(i), sym(b, i)))
					peak = max(peak, r.Stats().BufferBytes)
				}
				if b == 2499 && order == "backwards" && r.Stats().BufferBytes > 64<<10 {
					t.Fatalf("%d bytes held after the last block of a 1 MB object alone", r.Stats().BufferBytes)
				}
			}
			c := find(events(r), EventCompleted)
			if len(c) != 1 || !bytes.Equal(c[0].Data, pattern) {
				t.Fatalf("object not delivered intact (%d completions)", len(c))
			}
			if st := r.Stats(); st.BufferBytes != 0 || peak > 3*size {
				t.Fatalf("buffer %d after, peak %d", st.BufferBytes, peak)
			}
		})
	}
}

// TestNoAckAfterSquelch: an object the sender squelched before it arrived
// whole is not held, so later watermarks are not acknowledged either.
func TestNoAckAfterSquelch(t *testing.T) {
	r := newRx(t, Config{})
	p := &pkt{inst: 7}
	handle(t, r, t0, p.data(t, 5, 1000, 0, 0, seg(100)))
	handle(t, r, t0, p.cmd(t, framing.Cmd{Flavor: framing.FlavorSquelch, Ref: framing.SymbolRef{FECID: 5, ObjectID: 6}}))
	if ab := find(events(r), EventAborted); len(ab) != 1 || !errors.Is(ab[0].Err, ErrSquelched) {
		t.Fatalf("aborted %+v, want object 5 squelched", ab)
	}
	handle(t, r, t0, p.data(t, 6, 5, 0, 0, []byte("hello")))
	handle(t, r, t0, p.cmd(t, framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 6},
		Content: framing.AppendNodeID(nil, myID)}))
	for _, m := range poll(r, t0, t0.Add(100*time.Millisecond)) {
		if m.Type == framing.TypeAck && m.Ack.AckType == framing.AckFlush {
			t.Fatal("ACK(FLUSH) sent after a squelched object")
		}
	}
}

// TestMemoryObjectStoredAsItArrives: an object kept in memory is copied
// into its data block by block as the blocks complete, so that it holds
// few block buffers at a time and has little left to do when its last
// packet arrives. Blocks of 64 symbols of 1,400 bytes (89,600 bytes, the
// defaults of filecast and the session) are larger than the 64 KiB an
// object may take before any of its data is stored; every block used to
// wait in its buffer for the whole object, which the last packet then
// copied into place (about a second for 32 MiB on a loaded machine, with
// the receive loop stalled), and an object of more blocks than the
// sender's share of MaxBlocks could not complete.
func TestMemoryObjectStoredAsItArrives(t *testing.T) {
	const blocks = 20
	r := newRx(t, Config{MaxBlocks: 8})
	real := &peer{id: senderID, inst: 1, fti: framing.FTI{TransferLength: blocks * 64 * 1400, SymbolLength: 1400, MaxBlockLen: 64}}
	want := make([]byte, 0, blocks*64*1400)
	for b := range blocks {
		for i := range 64 {
			p := seg(1400)
			p[0], p[1] = byte(b), byte(i)
			want = append(want, p...)
			handle(t, r, t0, real.pkt(t, 1, uint32(b), uint16(i), p))
		}
	}
	done := false
	for _, e := range events(r) {
		if e.Kind == EventAborted {
			t.Fatalf("object aborted: %v", e.Err)
		}
		if e.Kind == EventCompleted {
			done = true
			if !bytes.Equal(e.Data, want) {
				t.Fatal("object delivered with the wrong data")
			}
		}
	}
	if !done {
		t.Fatal("object not delivered")
	}
}
