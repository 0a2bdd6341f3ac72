package simnet

import (
	"encoding/binary"
	"math"
	"net/netip"
	"testing"
	"time"
)

var (
	grp = netip.MustParseAddrPort("239.1.2.3:6003")
	t0  = time.Unix(0, 0).UTC()
	ms  = time.Millisecond
)

// rx is a received packet with its payload reduced to the sequence number
// the tests put in the first 8 bytes.
type rx struct {
	At       time.Duration // since t0
	From, To NodeID
	Dst      netip.AddrPort
	Seq      uint64
	Len      int
}

func seqPayload(buf []byte, seq uint64) []byte {
	binary.BigEndian.PutUint64(buf, seq)
	return buf
}

// drain delivers everything in flight and returns it, leaving the clock at
// the last event.
func drain(n *Network) []rx {
	var out []rx
	record := func(p Packet) {
		out = append(out, rx{At: p.At.Sub(t0), From: p.From, To: p.To, Dst: p.Dst, Seq: binary.BigEndian.Uint64(p.Payload), Len: len(p.Payload)})
	}
	for {
		next, ok := n.Next()
		if !ok {
			return out
		}
		n.DeliverUntil(next, record)
	}
}

// sendSeq sends count packets of size bytes from node from to dst, one
// every gap starting at t0, numbered 0..count-1.
func sendSeq(n *Network, from NodeID, dst netip.AddrPort, count int, gap time.Duration, size int) {
	buf := make([]byte, size)
	for i := range count {
		n.Send(t0.Add(time.Duration(i)*gap), from, dst, seqPayload(buf, uint64(i)))
	}
}

// received returns, per node, which sequence numbers arrived (at least once).
func received(pkts []rx, nodes int, count int) [][]bool {
	got := make([][]bool, nodes)
	for i := range got {
		got[i] = make([]bool, count)
	}
	for _, p := range pkts {
		got[p.To][p.Seq] = true
	}
	return got
}

// within fails the test unless got is within tol of want.
func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.5f, want %.5f ± %.5f", what, got, want, tol)
	} else {
		t.Logf("%s = %.5f (want %.5f ± %.5f)", what, got, want, tol)
	}
}
