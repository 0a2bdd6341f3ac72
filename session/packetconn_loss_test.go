package session

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// fakeConn records writes, failing after failAfter datagrams, and reads
// back a fixed batch.
type fakeConn struct {
	written   [][]byte
	failAfter int
	reads     [][]byte
}

var errFake = errors.New("fake write error")

func (f *fakeConn) ReadBatch(msgs []Message, _ time.Time) (int, error) {
	n := 0
	for ; n < len(msgs) && n < len(f.reads); n++ {
		msgs[n].N = copy(msgs[n].Buf, f.reads[n])
	}
	return n, nil
}

func (f *fakeConn) WriteBatch(msgs []Message) (int, error) {
	for i, m := range msgs {
		if len(f.written) == f.failAfter {
			return i, errFake
		}
		f.written = append(f.written, m.Buf)
	}
	return len(msgs), nil
}

func (f *fakeConn) Wake()                     {}
func (f *fakeConn) LocalAddr() netip.AddrPort { return netip.AddrPort{} }
func (f *fakeConn) Close() error              { return nil }

// TestLossConnWrite: a LossConn writes the datagrams that survive, in
// order, counts the others as sent and dropped; when the inner write fails
// it reports as sent exactly the datagrams before the first unsent survivor.
func TestLossConnWrite(t *testing.T) {
	msgs := make([]Message, 200)
	for i := range msgs {
		msgs[i].Buf = []byte{byte(i)}
	}
	inner := &fakeConn{failAfter: -1}
	l := NewLossConn(inner, Loss{Rate: 0.3}, Loss{}, 5)
	n, err := l.WriteBatch(msgs)
	tx, rx := l.Dropped()
	if n != len(msgs) || err != nil || tx+uint64(len(inner.written)) != uint64(len(msgs)) || rx != 0 || tx < 30 || tx > 90 {
		t.Fatalf("wrote %d, %v; %d reached the inner conn, %d dropped on sending and %d on receiving", n, err, len(inner.written), tx, rx)
	}
	for i := 1; i < len(inner.written); i++ {
		if inner.written[i][0] <= inner.written[i-1][0] {
			t.Fatalf("datagram %d written after %d", inner.written[i][0], inner.written[i-1][0])
		}
	}
	// The same seed drops the same datagrams; the inner conn fails at the
	// tenth survivor, whose index is what the LossConn reports.
	again := &fakeConn{failAfter: 9}
	l = NewLossConn(again, Loss{Rate: 0.3}, Loss{}, 5)
	n, err = l.WriteBatch(msgs)
	if !errors.Is(err, errFake) || n != int(inner.written[9][0]) {
		t.Fatalf("failed write reported %d sent, %v; want %d and the inner error", n, err, inner.written[9][0])
	}
}

// TestLossConnRead: datagrams lost on reading leave the batch, the rest
// keep their order, and every buffer stays in the caller's batch once.
func TestLossConnRead(t *testing.T) {
	inner := &fakeConn{}
	for i := range 64 {
		inner.reads = append(inner.reads, []byte{byte(i)})
	}
	msgs := make([]Message, 64)
	bufs := map[*byte]bool{}
	for i := range msgs {
		msgs[i].Buf = make([]byte, 4)
		bufs[&msgs[i].Buf[0]] = true
	}
	l := NewLossConn(inner, Loss{}, Loss{Rate: 0.5, BurstLen: 4}, 9)
	n, err := l.ReadBatch(msgs, time.Time{})
	_, rx := l.Dropped()
	if err != nil || uint64(n)+rx != 64 || n == 0 || rx == 0 {
		t.Fatalf("read %d, %v, dropped %d of 64", n, err, rx)
	}
	for i := 1; i < n; i++ {
		if msgs[i].Buf[0] <= msgs[i-1].Buf[0] {
			t.Fatalf("datagram %d read after %d", msgs[i].Buf[0], msgs[i-1].Buf[0])
		}
	}
	for i := range msgs {
		if !bufs[&msgs[i].Buf[0]] {
			t.Fatalf("buffer %d is not one of the caller's, or appears twice", i)
		}
		delete(bufs, &msgs[i].Buf[0])
	}
}

// coalescedConn reads back one merged run of datagrams (UDP GRO).
type coalescedConn struct {
	fakeConn
	run []byte
	seg int
}

func (c *coalescedConn) ReadBatch(msgs []Message, _ time.Time) (int, error) {
	msgs[0].N, msgs[0].Segment = copy(msgs[0].Buf, c.run), c.seg
	return 1, nil
}

// TestLossConnReadCoalesced: in a run of datagrams the kernel merged,
// each datagram is lost on its own, and the survivors close up in order,
// the short last one still last.
func TestLossConnReadCoalesced(t *testing.T) {
	const seg, count = 10, 40
	var run []byte
	for i := range count {
		n := seg
		if i == count-1 {
			n = 3
		}
		for range n {
			run = append(run, byte(i))
		}
	}
	l := NewLossConn(&coalescedConn{run: run, seg: seg}, Loss{}, Loss{Rate: 0.3}, 5)
	msgs := []Message{{Buf: make([]byte, 1024)}}
	n, err := l.ReadBatch(msgs, time.Time{})
	_, rx := l.Dropped()
	if err != nil || n != 1 || rx == 0 || rx >= count {
		t.Fatalf("read %d, %v, dropped %d of %d", n, err, rx, count)
	}
	b := msgs[0].Buf[:msgs[0].N]
	kept := 0
	last := -1
	for off := 0; off < len(b); off += seg {
		d := b[off:min(off+seg, len(b))]
		for _, x := range d {
			if x != d[0] {
				t.Fatalf("datagram at %d mixes %d and %d", off, d[0], x)
			}
		}
		if int(d[0]) <= last {
			t.Fatalf("datagram %d after %d", d[0], last)
		}
		if len(d) < seg && int(d[0]) != count-1 {
			t.Fatalf("datagram %d cut short", d[0])
		}
		last = int(d[0])
		kept++
	}
	if uint64(kept)+rx != count {
		t.Fatalf("%d kept and %d dropped of %d", kept, rx, count)
	}
}
