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

// hostile is a host on the group that listens to the real sender (for its
// node id, instance id and object ids, as any host on the group can) and
// sends its own packets. It never uses the real sender's node id: that
// spoofing only authentication can stop.
type hostile struct {
	kind  HostileKind
	net   *simnet.Network
	id    simnet.NodeID
	rng   *rand.Rand
	every time.Duration
	wake  time.Time
	sent  int

	// What it learned of the real sender.
	heard  bool
	server uint32
	inst   uint16
	objs   []uint16 // object ids seen, newest last, at most 8
	blocks map[uint16]uint32

	seq     uint16
	n       int    // packets of the attack sent
	nextObj uint16 // the next fake object id
	buf     []byte
	d       framing.Data
}

func newHostile(n *simnet.Network, sc Scenario, start time.Time) (*hostile, error) {
	if _, err := ParseHostile(string(sc.Hostile)); err != nil {
		return nil, fmt.Errorf("simrun: %w", err)
	}
	id := n.AddNode("hostile", simnet.NodeConfig{Up: simnet.LinkConfig{Delay: sc.Delay}, Down: simnet.LinkConfig{Delay: sc.Delay}})
	n.Join(id, Group)
	h := &hostile{kind: sc.Hostile, net: n, id: id, rng: rand.New(rand.NewPCG(sc.Seed, 0x405711e)),
		every: time.Millisecond, blocks: map[uint16]uint32{}, nextObj: 1}
	if sc.Hostile == HostileNackRange {
		h.every = 20 * time.Millisecond
	}
	switch h.kind {
	case HostileNackRange, HostileNackStorm:
		// They start once they heard the sender.
	default:
		h.wake = start // forging sender traffic needs nothing heard
	}
	return h, nil
}

// Handle learns from the real sender's packets; the attacks that forge
// sender traffic start at once, the NACK attacks once they know whom to
// send to.
func (h *hostile) Handle(p simnet.Packet) time.Time {
	hd, _, err := framing.Peek(p.Payload)
	if err != nil || hd.Type != framing.TypeData || hd.SourceID >= hostileBase {
		return h.wake
	}
	if h.d.Unmarshal(p.Payload) != nil {
		return h.wake
	}
	if !h.heard {
		h.heard = true
		h.server = h.d.SourceID
		h.wake = p.At // start now
	}
	if h.d.SourceID != h.server {
		return h.wake
	}
	h.inst = h.d.InstanceID
	id := h.d.ObjectID
	if !slices.Contains(h.objs, id) {
		h.objs = append(h.objs, id)
		if len(h.objs) > 8 {
			delete(h.blocks, h.objs[0])
			h.objs = h.objs[1:]
		}
	}
	if b := h.d.PayloadID.Block; b >= h.blocks[id] {
		h.blocks[id] = b
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
	h.attack(now)
	h.n++
	h.wake = now.Add(h.every)
	return h.wake
}

func (h *hostile) send(now time.Time, b []byte, err error) {
	if err != nil {
		panic(fmt.Sprintf("simrun: hostile %s: %v", h.kind, err)) // a bug here, not in the engines
	}
	h.buf = b
	h.sent++
	h.net.Send(now, h.id, Group, b)
}

func (h *hostile) attack(now time.Time) {
	switch h.kind {
	case HostileNackRange:
		h.nackRange(now)
	case HostileNackStorm:
		h.nackStorm(now)
	case HostileFakeSenders:
		h.fakeSenders(now)
	case HostileBigObjects:
		h.bigObjects(now)
	case HostileStreamLeak:
		h.streamLeak(now)
	case HostileSquelch:
		h.squelch(now)
	}
}

func (h *hostile) nack(now time.Time, node uint32, content []byte) {
	h.seq++
	m := framing.Nack{Header: framing.Header{Type: framing.TypeNack, Sequence: h.seq, SourceID: node},
		ServerID: h.server, InstanceID: h.inst, Content: content}
	b, err := m.Append(h.buf[:0])
	h.send(now, b, err)
}

func (h *hostile) nackRange(now time.Time) {
	var c []byte
	var err error
	for _, id := range h.objs {
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
	h.nack(now, hostileBase+1, c)
}

func (h *hostile) nackStorm(now time.Time) {
	node := hostileBase + uint32(h.n%4096)
	id := h.objs[h.rng.IntN(len(h.objs))]
	blk := uint32(h.rng.IntN(int(h.blocks[id]) + 1))
	sym := uint16(h.rng.IntN(64))
	c, err := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairSegment|framing.RepairInfo, 0, []framing.SymbolRef{
		{FECID: framing.FECRS8, ObjectID: id, PayloadID: framing.PayloadID{Block: blk, Symbol: sym}},
		{FECID: framing.FECRS8, ObjectID: id, PayloadID: framing.PayloadID{Block: blk, Symbol: sym + 1}}})
	if err != nil {
		panic(err)
	}
	if h.n%10 == 9 {
		// An ACK for a watermark nobody asked for, from a node nobody
		// listed.
		p, err := framing.AppendSymbolRef(nil, framing.SymbolRef{FECID: framing.FECRS8, ObjectID: id}, 0)
		if err != nil {
			panic(err)
		}
		h.seq++
		a := framing.Ack{Header: framing.Header{Type: framing.TypeAck, Sequence: h.seq, SourceID: node},
			ServerID: h.server, InstanceID: h.inst, AckType: framing.AckFlush, Payload: p}
		b, err := a.Append(h.buf[:0])
		h.send(now, b, err)
		return
	}
	h.nack(now, node, c)
}

// data sends a forged NORM_DATA from sender src.
func (h *hostile) data(now time.Time, src uint32, obj uint16, flags framing.ObjectFlags, fti framing.FTI, blk uint32, sym uint16, payload []byte) {
	ext, err := framing.AppendFTI(nil, framing.FECRS8, fti)
	if err != nil {
		panic(err)
	}
	h.seq++
	m := framing.Data{Header: framing.Header{Type: framing.TypeData, Sequence: h.seq, SourceID: src},
		SenderFields: framing.SenderFields{InstanceID: uint16(src), GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)},
		FECID:        framing.FECRS8, ObjectID: obj, Flags: flags,
		PayloadID: framing.PayloadID{Block: blk, Symbol: sym}, Ext: ext, Payload: payload}
	b, err := m.Append(h.buf[:0])
	h.send(now, b, err)
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

func (h *hostile) fakeSenders(now time.Time) {
	src := hostileBase + 0x100 + uint32(h.n%64)
	round := uint32(h.n / 64)
	if h.n%2 == 0 {
		// A 256 MiB object kept in memory, a symbol of a new block each
		// round.
		h.data(now, src, 1, 0, framing.FTI{TransferLength: 256 << 20, SymbolLength: 1400, MaxBlockLen: 64, Parity: 16},
			round, 0, filler[:1400])
		return
	}
	// A stream with 65,000-byte symbols, one segment of a new block each
	// round.
	h.data(now, src, 2, framing.FlagStream, framing.FTI{TransferLength: 1 << 30, SymbolLength: 65000, MaxBlockLen: 255},
		round, 0, streamPayload(1000, round == 0))
}

func (h *hostile) bigObjects(now time.Time) {
	const src = hostileBase + 0x200
	if h.n%2 == 0 {
		h.data(now, src, 1, 0, framing.FTI{TransferLength: 256 << 20, SymbolLength: 8000, MaxBlockLen: 255, Parity: 0},
			uint32(h.n/2/255), uint16(h.n/2%255), filler[:8000])
		return
	}
	h.data(now, src, 2, 0, framing.FTI{TransferLength: 4 * 4096 * 100, SymbolLength: 100, MaxBlockLen: 4, Parity: 2},
		uint32(h.n/2%4096), 0, filler[:100])
}

func (h *hostile) streamLeak(now time.Time) {
	const src = hostileBase + 0x300
	fti := framing.FTI{TransferLength: 1 << 30, SymbolLength: 65535, MaxBlockLen: 255}
	if h.n%2 == 0 {
		h.data(now, src, h.nextObj, framing.FlagStream, fti, 0, 0, streamPayload(1000, true))
		return
	}
	// The end of the stream: an empty segment.
	h.data(now, src, h.nextObj, framing.FlagStream, fti, 0, 1, streamPayload(0, false))
	h.nextObj++
}

func (h *hostile) squelch(now time.Time) {
	src := hostileBase + 0x400 + uint32(h.n%64)
	const far = 1<<24 - 2
	if h.n%2 == 0 {
		h.data(now, src, uint16(h.n), framing.FlagStream, framing.FTI{TransferLength: 1 << 30, SymbolLength: 1400, MaxBlockLen: 64},
			far, 0, streamPayload(1000, true))
		return
	}
	var list []byte
	for i := range 64 {
		list = framing.AppendObjectID(list, uint16(h.n+1000*i))
	}
	h.seq++
	c := framing.Cmd{Header: framing.Header{Type: framing.TypeCmd, Sequence: h.seq, SourceID: src},
		SenderFields: framing.SenderFields{InstanceID: uint16(src), GRTT: framing.QuantizeRTT(10 * time.Millisecond), Backoff: 4, GroupSize: framing.QuantizeGroupSize(10)},
		Flavor:       framing.FlavorSquelch,
		Ref:          framing.SymbolRef{FECID: framing.FECRS8, ObjectID: uint16(h.n - 1), PayloadID: framing.PayloadID{Block: far + 1}},
		Content:      list}
	b, err := c.Append(h.buf[:0])
	h.send(now, b, err)
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
