package simnet

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// NodeID identifies a node of a Network: nodes are numbered 0, 1, 2, ... in
// the order they are added, so a NodeID can index a slice.
type NodeID int32

// Config configures a Network.
type Config struct {
	// Seed determines every random draw of the simulation; runs with the
	// same seed and the same calls are identical.
	Seed uint64
	// Start is the virtual time at which the network's clock begins. The
	// zero value means the Unix epoch in UTC, so that no simulated time is
	// the zero time.Time, which engines commonly use for "no timer".
	Start time.Time
	// KeepPayloads gives every sent packet bytes of its own that are never
	// reused, so an endpoint may keep Packet.Payload after Handle returns,
	// read-only: every copy of a multicast packet shares them. Simulations
	// of many receivers use it to hold each packet once rather than once
	// per receiver that stores it, and may keep a payload as a 4-byte
	// position in the network's Arena, which keeps the first ArenaBytes
	// sent for the network's lifetime.
	KeepPayloads bool
}

// NodeConfig configures a node.
type NodeConfig struct {
	// Addr is the node's unicast address. The zero value assigns the next
	// free address of 10.0.0.0/8 on port 6003, NORM's customary port.
	Addr netip.AddrPort
	// Up impairs the node's outgoing packets once, before the switch copies
	// them to the receivers; Down impairs each packet to the node.
	Up, Down LinkConfig
	// Loopback delivers the node's multicast to itself when it is a member
	// of the group, like IP_MULTICAST_LOOP.
	Loopback bool
}

// Packet is one delivery.
type Packet struct {
	At      time.Time      // arrival time
	From    NodeID         // sender
	To      NodeID         // receiver
	Dst     netip.AddrPort // the group, or To's address for unicast
	Payload []byte         // valid only until the callback returns, unless Config.KeepPayloads
}

// Network is a simulated network in virtual time. Create one with New.
type Network struct {
	seed  uint64
	start time.Time
	now   int64  // the clock, in nanoseconds since start
	seq   uint64 // events scheduled so far

	nodes    []node
	byName   map[string]NodeID
	byAddr   map[netip.AddrPort]NodeID
	nextAddr uint32 // last automatic address handed out, as an offset in 10/8

	groups   []group
	groupIdx map[netip.AddrPort]int32

	events eventHeap
	bufs   []pbuf
	free   []int32
	keep   bool
	slab   []byte // with keep, where new payloads are carved from
	arena  Arena  // with keep, every slab

	// A multicast copied to many members that all arrive at the same time
	// is one fan event rather than one event per member, which keeps the
	// heap as small as the packets in flight rather than that times the
	// members. cur is the fan being delivered, one member per step, or -1.
	fans     []fan
	freeFans []int32
	cur      int32
	pending  int // packets in flight: hops plus deliveries still to make

	delivering bool
}

type node struct {
	name     string
	addr     netip.AddrPort
	loopback bool
	up, down link

	received, receivedBytes, unroutable uint64
}

type group struct {
	addr    netip.AddrPort
	members []NodeID // ascending, so fan-out order does not depend on join order
}

// New returns an empty network whose clock reads c.Start.
func New(c Config) *Network {
	start := c.Start
	if start.IsZero() {
		start = time.Unix(0, 0).UTC()
	}
	return &Network{
		seed:     c.Seed,
		start:    start,
		keep:     c.KeepPayloads,
		byName:   map[string]NodeID{},
		byAddr:   map[netip.AddrPort]NodeID{},
		groupIdx: map[netip.AddrPort]int32{},
		cur:      -1,
	}
}

// AddNode adds a node and returns its id. An empty name becomes "node<id>".
// Names seed the node's links, so give receivers stable names (not, say,
// pointers printed as text) to keep runs reproducible. AddNode panics if the
// name or address is already taken, the address is not a unicast address,
// or a link configuration is invalid (negative delay or rate, a probability
// outside [0, 1]).
func (n *Network) AddNode(name string, c NodeConfig) NodeID {
	id := NodeID(len(n.nodes))
	if name == "" {
		name = fmt.Sprintf("node%d", id)
	}
	if _, dup := n.byName[name]; dup {
		panic(fmt.Sprintf("simnet: AddNode: duplicate name %q", name))
	}
	c.Up.check(name + " uplink")
	c.Down.check(name + " downlink")
	addr := c.Addr
	if addr == (netip.AddrPort{}) {
		addr = n.autoAddr()
	} else if !addr.IsValid() || addr.Addr().IsMulticast() || addr.Addr().IsUnspecified() {
		panic(fmt.Sprintf("simnet: AddNode %q: %v is not a unicast address", name, addr))
	}
	if other, dup := n.byAddr[addr]; dup {
		panic(fmt.Sprintf("simnet: AddNode %q: address %v already belongs to %q", name, addr, n.nodes[other].name))
	}
	n.nodes = append(n.nodes, node{
		name:     name,
		addr:     addr,
		loopback: c.Loopback,
		up:       newLink(c.Up, linkRNG(n.seed, name, dirUp, streamLoss), linkRNG(n.seed, name, dirUp, streamLink)),
		down:     newLink(c.Down, linkRNG(n.seed, name, dirDown, streamLoss), linkRNG(n.seed, name, dirDown, streamLink)),
	})
	n.byName[name] = id
	n.byAddr[addr] = id
	return id
}

func (n *Network) autoAddr() netip.AddrPort {
	for {
		n.nextAddr++
		if n.nextAddr >= 1<<24 {
			panic("simnet: AddNode: 10.0.0.0/8 is exhausted")
		}
		a := n.nextAddr
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(a >> 16), byte(a >> 8), byte(a)}), 6003)
		if _, taken := n.byAddr[ap]; !taken {
			return ap
		}
	}
}

func (n *Network) node(id NodeID) *node {
	if id < 0 || int(id) >= len(n.nodes) {
		panic(fmt.Sprintf("simnet: no node %d", id))
	}
	return &n.nodes[id]
}

// NumNodes returns the number of nodes; their ids are 0 to NumNodes()-1.
func (n *Network) NumNodes() int { return len(n.nodes) }

// Name returns the name of node id.
func (n *Network) Name(id NodeID) string { return n.node(id).name }

// Addr returns the unicast address of node id.
func (n *Network) Addr(id NodeID) netip.AddrPort { return n.node(id).addr }

// Lookup returns the node called name.
func (n *Network) Lookup(name string) (NodeID, bool) {
	id, ok := n.byName[name]
	return id, ok
}

// ByAddr returns the node whose unicast address is addr.
func (n *Network) ByAddr(addr netip.AddrPort) (NodeID, bool) {
	id, ok := n.byAddr[addr]
	return id, ok
}

// Join makes node id a member of the multicast group, which is identified by
// address and port together. It panics if group is not a multicast address.
// Membership is consulted when a packet reaches the switch, so a packet
// already past the sender's uplink reaches a node that joins before it gets
// there.
func (n *Network) Join(id NodeID, group netip.AddrPort) {
	n.node(id)
	g := &n.groups[n.group(group, "Join")]
	if i, found := slices.BinarySearch(g.members, id); !found {
		g.members = slices.Insert(g.members, i, id)
	}
}

// Leave ends node id's membership of group. Copies already on the node's
// downlink still arrive.
func (n *Network) Leave(id NodeID, group netip.AddrPort) {
	n.node(id)
	gi, ok := n.groupIdx[group]
	if !ok {
		return
	}
	g := &n.groups[gi]
	if i, found := slices.BinarySearch(g.members, id); found {
		g.members = slices.Delete(g.members, i, i+1)
	}
}

// group returns the index of the group with address addr, creating it.
func (n *Network) group(addr netip.AddrPort, op string) int32 {
	if gi, ok := n.groupIdx[addr]; ok {
		return gi
	}
	if !addr.Addr().IsMulticast() {
		panic(fmt.Sprintf("simnet: %s: %v is not a multicast address", op, addr))
	}
	gi := int32(len(n.groups))
	n.groups = append(n.groups, group{addr: addr})
	n.groupIdx[addr] = gi
	return gi
}

// Now returns the network's clock: the time of the packet being delivered
// during a callback, otherwise the latest time passed to DeliverUntil (or
// reached by Run).
func (n *Network) Now() time.Time { return n.start.Add(time.Duration(n.now)) }

// tick converts t to the clock's nanoseconds, never earlier than the clock.
func (n *Network) tick(t time.Time) int64 {
	d := int64(t.Sub(n.start))
	if d < n.now {
		d = n.now
	}
	return d
}

// Send sends payload from node from to dst, a multicast group or a node's
// unicast address, leaving the node at now (or at Now, if now is earlier).
// The payload is copied, so the caller may reuse it at once; it may not
// exceed 1 GiB. A unicast to an unknown address is counted in
// NodeStats.Unroutable and dropped.
func (n *Network) Send(now time.Time, from NodeID, dst netip.AddrPort, payload []byte) {
	src := n.node(from)
	if len(payload) > maxQueueBytes {
		panic(fmt.Sprintf("simnet: Send: %d-byte payload", len(payload)))
	}
	t := n.tick(now)
	var gi int32 = -1
	to := from
	local := false
	if dst.Addr().IsMulticast() {
		gi = n.group(dst, "Send")
		_, member := slices.BinarySearch(n.groups[gi].members, from)
		local = member && src.loopback
	} else {
		var ok bool
		if to, ok = n.byAddr[dst]; !ok {
			src.unroutable++
			return
		}
		if to == from {
			// Unicast to oneself never leaves the host.
			n.schedule(t, false, from, from, gi, n.newBuf(payload, 1))
			return
		}
	}
	a, b, k := src.up.cross(t, len(payload), n.start)
	refs := int32(k)
	if local {
		refs++
	}
	if refs == 0 {
		return
	}
	buf := n.newBuf(payload, refs)
	if local {
		n.schedule(t, false, from, from, gi, buf)
	}
	if k > 0 {
		n.schedule(a, true, from, to, gi, buf)
	}
	if k > 1 {
		n.schedule(b, true, from, to, gi, buf)
	}
}

func (n *Network) schedule(at int64, hop bool, from, to NodeID, dst, buf int32) {
	n.scheduleSeq(at, n.nextSeq(hop), from, to, dst, buf)
}

// nextSeq takes the next place in the order of events due at the same time.
func (n *Network) nextSeq(hop bool) uint64 {
	seq := n.seq << 1
	if hop {
		seq |= 1
	}
	n.seq++
	return seq
}

func (n *Network) scheduleSeq(at int64, seq uint64, from, to NodeID, dst, buf int32) {
	n.pending++
	n.events.push(event{at: at, seq: seq, buf: buf, from: from, to: to, dst: dst})
}

// nextAt returns the time of the earliest event: the fan being delivered,
// or the top of the heap.
func (n *Network) nextAt() (int64, bool) {
	if n.cur >= 0 {
		return n.fans[n.cur].at, true
	}
	if len(n.events) == 0 {
		return 0, false
	}
	return n.events[0].at, true
}

// Next returns the time of the earliest scheduled event, or false if
// nothing is in flight. The event is either a packet arriving at a node or
// a packet reaching the switch, where it is copied to the group's current
// members; so DeliverUntil(t) may deliver nothing, but the loop "t := Next;
// DeliverUntil(t)" always makes progress.
func (n *Network) Next() (time.Time, bool) {
	at, ok := n.nextAt()
	if !ok {
		return time.Time{}, false
	}
	return n.start.Add(time.Duration(at)), true
}

// DeliverUntil processes, in time order, every event due at or before t,
// including those scheduled by the callback itself (a reply sent with no
// delay arrives within the same call), calls fn for every packet that
// arrives, and then advances the clock to t if it is behind. Packets due at
// the same time arrive in the order they were scheduled. fn may call Send,
// Join, Leave and AddNode, but not DeliverUntil; a nil fn discards the
// packets.
func (n *Network) DeliverUntil(t time.Time, fn func(Packet)) {
	if n.delivering {
		panic("simnet: DeliverUntil called from a delivery callback")
	}
	n.delivering = true
	defer func() { n.delivering = false }()
	limit := int64(t.Sub(n.start))
	for {
		at, ok := n.nextAt()
		if !ok || at > limit {
			break
		}
		n.step(fn)
	}
	if limit > n.now {
		n.now = limit
	}
}

// step processes the earliest event.
func (n *Network) step(fn func(Packet)) {
	if n.cur >= 0 {
		n.stepFan(fn)
		return
	}
	e := n.events.pop()
	n.now = e.at
	if !e.hop() && e.to < 0 {
		n.cur = int32(-e.to - 1)
		n.stepFan(fn)
		return
	}
	n.pending--
	size := len(n.bufs[e.buf].data)
	if e.hop() {
		up := &n.nodes[e.from].up.stats
		up.Delivered++
		up.DeliveredBytes += uint64(size)
		if e.dst < 0 {
			n.downlink(&e, e.to, size)
		} else {
			f := int32(-1)
			for _, m := range n.groups[e.dst].members {
				if m != e.from {
					f = n.fanout(&e, m, size, f)
				}
			}
			n.closeFan(f)
		}
		n.release(e.buf)
		return
	}
	n.arrive(e.at, e.from, e.to, e.dst, e.buf, size, fn)
}

// arrive delivers a copy of packet buf to node to.
func (n *Network) arrive(at int64, from, to NodeID, dst, buf int32, size int, fn func(Packet)) {
	nd := &n.nodes[to]
	if from != to {
		nd.down.stats.Delivered++
		nd.down.stats.DeliveredBytes += uint64(size)
	}
	nd.received++
	nd.receivedBytes += uint64(size)
	if fn != nil {
		var d netip.AddrPort
		if dst >= 0 {
			d = n.groups[dst].addr
		} else {
			d = nd.addr
		}
		fn(Packet{
			At:      n.start.Add(time.Duration(at)),
			From:    from,
			To:      to,
			Dst:     d,
			Payload: n.bufs[buf].data,
		})
	}
	n.release(buf)
}

// downlink puts the copy of hop h for node to onto that node's downlink.
func (n *Network) downlink(h *event, to NodeID, size int) {
	a, b, k := n.nodes[to].down.cross(h.at, size, n.start)
	if k == 0 {
		return
	}
	n.bufs[h.buf].refs += int32(k)
	n.schedule(a, false, h.from, to, h.dst, h.buf)
	if k > 1 {
		n.schedule(b, false, h.from, to, h.dst, h.buf)
	}
}

// fan is a run of copies of one multicast packet that arrive at their
// members at the same time, one after another in member order: exactly the
// deliveries, in exactly the order, that one event per member with
// consecutive places in the order would make.
type fan struct {
	at      int64
	seq     uint64
	from    NodeID
	dst     int32
	buf     int32
	members []NodeID
	next    int // members[next] is the next to deliver to
}

// fanout puts the copy of multicast hop h for member to onto its downlink,
// adding it to the open fan f (-1 if none) when it arrives at the fan's
// time, and returns the fan now open. A copy that arrives at another time,
// or is duplicated, closes f, so a fan only ever holds consecutive events.
func (n *Network) fanout(h *event, to NodeID, size int, f int32) int32 {
	a, b, k := n.nodes[to].down.cross(h.at, size, n.start)
	if k == 0 {
		return f
	}
	n.bufs[h.buf].refs += int32(k)
	if k == 1 && f >= 0 && n.fans[f].at == a {
		n.fans[f].members = append(n.fans[f].members, to)
		n.pending++
		return f
	}
	n.closeFan(f)
	if k > 1 {
		n.schedule(a, false, h.from, to, h.dst, h.buf)
		n.schedule(b, false, h.from, to, h.dst, h.buf)
		return -1
	}
	f = n.newFan()
	n.fans[f] = fan{at: a, seq: n.nextSeq(false), from: h.from, dst: h.dst, buf: h.buf,
		members: append(n.fans[f].members[:0], to)}
	n.pending++
	return f
}

func (n *Network) newFan() int32 {
	if k := len(n.freeFans); k > 0 {
		f := n.freeFans[k-1]
		n.freeFans = n.freeFans[:k-1]
		return f
	}
	n.fans = append(n.fans, fan{})
	return int32(len(n.fans) - 1)
}

// closeFan schedules fan f (if f >= 0) in the place it took when opened:
// as a plain event if it has one member, else as a fan event.
func (n *Network) closeFan(f int32) {
	if f < 0 {
		return
	}
	fn := &n.fans[f]
	if len(fn.members) == 1 {
		n.pending--
		n.scheduleSeq(fn.at, fn.seq, fn.from, fn.members[0], fn.dst, fn.buf)
		n.freeFans = append(n.freeFans, f)
		return
	}
	n.events.push(event{at: fn.at, seq: fn.seq, buf: fn.buf, from: fn.from, to: NodeID(-f - 1), dst: fn.dst})
}

// stepFan delivers the next copy of the fan being delivered.
func (n *Network) stepFan(fn func(Packet)) {
	f := &n.fans[n.cur]
	to := f.members[f.next]
	f.next++
	if f.next == len(f.members) {
		f.next = 0
		f.members = f.members[:0]
		n.freeFans = append(n.freeFans, n.cur)
		n.cur = -1
	}
	n.pending--
	// The callback may open and close fans, growing n.fans: f is not used
	// after this point.
	n.arrive(f.at, f.from, to, f.dst, f.buf, len(n.bufs[f.buf].data), fn)
}
