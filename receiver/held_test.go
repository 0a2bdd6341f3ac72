package receiver

import (
	"io"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// flushAckReq is a watermark request for object obj naming this receiver.
func flushAckReq(p *pkt, t *testing.T, obj uint16) []byte {
	return p.cmd(t, framing.Cmd{Flavor: framing.FlavorFlush, Ref: framing.SymbolRef{FECID: 5, ObjectID: obj},
		Content: framing.AppendNodeID(nil, myID)})
}

func countAcks(msgs []framing.Message) int {
	n := 0
	for _, m := range msgs {
		if m.Type == framing.TypeAck && m.Ack.AckType == framing.AckFlush {
			n++
		}
	}
	return n
}

// TestConfirmHeld: with ConfirmHeld, a complete object is not acknowledged
// until the application confirms it holds it; one it lost never is.
func TestConfirmHeld(t *testing.T) {
	for _, held := range []bool{true, false} {
		r := newRx(t, Config{ConfirmHeld: true})
		p := &pkt{inst: 1}
		handle(t, r, t0, p.data(t, 1, 5, 0, 0, []byte("hello")))
		if c := find(events(r), EventCompleted); len(c) != 1 {
			t.Fatalf("completed %+v", c)
		}
		now := t0.Add(time.Millisecond)
		handle(t, r, now, flushAckReq(p, t, 1))
		if n := countAcks(poll(r, now, now.Add(200*time.Millisecond))); n != 0 {
			t.Fatalf("%d ACK(FLUSH) before the application confirmed", n)
		}
		now = now.Add(300 * time.Millisecond)
		r.Held(now, senderID, 1, held)
		want := 0
		if held {
			want = 1
		}
		if n := countAcks(poll(r, now, now.Add(200*time.Millisecond))); n != want {
			t.Fatalf("held=%v: %d ACK(FLUSH), want %d", held, n, want)
		}
	}
}

// TestAbortedNotAcknowledged: an object given up (here: too large for
// the buffer) is never acknowledged, nor any watermark past it; one before
// it still is.
func TestAbortedNotAcknowledged(t *testing.T) {
	r := newRx(t, Config{Sink: func(info ObjectInfo) (io.WriterAt, error) {
		if info.Object == 2 {
			return failWriter{}, nil // aborted: the write fails
		}
		return nil, nil
	}})
	p := &pkt{inst: 1}
	handle(t, r, t0, p.data(t, 1, 5, 0, 0, seg(5)))
	handle(t, r, t0, p.data(t, 2, 5, 0, 0, seg(5)))
	handle(t, r, t0, p.data(t, 3, 5, 0, 0, seg(5)))
	ev := events(r)
	if len(find(ev, EventAborted)) != 1 || len(find(ev, EventCompleted)) != 2 {
		t.Fatalf("events %+v", ev)
	}
	now := t0.Add(time.Millisecond)
	handle(t, r, now, flushAckReq(p, t, 3))
	if n := countAcks(poll(r, now, now.Add(200*time.Millisecond))); n != 0 {
		t.Fatalf("%d ACK(FLUSH) of a watermark past an aborted object", n)
	}
	now = now.Add(time.Second)
	handle(t, r, now, flushAckReq(p, t, 1))
	if n := countAcks(poll(r, now, now.Add(200*time.Millisecond))); n != 1 {
		t.Fatalf("%d ACK(FLUSH) of a watermark before the aborted object, want 1", n)
	}
}

// TestDeferWhileAppHolds: while completed objects the application has not
// taken fill the buffer budget, a new in-memory object is not started (and
// not acknowledged) but left for repair; once the application takes them,
// the repaired object completes and is acknowledged.
func TestDeferWhileAppHolds(t *testing.T) {
	r := newRx(t, Config{MaxBufferBytes: 5000, ConfirmHeld: true})
	p := &pkt{inst: 1}
	r.SetAppBytes(4500)
	handle(t, r, t0, p.data(t, 1, 1000, 0, 0, seg(100)))
	if ev := events(r); len(ev) != 1 || ev[0].Kind != EventSenderNew || r.Stats().ObjectsDeferred != 1 {
		t.Fatalf("events %+v, stats %+v; want the object deferred", ev, r.Stats())
	}
	now := t0.Add(time.Millisecond)
	handle(t, r, now, flushAckReq(p, t, 1))
	msgs := poll(r, now, now.Add(time.Second))
	if countAcks(msgs) != 0 {
		t.Fatal("deferred object acknowledged")
	}
	nacked := false
	for _, m := range msgs {
		nacked = nacked || m.Type == framing.TypeNack
	}
	if !nacked {
		t.Fatal("deferred object not NACKed")
	}
	now = now.Add(time.Second)
	r.SetAppBytes(0)
	for b := uint32(0); b < 3; b++ {
		for i := uint16(0); i < 4 && !(b > 0 && i == 3); i++ {
			handle(t, r, now, p.data(t, 1, 1000, b, i, seg(100)))
		}
	}
	if c := find(events(r), EventCompleted); len(c) != 1 || len(c[0].Data) != 1000 {
		t.Fatalf("repaired object not completed: %+v", c)
	}
	r.Held(now, senderID, 1, true)
	handle(t, r, now, flushAckReq(p, t, 1))
	if n := countAcks(poll(r, now, now.Add(200*time.Millisecond))); n != 1 {
		t.Fatalf("%d ACK(FLUSH) once held, want 1", n)
	}
}

// TestConfirmHeldOlderWhileNewerUnheld: a sender's flow control asks about
// older objects while the application is still taking newer ones. With
// objects 1 and 2 complete and only 1 confirmed held, a watermark at 1 is
// acknowledged and one at 2 is not, until 2 is held too.
func TestConfirmHeldOlderWhileNewerUnheld(t *testing.T) {
	r := newRx(t, Config{ConfirmHeld: true})
	p := &pkt{inst: 1}
	handle(t, r, t0, p.data(t, 1, 5, 0, 0, seg(5)))
	handle(t, r, t0, p.data(t, 2, 5, 0, 0, seg(5)))
	if c := find(events(r), EventCompleted); len(c) != 2 {
		t.Fatalf("completed %+v", c)
	}
	now := t0.Add(time.Millisecond)
	r.Held(now, senderID, 1, true)
	handle(t, r, now, flushAckReq(p, t, 2))
	if n := countAcks(poll(r, now, now.Add(200*time.Millisecond))); n != 0 {
		t.Fatalf("%d ACK(FLUSH) of object 2 before the application held it", n)
	}
	now = now.Add(300 * time.Millisecond)
	handle(t, r, now, flushAckReq(p, t, 1))
	if n := countAcks(poll(r, now, now.Add(200*time.Millisecond))); n != 1 {
		t.Fatalf("%d ACK(FLUSH) of object 1, held while 2 is not, want 1", n)
	}
	now = now.Add(300 * time.Millisecond)
	handle(t, r, now, flushAckReq(p, t, 2))
	r.Held(now, senderID, 2, true)
	if n := countAcks(poll(r, now, now.Add(200*time.Millisecond))); n != 1 {
		t.Fatalf("%d ACK(FLUSH) of object 2 once held, want 1", n)
	}
}
