package sessiontest

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoalnet/shoal/session"
)

var group = netip.MustParseAddrPort("239.255.3.3:6003")

func msgs(n int) []session.Message {
	m := make([]session.Message, n)
	for i := range m {
		m[i].Buf = make([]byte, 1500)
	}
	return m
}

// TestConnDelivery: a multicast datagram reaches every other member after
// its links' delays, in virtual time, with the sender's address as source;
// unicast reaches only its node; ReadBatch waits for its deadline or a
// Wake, and fails once the conn is closed.
func TestConnDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewNetwork(1)
		defer nw.Close()
		a := nw.Listen(group, Node{Up: Link{Delay: 10 * time.Millisecond}})
		b := nw.Listen(group, Node{Down: Link{Delay: 5 * time.Millisecond}})
		c := nw.Listen(group, Node{})
		start := time.Now()
		if n, err := a.WriteBatch([]session.Message{{Buf: []byte("all"), Addr: group}, {Buf: []byte("to c"), Addr: c.LocalAddr()}}); n != 2 || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
		m := msgs(4)
		n, err := b.ReadBatch(m, time.Time{})
		if n != 1 || err != nil || string(m[0].Buf[:m[0].N]) != "all" || m[0].Addr != a.LocalAddr() || time.Since(start) != 15*time.Millisecond {
			t.Fatalf("b read %d, %v: %q from %v after %v; want \"all\" from %v after 15 ms", n, err, m[0].Buf[:m[0].N], m[0].Addr, time.Since(start), a.LocalAddr())
		}
		synctest.Wait()
		n, err = c.ReadBatch(m, time.Time{})
		if n != 2 || err != nil || string(m[0].Buf[:m[0].N]) != "all" || string(m[1].Buf[:m[1].N]) != "to c" {
			t.Fatalf("c read %d, %v", n, err)
		}
		// a has no loopback: nothing for it, so it waits for the deadline.
		start = time.Now()
		if n, err := a.ReadBatch(m, start.Add(time.Second)); n != 0 || err != nil || time.Since(start) != time.Second {
			t.Fatalf("a read %d, %v after %v; want nothing after 1 s", n, err, time.Since(start))
		}
		go func() {
			time.Sleep(time.Millisecond)
			a.Wake()
		}()
		start = time.Now()
		if n, err := a.ReadBatch(m, start.Add(time.Second)); n != 0 || err != nil || time.Since(start) != time.Millisecond {
			t.Fatalf("woken read %d, %v after %v; want nothing after 1 ms", n, err, time.Since(start))
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ReadBatch(m, time.Time{}); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
		if _, err := b.WriteBatch(m[:1]); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after Close: %v", err)
		}
	})
}

// TestConnLossAndQueue: link loss takes its share, and a full receive
// queue drops and counts what does not fit.
func TestConnLossAndQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewNetwork(2)
		defer nw.Close()
		tx := nw.Listen(group, Node{})
		lossy := nw.Listen(group, Node{Down: Link{Loss: 0.2}})
		small := nw.Listen(group, Node{Queue: 10})
		out := make([]session.Message, 1000)
		for i := range out {
			out[i] = session.Message{Buf: []byte{byte(i)}, Addr: group}
		}
		if _, err := tx.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		m := msgs(2000)
		n, _ := lossy.ReadBatch(m, time.Now())
		if n < 700 || n > 900 {
			t.Fatalf("%d of 1000 through 20 %% loss", n)
		}
		n, _ = small.ReadBatch(m, time.Now())
		if n != 10 || small.Dropped() != 990 {
			t.Fatalf("queue of 10 read %d and dropped %d of 1000", n, small.Dropped())
		}
	})
}
