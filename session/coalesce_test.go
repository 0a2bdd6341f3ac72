package session

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// scriptConn gives one junk datagram per ReadBatch, reads times of them,
// then blocks like an idle socket.
type scriptConn struct {
	mu       sync.Mutex
	left     int
	calls    []time.Time // ReadBatch called
	returned []time.Time // a read with a datagram returned
	done     chan struct{}
	once     sync.Once
}

func (c *scriptConn) ReadBatch(msgs []Message, deadline time.Time) (int, error) {
	c.mu.Lock()
	c.calls = append(c.calls, time.Now())
	if c.left > 0 {
		c.left--
		msgs[0].N = copy(msgs[0].Buf, "junk")
		msgs[0].Addr = netip.MustParseAddrPort("192.0.2.1:9")
		c.returned = append(c.returned, time.Now())
		c.mu.Unlock()
		return 1, nil
	}
	c.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-t.C:
		return 0, nil
	case <-c.done:
		return 0, errors.New("closed")
	}
}

func (c *scriptConn) WriteBatch(msgs []Message) (int, error) { return len(msgs), nil }
func (c *scriptConn) Wake()                                  {}
func (c *scriptConn) LocalAddr() netip.AddrPort              { return netip.AddrPort{} }
func (c *scriptConn) Close() error                           { c.once.Do(func() { close(c.done) }); return nil }

// TestReadCoalesce: with Config.ReadCoalesce, the loop waits that long
// after a read that found data before it reads again.
func TestReadCoalesce(t *testing.T) {
	const d = 30 * time.Millisecond
	c := &scriptConn{left: 4, done: make(chan struct{})}
	s, err := New(Config{Group: netip.MustParseAddrPort("239.255.1.1:6003"), Conn: c, ReadCoalesce: d})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		c.mu.Lock()
		n := len(c.returned)
		c.mu.Unlock()
		if n == 4 {
			break
		}
		if i == 1000 {
			t.Fatalf("only %d of 4 reads in 10 s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * d) // the read after the last one
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.Shutdown(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) < 5 {
		t.Fatalf("%d reads", len(c.calls))
	}
	for i := range 4 {
		// Read i+1 follows the return of read i (calls[i]) by at least d.
		if gap := c.calls[i+1].Sub(c.returned[i]); gap < d {
			t.Errorf("read %d came %v after a read that found data, want at least %v", i+1, gap, d)
		}
	}
}
