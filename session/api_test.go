package session_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// loopPort hands out a port per loopback session group, so that tests
// running one after another never hear each other.
var loopPort atomic.Int32

// loopGroup returns a fresh group for sessions on the loopback interface.
func loopGroup() netip.AddrPort {
	n := loopPort.Add(1)
	return netip.MustParseAddrPort(fmt.Sprintf("239.255.213.%d:%d", 1+n%250, 17300+n))
}

// loop opens a session on the loopback interface, where multicast needs
// neither root nor a network, and shuts it down when the test ends.
func loop(t *testing.T, cfg session.Config) *session.Session {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("loopback multicast tests run on Linux")
	}
	cfg.Interface = "lo"
	if cfg.Sender.FlushTime == 0 {
		cfg.Sender.FlushTime = 100 * time.Millisecond
	}
	s, err := session.New(cfg)
	if err != nil {
		t.Skipf("no multicast on the loopback interface: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// TestSenderConfigCheckedInNew: a bad sender configuration fails New, not
// the first send, and the error matches both the session's and the
// engine's sentinel.
func TestSenderConfigCheckedInNew(t *testing.T) {
	s, err := session.New(session.Config{Group: loopGroup(), Interface: "lo", Sender: sender.Config{Parity: 300}})
	if err == nil {
		s.Close()
		t.Fatal("New accepted Parity 300")
	}
	if !errors.Is(err, session.ErrConfig) || !errors.Is(err, sender.ErrConfig) {
		t.Fatalf("error %v does not match ErrConfig and sender.ErrConfig", err)
	}
}

// TestDoneErr: Done closes when the session stops, Err says why, and calls
// after it return ErrClosed, which is a net.ErrClosed.
func TestDoneErr(t *testing.T) {
	s := loop(t, session.Config{Group: loopGroup()})
	select {
	case <-s.Done():
		t.Fatal("Done closed on an open session")
	default:
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err on an open session: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after Close")
	}
	if err := s.Err(); !errors.Is(err, session.ErrClosed) {
		t.Fatalf("Err after Close: %v", err)
	}
	_, err := s.SendBytes(context.Background(), []byte("x"), nil)
	if !errors.Is(err, session.ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SendBytes after Close: %v, want ErrClosed (and net.ErrClosed)", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// ackPair opens a receiver with node id 7 and a sender that asks node 7
// for acknowledgements.
func ackPair(t *testing.T, scfg sender.Config) (tx, rx *session.Session) {
	g := loopGroup()
	rx = loop(t, session.Config{Group: g, NodeID: 7})
	scfg.AckingNodes = []uint32{7}
	tx = loop(t, session.Config{Group: g, NodeID: 8, Sender: scfg})
	return tx, rx
}

// TestWaitAckConcurrent: several WaitAck calls at once, for two objects
// and twice for one, all return the receiver's acknowledgement. The
// engine holds one watermark, and a second call used to replace the
// first, which then hung until its context ended.
func TestWaitAckConcurrent(t *testing.T) {
	tx, _ := ackPair(t, sender.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []session.ObjectID
	for i := range 3 {
		id, err := tx.SendBytes(ctx, make([]byte, 5000+i), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waits := []session.ObjectID{ids[0], ids[2], ids[2], ids[1]}
	var wg sync.WaitGroup
	errs := make([]error, len(waits))
	for i, id := range waits {
		wg.Go(func() {
			res, err := tx.WaitAck(ctx, id)
			if err == nil && (len(res) != 1 || res[0].Node != 7 || res[0].Err != nil) {
				err = fmt.Errorf("results %+v", res)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("WaitAck %d (object %d): %v", i, waits[i], err)
		}
	}
}

// TestBlockedWaitAckDoesNotSpin: a WaitAck that waits for a receiver that
// never answers costs (next to) nothing: the loop passes only for the
// sender's timers, and the waiter is not woken. wait() used to kick the
// loop, which woke the waiter, which kicked the loop again.
func TestBlockedWaitAckDoesNotSpin(t *testing.T) {
	s := loop(t, session.Config{Group: loopGroup(),
		Sender: sender.Config{AckingNodes: []uint32{99}, RobustFactor: 1000}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := s.SendBytes(ctx, make([]byte, 1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := s.WaitAck(wctx, id); done <- err }()
	time.Sleep(200 * time.Millisecond) // the watermark is under way
	w0, p0, c0 := session.Wakes(s), session.Passes(s), cpuTime()
	time.Sleep(500 * time.Millisecond)
	w1, p1, c1 := session.Wakes(s), session.Passes(s), cpuTime()
	wcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitAck: %v, want it still waiting when cancelled", err)
	}
	t.Logf("in 500 ms: %d wake-ups, %d loop passes, %v CPU", w1-w0, p1-p0, c1-c0)
	if c1-c0 > 100*time.Millisecond {
		t.Errorf("blocked WaitAck used %v CPU in 500 ms", c1-c0)
	}
	if w1-w0 > 2 || p1-p0 > 200 {
		t.Fatalf("blocked WaitAck: %d wake-ups and %d loop passes in 500 ms", w1-w0, p1-p0)
	}
}

// TestBlockedWriteDoesNotSpin: a Stream.Write blocked on a full buffer at
// a slow rate is woken about as often as the sender sends a packet, not
// continuously.
func TestBlockedWriteDoesNotSpin(t *testing.T) {
	s := loop(t, session.Config{Group: loopGroup(), Sender: sender.Config{Rate: 20e3}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.OpenStream(ctx, session.StreamOptions{Buffer: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := st.WriteContext(wctx, make([]byte, 1<<20)); done <- err }()
	time.Sleep(200 * time.Millisecond)
	w0, p0, c0 := session.Wakes(s), session.Passes(s), cpuTime()
	time.Sleep(500 * time.Millisecond)
	w1, p1, c1 := session.Wakes(s), session.Passes(s), cpuTime()
	wcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write: %v, want it still blocked when cancelled", err)
	}
	t.Logf("in 500 ms: %d wake-ups, %d loop passes, %v CPU", w1-w0, p1-p0, c1-c0)
	if c1-c0 > 100*time.Millisecond {
		t.Errorf("blocked Write used %v CPU in 500 ms", c1-c0)
	}
	// 20 kB/s is about 7 packets in 500 ms.
	if w1-w0 > 40 || p1-p0 > 400 {
		t.Fatalf("blocked Write: %d wake-ups and %d loop passes in 500 ms", w1-w0, p1-p0)
	}
}

// stuckWriter is a FileSink destination whose writes call into the
// session and then block until released.
type stuckWriter struct {
	s       atomic.Pointer[session.Session]
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (w *stuckWriter) WriteAt(b []byte, off int64) (int, error) {
	_ = w.s.Load().Stats() // a callback may call the session
	w.once.Do(func() { close(w.entered) })
	<-w.gate
	return len(b), nil
}

// TestFileSinkOutsideLock: a FileSink whose writes call the session and
// then stall holds back neither the session (Stats answers, a data object
// still arrives whole) nor Shutdown past its deadline. The sink used to
// run under the session's lock: the call deadlocked and the stall stopped
// all I/O.
func TestFileSinkOutsideLock(t *testing.T) {
	g := loopGroup()
	w := &stuckWriter{entered: make(chan struct{}), gate: make(chan struct{})}
	defer close(w.gate)
	rx := loop(t, session.Config{Group: g, FileSink: func(session.ObjectInfo) (io.WriterAt, error) { return w, nil }})
	w.s.Store(rx)
	tx := loop(t, session.Config{Group: g})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tx.SendFile(ctx, bytes.NewReader(make([]byte, 200_000)), 200_000, []byte("file")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.entered:
	case <-ctx.Done():
		t.Fatal("the file's first write never returned from its call into the session")
	}
	want := []byte("while the disk is stuck")
	if _, err := tx.SendBytes(ctx, want, []byte("data")); err != nil {
		t.Fatal(err)
	}
	for {
		o, err := rx.Accept(ctx)
		if err != nil {
			t.Fatalf("accept while a file write is stuck: %v", err)
		}
		if o.Info().Kind != session.KindData {
			continue
		}
		if err := o.Wait(ctx); err != nil || !bytes.Equal(o.Bytes(), want) {
			t.Fatalf("data object: %v, %q", err, o.Bytes())
		}
		break
	}
	sctx, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer scancel()
	start := time.Now()
	err := rx.Shutdown(sctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Shutdown took %v past its 200 ms deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stuck file: %v, want the deadline", err)
	}
}

// TestEngineFieldsRefused: engine settings that the session owns are
// refused rather than silently overwritten.
func TestEngineFieldsRefused(t *testing.T) {
	for name, cfg := range map[string]session.Config{
		"Sender.NodeID":   {Sender: sender.Config{NodeID: 5}},
		"Receiver.NodeID": {Receiver: receiver.Config{NodeID: 5}},
		"Sender.Rand":     {Sender: sender.Config{Rand: rand.New(rand.NewPCG(1, 2))}},
		"Receiver.Sink":   {Receiver: receiver.Config{Sink: func(receiver.ObjectInfo) (io.WriterAt, error) { return nil, nil }}},
	} {
		cfg.Group, cfg.Interface = loopGroup(), "lo"
		s, err := session.New(cfg)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, session.ErrConfig) {
			t.Errorf("%s set: %v, want ErrConfig", name, err)
		}
	}
}

// TestEventBuffer: Config.EventBuffer sizes the Events channel.
func TestEventBuffer(t *testing.T) {
	s := loop(t, session.Config{Group: loopGroup(), EventBuffer: 3})
	if c := cap(s.Events()); c != 3 {
		t.Fatalf("Events has room for %d, want 3", c)
	}
}

// counters counts tracer callbacks.
type counters struct {
	sent, received, nackSent, nackReceived, repairs, grtt, rate atomic.Int64
}

func (c *counters) tracer() *session.Tracer {
	return &session.Tracer{
		PacketSent:     func(netip.AddrPort, framing.Header, int) { c.sent.Add(1) },
		PacketReceived: func(netip.AddrPort, framing.Header, int) { c.received.Add(1) },
		NackSent:       func(netip.AddrPort, int) { c.nackSent.Add(1) },
		NackReceived:   func(netip.AddrPort, session.NodeID) { c.nackReceived.Add(1) },
		RepairsSent:    func(n int) { c.repairs.Add(int64(n)) },
		GRTTChanged:    func(time.Duration) { c.grtt.Add(1) },
		RateChanged:    func(float64) { c.rate.Add(1) },
	}
}

// TestTracerAndRateChanged: through 10 % injected loss under congestion
// control, the tracer sees packets both ways, NACKs sent and received,
// repairs, GRTT and rate changes, and the session publishes RateChanged
// events though nobody called SetRate (it used to publish them only for
// SetRate).
func TestTracerAndRateChanged(t *testing.T) {
	g := loopGroup()
	var txc, rxc counters
	rcfg := session.Config{Group: g, Tracer: rxc.tracer(), Seed: 3, Interface: "lo"}
	pc, err := session.Listen(rcfg)
	if err != nil {
		t.Skipf("no multicast on the loopback interface: %v", err)
	}
	rcfg.Conn = session.NewLossConn(pc, session.Loss{}, session.Loss{Rate: 0.1}, 3)
	rx := loop(t, rcfg)
	tx := loop(t, session.Config{Group: g, Tracer: txc.tracer(), Seed: 4,
		Sender: sender.Config{CC: &congestion.Config{}, GRTT: 10 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := make([]byte, 300_000)
	if _, err := tx.SendBytes(ctx, data, nil); err != nil {
		t.Fatal(err)
	}
	o, err := rx.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	rateEvents := 0
	for len(tx.Events()) > 0 {
		if _, ok := (<-tx.Events()).(session.RateChanged); ok {
			rateEvents++
		}
	}
	t.Logf("sender: %d sent, %d NACKs in, %d repairs, %d GRTT and %d rate changes, %d RateChanged events; receiver: %d received, %d NACKs out",
		txc.sent.Load(), txc.nackReceived.Load(), txc.repairs.Load(), txc.grtt.Load(), txc.rate.Load(), rateEvents,
		rxc.received.Load(), rxc.nackSent.Load())
	for name, n := range map[string]int64{"packets sent": txc.sent.Load(), "NACKs received": txc.nackReceived.Load(),
		"repairs": txc.repairs.Load(), "GRTT changes": txc.grtt.Load(), "rate changes": txc.rate.Load(),
		"RateChanged events": int64(rateEvents), "packets received": rxc.received.Load(), "NACKs sent": rxc.nackSent.Load()} {
		if n == 0 {
			t.Errorf("no %s", name)
		}
	}
}

// TestPublishExpvar: one call publishes the session's Stats in expvar.
func TestPublishExpvar(t *testing.T) {
	s := loop(t, session.Config{Group: loopGroup()})
	s.PublishExpvar("shoal-test-session")
	v := expvar.Get("shoal-test-session")
	if v == nil {
		t.Fatal("not published")
	}
	var st session.Stats
	if err := json.Unmarshal([]byte(v.String()), &st); err != nil {
		t.Fatalf("%v: %s", err, v.String())
	}
	if st.ReadBuffer == 0 {
		t.Fatalf("published stats %s lack the socket buffer size", v.String())
	}
}

// TestStreamWriteDeadline: a Write blocked on a full stream buffer returns
// at the write deadline with net.Conn's error, having written part of its
// data; Write had no deadline, and Flush and Close no context, before.
func TestStreamWriteDeadline(t *testing.T) {
	s := loop(t, session.Config{Group: loopGroup(), Sender: sender.Config{Rate: 20e3}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.OpenStream(ctx, session.StreamOptions{Buffer: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	st.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	start := time.Now()
	n, err := st.Write(make([]byte, 1<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n == 1<<20 {
		t.Fatalf("Write: %d bytes, %v; want part of it and os.ErrDeadlineExceeded", n, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Write returned %v after its deadline", took)
	}
	// Close needs room the full buffer lacks: the passed deadline bounds
	// it too.
	start = time.Now()
	if err := st.Close(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Close past the deadline: %v", err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer ccancel()
	st.SetWriteDeadline(time.Time{})
	if err := st.CloseContext(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a context: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v despite its deadline and context", took)
	}
}

// TestFileSinkResults: through the disk writer, a FileSink's error still
// fails its object, and a nil destination still keeps the file in memory.
func TestFileSinkResults(t *testing.T) {
	g := loopGroup()
	refused := errors.New("refused")
	rx := loop(t, session.Config{Group: g, FileSink: func(oi session.ObjectInfo) (io.WriterAt, error) {
		if oi.Size == 50_000 { // the info may not have arrived yet
			return nil, refused
		}
		return nil, nil
	}})
	tx := loop(t, session.Config{Group: g})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data := make([]byte, 50_000)
	for i := range data {
		data[i] = byte(i)
	}
	for name, size := range map[string]int{"refuse": 50_000, "memory": 40_000} {
		if _, err := tx.SendFile(ctx, bytes.NewReader(data[:size]), int64(size), []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		o, err := rx.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = o.Wait(ctx)
		switch name := string(o.Info().Info); name {
		case "refuse":
			if !errors.Is(err, refused) {
				t.Errorf("refused file: %v", err)
			}
		case "memory":
			if err != nil || !bytes.Equal(o.Bytes(), data[:40_000]) {
				t.Errorf("file kept in memory: %v, %d bytes", err, len(o.Bytes()))
			}
		default:
			t.Errorf("unexpected object %q", name)
		}
	}
}
