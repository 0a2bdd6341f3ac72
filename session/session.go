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
	cfg  Config
	c    *conn
	log  *slog.Logger
	node uint32
	seed uint64

	kicked     atomic.Bool
	done       chan struct{} // closed when the loop has exited
	finishOnce sync.Once

	mu       sync.Mutex
	tx       *sender.Sender
	rx       *receiver.Receiver
	out      framing.Outbox // used by the loop only
	txLoss   *lossState
	rxLoss   *lossState
	stopping bool // Close: flush, then stop
	stopNow  bool // stop the loop at once
	txClosed bool // the sender announced EOT
	err      error

	waiters int
	wake    chan struct{} // closed and replaced when waiters may proceed

	objs   map[objKey]*Object
	sinks  map[objKey]*fileSink
	events chan Event
	// Objects started and not yet taken by Accept, oldest first. Never
	// dropped: the count is unbounded, the bytes of complete in-memory ones
	// (appBytes) count against the receiver's buffer budget, which defers
	// new objects while they fill it.
	pending      []*Object
	appBytes     int64
	acceptNote   chan struct{} // closed and replaced when pending grows or the session ends
	acceptClosed bool

	acks      map[uint16]*ackWait
	openFiles []openFile
	stats     Stats
	sec       *secState // Config.Security (see secure.go)
}

// nowFunc is the clock; a variable so tests could stub it.
var nowFunc = time.Now

type objKey struct {
	sender uint32
	id     uint16
}

// New opens a session: it creates the socket, joins the group and starts
// the session's goroutine. Close it to leave the group.
func New(cfg Config) (*Session, error) {
	if err := checkGroup(cfg.Group, cfg.AllowReserved); err != nil {
		return nil, err
	}
	if cfg.Source.IsValid() && cfg.Source.Is4() != cfg.Group.Addr().Unmap().Is4() {
		return nil, fmt.Errorf("%w: source %v and group %v are of different IP versions", ErrConfig, cfg.Source, cfg.Group)
	}
	c, err := openConn(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Session{
		cfg:   cfg,
		c:     c,
		log:   cfg.Logger,
		done:  make(chan struct{}),
		wake:  make(chan struct{}),
		objs:  map[objKey]*Object{},
		sinks: map[objKey]*fileSink{},
		acks:  map[uint16]*ackWait{},

		acceptNote: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.initSecurity(); err != nil {
		c.uc.Close()
		return nil, err
	}
	s.seed = cfg.Seed
	if s.seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		s.seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	s.node = cfg.NodeID
	if s.node == 0 {
		s.node = defaultNodeID()
	}
	if cfg.Events <= 0 {
		cfg.Events = 1024
	}
	s.events = make(chan Event, cfg.Events)
	s.txLoss = newLoss(cfg.TxLoss, s.seed, 101)
	s.rxLoss = newLoss(cfg.RxLoss, s.seed, 102)

	rcfg := cfg.Receiver
	rcfg.NodeID = s.node
	rcfg.Rand = rand.New(rand.NewPCG(s.seed, 2))
	rcfg.Sink = s.sink
	rcfg.ConfirmHeld = true
	if s.rx, err = receiver.New(rcfg); err != nil {
		c.uc.Close()
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	s.stats.ReadBuffer, s.stats.WriteBuffer, s.stats.GSO = c.rbuf, c.wbuf, c.gso.enabled
	s.log.Info("session open", "group", c.group, "local", c.localAddr(), "node", fmt.Sprintf("%08x", s.node),
		"gso", c.gso.enabled, "rcvbuf", c.rbuf, "sndbuf", c.wbuf)
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
	g := s.c.group.Addr()
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
func (s *Session) NodeID() uint32 { return s.node }

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
func (s *Session) kick() {
	s.kicked.Store(true)
	s.c.kick()
}

// wait releases the lock until the loop signals progress or ctx ends. It
// must be called with s.mu held and returns with it held.
func (s *Session) wait(ctx context.Context) error {
	ch := s.wake
	s.waiters++
	s.mu.Unlock()
	s.kick()
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.done:
		err = ErrClosed
	}
	s.mu.Lock()
	s.waiters--
	if err == nil && s.stopNow {
		err = ErrClosed
	}
	return err
}

// run is the session's goroutine: poll the engines, send what they want
// sent, read until the next deadline or packet, repeat.
func (s *Session) run() {
	defer close(s.done)
	for {
		now := time.Now()
		s.mu.Lock()
		next := s.poll(now)
		stop := s.stopNow || (s.stopping && (s.tx == nil || s.txClosed))
		s.mu.Unlock()
		s.send()
		if stop {
			s.finish()
			return
		}
		if err := s.c.uc.SetReadDeadline(next); err != nil {
			s.fail(err)
			return
		}
		if s.kicked.Swap(false) {
			continue
		}
		b, from, ts, err := s.c.read()
		switch {
		case err == nil:
			// The rest of a batch the kernel already handed over is
			// handled under the same lock, before the engines are polled
			// again: polling per packet costs more than the packet.
			s.mu.Lock()
			now := time.Now()
			s.handle(now, arrival(now, ts), from, b)
			for {
				b, from, ts, ok := s.c.readBuffered()
				if !ok {
					break
				}
				s.handle(now, arrival(now, ts), from, b)
			}
			s.mu.Unlock()
		case isTimeout(err):
		default:
			s.fail(err)
			return
		}
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
	for k, o := range s.objs {
		o.finish(ErrClosed, nil)
		delete(s.objs, k)
	}
	for k, sk := range s.sinks {
		sk.abort()
		delete(s.sinks, k)
	}
	for _, f := range s.openFiles {
		f.f.Close()
	}
	s.openFiles = nil
	close(s.wake)
	s.wake = make(chan struct{})
	_ = s.c.uc.Close()
	joined.Lock()
	delete(joined.groups, s)
	joined.Unlock()
}

// arrival turns a kernel receive timestamp (Unix nanoseconds, 0 if
// unknown) into engine time: now less the wall-clock time the packet has
// waited, so that it keeps now's monotonic reading.
func arrival(now time.Time, ts int64) time.Time {
	if ts == 0 {
		return now
	}
	wait := now.Sub(time.Unix(0, ts)) // wall clock: time.Unix has no monotonic reading
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
	if s.rxLoss.drop() {
		s.stats.InjectedRxLoss++
		return
	}
	if b = s.openIn(now, from, b); b == nil {
		return
	}
	h, _, err := framing.Peek(b)
	if err != nil {
		s.log.Debug("not NORM", "from", from, "err", err)
		return
	}
	if (h.Type == framing.TypeNack || h.Type == framing.TypeAck) && s.tx != nil {
		_ = s.tx.HandlePacketAt(now, arrived, from, b)
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
	if s.tx != nil {
		if t := s.tx.Poll(now, &s.out); t.Before(next) {
			next = t
		}
		s.txEvents()
	}
	if t := s.rx.Poll(now, &s.out); t.Before(next) {
		next = t
	}
	s.rxEvents(now)
	if s.waiters > 0 {
		close(s.wake)
		s.wake = make(chan struct{})
	}
	s.sealOut(now)
	return next
}

// send writes the polled packets: runs of equal-size datagrams to the
// group as one GSO write where the kernel supports it, everything else in
// sendmmsg batches (one datagram per call where the platform lacks it).
func (s *Session) send() {
	o := &s.out
	var dropped, pkts, bytes, errs uint64
	batch := s.c.batch[:0]
	flush := func() {
		if len(batch) == 0 {
			return
		}
		n, nb, err := s.c.writeBatch(batch)
		pkts, bytes = pkts+uint64(n), bytes+uint64(nb)
		if err != nil {
			errs += uint64(len(batch) - n)
			s.log.Debug("send failed", "err", err)
		}
		batch = batch[:0]
	}
	for i := 0; i < o.Len(); {
		b, dst := o.Packet(i)
		if !dst.IsValid() {
			dst = s.c.group
		}
		if s.txLoss.drop() {
			dropped++
			i++
			continue
		}
		if s.c.gso.enabled && s.txLoss == nil {
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
				if err := s.c.writeGSO(run, len(b), dst); err == nil {
					pkts, bytes = pkts+uint64(j-i), bytes+uint64(len(run))
					i = j
					continue
				} else {
					s.log.Warn("GSO send failed; sending datagrams in batches instead", "err", err)
					s.c.gso.enabled = false
				}
			}
		}
		batch = append(batch, outPacket{b, dst})
		if len(batch) == cap(batch) {
			flush()
		}
		i++
	}
	flush()
	s.c.batch = batch
	s.mu.Lock()
	s.stats.InjectedTxLoss += dropped
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
	st.GSO = s.c.gso.enabled
	st.Security = s.securityStats()
	return st
}

// Close ends the session gracefully: whatever this session sends is
// flushed (receivers may still repair) and announced finished
// (NORM_CMD(EOT)), then the group is left. It returns when that is done, or
// at ctx's deadline (or Config.Linger, 30 s by default, if ctx has none),
// whichever comes first; then it stops at once.
func (s *Session) Close(ctx context.Context) error {
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
		s.kick()
		<-s.done
	}
	s.mu.Lock()
	if s.err != nil && err == nil {
		err = s.err
	}
	s.mu.Unlock()
	return err
}
