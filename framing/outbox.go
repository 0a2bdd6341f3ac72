package framing

import "net/netip"

// Outbox collects the packets an engine wants sent, in wire form, so the I/O
// layer can hand them to one batched write (sendmmsg, GSO) and the engine
// never touches a socket. Packets are appended into one growing buffer that
// is reused after Reset, so a steady stream of polls allocates nothing.
type Outbox struct {
	buf  []byte
	ends []int
	dsts []netip.AddrPort
}

// Buf returns the buffer to append the next packet to (pass it to a
// message's Append, then the result to Commit).
func (o *Outbox) Buf() []byte { return o.buf }

// Commit records b, which must be Buf() with one message appended, as the
// next packet. A zero dst means the session's multicast group; otherwise the
// packet goes to dst by unicast.
func (o *Outbox) Commit(b []byte, dst netip.AddrPort) {
	o.buf = b
	o.ends = append(o.ends, len(b))
	o.dsts = append(o.dsts, dst)
}

// Len returns the number of packets.
func (o *Outbox) Len() int { return len(o.ends) }

// Packet returns packet i and its destination (zero: the group). The bytes
// are valid until Reset.
func (o *Outbox) Packet(i int) ([]byte, netip.AddrPort) {
	start := 0
	if i > 0 {
		start = o.ends[i-1]
	}
	return o.buf[start:o.ends[i]:o.ends[i]], o.dsts[i]
}

// Span returns packets i to j-1 as one contiguous slice, as they lie in the
// outbox's buffer: a run of equal-size datagrams is then ready for a single
// segmentation-offload (GSO) write.
func (o *Outbox) Span(i, j int) []byte {
	start := 0
	if i > 0 {
		start = o.ends[i-1]
	}
	return o.buf[start:o.ends[j-1]:o.ends[j-1]]
}

// Reset empties the outbox, keeping its memory.
func (o *Outbox) Reset() {
	o.buf = o.buf[:0]
	o.ends = o.ends[:0]
	o.dsts = o.dsts[:0]
}
