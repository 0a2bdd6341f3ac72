package simnet

// event is one scheduled step: a packet reaching the switch (a hop) or a
// packet reaching a node. It is a small value so the heap moves it cheaply
// and never points into the garbage-collected heap.
type event struct {
	at int64 // nanoseconds since Config.Start
	// seq is the scheduling order shifted left by one, which breaks ties
	// between events at the same time deterministically; its low bit marks
	// a hop. Folding the kind in keeps an event at 32 bytes.
	seq  uint64
	buf  int32 // index into Network.bufs
	from NodeID
	to   NodeID // receiving node; for a hop, the unicast destination
	dst  int32  // group index, or -1 for unicast
}

func (e *event) hop() bool { return e.seq&1 != 0 }

func (e *event) before(o *event) bool {
	return e.at < o.at || e.at == o.at && e.seq < o.seq
}

// eventHeap is a binary min-heap ordered by (at, seq). It is written out
// rather than built on container/heap because boxing events in interfaces
// would allocate on every push.
type eventHeap []event

func (h *eventHeap) push(e event) {
	q := append(*h, e)
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !e.before(&q[p]) {
			break
		}
		q[i] = q[p]
		i = p
	}
	q[i] = e
	*h = q
}

func (h *eventHeap) pop() event {
	q := *h
	top := q[0]
	last := len(q) - 1
	e := q[last]
	q = q[:last]
	if last > 0 {
		// Sift the former last element down from the root, moving the
		// smaller child up into the hole at each level.
		i := 0
		for {
			c := 2*i + 1
			if c >= last {
				break
			}
			if r := c + 1; r < last && q[r].before(&q[c]) {
				c = r
			}
			if !q[c].before(&e) {
				break
			}
			q[i] = q[c]
			i = c
		}
		q[i] = e
	}
	*h = q
	return top
}

// pbuf is a pooled payload buffer shared by all copies of one sent packet.
type pbuf struct {
	data []byte
	refs int32
}

// newBuf copies p into a free buffer holding refs references.
func (n *Network) newBuf(p []byte, refs int32) int32 {
	var i int32
	if k := len(n.free); k > 0 {
		i = n.free[k-1]
		n.free = n.free[:k-1]
	} else {
		i = int32(len(n.bufs))
		n.bufs = append(n.bufs, pbuf{})
	}
	b := &n.bufs[i]
	if n.keep {
		// Endpoints may hold on to earlier payloads: carve a fresh one
		// from a slab, a few hundred packets to an allocation.
		if len(p) > cap(n.slab)-len(n.slab) {
			n.slab = make([]byte, 0, max(slabBytes, len(p)))
			n.arena.add(n.slab[:cap(n.slab)])
		}
		k := len(n.slab)
		n.slab = append(n.slab, p...)
		b.data = n.slab[k : k+len(p) : k+len(p)]
	} else {
		b.data = append(b.data[:0], p...)
	}
	b.refs = refs
	return i
}

// slabBytes is the size of the arrays KeepPayloads carves payloads from.
const slabBytes = 256 << 10

func (n *Network) release(i int32) {
	b := &n.bufs[i]
	if b.refs--; b.refs == 0 {
		n.free = append(n.free, i)
	}
}
