package session

import (
	"expvar"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// Tracer receives a session's low-level happenings as they occur, for
// logging and debugging, in the manner of quic-go's logging package: every
// field is optional, and nil ones cost nothing. Set it in Config.Tracer.
//
// The callbacks run on the session's goroutine, some with the session's
// lock held (RateChanged also inside SetRate, on its caller's goroutine):
// they must return quickly, must not call the Session, and must be safe
// for concurrent use.
type Tracer struct {
	// PacketSent: a datagram of size bytes went to the socket for to.
	PacketSent func(to netip.AddrPort, h framing.Header, size int)
	// PacketReceived: a NORM datagram arrived from from.
	PacketReceived func(from netip.AddrPort, h framing.Header, size int)
	// NackSent: this session's receiver sent a NACK.
	NackSent func(to netip.AddrPort, size int)
	// NackReceived: this session's sender got a NACK from node.
	NackReceived func(from netip.AddrPort, node NodeID)
	// RepairsSent: this session's sender sent n repair symbols (resent
	// source symbols or parity) since the last call.
	RepairsSent func(n int)
	// GRTTChanged: the sender's group round-trip time estimate changed.
	GRTTChanged func(grtt time.Duration)
	// RateChanged: the sender's rate changed, by SetRate, congestion
	// control or receivers falling behind.
	RateChanged func(bytesPerSec float64)
}

// traceState is what the session remembers to report changes. Owned by
// s.mu.
type traceState struct {
	rate    float64
	grtt    time.Duration
	repairs uint64
}

// observeTx compares the sender engine's figures with the last poll's:
// it publishes RateChanged and calls the tracer. Called with s.mu held.
func (s *Session) observeTx() {
	st := s.tx.Stats()
	tr, ts := s.cfg.Tracer, &s.trace
	if st.Rate != ts.rate {
		ts.rate = st.Rate
		s.publish(RateChanged{st.Rate})
		if tr != nil && tr.RateChanged != nil {
			tr.RateChanged(st.Rate)
		}
	}
	if tr == nil {
		return
	}
	if st.GRTT != ts.grtt {
		ts.grtt = st.GRTT
		if tr.GRTTChanged != nil {
			tr.GRTTChanged(st.GRTT)
		}
	}
	if r := st.RepairSource + st.RepairParity; r != ts.repairs {
		if tr.RepairsSent != nil {
			tr.RepairsSent(int(r - ts.repairs))
		}
		ts.repairs = r
	}
}

// traceSent reports a datagram sent. Called by the loop, without s.mu.
func (s *Session) traceSent(b []byte, to netip.AddrPort) {
	tr := s.cfg.Tracer
	h, _, err := framing.Peek(b)
	if err != nil {
		return
	}
	if tr.PacketSent != nil {
		tr.PacketSent(to, h, len(b))
	}
	if h.Type == framing.TypeNack && tr.NackSent != nil {
		tr.NackSent(to, len(b))
	}
}

// traceReceived reports a NORM datagram received. Called with s.mu held.
func (s *Session) traceReceived(h framing.Header, from netip.AddrPort, size int) {
	tr := s.cfg.Tracer
	if tr.PacketReceived != nil {
		tr.PacketReceived(from, h, size)
	}
	if h.Type == framing.TypeNack && s.tx != nil && tr.NackReceived != nil {
		tr.NackReceived(from, NodeID(h.SourceID))
	}
}

// PublishExpvar publishes the session's Stats under name in package
// expvar (served at /debug/vars by net/http's default mux when the
// program imports expvar's handler): every read takes a fresh snapshot.
// Like expvar.Publish, it panics if name is already in use; publish each
// session under its own name.
func (s *Session) PublishExpvar(name string) {
	expvar.Publish(name, expvar.Func(func() any { return s.Stats() }))
}
