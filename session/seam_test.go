package session_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
	"github.com/shoalnet/shoal/session/sessiontest"
)

// These tests run whole sessions over package sessiontest's in-memory
// network inside testing/synctest bubbles: no sockets, no root, and every
// timer (the sessions', the links' delays, the tests' timeouts) runs in
// virtual time, so that a second of protocol time costs nothing.

var seamGroup = netip.MustParseAddrPort("239.255.9.9:6003")

// newSim opens a session on a new node of nw; the test closes it at the
// end unless it did so itself.
func newSim(t *testing.T, nw *sessiontest.Network, node sessiontest.Node, cfg session.Config) *session.Session {
	t.Helper()
	cfg.Group = seamGroup
	if cfg.Conn == nil {
		cfg.Conn = nw.Listen(seamGroup, node)
	}
	s, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(s, time.Second) })
	return s
}

// shutdown closes s gracefully within d.
func shutdown(s *session.Session, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.Shutdown(ctx)
}

// simTest runs f in a synctest bubble with a network of seed, closing the
// sessions f opened and then the network before the bubble ends.
func simTest(t *testing.T, seed uint64, f func(t *testing.T, nw *sessiontest.Network)) {
	synctest.Test(t, func(t *testing.T) {
		nw := sessiontest.NewNetwork(seed)
		t.Cleanup(nw.Close) // runs after the sessions' cleanups
		f(t, nw)
	})
}

// lossy is a receiver's attachment: 20 ms each way, 3 % loss on the way
// in.
var lossy = sessiontest.Node{
	Up:   sessiontest.Link{Delay: 20 * time.Millisecond},
	Down: sessiontest.Link{Delay: 20 * time.Millisecond, Jitter: time.Millisecond, Loss: 0.03},
}

// TestSimAcceptWaitAck: a sender's object reaches two receivers through a
// lossy network, each Accepts it whole, and WaitAck returns both
// receivers' acknowledgements.
func TestSimAcceptWaitAck(t *testing.T) {
	simTest(t, 1, func(t *testing.T, nw *sessiontest.Network) {
		rxs := []*session.Session{
			newSim(t, nw, lossy, session.Config{NodeID: 11, Seed: 11}),
			newSim(t, nw, lossy, session.Config{NodeID: 12, Seed: 12}),
		}
		tx := newSim(t, nw, sessiontest.Node{}, session.Config{NodeID: 1, Seed: 1,
			Sender: sender.Config{AckingNodes: []uint32{11, 12}}})
		data := seamData(300<<10, 3)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		id, err := tx.SendBytes(ctx, data, []byte("obj"))
		if err != nil {
			t.Fatal(err)
		}
		for i, rx := range rxs {
			o, err := rx.Accept(ctx)
			if err != nil {
				t.Fatalf("receiver %d: accept: %v", i, err)
			}
			if err := o.Wait(ctx); err != nil {
				t.Fatalf("receiver %d: wait: %v", i, err)
			}
			if info := o.Info(); info.Sender != 1 || info.ID != id || string(info.Info) != "obj" || !bytes.Equal(o.Bytes(), data) {
				t.Fatalf("receiver %d: got sender %d id %d info %q, %d bytes (equal %v)", i, info.Sender, info.ID,
					info.Info, len(o.Bytes()), bytes.Equal(o.Bytes(), data))
			}
		}
		res, err := tx.WaitAck(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		acked := map[session.NodeID]bool{}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("node %d: %v", r.Node, r.Err)
			}
			acked[r.Node] = true
		}
		if len(res) != 2 || !acked[11] || !acked[12] {
			t.Fatalf("acknowledgements %+v, want nodes 11 and 12", res)
		}
		// The loop runs on the bubble's clock: the round trip it measured
		// is the links' 40 ms plus at most the jitter and the receivers'
		// hold-off, not anything of the wall clock.
		if st := tx.Stats(); st.GRTT < 40*time.Millisecond || st.GRTT > 200*time.Millisecond || st.RepairsSent == 0 {
			t.Fatalf("GRTT %v (want 40 to 200 ms), %d repairs (want some)", st.GRTT, st.RepairsSent)
		}
	})
}

// TestSimWaitAckNoAnswer: a watermark for a node that does not exist ends
// with that node given up on, after the sender's retries, in virtual time.
func TestSimWaitAckNoAnswer(t *testing.T) {
	simTest(t, 2, func(t *testing.T, nw *sessiontest.Network) {
		tx := newSim(t, nw, sessiontest.Node{}, session.Config{NodeID: 1, Seed: 2,
			Sender: sender.Config{AckingNodes: []uint32{99}}})
		ctx := context.Background()
		id, err := tx.SendBytes(ctx, []byte("nobody listens"), nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tx.WaitAck(ctx, id)
		if err != nil || len(res) != 1 || res[0].Node != 99 || !errors.Is(res[0].Err, sender.ErrNoAck) {
			t.Fatalf("WaitAck = %+v, %v; want node 99 with ErrNoAck", res, err)
		}
	})
}

// TestSimStream: a stream written in messages arrives in order and whole
// through loss, and ends with io.EOF when the writer closes it.
func TestSimStream(t *testing.T) {
	simTest(t, 3, func(t *testing.T, nw *sessiontest.Network) {
		rx := newSim(t, nw, lossy, session.Config{Seed: 31})
		tx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 32})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := tx.OpenStream(ctx, session.StreamOptions{Info: []byte("live")})
		if err != nil {
			t.Fatal(err)
		}
		data := seamData(200<<10, 5)
		go func() {
			for b := data; len(b) > 0; {
				n := min(len(b), 3000)
				if _, err := st.WriteContext(ctx, b[:n]); err != nil {
					t.Error(err)
					return
				}
				if err := st.Flush(); err != nil {
					t.Error(err)
					return
				}
				b = b[n:]
				time.Sleep(time.Millisecond)
			}
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		}()
		o, err := rx.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if o.Info().Kind != session.KindStream {
			t.Fatalf("accepted a %v, want a stream", o.Info().Kind)
		}
		got, err := io.ReadAll(o)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes (equal %v), %v; want %d bytes and EOF", len(got), bytes.Equal(got, data), err, len(data))
		}
	})
}

// TestSimCloseAndCancel: contexts bound blocked calls in virtual time;
// Close flushes what was queued to the receiver before it returns, and then
// every call reports ErrClosed, Accept included, and Events is closed.
func TestSimCloseAndCancel(t *testing.T) {
	simTest(t, 4, func(t *testing.T, nw *sessiontest.Network) {
		rx := newSim(t, nw, sessiontest.Node{Down: sessiontest.Link{Delay: 20 * time.Millisecond}}, session.Config{Seed: 41})
		tx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 42})

		// Nothing was sent: Accept waits exactly until its deadline.
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := rx.Accept(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Fatalf("Accept = %v after %v, want DeadlineExceeded after 5 s", err, time.Since(start))
		}
		// A cancelled context ends a blocked Accept at once.
		ctx, cancel = context.WithCancel(context.Background())
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		start = time.Now()
		if _, err := rx.Accept(ctx); !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Fatalf("Accept = %v after %v, want Canceled after 1 s", err, time.Since(start))
		}

		data := seamData(100<<10, 9)
		if _, err := tx.SendBytes(context.Background(), data, []byte("last")); err != nil {
			t.Fatal(err)
		}
		if err := shutdown(tx, time.Minute); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := tx.SendBytes(context.Background(), data, nil); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("SendBytes after Close = %v, want ErrClosed", err)
		}
		for range tx.Events() {
		}
		// Close returned after the flush: the object is there already.
		ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		o, err := rx.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Wait(ctx); err != nil || !bytes.Equal(o.Bytes(), data) {
			t.Fatalf("object after the sender's Close: %v, %d bytes", err, len(o.Bytes()))
		}
		if err := shutdown(rx, time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := rx.Accept(context.Background()); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want ErrClosed", err)
		}
	})
}

// TestSimCloseDeadline: Close of a sender that cannot flush in time returns
// at its context's deadline, and stops.
func TestSimCloseDeadline(t *testing.T) {
	simTest(t, 5, func(t *testing.T, nw *sessiontest.Network) {
		// 10 kB/s: the megabyte would take 100 s.
		tx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 51, Sender: sender.Config{Rate: 10e3}})
		if _, err := tx.SendBytes(context.Background(), seamData(1<<20, 1), nil); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := shutdown(tx, 3*time.Second); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 3*time.Second {
			t.Fatalf("Close = %v after %v, want DeadlineExceeded after 3 s", err, time.Since(start))
		}
	})
}

// failGSO is a connection that claims GSO and fails every GSO write.
type failGSO struct {
	*sessiontest.Conn
	calls atomic.Int32
}

func (f *failGSO) WriteGSO([]byte, int, netip.AddrPort) error {
	f.calls.Add(1)
	// Slow, like a system call under load: Stats calls land while the
	// loop is in send, where it marks GSO off without the session lock.
	time.Sleep(5 * time.Millisecond)
	return errors.New("no segmentation here")
}

// TestSimGSOFallback: a connection that offers GSO is used for runs of
// datagrams; when it fails, the session turns GSO off, which Stats (read
// concurrently, as -race checks) reports, and sends in batches instead.
// It runs in real time: in a synctest bubble the reader of Stats could only
// run while the loop is blocked, never while it sends.
func TestSimGSOFallback(t *testing.T) {
	nw := sessiontest.NewNetwork(6)
	t.Cleanup(nw.Close) // after the sessions' cleanups
	rx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 61})
	conn := &failGSO{Conn: nw.Listen(seamGroup, sessiontest.Node{})}
	tx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 62, Conn: conn})
	if !tx.Stats().GSO {
		t.Fatal("Stats.GSO false for a connection that offers GSO")
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = tx.Stats().GSO
			runtime.Gosched()
		}
	})
	data := seamData(200<<10, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := tx.SendBytes(ctx, data, nil); err != nil {
		t.Fatal(err)
	}
	o, err := rx.Accept(ctx)
	if err == nil {
		err = o.Wait(ctx)
	}
	close(stop)
	wg.Wait()
	if err != nil || !bytes.Equal(o.Bytes(), data) {
		t.Fatalf("object: %v", err)
	}
	if tx.Stats().GSO || conn.calls.Load() != 1 {
		t.Fatalf("Stats.GSO %v after %d failed GSO writes, want false after 1", tx.Stats().GSO, conn.calls.Load())
	}
	for _, s := range []*session.Session{rx, tx} {
		if err := shutdown(s, 50*time.Millisecond); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
	}
}

// TestSimLossConn: a LossConn on each side drops packets reproducibly, the
// object still arrives, and the session's Stats report the drops.
func TestSimLossConn(t *testing.T) {
	simTest(t, 7, func(t *testing.T, nw *sessiontest.Network) {
		rxConn := session.NewLossConn(nw.Listen(seamGroup, sessiontest.Node{}), session.Loss{}, session.Loss{Rate: 0.05}, 71)
		txConn := session.NewLossConn(nw.Listen(seamGroup, sessiontest.Node{}), session.Loss{Rate: 0.05, BurstLen: 3}, session.Loss{}, 72)
		rx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 71, Conn: rxConn})
		tx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 72, Conn: txConn, Sender: sender.Config{Parity: 8}})
		data := seamData(1<<20, 4)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := tx.SendBytes(ctx, data, nil); err != nil {
			t.Fatal(err)
		}
		o, err := rx.Accept(ctx)
		if err == nil {
			err = o.Wait(ctx)
		}
		if err != nil || !bytes.Equal(o.Bytes(), data) {
			t.Fatalf("object through injected loss: %v", err)
		}
		ts, rs := tx.Stats(), rx.Stats()
		txDrop, _ := txConn.Dropped()
		_, rxDrop := rxConn.Dropped()
		if ts.InjectedTxLoss == 0 || ts.InjectedTxLoss != txDrop || rs.InjectedRxLoss == 0 || rs.InjectedRxLoss != rxDrop || ts.RepairsSent == 0 {
			t.Fatalf("injected tx %d (conn %d), rx %d (conn %d), repairs %d", ts.InjectedTxLoss, txDrop, rs.InjectedRxLoss, rxDrop, ts.RepairsSent)
		}
		// Around 5 % of what crossed each: the sender sent about 800
		// packets of the object, the receiver read as many.
		if share := float64(txDrop) / float64(ts.PacketsSent); share < 0.02 || share > 0.10 {
			t.Fatalf("tx loss %d of %d packets", txDrop, ts.PacketsSent)
		}
		if share := float64(rxDrop) / float64(rs.PacketsReceived+rxDrop); share < 0.02 || share > 0.10 {
			t.Fatalf("rx loss %d of %d packets", rxDrop, rs.PacketsReceived+rxDrop)
		}
	})
}

// TestSimRealTime: the in-memory network works outside a synctest bubble
// too, on the wall clock.
func TestSimRealTime(t *testing.T) {
	nw := sessiontest.NewNetwork(8)
	t.Cleanup(nw.Close) // after the sessions' cleanups
	rx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 81})
	tx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 82})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := seamData(64<<10, 8)
	if _, err := tx.SendBytes(ctx, data, nil); err != nil {
		t.Fatal(err)
	}
	o, err := rx.Accept(ctx)
	if err == nil {
		err = o.Wait(ctx)
	}
	if err != nil || !bytes.Equal(o.Bytes(), data) {
		t.Fatalf("object: %v", err)
	}
	// The sender's flush would take a few of its initial 0.5 s round
	// trips: only the loop's stop on the deadline is waited for.
	for _, s := range []*session.Session{rx, tx} {
		if err := shutdown(s, 50*time.Millisecond); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
	}
}

// seamData is n bytes of a pattern that differs by seed.
func seamData(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// TestSimSourceSpecific: with Config.Source set, the session takes packets
// from that address only: an object from another sender on the group is
// never offered.
func TestSimSourceSpecific(t *testing.T) {
	simTest(t, 9, func(t *testing.T, nw *sessiontest.Network) {
		good := nw.Listen(seamGroup, sessiontest.Node{})
		rogue := newSim(t, nw, sessiontest.Node{}, session.Config{NodeID: 66, Seed: 91})
		tx := newSim(t, nw, sessiontest.Node{}, session.Config{NodeID: 1, Seed: 92, Conn: good})
		rx := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 93, Source: good.LocalAddr().Addr()})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := rogue.SendBytes(ctx, []byte("not from the source"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if _, err := tx.SendBytes(ctx, []byte("from the source"), nil); err != nil {
			t.Fatal(err)
		}
		o, err := rx.Accept(ctx)
		if err == nil {
			err = o.Wait(ctx)
		}
		if err != nil || o.Info().Sender != 1 || string(o.Bytes()) != "from the source" {
			t.Fatalf("accepted %v from %d: %q", err, o.Info().Sender, o.Bytes())
		}
	})
}

// brokenConn fails its reads once broken is set.
type brokenConn struct {
	*sessiontest.Conn
	broken atomic.Bool
	closed atomic.Bool
}

var errBroken = errors.New("interface gone")

func (b *brokenConn) ReadBatch(msgs []session.Message, deadline time.Time) (int, error) {
	if b.broken.Load() {
		return 0, errBroken
	}
	return b.Conn.ReadBatch(msgs, deadline)
}

func (b *brokenConn) Close() error {
	b.closed.Store(true)
	return b.Conn.Close()
}

// TestSimConnError: a read error ends the session: calls then fail with
// ErrClosed, Close reports the error, and the conn is closed. A session
// that New refuses closes the Conn it was given, too.
func TestSimConnError(t *testing.T) {
	simTest(t, 10, func(t *testing.T, nw *sessiontest.Network) {
		c := &brokenConn{Conn: nw.Listen(seamGroup, sessiontest.Node{})}
		s := newSim(t, nw, sessiontest.Node{}, session.Config{Seed: 101, Conn: c})
		c.broken.Store(true)
		c.Wake()
		for range s.Events() { // closed when the session has ended
		}
		if _, err := s.SendBytes(context.Background(), []byte("x"), nil); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("SendBytes on a dead session: %v", err)
		}
		if err := shutdown(s, time.Second); !errors.Is(err, errBroken) || !c.closed.Load() {
			t.Fatalf("Close = %v (want the read error), conn closed %v", err, c.closed.Load())
		}

		refused := &brokenConn{Conn: nw.Listen(seamGroup, sessiontest.Node{})}
		_, err := session.New(session.Config{Group: netip.MustParseAddrPort("10.0.0.1:6003"), Conn: refused})
		if !errors.Is(err, session.ErrNotMulticast) || !refused.closed.Load() {
			t.Fatalf("New with a unicast group: %v, conn closed %v", err, refused.closed.Load())
		}
	})
}
