package session

import (
	"net/netip"
	"time"
)

// PacketConn is a session's packet I/O: by default a UDP socket joined to
// the group (see Listen), or whatever Config.Conn supplies, such as an
// in-memory network for tests (package sessiontest) or a wrapper that
// injects loss (NewLossConn).
//
// The session calls ReadBatch and WriteBatch from its one goroutine, never
// concurrently with each other; Wake, LocalAddr and Close may be called
// from any goroutine at any time.
type PacketConn interface {
	// ReadBatch waits until at least one datagram has arrived, deadline
	// has passed, or Wake was called, and returns how many of msgs it
	// filled: for each, the datagram in Buf[:N], its source in Addr and
	// its receive time in Received. A timeout or a wake-up returns 0 and
	// no error. Every Buf is non-empty; a datagram longer than its Buf is
	// truncated. An error ends the session, unless the session is closing
	// and closed the connection itself.
	ReadBatch(msgs []Message, deadline time.Time) (int, error)
	// WriteBatch sends each msgs[i].Buf to msgs[i].Addr (a group or a
	// unicast address) and returns how many were sent; it stops at the
	// first error. The session may reuse the buffers once it returns.
	WriteBatch(msgs []Message) (int, error)
	// Wake makes the ReadBatch in progress return at once, or, if none is
	// in progress, the next one.
	Wake()
	// LocalAddr is the address the connection sends from.
	LocalAddr() netip.AddrPort
	// Close releases the connection and makes ReadBatch return an error.
	Close() error
}

// Message is one datagram read or written by a PacketConn.
type Message struct {
	// Buf holds the datagram to write, or, when reading, the buffer to
	// read into (its length is the most that is read).
	Buf []byte
	// N is the length of the datagram read into Buf.
	N int
	// Segment, when reading, is nonzero if Buf[:N] holds several datagrams
	// of one source that the kernel merged (UDP GRO): each of Segment
	// bytes, the last perhaps shorter. The session handles them one by
	// one.
	Segment int
	// Addr is the destination of a written datagram or the source of a
	// read one.
	Addr netip.AddrPort
	// Received is when a read datagram reached the host (the kernel's
	// receive timestamp), or zero if unknown, in which case the session
	// takes the time it read the datagram. The session compares it with
	// the wall clock to leave the time a datagram waited in a receive
	// queue out of its round-trip measurements.
	Received time.Time
}

// GSOWriter is implemented by a PacketConn that can hand a run of
// equal-size datagrams to the kernel in one call (UDP generic segmentation
// offload on Linux). The session uses it unless Config.DisableGSO is set,
// and falls back to WriteBatch for good after the first error.
type GSOWriter interface {
	// WriteGSO sends b, datagrams of seg bytes each (the last may be
	// shorter), to dst.
	WriteGSO(b []byte, seg int, dst netip.AddrPort) error
}

// socketBufferer is implemented by the UDP connection (and passed through
// by wrappers) to report the socket buffer sizes the kernel granted.
type socketBufferer interface {
	socketBuffers() (r, w int)
}

// Listen opens the UDP socket that New opens when Config.Conn is nil: bound
// to cfg.Group's port, joined to the group on cfg.Interface (from
// cfg.Source only, if set), with cfg's TTL, loopback, buffer and GSO
// settings. Use it to wrap the socket, as with NewLossConn, before handing
// it to New in Config.Conn.
func Listen(cfg Config) (PacketConn, error) {
	if err := checkGroup(cfg.Group, cfg.AllowReserved); err != nil {
		return nil, err
	}
	c, err := openConn(&cfg)
	if err != nil {
		return nil, err
	}
	if c.gsoOK {
		return gsoConn{c}, nil
	}
	return c, nil
}
