package session

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"
)

// Loss describes injected packet loss: independent loss with probability
// Rate, or, with BurstLen > 1, Gilbert-Elliott bursts of that mean length
// averaging Rate.
type Loss struct {
	Rate     float64
	BurstLen float64
}

// LossConn wraps a PacketConn and drops a share of the datagrams sent and
// received through it, for tests and benchmarks: the same seed drops the
// same packets of the same sequence. Datagrams it drops on sending count as
// sent for the session (they are lost on the way, not refused). It does not
// offer GSO, so every datagram's fate is drawn on its own.
//
// A session whose Config.Conn is a LossConn reports its counts in
// Stats.InjectedTxLoss and Stats.InjectedRxLoss.
type LossConn struct {
	inner  PacketConn
	tx, rx *lossState
	keep   []Message // the datagrams of a write that survive, reused
	idx    []int     // and their indices in the caller's batch
	txDrop atomic.Uint64
	rxDrop atomic.Uint64
}

// NewLossConn returns inner with tx loss on the datagrams written and rx
// loss on those read, drawn reproducibly from seed; 0 means a random seed,
// so that two connections' losses are independent.
func NewLossConn(inner PacketConn, tx, rx Loss, seed uint64) *LossConn {
	if seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	return &LossConn{inner: inner, tx: newLoss(tx, seed, 101), rx: newLoss(rx, seed, 102)}
}

// Dropped returns how many datagrams the connection dropped so far on
// sending and on receiving.
func (l *LossConn) Dropped() (tx, rx uint64) { return l.txDrop.Load(), l.rxDrop.Load() }

// ReadBatch implements PacketConn: the inner connection's datagrams less
// those lost. A batch lost whole reads as a wake-up (0, nil).
func (l *LossConn) ReadBatch(msgs []Message, deadline time.Time) (int, error) {
	n, err := l.inner.ReadBatch(msgs, deadline)
	if l.rx == nil {
		return n, err
	}
	kept := 0
	for i := range n {
		if m := &msgs[i]; m.Segment > 0 && m.N > m.Segment {
			// Datagrams the kernel merged: each has its own fate, and the
			// survivors close up in place (only the last may be short, and
			// order is kept, so it stays last).
			at := 0
			for off := 0; off < m.N; off += m.Segment {
				k := min(m.Segment, m.N-off)
				if l.rx.drop() {
					l.rxDrop.Add(1)
					continue
				}
				copy(m.Buf[at:], m.Buf[off:off+k])
				at += k
			}
			if at == 0 {
				continue
			}
			m.N = at
		} else if l.rx.drop() {
			l.rxDrop.Add(1)
			continue
		}
		// Swap rather than copy, so that every buffer stays in msgs once.
		msgs[kept], msgs[i] = msgs[i], msgs[kept]
		kept++
	}
	return kept, err
}

// WriteBatch implements PacketConn: it writes the datagrams that survive
// and reports the lost ones as sent.
func (l *LossConn) WriteBatch(msgs []Message) (int, error) {
	if l.tx == nil {
		return l.inner.WriteBatch(msgs)
	}
	keep, idx := l.keep[:0], l.idx[:0]
	for i, m := range msgs {
		if l.tx.drop() {
			l.txDrop.Add(1)
			continue
		}
		keep, idx = append(keep, m), append(idx, i)
	}
	n, err := l.inner.WriteBatch(keep)
	clear(keep) // hold no buffer past the call
	l.keep, l.idx = keep, idx
	if err != nil && n < len(idx) {
		// The datagrams before the first unsent survivor had their fate
		// drawn: the caller should not repeat them.
		return idx[n], err
	}
	return len(msgs), err
}

// Wake implements PacketConn.
func (l *LossConn) Wake() { l.inner.Wake() }

// LocalAddr implements PacketConn.
func (l *LossConn) LocalAddr() netip.AddrPort { return l.inner.LocalAddr() }

// Close implements PacketConn.
func (l *LossConn) Close() error { return l.inner.Close() }

func (l *LossConn) socketBuffers() (r, w int) {
	if b, ok := l.inner.(socketBufferer); ok {
		return b.socketBuffers()
	}
	return 0, 0
}

// lossState decides injected losses, reproducibly for a seed.
type lossState struct {
	cfg Loss
	rng *rand.Rand
	bad bool // Gilbert-Elliott state
}

func newLoss(cfg Loss, seed uint64, stream uint64) *lossState {
	if cfg.Rate <= 0 {
		return nil
	}
	return &lossState{cfg: cfg, rng: rand.New(rand.NewPCG(seed, stream))}
}

// drop reports whether the next packet is lost. With bursts, the bad state
// loses everything and lasts BurstLen packets on average; the good state
// loses nothing, and the chance of entering the bad state is set so that
// the long-run loss is Rate.
func (l *lossState) drop() bool {
	if l == nil {
		return false
	}
	if l.cfg.BurstLen <= 1 {
		return l.rng.Float64() < l.cfg.Rate
	}
	exit := 1 / l.cfg.BurstLen
	if l.bad {
		if l.rng.Float64() < exit {
			l.bad = false
		}
	} else if l.rng.Float64() < exit*l.cfg.Rate/(1-l.cfg.Rate) {
		l.bad = true
	}
	return l.bad
}
