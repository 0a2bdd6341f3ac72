package receiver

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// seg100 is stream segment n of 100 bytes at offset 100n, with a message
// start at byte msg (or none if msg < 0).
func seg100(n int, msg int) []byte {
	h := framing.StreamHeader{Len: 100, Offset: uint32(100 * n)}
	if msg >= 0 {
		h.MsgStart = uint16(msg + 1)
	}
	return append(framing.AppendStreamHeader(nil, h), bytes.Repeat([]byte{byte(n)}, 100)...)
}

// TestStreamGapResume: when the sender gives up on data (SQUELCH past
// it), the gap event says how many bytes were lost, and delivery resumes
// right after the gap in a byte stream, at the next message start in a
// message stream.
func TestStreamGapResume(t *testing.T) {
	run := func(arrive []int, msgStarts map[int]int) (delivered []byte, gaps []int64) {
		r := newRx(t, Config{})
		p := &peer{id: senderID, inst: 1, flag: framing.FlagStream,
			fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4}}
		msg := func(n int) int {
			if m, ok := msgStarts[n]; ok {
				return m
			}
			return -1
		}
		// Event data is valid until the next call: take it after each.
		take := func() {
			for _, e := range r.Events() {
				switch e.Kind {
				case EventStreamData:
					delivered = append(delivered, e.Data...)
				case EventStreamGap:
					gaps = append(gaps, e.Lost)
					delivered = append(delivered, '|')
				}
			}
		}
		for _, n := range arrive {
			handle(t, r, t0, p.pkt(t, 1, uint32(n/4), uint16(n%4), seg100(n, msg(n))))
			take()
		}
		sq := framing.Cmd{Flavor: framing.FlavorSquelch, Ref: framing.SymbolRef{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: 2}}}
		handle(t, r, t0, p.cmd(t, sq))
		take()
		return delivered, gaps
	}
	want := func(segs ...int) []byte {
		var b []byte
		for _, n := range segs {
			if n < 0 {
				b = append(b, '|')
				continue
			}
			b = append(b, bytes.Repeat([]byte{byte(n)}, 100)...)
		}
		return b
	}
	// Block 0 arrives, block 1 (segments 4-7) is lost, block 2 arrives.
	blocks02 := []int{0, 1, 2, 3, 8, 9, 10, 11}
	// A byte stream: one message start, at its first byte.
	got, gaps := run(blocks02, map[int]int{0: 0})
	if !bytes.Equal(got, want(0, 1, 2, 3, -1, 8, 9, 10, 11)) || len(gaps) != 1 || gaps[0] != 400 {
		var firsts []byte
		for i := 0; i < len(got); i += 100 {
			firsts = append(firsts, got[i])
			if got[i] == '|' {
				i -= 99
			}
		}
		t.Fatalf("byte stream: delivered %v (each 100 bytes), gaps %v; want blocks 0 and 2 around a 400-byte gap", firsts, gaps)
	}
	// A message stream: messages start in segments 0 and 2, and at byte 1
	// of segment 10.
	got, gaps = run(blocks02, map[int]int{0: 0, 2: 0, 10: 1})
	wantMsg := append(want(0, 1, 2, 3, -1), want(10, 11)[1:]...)
	if !bytes.Equal(got, wantMsg) || len(gaps) != 1 || gaps[0] != 601 {
		t.Fatalf("message stream: delivered %d bytes, gaps %v; want a 601-byte gap, then from the message start in segment 10", len(got), gaps)
	}
	// A message stream whose segment 1 is lost too: only segment 0, with
	// one message start, was delivered before the gap, but segment 2,
	// received and waiting, holds another. It is a message stream all the
	// same: delivery resumes at segment 9's message start, not at once
	// mid-message in segment 8.
	got, gaps = run([]int{0, 2, 3, 8, 9, 10, 11}, map[int]int{0: 0, 2: 0, 9: 0})
	if !bytes.Equal(got, want(0, -1, 9, 10, 11)) || len(gaps) != 1 || gaps[0] != 800 {
		t.Fatalf("message stream, one start delivered: delivered %d bytes, gaps %v; want segment 0, an 800-byte gap, then segments 9-11", len(got), gaps)
	}
}

// TestHoldStream: while the application is behind (HoldStream), a stream
// watermark is not acknowledged, so the sender's writer waits; once it
// catches up, the acknowledgement goes out.
func TestHoldStream(t *testing.T) {
	r := newRx(t, Config{})
	p := &peer{id: senderID, inst: 1, flag: framing.FlagStream,
		fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4}}
	for n := range 4 {
		handle(t, r, t0, p.pkt(t, 1, 0, uint16(n), seg100(n, 0)))
	}
	r.Events()
	r.HoldStream(t0, senderID, 1, true)
	flush := framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: 1, PayloadID: framing.PayloadID{Block: 0, Symbol: 3}},
		Content: framing.AppendNodeID(nil, myID)}
	handle(t, r, t0, p.cmd(t, flush))
	acks := func(from time.Time) int {
		n := 0
		for _, m := range poll(r, from, from.Add(100*time.Millisecond)) {
			if m.Type == framing.TypeAck && m.Ack.AckType == framing.AckFlush {
				n++
			}
		}
		return n
	}
	if n := acks(t0); n != 0 {
		t.Fatalf("%d acknowledgements while the application is behind", n)
	}
	now := t0.Add(time.Second)
	r.HoldStream(now, senderID, 1, false)
	if n := acks(now); n != 1 {
		t.Fatalf("%d acknowledgements once it caught up, want 1", n)
	}
}

// TestExpiredSymbolsNotNacked: a deadline-bounded stream that gives up a
// segment in the middle of a block asks only for the block's later
// missing segments, not for the one given up.
func TestExpiredSymbolsNotNacked(t *testing.T) {
	r := newRx(t, Config{StreamMaxAge: 100 * time.Millisecond})
	p := &peer{id: senderID, inst: 1, flag: framing.FlagStream,
		fti: framing.FTI{TransferLength: 1 << 20, SymbolLength: 100, MaxBlockLen: 4}}
	// Block 0: segments 1 and 3 lost; segment 4 (block 1) comes later.
	handle(t, r, t0, p.pkt(t, 1, 0, 0, seg100(0, 0)))
	handle(t, r, t0, p.pkt(t, 1, 0, 2, seg100(2, 0)))
	handle(t, r, t0.Add(50*time.Millisecond), p.pkt(t, 1, 1, 0, seg100(4, 0)))
	asked := func() map[uint16]bool {
		syms := map[uint16]bool{}
		c := r.buildNack(r.remote(senderID), false)
		for req, off, ok := framing.NextRepairRequest(c, 0); ok; req, off, ok = framing.NextRepairRequest(c, off) {
			for it, i, ok := req.Item(0, 0); ok; it, i, ok = req.Item(i, 0) {
				if it.PayloadID.Block == 0 {
					syms[it.PayloadID.Symbol] = true
				}
			}
		}
		return syms
	}
	if a := asked(); !a[1] || !a[3] {
		t.Fatalf("before the deadline: block 0 symbols asked for %v, want 1 and 3", a)
	}
	// Segment 1 is given up at t0+100ms (segment 3 not before t0+150ms).
	poll(r, t0.Add(50*time.Millisecond), t0.Add(110*time.Millisecond))
	if r.Stats().StreamExpired != 1 {
		t.Fatalf("%d segments expired, want 1", r.Stats().StreamExpired)
	}
	if a := asked(); a[1] || !a[3] {
		t.Fatalf("after segment 1 was given up: block 0 symbols asked for %v, want 3 only", a)
	}
}
