package simrun

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

type txEndpoint struct {
	restartAt time.Time
	restart   func(now time.Time) *sender.Sender
	net       *simnet.Network
	id        simnet.NodeID
	s         *sender.Sender
	out       framing.Outbox
	run       *runState
}

func (e *txEndpoint) Handle(p simnet.Packet) time.Time {
	_ = e.s.HandlePacket(p.At, e.net.Addr(p.From), p.Payload)
	return e.Poll(p.At)
}

func (e *txEndpoint) Poll(now time.Time) time.Time {
	if !e.restartAt.IsZero() && !now.Before(e.restartAt) {
		e.restartAt = time.Time{}
		e.s = e.restart(now)
	}
	// The application writes whenever the engine has room, then the engine
	// sends; sending frees ring space, so a writer still holding data
	// writes again at once, a few rounds at most per poll.
	var wake time.Time
	for round := 0; round < 4; round++ {
		if e.run.stream != nil {
			e.run.stream.now = now
		}
		if !e.run.closed {
			if err := e.run.feed(e.s); err != nil {
				panic(err)
			}
		}
		wake = e.pollOnce(now)
		if e.run.closed || wake.After(now) {
			break
		}
	}
	if !e.restartAt.IsZero() && e.restartAt.Before(wake) {
		wake = e.restartAt
	}
	if st := e.run.stream; st != nil && !st.writeAt.IsZero() && st.writeAt.Before(wake) {
		wake = st.writeAt // a paced stream's next message
	}
	return wake
}

// transmit sends what an engine put in out from node id, to Group unless
// the engine addressed a packet; seen, if not nil, sees each packet first.
func transmit(net *simnet.Network, id simnet.NodeID, now time.Time, out *framing.Outbox, seen func([]byte)) {
	for i := range out.Len() {
		b, dst := out.Packet(i)
		if !dst.IsValid() {
			dst = Group
		}
		if seen != nil {
			seen(b)
		}
		net.Send(now, id, dst, b)
	}
}

// pollOnce polls the sender engine and sends what it produced.
func (e *txEndpoint) pollOnce(now time.Time) time.Time {
	e.out.Reset()
	wake := e.s.Poll(now, &e.out)
	e.run.now = now
	transmit(e.net, e.id, now, &e.out, e.run.sent)
	for _, ev := range e.s.Events() {
		e.run.senderEvents = append(e.run.senderEvents, ev)
		if ev.Kind == sender.EventClosed {
			e.run.senderDone = true
		}
	}
	return wake
}

// rxEndpoint's fields looked at for every packet come first, in as few
// cache lines as can hold them: each of thousands of receivers' endpoints
// is a cache miss per line when a packet reaches it.
type rxEndpoint struct {
	r         *receiver.Receiver
	cpu       *rxCPU // nil: packets are handled as they arrive
	run       *runState
	net       *simnet.Network
	idx       int
	id        simnet.NodeID
	joined    bool
	restartAt time.Time
	out       framing.Outbox
	joinAt    time.Time
	done      int
	doneAt    time.Time
	sinks     map[uint16]*verifySink
	stream    streamRx
	gaps      int
	events    []receiver.Event
	bad       []string
	cfg       receiver.Config
}

func (e *rxEndpoint) Handle(p simnet.Packet) time.Time {
	if e.cpu != nil {
		e.cpu.arrive(p)
		return e.Poll(p.At)
	}
	e.run.delivered(e.idx, p)
	_ = e.r.HandlePacket(p.At, e.net.Addr(p.From), p.Payload)
	return e.Poll(p.At)
}

// rxCPU models a receiver that handles packets at a limited rate: packets
// wait in a bounded socket buffer, and each is handled when the CPU has
// finished the ones before it, with its arrival time, as a session passes
// a kernel receive timestamp.
type rxCPU struct {
	rate       float64 // bytes per second
	limit      int     // socket buffer bytes
	queue      []simnet.Packet
	bytes      int
	busy       time.Time // when the CPU finishes the packet it is on
	stallFrom  time.Time // the process runs nothing from stallFrom to stallTo
	stallTo    time.Time
	drops      int
	maxBacklog time.Duration
}

func (c *rxCPU) arrive(p simnet.Packet) {
	if c.bytes+len(p.Payload) > c.limit {
		c.drops++
		return
	}
	p.Payload = append([]byte(nil), p.Payload...) // the network reuses its buffers
	c.queue = append(c.queue, p)
	c.bytes += len(p.Payload)
}

// next is when the first queued packet will have been handled.
func (c *rxCPU) next() time.Time {
	p := c.queue[0]
	start := c.busy
	if start.Before(p.At) {
		start = p.At
	}
	if c.stalled(start) {
		start = c.stallTo
	}
	return start.Add(time.Duration(float64(len(p.Payload)) / c.rate * float64(time.Second)))
}

func (c *rxCPU) stalled(t time.Time) bool {
	return !t.Before(c.stallFrom) && t.Before(c.stallTo)
}

// handle hands e's engine every queued packet handled by now, and returns
// when the next one will be (zero if none waits).
func (e *rxEndpoint) handleQueued(now time.Time) time.Time {
	c := e.cpu
	for len(c.queue) > 0 {
		t := c.next()
		if t.After(now) {
			return t
		}
		p := c.queue[0]
		c.queue = c.queue[1:]
		c.bytes -= len(p.Payload)
		c.busy = t
		c.maxBacklog = max(c.maxBacklog, t.Sub(p.At))
		e.run.delivered(e.idx, p)
		_ = e.r.HandlePacketAt(t, p.At, e.net.Addr(p.From), p.Payload)
		e.takeEvents(t)
	}
	return time.Time{}
}

func (e *rxEndpoint) Poll(now time.Time) time.Time {
	if !e.restartAt.IsZero() && !now.Before(e.restartAt) {
		// A crash and restart: the engine and everything it held are gone.
		e.restartAt = time.Time{}
		r, err := receiver.New(e.cfg)
		if err != nil {
			panic(err)
		}
		e.r = r
		e.done = 0
		clear(e.sinks)
		e.stream = streamRx{}
		e.events = append(e.events, receiver.Event{Kind: restartMarker})
	}
	if !e.joined {
		if now.Before(e.joinAt) {
			return e.joinAt
		}
		e.joined = true
		e.net.Join(e.id, Group)
	}
	var cpuAt time.Time
	if e.cpu != nil {
		if e.cpu.stalled(now) {
			return e.cpu.stallTo
		}
		cpuAt = e.handleQueued(now)
	}
	e.out.Reset()
	wake := e.r.Poll(now, &e.out)
	if !e.restartAt.IsZero() && e.restartAt.Before(wake) {
		wake = e.restartAt
	}
	if !cpuAt.IsZero() && cpuAt.Before(wake) {
		wake = cpuAt
	}
	transmit(e.net, e.id, now, &e.out, func(b []byte) { e.run.nacks += countNacks(b) })
	e.takeEvents(now)
	return wake
}

// takeEvents checks the engine's events at now. It must run after every
// call into the engine: an event's Data is valid only until the next one.
// (Packets a stalled receiver's CPU handled in a row once were all fed
// before their events were looked at, and a stream block freed by one
// and reused by a later one showed as wrong bytes.)
func (e *rxEndpoint) takeEvents(now time.Time) {
	e.stream.now = now
	for _, ev := range e.r.Events() {
		if ev.Sender != 0 && ev.Sender != e.run.txNode {
			continue // a Hostile node's objects
		}
		e.events = append(e.events, receiver.Event{Kind: ev.Kind, Sender: ev.Sender, Object: ev.Object, Err: ev.Err})
		if ev.Kind == receiver.EventStreamData {
			e.stream.data(e.run.stream, ev)
			continue
		}
		if ev.Kind == receiver.EventStreamGap {
			e.stream.gap(ev.Lost)
			continue
		}
		if ev.Kind == receiver.EventCompleted && e.run.stream != nil && e.run.stream.open && ev.Object == e.run.stream.id {
			e.stream.end(e.run.stream, e.run.sc.Stream.Mode)
			e.gaps += e.stream.gaps
			if e.stream.err != nil {
				e.bad = append(e.bad, fmt.Sprintf("rx %d: %v", e.idx, e.stream.err))
			} else {
				e.objectDone(now)
			}
			continue
		}
		switch ev.Kind {
		case receiver.EventCompleted:
			v := e.sinks[ev.Object]
			switch {
			case v == nil:
				e.bad = append(e.bad, fmt.Sprintf("rx %d: object %d completed without a sink", e.idx, ev.Object))
			case v.err != nil:
				e.bad = append(e.bad, fmt.Sprintf("rx %d: %v", e.idx, v.err))
			case v.written != v.size:
				e.bad = append(e.bad, fmt.Sprintf("rx %d: object %d: %d of %d bytes written", e.idx, ev.Object, v.written, v.size))
			default:
				e.objectDone(now)
			}
		}
	}
}

// restartMarker is the event kind recorded when a receiver's engine was
// replaced, so tests can tell events before and after.
const restartMarker receiver.EventKind = 255

func (e *rxEndpoint) objectDone(now time.Time) {
	e.done++
	if e.done == e.run.objects() {
		e.doneAt = now
		e.run.finished++
		e.run.last = now
	}
}

// objects is how many objects each receiver must complete.
func (st *runState) objects() int {
	n := len(st.sc.Objects)
	if st.sc.Stream != nil {
		n++
	}
	return n
}

func countNacks(b []byte) int {
	if len(b) > 0 && framing.Type(b[0]&0x0f) == framing.TypeNack {
		return 1
	}
	return 0
}

// runState collects the block accounting shared by the endpoints.
type runState struct {
	sc     *Scenario
	objIDs map[uint16]int // sender object id -> index in sc.Objects
	seq64  uint64         // extended sequence of the last sender packet
	// seqBlock maps the extended sequence of every sender packet to the
	// block (an index into blockFirst) whose first-pass symbol it carried,
	// or -1: a slice, since every delivery to every receiver looks it up.
	seqBlock     []int32
	seen         map[[3]uint32]bool
	blockIdx     map[[2]uint32]int32
	blockFirst   []int       // first-pass symbols sent, per block
	lastRepair   []time.Time // per block, when a repair symbol was last sent
	rounds       []int       // per block, repair rounds: bursts of repair symbols
	now          time.Time   // when the sender's packets being recorded leave
	got          [][]uint16  // per block, first-pass symbols delivered per receiver
	expect       [][]byte    // per object, its content if small enough to share
	nacks        int
	finished     int
	last         time.Time
	senderEvents []sender.Event
	senderDone   bool
	stream       *streamTx
	next         int    // next object to enqueue
	lastID       uint16 // id of the last object enqueued
	closed       bool   // the sender was told to close
	txNode       uint32 // the sender's node id
	d            framing.Data
}

// maxExpect bounds the object content a run keeps for receivers to compare
// against; larger objects are generated piece by piece as they are checked.
const maxExpect = 1 << 30

// expected returns the content of object idx, made once and shared by every
// receiver's sink, or nil if it is too large to keep.
func (st *runState) expected(idx int) []byte {
	if st.expect == nil {
		st.expect = make([][]byte, len(st.sc.Objects))
	}
	size := st.sc.Objects[idx].Size
	if st.expect[idx] == nil && size > 0 && size <= maxExpect {
		st.expect[idx] = make([]byte, size)
		fillPattern(st.expect[idx], st.sc.Seed, idx, 0)
	}
	return st.expect[idx]
}

// sent records a sender packet: which symbols go out for the first time.
func (st *runState) sent(b []byte) {
	h, _, err := framing.Peek(b)
	if err != nil {
		return
	}
	st.seq64 += uint64(uint16(h.Sequence - uint16(st.seq64)))
	for uint64(len(st.seqBlock)) <= st.seq64 {
		st.seqBlock = append(st.seqBlock, -1)
	}
	if h.Type != framing.TypeData || st.d.Unmarshal(b) != nil {
		return
	}
	key := [3]uint32{uint32(st.d.ObjectID), st.d.PayloadID.Block, uint32(st.d.PayloadID.Symbol)}
	if st.seen[key] || !st.firstPassSymbol() {
		st.repaired([2]uint32{key[0], key[1]})
		return
	}
	st.seen[key] = true
	bk := [2]uint32{key[0], key[1]}
	bi := st.block(bk)
	st.blockFirst[bi]++
	st.seqBlock[st.seq64] = bi
}

// block returns the index of block bk in the accounting, adding it.
func (st *runState) block(bk [2]uint32) int32 {
	bi, ok := st.blockIdx[bk]
	if !ok {
		bi = int32(len(st.blockFirst))
		st.blockIdx[bk] = bi
		st.blockFirst = append(st.blockFirst, 0)
		st.lastRepair = append(st.lastRepair, time.Time{})
		st.rounds = append(st.rounds, 0)
	}
	return bi
}

// roundGap separates repair rounds: a sender answers a round's NACKs with
// one burst of repairs, and the next round starts a hold-off (several
// GRTTs) later.
const roundGap = 5 * time.Millisecond

// repaired records a repair symbol of block bk sent now.
func (st *runState) repaired(bk [2]uint32) {
	bi := st.block(bk)
	if last := st.lastRepair[bi]; last.IsZero() || st.now.Sub(last) > roundGap {
		st.rounds[bi]++
	}
	st.lastRepair[bi] = st.now
}

// firstPassSymbol reports whether st.d is part of the sender's first pass
// over its block: a source symbol or one of the proactive parity symbols.
func (st *runState) firstPassSymbol() bool {
	f, ok, err := st.d.Ext.FTI(st.d.FECID)
	if !ok || err != nil {
		return true
	}
	p, err := fec.NewPartition(f.TransferLength, int(f.SymbolLength), int(f.MaxBlockLen))
	if err != nil {
		return true
	}
	return int(st.d.PayloadID.Symbol) < p.BlockLen(int(st.d.PayloadID.Block))+st.sc.Sender.AutoParity
}

// delivered records a packet reaching receiver rx.
func (st *runState) delivered(rx int, p simnet.Packet) {
	if st.sc.Tap != nil {
		st.sc.Tap(rx, p)
	}
	h, _, err := framing.Peek(p.Payload)
	if err != nil || h.Type != framing.TypeData {
		return
	}
	// Extend the 16-bit sequence by the nearest value not after the last
	// one sent: deliveries trail sends by far less than 65536 packets.
	seq := st.seq64 - uint64(uint16(uint16(st.seq64)-h.Sequence))
	if seq >= uint64(len(st.seqBlock)) {
		return
	}
	bi := st.seqBlock[seq]
	if bi < 0 {
		return
	}
	// By block, then receiver: a packet reaches the receivers in order,
	// so its counts sit side by side rather than one per receiver's array.
	for int(bi) >= len(st.got) {
		st.got = append(st.got, nil)
	}
	if st.got[bi] == nil {
		st.got[bi] = make([]uint16, st.sc.Receivers)
	}
	st.got[bi][rx]++
}

// eventBudget is the step limit of a run: simnet's default, or for many
// receivers enough for each of them to get every packet several times over,
// so that only a livelock reaches it.
func eventBudget(sc *Scenario) int64 {
	var bytes int64
	for _, o := range sc.Objects {
		bytes += o.Size
	}
	packets := bytes/1000 + 10_000
	return max(simnet.DefaultMaxEvents, 8*packets*int64(sc.Receivers+1))
}

func rxNodeID(i int) uint32 { return 0x0b000000 + uint32(i) + 1 }

// enqueue gives a new sender the scenario's objects.
func (st *runState) enqueue(s *sender.Sender) error {
	st.next, st.lastID, st.closed = 0, 0, false
	if st.sc.Stream != nil {
		st.stream = newStreamTx(st.sc)
	}
	return st.feed(s)
}

// feed queues as many of the remaining objects as the sender's transmit
// cache takes, as an application would, and closes the sender after the
// last one.
func (st *runState) feed(s *sender.Sender) error {
	sc := st.sc
	for st.next < len(sc.Objects) {
		i, o := st.next, sc.Objects[st.next]
		var id uint16
		var err error
		if o.File {
			id, err = s.SendFile(patternReader{seed: sc.Seed, obj: i, size: o.Size}, o.Size, o.Info)
		} else {
			buf := make([]byte, o.Size)
			fillPattern(buf, sc.Seed, i, 0)
			id, err = s.SendData(buf, o.Info)
		}
		if errors.Is(err, sender.ErrCacheFull) {
			return nil // try again after the next poll
		}
		if err != nil {
			return err
		}
		st.objIDs[id] = i
		st.lastID = id
		st.next++
	}
	if sc.Stream != nil {
		if err := st.stream.write(s, sc); err != nil {
			return err
		}
		if !st.stream.closed {
			return nil
		}
		st.lastID = st.stream.id
	}
	if !st.closed {
		st.closed = true
		if sc.Watermark && len(sc.Objects) > 0 {
			if err := s.SetWatermark(st.lastID); err != nil {
				return err
			}
		}
		s.Close()
	}
	return nil
}

// Run runs the scenario to completion or its time limit.
func Run(sc Scenario) (Result, error) {
	if sc.Receivers < 1 || (len(sc.Objects) == 0 && sc.Stream == nil) {
		return Result{}, fmt.Errorf("simrun: need receivers and objects")
	}
	if sc.Delay == 0 {
		sc.Delay = 5 * time.Millisecond
	}
	if sc.Limit == 0 {
		sc.Limit = 10 * time.Minute
	}
	// Receivers keep the symbols of the packets they are handed by
	// reference (receiver.Config.SharedPayloads), so every packet is held
	// once however many receivers store it, and those of blocks waiting
	// for repair by their 4-byte position in the network's arena
	// (receiver.Config.Arena).
	net := simnet.New(simnet.Config{Seed: sc.Seed, KeepPayloads: true})
	start := net.Now()
	st := &runState{sc: &sc, objIDs: map[uint16]int{}, seen: map[[3]uint32]bool{},
		blockIdx: map[[2]uint32]int32{}}

	link := func(loss float64) simnet.LinkConfig {
		l := simnet.LinkConfig{Delay: sc.Delay, Jitter: sc.Jitter, Duplicate: sc.Duplicate}
		if loss > 0 {
			l.Loss = simnet.Bernoulli{P: loss}
		}
		return l
	}
	txID := net.AddNode("sender", simnet.NodeConfig{Up: link(sc.Shared), Down: link(0)})
	scfg := sc.Sender
	if scfg.NodeID == 0 {
		scfg.NodeID = 0x0a000001
	}
	if scfg.Rate == 0 {
		scfg.Rate = 10e6
	}
	st.txNode = scfg.NodeID
	if sc.Watermark {
		for i := range sc.Receivers {
			scfg.AckingNodes = append(scfg.AckingNodes, rxNodeID(i))
		}
		scfg.AckingNodes = append(scfg.AckingNodes, sc.ExtraAckers...)
	}
	instance := uint64(0)
	newSender := func(now time.Time) (*sender.Sender, error) {
		instance++
		cfg := scfg
		cfg.Rand = rand.New(rand.NewPCG(sc.Seed, 1000+instance))
		s, err := sender.New(cfg, now)
		if err != nil {
			return nil, err
		}
		if err := st.enqueue(s); err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := newSender(start)
	if err != nil {
		return Result{}, err
	}
	net.Join(txID, Group) // NACKs and ACKs are multicast
	tx := &txEndpoint{net: net, id: txID, s: s, run: st}
	if sc.RestartSenderAt > 0 {
		tx.restartAt = start.Add(sc.RestartSenderAt)
		tx.restart = func(now time.Time) *sender.Sender {
			s, err := newSender(now)
			if err != nil {
				panic(err)
			}
			return s
		}
	}
	eps := []simnet.Endpoint{tx}
	rxs := make([]*rxEndpoint, sc.Receivers)
	for i := range sc.Receivers {
		down := link(sc.Loss)
		if sc.Burst != nil {
			down.Loss = *sc.Burst
		}
		if i == 0 && sc.OutageTo > sc.OutageFrom {
			down.Loss = outage{from: start.Add(sc.OutageFrom), to: start.Add(sc.OutageTo), base: down.Loss}
		}
		id := net.AddNode(fmt.Sprintf("rx%d", i), simnet.NodeConfig{Up: link(sc.FeedbackLoss), Down: down})
		e := &rxEndpoint{net: net, id: id, idx: i, run: st, joinAt: start, sinks: map[uint16]*verifySink{}}
		if i >= sc.Receivers-sc.Late {
			e.joinAt = start.Add(sc.LateAt)
		}
		rcfg := sc.Receiver
		rcfg.NodeID = rxNodeID(i)
		rcfg.SharedPayloads, rcfg.Arena = true, net.Arena()
		rcfg.UniformBackoff = rcfg.UniformBackoff || sc.UniformTimers
		rcfg.Rand = rand.New(rand.NewPCG(sc.Seed, uint64(i)+2))
		rcfg.Sink = func(info receiver.ObjectInfo) (io.WriterAt, error) {
			if info.Sender != st.txNode {
				return nil, nil // a Hostile node's: kept in memory, as it asks
			}
			idx, ok := st.objIDs[info.Object]
			if !ok {
				return nil, fmt.Errorf("simrun: unknown object %d", info.Object)
			}
			v := &verifySink{seed: sc.Seed, obj: idx, size: sc.Objects[idx].Size, want: st.expected(idx)}
			e.sinks[info.Object] = v
			return v, nil
		}
		r, err := receiver.New(rcfg)
		if err != nil {
			return Result{}, err
		}
		e.r, e.cfg = r, rcfg
		if sc.RestartReceiver == i+1 {
			e.restartAt = start.Add(sc.RestartAt)
		}
		if i < sc.SlowRx && sc.SlowRxRate > 0 {
			e.cpu = &rxCPU{rate: sc.SlowRxRate, limit: sc.SlowRxBuffer}
			if e.cpu.limit == 0 {
				e.cpu.limit = 4 << 20
			}
		}
		if i == 0 && sc.StallTo > sc.StallFrom {
			if e.cpu == nil {
				// A CPU fast enough never to hold a packet back.
				e.cpu = &rxCPU{rate: 1e15, limit: sc.SlowRxBuffer}
				if e.cpu.limit == 0 {
					e.cpu.limit = 4 << 20
				}
			}
			e.cpu.stallFrom, e.cpu.stallTo = start.Add(sc.StallFrom), start.Add(sc.StallTo)
		}
		rxs[i] = e
		eps = append(eps, e)
	}
	if sc.Storm {
		eps = append(eps, newStorm(net, sc, start, st))
	}
	var hn *hostile
	if sc.Hostile != "" {
		if hn, err = newHostile(net, sc, start); err != nil {
			return Result{}, err
		}
		eps = append(eps, hn)
	}
	res := simnet.Run(net, eps, simnet.Limits{
		Until:     start.Add(sc.Limit),
		MaxEvents: eventBudget(&sc),
		Done:      func() bool { return st.finished == sc.Receivers && (!sc.WaitSender || st.senderDone) },
	})
	out := Result{Stop: res.Reason, Sender: s.Stats(), SenderEvts: st.senderEvents, NacksSent: st.nacks}
	out.RepairSymbols = int(out.Sender.RepairSource + out.Sender.RepairParity)
	out.Virtual = st.last.Sub(start)
	if st.stream != nil {
		out.Messages, out.MessagesLost, out.WriterLate = st.stream.rxDelivered, st.stream.rxLost, st.stream.lateness
		out.MaxMsgDelay, out.MsgDelays = st.stream.maxDelay, st.stream.delays
	}
	if hn != nil {
		out.HostileSent = hn.sent
	}
	for _, e := range rxs {
		out.Receivers = append(out.Receivers, e.r.Stats())
		out.Events = append(out.Events, e.events)
		out.Errors = append(out.Errors, e.bad...)
		out.StreamGaps += e.gaps
		var fin time.Duration
		if !e.doneAt.IsZero() {
			fin = e.doneAt.Sub(start)
		}
		out.Finished = append(out.Finished, fin)
		if e.cpu != nil {
			out.SocketDrops += e.cpu.drops
			out.MaxBacklog = max(out.MaxBacklog, e.cpu.maxBacklog)
		}
		if e.done == st.objects() && len(e.bad) == 0 {
			out.Delivered++
		}
		for _, ev := range e.events {
			if ev.Kind == receiver.EventAborted {
				out.Aborted++
			}
		}
	}
	for blk, first := range st.blockFirst {
		worst := 0
		for i := range rxs {
			got := 0
			if blk < len(st.got) && st.got[blk] != nil {
				got = int(st.got[blk][i])
			}
			if m := first - min(got, first); m > worst {
				worst = m
			}
		}
		if worst > 0 {
			out.LossyBlocks++
			out.MaxMissedSum += worst
			out.RepairRounds += st.rounds[blk]
		}
	}
	return out, nil
}
