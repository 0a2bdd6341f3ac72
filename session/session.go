package session

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

// Session is a NORM session on one multicast group. Its methods are safe
// for concurrent use.
type Session struct {
	cfg    Config
	c      PacketConn
	group  netip.AddrPort // where the session sends
	source netip.Addr     // the only source accepted, if valid
	gsoW   GSOWriter      // nil without GSO
	gso    atomic.Bool    // gsoW is set and no GSO write failed
	log    *slog.Logger
	node   uint32
	seed   uint64

	// Used by the loop only: read buffers and the send batch.
	rmsgs  []Message
	wbatch []Message

	done       chan struct{} // closed when the loop has exited
	finishOnce sync.Once

	mu       sync.Mutex
	tx       *sender.Sender
	rx       *receiver.Receiver
	out      framing.Outbox // used by the loop only
	stopping bool           // Close: flush, then stop
	stopNow  bool           // stop the loop at once
	txClosed bool           // the sender announced EOT
	err      error

	waiters int
	wake    chan struct{} // closed and replaced when waiters may proceed
	trace   traceState    // the sender's figures at the last poll
	wakes   uint64        // times waiters were woken (for tests)
	passes  uint64        // loop passes (for tests)

	objs     map[objKey]*Object
	sinks    map[objKey]*asyncSink
	disk     *diskWriter
	quit     chan struct{} // closed when the loop must stop at once
	quitOnce sync.Once
	events   chan Event
	// Objects started and not yet taken by Accept, oldest first. Never
	// dropped: the count is unbounded, the bytes of complete in-memory ones
	// (appBytes) count against the receiver's buffer budget, which defers
	// new objects while they fill it.
	pending      []*Object
	appBytes     int64
	acceptNote   chan struct{} // closed and replaced when pending grows or the session ends
	acceptClosed bool

	acks      []*ackWait // WaitAck requests, the engine's watermark first
	openFiles []openFile
	stats     Stats
	sec       *secState // Config.Security (see secure.go)
}

// nowFunc is the session's clock: the loop, the engines and stream holds
// all read it, so that a test running sessions under testing/synctest (or
// stubbing it) controls the time they see.
var nowFunc = time.Now

// readBatch is how many datagrams the loop reads at once, and readBufSize
// the size of each buffer: the largest UDP payload.
const (
	readBatch   = 64
	readBufSize = 65536
)

type objKey struct {
	sender uint32
	id     uint16
}

// New opens a session: it creates the socket (or takes Config.Conn), joins
// the group and starts the session's goroutine. Close it to leave the
// group.
func New(cfg Config) (s *Session, err error) {
	if cfg.Conn != nil {
		defer func() {
			if err != nil {
				cfg.Conn.Close()
			}
		}()
	}
	if err := checkGroup(cfg.Group, cfg.AllowReserved); err != nil {
		return nil, err
	}
	if cfg.Source.IsValid() && cfg.Source.Is4() != cfg.Group.Addr().Unmap().Is4() {
		return nil, fmt.Errorf("%w: source %v and group %v are of different IP versions", ErrConfig, cfg.Source, cfg.Group)
	}
	if err := checkEngineFields(&cfg); err != nil {
		return nil, err
	}
	if cfg.NodeID == 0 {
		// Drawn before the socket opens: a SendOnly socket's filter keeps
		// only feedback to this id.
		cfg.NodeID = NodeID(defaultNodeID())
	}
	c := cfg.Conn
	if c == nil {
		if c, err = Listen(cfg); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				c.Close()
			}
		}()
	}
	s = &Session{
		cfg:    cfg,
		c:      c,
		group:  netip.AddrPortFrom(cfg.Group.Addr().Unmap(), cfg.Group.Port()),
		source: cfg.Source,
		log:    cfg.Logger,
		done:   make(chan struct{}),
		wake:   make(chan struct{}),
		objs:   map[objKey]*Object{},
		sinks:  map[objKey]*asyncSink{},
		quit:   make(chan struct{}),

		acceptNote: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.disk = newDiskWriter(s)
	if err := s.initSecurity(); err != nil {
		return nil, err
	}
	s.seed = cfg.Seed
	if s.seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		s.seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	s.node = uint32(cfg.NodeID)
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 1024
	}
	s.events = make(chan Event, cfg.EventBuffer)
	if w, ok := c.(GSOWriter); ok && !cfg.DisableGSO {
		s.gsoW = w
		s.gso.Store(true)
	}
	s.rmsgs = make([]Message, readBatch)
	for i := range s.rmsgs {
		s.rmsgs[i].Buf = make([]byte, readBufSize)
	}
	s.wbatch = make([]Message, 0, sendBatch)

	rcfg := cfg.Receiver
	rcfg.NodeID = s.node
	rcfg.Rand = rand.New(rand.NewPCG(s.seed, 2))
	rcfg.Sink = s.sink
	rcfg.ConfirmHeld = true
	if s.rx, err = receiver.New(rcfg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	// The sender engine starts with the first send; its configuration is
	// checked now so that a mistake surfaces here, not mid-program.
	if _, err := sender.New(s.txConfig(), nowFunc()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if b, ok := c.(socketBufferer); ok {
		s.stats.ReadBuffer, s.stats.WriteBuffer = b.socketBuffers()
	}
	s.log.Info("session open", "group", s.group, "local", c.LocalAddr(), "node", fmt.Sprintf("%08x", s.node),
		"gso", s.gso.Load(), "rcvbuf", s.stats.ReadBuffer, "sndbuf", s.stats.WriteBuffer)
	s.warnCollisions()
	go s.run()
	return s, nil
}

// joined lists the IPv4 groups of this process's open sessions, to warn
// about Ethernet MAC collisions between them.
var joined struct {
	sync.Mutex
	groups map[*Session]netip.Addr
}

// warnCollisions logs a warning when this session's group shares its
// Ethernet multicast MAC address with another open session's group: NICs
// and switches then deliver both to both, and the kernel filters in
// software (RFC 1112 §6.4 maps only 23 bits).
func (s *Session) warnCollisions() {
	g := s.group.Addr()
	joined.Lock()
	defer joined.Unlock()
	if joined.groups == nil {
		joined.groups = map[*Session]netip.Addr{}
	}
	for _, other := range joined.groups {
		if macCollision(g, other) {
			s.log.Warn("group shares its Ethernet MAC address with another session's group", "group", g, "other", other)
		}
	}
	joined.groups[s] = g
}

// defaultNodeID draws a random node id from crypto/rand, never 0 or
// NORM_NODE_ANY (0xFFFFFFFF). The reference implementation's convention, the
// host's IPv4 address, gives every session on a host the same id: the
// receiver then drops a same-host sender's packets as its own feedback
// looped back, and a sender counts two same-host receivers as one. Telling
// the sessions apart by source address does not help either, since they all
// send from the host's address and the group's port. A random id is
// unique per session; with 2^32 ids, a clash in a group of a thousand
// nodes has odds of about one in ten thousand. It does not depend on
// Config.Seed, so that two sessions seeded alike still differ.
func defaultNodeID() uint32 {
	for {
		var b [4]byte
		_, _ = crand.Read(b[:]) // never fails (crypto/rand panics instead)
		if id := binary.BigEndian.Uint32(b[:]); id != 0 && id != 0xffffffff {
			return id
		}
	}
}

// NodeID returns the id this session uses in NORM messages.
func (s *Session) NodeID() NodeID { return NodeID(s.node) }

// Events returns the session's events. Events that find the channel full
// are dropped and counted in Stats.EventsDropped. The channel is closed
// when the session has closed.
func (s *Session) Events() <-chan Event { return s.events }

func (s *Session) publish(e Event) {
	select {
	case s.events <- e:
	default:
		s.stats.EventsDropped++
	}
}

// kick wakes the loop so it polls the engines at once.
func (s *Session) kick() { s.c.Wake() }

// wait releases the lock until the loop's next pass (see poll), or ctx
// ends. It must be called with s.mu held and returns with it
// held. It does not wake the loop: a caller that changed the engine's
// state kicks it itself, and a caller that merely waits must not make the
// loop spin.
func (s *Session) wait(ctx context.Context) error {
	ch := s.wake
	s.waiters++
	s.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = context.Cause(ctx) // a write deadline's cause is os.ErrDeadlineExceeded
	case <-s.done:
	}
	s.mu.Lock()
	s.waiters--
	if err == nil && s.stopNow {
		err = s.closedErr()
	}
	return err
}

// wakeWaiters lets every wait return. Called with s.mu held.
func (s *Session) wakeWaiters() {
	close(s.wake)
	s.wake = make(chan struct{})
	s.wakes++
}

// run is the session's goroutine: poll the engines, send what they want
// sent, read until the next deadline or packet, repeat.
func (s *Session) run() {
	defer close(s.done)
	got := 0 // messages the last read returned
	for {
		now := nowFunc()
		s.mu.Lock()
		next := s.poll(now)
		stop := s.stopNow || (s.stopping && (s.tx == nil || s.txClosed))
		s.mu.Unlock()
		s.send()
		if stop {
			s.finish()
			return
		}
		s.disk.waitRoom(s.quit)
		if d := s.cfg.ReadCoalesce; d > 0 && got > 0 && got < len(s.rmsgs) {
			// Let packets gather rather than wake up for every few.
			if w := min(d, next.Sub(nowFunc())); w > 0 {
				time.Sleep(w)
			}
		}
		n, err := s.c.ReadBatch(s.rmsgs, next)
		got = n
		if err != nil {
			s.fail(err)
			return
		}
		if n == 0 {
			s.disk.kick() // nothing more is coming right now
			continue      // deadline or wake-up
		}
		// A whole batch is handled under one lock, before the engines
		// are polled again: polling per packet costs more than the
		// packet.
		s.mu.Lock()
		now = nowFunc()
		for i := range s.rmsgs[:n] {
			m := &s.rmsgs[i]
			if s.source.IsValid() && m.Addr.Addr() != s.source {
				continue // the kernel filters SSM joins; this covers stacks that don't
			}
			at, b := arrival(now, m.Received), m.Buf[:m.N]
			if seg := m.Segment; seg > 0 && len(b) > seg {
				// Datagrams the kernel merged (UDP GRO), handled one by one.
				s.stats.Coalesced += uint64((len(b) + seg - 1) / seg)
				for len(b) > 0 {
					k := min(seg, len(b))
					s.handle(now, at, m.Addr, b[:k])
					b = b[k:]
				}
				continue
			}
			s.handle(now, at, m.Addr, b)
		}
		s.mu.Unlock()
	}
}

func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err == nil && !s.stopNow {
		s.err = err
		s.log.Error("session failed", "err", err)
	}
	s.stopNow = true
	s.mu.Unlock()
	s.finish()
}

// finish ends everything still waiting when the loop stops.
func (s *Session) finish() {
	s.finishOnce.Do(s.finishLocked)
}

func (s *Session) finishLocked() {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(s.events)
	s.acceptClosed = true
	close(s.acceptNote)
	s.stopNow = true
	s.failAcks()
	for k, o := range s.objs {
		o.finish(ErrClosed, nil)
		delete(s.objs, k)
	}
	for k, sk := range s.sinks {
		sk.aborted.Store(true)
		s.disk.put(diskJob{op: diskAbort, sk: sk})
		delete(s.sinks, k)
	}
	s.disk.close()
	for _, f := range s.openFiles {
		f.f.Close()
	}
	s.openFiles = nil
	s.wakeWaiters()
	_ = s.c.Close()
	joined.Lock()
	delete(joined.groups, s)
	joined.Unlock()
}

// arrival turns a receive time (zero if unknown) into engine time: now less
// the wall-clock time the packet has waited, so that it keeps now's
// monotonic reading.
func arrival(now, received time.Time) time.Time {
	if received.IsZero() {
		return now
	}
	wait := now.Sub(received.Round(0)) // wall clock: a kernel timestamp has no monotonic reading
	if wait <= 0 || wait > maxWait {
		return now // a clock step, not a wait
	}
	return now.Add(-wait)
}

// maxWait bounds a believable wait in the socket: a kernel receive buffer
// drains in far less, so a larger figure means the wall clock stepped.
const maxWait = 10 * time.Second

// handle feeds one received packet, which reached the host at arrived, to
// the engines. Called with s.mu held.
func (s *Session) handle(now, arrived time.Time, from netip.AddrPort, b []byte) {
	s.stats.PacketsReceived++
	s.stats.BytesReceived += uint64(len(b))
	if b = s.openIn(now, from, b); b == nil {
		return
	}
	h, _, err := framing.Peek(b)
	if err != nil {
		s.log.Debug("not NORM", "from", from, "err", err)
		return
	}
	if s.cfg.Tracer != nil {
		s.traceReceived(h, from, len(b))
	}
	if (h.Type == framing.TypeNack || h.Type == framing.TypeAck) && s.tx != nil {
		_ = s.tx.HandlePacketAt(now, arrived, from, b)
	}
	if s.cfg.SendOnly {
		return // no receiver state: others' feedback only serves suppression
	}
	if err := s.rx.HandlePacketAt(now, arrived, from, b); err != nil {
		s.log.Debug("bad packet", "from", from, "err", err)
	}
	// Stream data in the receiver's events points into buffers the next
	// packet may reuse: take the events now, not after the whole batch.
	s.rxEvents(now)
}

// poll runs the engines' timers, collects their packets and events, and
// returns the next deadline. Called with s.mu held.
func (s *Session) poll(now time.Time) time.Time {
	s.out.Reset()
	next := now.Add(time.Second)
	s.passes++
	if s.tx != nil {
		if t := s.tx.Poll(now, &s.out); t.Before(next) {
			next = t
		}
		s.txEvents()
		s.observeTx()
	}
	if !s.cfg.SendOnly {
		if t := s.rx.Poll(now, &s.out); t.Before(next) {
			next = t
		}
		s.rxEvents(now)
	}
	// Waiters retry after every pass: room in the cache or a stream's
	// buffer may come from an event, feedback, data sent or a timer. A
	// pass has a cause of its own (a packet, a timer, a call that changed
	// the engine); waiting alone never causes one, or a blocked call would
	// wake the loop and the loop the call, for ever.
	if s.waiters > 0 {
		s.wakeWaiters()
	}
	s.sealOut(now)
	return next
}

// send writes the polled packets: runs of equal-size datagrams to the
// group as one GSO write where the kernel supports it, everything else in
// sendmmsg batches (one datagram per call where the platform lacks it).
func (s *Session) send() {
	o := &s.out
	var pkts, bytes, errs uint64
	batch := s.wbatch[:0]
	flush := func() {
		if len(batch) == 0 {
			return
		}
		n, err := s.c.WriteBatch(batch)
		for _, m := range batch[:n] {
			bytes += uint64(len(m.Buf))
		}
		pkts += uint64(n)
		if err != nil {
			errs += uint64(len(batch) - n)
			s.log.Debug("send failed", "err", err)
		}
		batch = batch[:0]
	}
	if s.cfg.Tracer != nil {
		for i := range o.Len() {
			b, dst := o.Packet(i)
			if !dst.IsValid() {
				dst = s.group
			}
			s.traceSent(b, dst)
		}
	}
	for i := 0; i < o.Len(); {
		b, dst := o.Packet(i)
		if !dst.IsValid() {
			dst = s.group
		}
		if s.gso.Load() {
			// Packets are contiguous in the outbox: a run of same-size
			// datagrams to the group is one buffer already.
			j := i + 1
			for j < o.Len() && j-i < 40 {
				nb, nd := o.Packet(j)
				if nd.IsValid() || len(nb) != len(b) {
					if !nd.IsValid() && len(nb) < len(b) {
						j++ // a shorter last datagram may end the run
					}
					break
				}
				j++
			}
			if j-i > 1 {
				flush()
				run := o.Span(i, j)
				if err := s.gsoW.WriteGSO(run, len(b), dst); err == nil {
					pkts, bytes = pkts+uint64(j-i), bytes+uint64(len(run))
					i = j
					continue
				} else {
					s.log.Warn("GSO send failed; sending datagrams in batches instead", "err", err)
					// Stats reads it without the loop's help.
					s.gso.Store(false)
				}
			}
		}
		batch = append(batch, Message{Buf: b, Addr: dst})
		if len(batch) == cap(batch) {
			flush()
		}
		i++
	}
	flush()
	s.wbatch = batch
	s.mu.Lock()
	s.stats.PacketsSent += pkts
	s.stats.BytesSent += bytes
	s.stats.SendErrors += errs
	s.mu.Unlock()
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Receiver = s.rx.Stats()
	st.NacksSent = st.Receiver.NacksSent
	st.NacksSuppressed = st.Receiver.NacksSuppressed
	st.FECRecovered = st.Receiver.FECRecovered
	if s.tx != nil {
		st.Sender = s.tx.Stats()
		st.NacksReceived = st.Sender.NacksReceived
		st.RepairsSent = st.Sender.RepairSource + st.Sender.RepairParity
		st.GRTT = st.Sender.GRTT
		st.Rate = st.Sender.Rate
	}
	st.GSO = s.gso.Load()
	if l, ok := s.c.(*LossConn); ok {
		st.InjectedTxLoss, st.InjectedRxLoss = l.Dropped()
	}
	st.Security = s.securityStats()
	return st
}

// Shutdown ends the session gracefully: whatever this session sends is
// flushed (receivers may still repair) and announced finished
// (NORM_CMD(EOT)), then the group is left. It returns when that is done, or
// at ctx's deadline (or Config.Linger, 30 s by default, if ctx has none),
// whichever comes first; then it stops at once and returns ctx's error.
// Either way it returns promptly: it does not wait for a FileSink that is
// stuck in a write. It returns the error the session failed with, if it
// did. Calling it again returns at once.
func (s *Session) Shutdown(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		linger := s.cfg.Linger
		if linger == 0 {
			linger = 30 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, linger)
		defer cancel()
	}
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		if s.tx != nil {
			s.tx.Close()
		}
	}
	s.mu.Unlock()
	s.kick()
	var err error
	select {
	case <-s.done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		s.stopNow = true
		s.mu.Unlock()
		s.quitOnce.Do(func() { close(s.quit) })
		s.kick()
		// The loop never waits on application code, so it ends within a
		// pass; the bound is only a safety net.
		select {
		case <-s.done:
		case <-time.After(time.Second):
		}
	}
	// Files still being written are finished (or dropped) before Shutdown
	// returns, unless ctx ends first.
	select {
	case <-s.disk.exited:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	s.mu.Lock()
	if s.err != nil && err == nil {
		err = s.err
	}
	s.mu.Unlock()
	return err
}

// Close is Shutdown with Config.Linger (30 s by default) as its deadline:
// the io.Closer form.
func (s *Session) Close() error { return s.Shutdown(context.Background()) }

// Done is closed when the session has stopped: closed by Shutdown or
// Close, or failed (Err says why).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns nil while the session runs. Once Done is closed it returns
// why the session stopped: the error it failed with (for instance a socket
// error), or ErrClosed after Shutdown or Close.
func (s *Session) Err() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return ErrClosed
}

// closedErr is the error for a call on a session that stopped: ErrClosed,
// wrapping the failure that stopped it, if any. Called with s.mu held.
func (s *Session) closedErr() error {
	if s.err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, s.err)
	}
	return ErrClosed
}
