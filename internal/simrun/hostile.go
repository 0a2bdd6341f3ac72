package simrun

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/simnet"
)

// HostileKind names an attack a host on the group can run without
// spoofing the real sender: see Hostile.
type HostileKind string

// The attacks of Scenario.Hostile.
const (
	// HostileNackRange: one fake node id sends 50 NACKs a second to the
	// real sender, each asking for block ranges of every object it has
	// seen that run to block 0xFFFFFFF0 (FEC id 129) and 0xFFFFFF (FEC
	// id 5).
	HostileNackRange HostileKind = "nack-range"
	// HostileNackStorm: a NACK a millisecond, each from another of 4,096
	// node ids, asking for a few symbols of a random block already sent,
	// the whole NORM_INFO, and an acknowledgement-looking ACK every
	// tenth packet.
	HostileNackStorm HostileKind = "nack-storm"
	// HostileFakeSenders: NORM_DATA from 64 fake sender ids in turn, a
	// packet a millisecond, announcing 256 MiB in-memory objects and
	// streams with 65,000-byte symbols and 255-symbol blocks.
	HostileFakeSenders HostileKind = "fake-senders"
	// HostileBigObjects: one fake sender id announces a 256 MiB in-memory
	// object that it sends a 8,000-byte symbol of every millisecond and
	// never finishes, and sends one symbol of each of 4,096 distinct small
	// blocks of another object, one every millisecond.
	HostileBigObjects HostileKind = "big-objects"
	// HostileStreamLeak: one fake sender id starts and ends a new
	// one-segment stream every millisecond, each announcing 65,535-byte
	// symbols and 255-symbol blocks.
	HostileStreamLeak HostileKind = "stream-leak"
	// HostileSquelch: 64 fake sender ids in turn send, every millisecond,
	// a NORM_CMD(SQUELCH) pointing near block 2^24 and listing far object
	// ids, or a stream segment near block 2^24.
	HostileSquelch HostileKind = "squelch"
)

// HostileKinds lists every attack, in the order bench sim documents them.
var HostileKinds = []HostileKind{HostileNackRange, HostileNackStorm, HostileFakeSenders,
	HostileBigObjects, HostileStreamLeak, HostileSquelch}

// ParseHostile returns the attack named s.
func ParseHostile(s string) (HostileKind, error) {
	for _, k := range HostileKinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown hostile kind %q (want one of %v)", s, HostileKinds)
}

// hostileMaxPackets bounds what a hostile node sends in one run.
const hostileMaxPackets = 200_000

// hostileBase is the first of the fake node and sender ids: outside the
// ranges of the real sender (0x0a...), receivers (0x0b...) and the storm
// (0x0c...).
const hostileBase = 0x0d000000

// Attack generates the packets of one HostileKind: a host on the group
// that listens to the real sender (for its node id, instance id and object
// ids, as any host on the group can) and sends its own packets. It never
// uses the real sender's node id: that spoofing only authentication can
// stop. The simulation's hostile node and the lab's hostile host both run
// one. Not safe for concurrent use.
type Attack struct {
	kind  HostileKind
	rng   *rand.Rand
	every time.Duration

	// What it learned of the real sender.
	heard  bool
	server uint32
	inst   uint16
	objs   []uint16 // object ids seen, newest last, at most 8
	blocks map[uint16]uint32

	seq     uint16
	n       int    // packets of the attack made
	nextObj uint16 // the next fake object id
	buf     []byte
	d       framing.Data
}

// NewAttack returns the attack kind, its randomness seeded by seed.
func NewAttack(kind HostileKind, seed uint64) (*Attack, error) {
	if _, err := ParseHostile(string(kind)); err != nil {
		return nil, fmt.Errorf("simrun: %w", err)
	}
	a := &Attack{kind: kind, rng: rand.New(rand.NewPCG(seed, 0x405711e)), every: time.Millisecond,
		blocks: map[uint16]uint32{}, nextObj: 1}
	if kind == HostileNackRange {
		a.every = 20 * time.Millisecond
	}
	return a, nil
}

// Interval is how often the attack sends a packet.
func (a *Attack) Interval() time.Duration { return a.every }

// Ready reports whether the attack has what it needs to send: the NACK
// attacks wait until they heard the sender; forging sender traffic needs
// nothing.
func (a *Attack) Ready() bool {
	switch a.kind {
	case HostileNackRange, HostileNackStorm:
		return a.heard
	}
	return true
}

// Heard learns from a packet seen on the group. It reports whether this
// was the first packet of the real sender heard.
func (a *Attack) Heard(b []byte) (first bool) {
	hd, _, err := framing.Peek(b)
	if err != nil || hd.Type != framing.TypeData || hd.SourceID >= hostileBase && hd.SourceID < hostileBase+0x1000 {
		return false
	}
	if a.d.Unmarshal(b) != nil {
		return false
	}
	if !a.heard {
		a.heard, first = true, true
		a.server = a.d.SourceID
	}
	if a.d.SourceID != a.server {
		return first
	}
	a.inst = a.d.InstanceID
	id := a.d.ObjectID
	if !slices.Contains(a.objs, id) {
		a.objs = append(a.objs, id)
		if len(a.objs) > 8 {
			delete(a.blocks, a.objs[0])
			a.objs = a.objs[1:]
		}
	}
	if b := a.d.PayloadID.Block; b >= a.blocks[id] {
		a.blocks[id] = b
	}
	return first
}

// Next returns the attack's next packet, valid until the next call. Call
// it only when Ready.
func (a *Attack) Next() []byte {
	switch a.kind {
	case HostileNackRange:
		a.nackRange()
	case HostileNackStorm:
		a.nackStorm()
	case HostileFakeSenders:
		a.fakeSenders()
	case HostileBigObjects:
		a.bigObjects()
	case HostileStreamLeak:
		a.streamLeak()
	case HostileSquelch:
		a.squelch()
	}
	a.n++
	return a.buf
}

// hostile is the simulation's hostile node: an Attack on the simulated
// group, at most hostileMaxPackets.
type hostile struct {
	*Attack
	net  *simnet.Network
	id   simnet.NodeID
	wake time.Time
	sent int
}

func newHostile(n *simnet.Network, sc Scenario, start time.Time) (*hostile, error) {
	a, err := NewAttack(sc.Hostile, sc.Seed)
	if err != nil {
		return nil, err
	}
	id := n.AddNode("hostile", simnet.NodeConfig{Up: simnet.LinkConfig{Delay: sc.Delay}, Down: simnet.LinkConfig{Delay: sc.Delay}})
	n.Join(id, Group)
	h := &hostile{Attack: a, net: n, id: id}
	if a.Ready() {
		h.wake = start
	}
	return h, nil
}

// Handle learns from the real sender's packets; the NACK attacks start
// once they know whom to send to.
func (h *hostile) Handle(p simnet.Packet) time.Time {
	if h.Heard(p.Payload) && h.wake.IsZero() {
		h.wake = p.At
	}
	return h.wake
}

// Poll sends the attack's next packet when it is due.
func (h *hostile) Poll(now time.Time) time.Time {
	if h.wake.IsZero() || now.Before(h.wake) {
		return h.wake
	}
	if h.sent >= hostileMaxPackets {
		h.wake = time.Time{}
		return h.wake
	}
	h.net.Send(now, h.id, Group, h.Next())
	h.sent++
	h.wake = now.Add(h.every)
	return h.wake
}

func (a *Attack) done(b []byte, err error) {
	if err != nil {
		panic(fmt.Sprintf("simrun: hostile %s: %v", a.kind, err)) // a bug here, not in the engines
	}
	a.buf = b
}

func (a *Attack) nack(node uint32, content []byte) {
	a.seq++
	m := framing.Nack{Header: framing.Header{Type: framing.TypeNack, Sequence: a.seq, SourceID: node},
		ServerID: a.server, InstanceID: a.inst, Content: content}
	b, err := m.Append(a.buf[:0])
	a.done(b, err)
}

func (a *Attack) nackRange() {
	var c []byte
	var err error
	for _, id := range a.objs {
		for _, r := range []struct {
			fec  uint8
			last uint32
		}{{framing.FECSmallBlock, 0xFFFFFFF0}, {framing.FECRS8, 0xFFFFFF}} {
			c, err = framing.AppendRepairRequest(c, framing.FormRanges, framing.RepairBlock, 0, []framing.SymbolRef{
				{FECID: r.fec, ObjectID: id}, {FECID: r.fec, ObjectID: id, PayloadID: framing.PayloadID{Block: r.last}}})
			if err != nil {
				panic(err)
			}
		}
	}
	a.nack(hostileBase+1, c)
}

func (a *Attack) nackStorm() {
	node := hostileBase + uint32(a.n%4096)
	id := a.objs[a.rng.IntN(len(a.objs))]
	blk := uint32(a.rng.IntN(int(a.blocks[id]) + 1))
	sym := uint16(a.rng.IntN(64))
	c, err := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairSegment|framing.RepairInfo, 0, []framing.SymbolRef{
		{FECID: framing.FECRS8, ObjectID: id, PayloadID: framing.PayloadID{Block: blk, Symbol: sym}},
		{FECID: framing.FECRS8, ObjectID: id, PayloadID: framing.PayloadID{Block: blk, Symbol: sym + 1}}})
	if err != nil {
		panic(err)
	}
	if a.n%10 == 9 {
		// An ACK for a watermark nobody asked for, from a node nobody
		// listed.
		p, err := framing.AppendSymbolRef(nil, framing.SymbolRef{FECID: framing.FECRS8, ObjectID: id}, 0)
		if err != nil {
			panic(err)
		}
		a.seq++
		ack := framing.Ack{Header: framing.Header{Type: framing.TypeAck, Sequence: a.seq, SourceID: node},
			ServerID: a.server, InstanceID: a.inst, AckType: framing.AckFlush, Payload: p}
		b, err := ack.Append(a.buf[:0])
		a.done(b, err)
		return
	}
	a.nack(node, c)
}

// data sends a forged NORM_DATA from sender src.
func (a *Attack) data(src uint32, obj uint16, flags framing.ObjectFlags, fti framing.FTI, blk uint32, sym uint16, payload []byte) {
	ext, err := framing.AppendFTI(nil, framing.FECRS8, fti)
	if err != nil {
		panic(err)
	}
	a.seq++
	m := framing.Data{Header: framing.Header{Type: framing.TypeData, Sequence: a.seq, SourceID: src},
		SenderFields: framing.SenderFields{InstanceID: uint16(src), GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)},
		FECID:        framing.FECRS8, ObjectID: obj, Flags: flags,
		PayloadID: framing.PayloadID{Block: blk, Symbol: sym}, Ext: ext, Payload: payload}
	b, err := m.Append(a.buf[:0])
	a.done(b, err)
}

// filler is a forged payload: its content does not matter.
var filler = make([]byte, 65535)

func streamPayload(n int, first bool) []byte {
	sh := framing.StreamHeader{Len: uint16(n)}
	if first {
		sh.MsgStart = 1
	}
	return append(framing.AppendStreamHeader(nil, sh), filler[:n]...)
}

func (a *Attack) fakeSenders() {
	src := hostileBase + 0x100 + uint32(a.n%64)
	round := uint32(a.n / 64)
	if a.n%2 == 0 {
		// A 256 MiB object kept in memory, a symbol of a new block each
		// round.
		a.data(src, 1, 0, framing.FTI{TransferLength: 256 << 20, SymbolLength: 1400, MaxBlockLen: 64, Parity: 16},
			round, 0, filler[:1400])
		return
	}
	// A stream with 65,000-byte symbols, one segment of a new block each
	// round.
	a.data(src, 2, framing.FlagStream, framing.FTI{TransferLength: 1 << 30, SymbolLength: 65000, MaxBlockLen: 255},
		round, 0, streamPayload(1000, round == 0))
}

func (a *Attack) bigObjects() {
	const src = hostileBase + 0x200
	if a.n%2 == 0 {
		a.data(src, 1, 0, framing.FTI{TransferLength: 256 << 20, SymbolLength: 8000, MaxBlockLen: 255, Parity: 0},
			uint32(a.n/2/255), uint16(a.n/2%255), filler[:8000])
		return
	}
	a.data(src, 2, 0, framing.FTI{TransferLength: 4 * 4096 * 100, SymbolLength: 100, MaxBlockLen: 4, Parity: 2},
		uint32(a.n/2%4096), 0, filler[:100])
}

func (a *Attack) streamLeak() {
	const src = hostileBase + 0x300
	fti := framing.FTI{TransferLength: 1 << 30, SymbolLength: 65535, MaxBlockLen: 255}
	if a.n%2 == 0 {
		a.data(src, a.nextObj, framing.FlagStream, fti, 0, 0, streamPayload(1000, true))
		return
	}
	// The end of the stream: an empty segment.
	a.data(src, a.nextObj, framing.FlagStream, fti, 0, 1, streamPayload(0, false))
	a.nextObj++
}

func (a *Attack) squelch() {
	src := hostileBase + 0x400 + uint32(a.n%64)
	const far = 1<<24 - 2
	if a.n%2 == 0 {
		a.data(src, uint16(a.n), framing.FlagStream, framing.FTI{TransferLength: 1 << 30, SymbolLength: 1400, MaxBlockLen: 64},
			far, 0, streamPayload(1000, true))
		return
	}
	var list []byte
	for i := range 64 {
		list = framing.AppendObjectID(list, uint16(a.n+1000*i))
	}
	a.seq++
	c := framing.Cmd{Header: framing.Header{Type: framing.TypeCmd, Sequence: a.seq, SourceID: src},
		SenderFields: framing.SenderFields{InstanceID: uint16(src), GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)},
		Flavor:       framing.FlavorSquelch,
		Ref:          framing.SymbolRef{FECID: framing.FECRS8, ObjectID: uint16(a.n - 1), PayloadID: framing.PayloadID{Block: far + 1}},
		Content:      list}
	b, err := c.Append(a.buf[:0])
	a.done(b, err)
}

// HostileResult compares a transfer under attack with the same transfer,
// same seed, without it.
type HostileResult struct {
	Clean, Hostile Result
	// CleanWall and HostileWall are the real time each run took: the
	// simulation does not model CPU, so work an attack makes the engines
	// do shows here.
	CleanWall, HostileWall time.Duration
}

// RunHostile runs sc without its Hostile node, then with it.
func RunHostile(sc Scenario) (HostileResult, error) {
	var r HostileResult
	if _, err := ParseHostile(string(sc.Hostile)); err != nil {
		return r, fmt.Errorf("simrun: %w", err)
	}
	clean := sc
	clean.Hostile = ""
	t := time.Now()
	var err error
	if r.Clean, err = Run(clean); err != nil {
		return r, err
	}
	r.CleanWall = time.Since(t)
	t = time.Now()
	if r.Hostile, err = Run(sc); err != nil {
		return r, err
	}
	r.HostileWall = time.Since(t)
	return r, nil
}
