// Package sessiontest runs whole sessions in one process, with no sockets
// and no privileges: an in-memory multicast network whose connections
// plug into session.Config.Conn. It is to package session what
// net/http/httptest is to net/http, for testing programs built on sessions
// (their Accept loops, file sinks, shutdown paths) on a simulated network
// with delay, jitter, loss and a bottleneck rate.
//
// The network runs on the clock of package time, so under testing/synctest
// a test's delays, timeouts and a session's timers all pass in virtual
// time, instantly and reproducibly:
//
//	synctest.Test(t, func(t *testing.T) {
//		nw := sessiontest.NewNetwork(1)
//		defer nw.Close()
//		group := netip.MustParseAddrPort("239.255.1.1:6003")
//		tx, _ := session.New(session.Config{Group: group, Conn: nw.Listen(group, sessiontest.Node{})})
//		rx, _ := session.New(session.Config{Group: group, Conn: nw.Listen(group, sessiontest.Node{})})
//		...
//	})
//
// Outside a synctest bubble it runs in real time. Create the network and
// the sessions inside the bubble that uses them, and close the sessions and
// then the network before the bubble's function returns.
package sessiontest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/session"
)

// Link describes one direction of a node's attachment to the network. The
// zero value is a perfect link: no delay, no loss, unlimited rate.
type Link struct {
	// Delay is the fixed one-way delay; Jitter bounds a uniformly random
	// extra delay per packet, which reorders packets closer than it.
	Delay, Jitter time.Duration
	// Loss is the probability that a packet is lost. With BurstLen > 1,
	// losses come in Gilbert-Elliott bursts of that mean length, averaging
	// Loss.
	Loss     float64
	BurstLen float64
	// Rate, in bits per second, makes the link a bottleneck whose queue
	// holds QueueBytes (0: as good as unlimited). 0 means unlimited.
	Rate       int64
	QueueBytes int
}

func (l Link) sim() simnet.LinkConfig {
	c := simnet.LinkConfig{Delay: l.Delay, Jitter: l.Jitter, Rate: l.Rate, QueueBytes: l.QueueBytes}
	switch {
	case l.Loss <= 0:
	case l.BurstLen > 1:
		exit := 1 / l.BurstLen
		c.Loss = simnet.GilbertElliott{PGoodToBad: min(1, exit*l.Loss/(1-l.Loss)), PBadToGood: exit, LossBad: 1}
	default:
		c.Loss = simnet.Bernoulli{P: min(1, l.Loss)}
	}
	return c
}

// Node configures one connection's attachment: Up impairs what it sends
// (once, before the copies fan out to the group, so every receiver sees
// the loss), Down what it receives.
type Node struct {
	Up, Down Link
	// Loopback delivers the node's multicast to itself, as the kernel does
	// for a socket by default. Sessions ignore their own packets either
	// way.
	Loopback bool
	// Queue bounds the datagrams waiting to be read, like a socket's
	// receive buffer; more are dropped. 0 means 4096.
	Queue int
}

// Network is an in-memory multicast network. Its methods and its
// connections' methods are safe for concurrent use.
type Network struct {
	mu     sync.Mutex
	n      *simnet.Network
	conns  []*Conn // by simnet.NodeID
	closed bool
	seq    int

	poke chan struct{} // a packet was sent: plan deliveries again
	quit chan struct{}
	done chan struct{}
}

// NewNetwork returns a network whose random draws (loss, jitter) derive
// from seed, and starts the goroutine that delivers its packets. Close
// stops it.
func NewNetwork(seed uint64) *Network {
	nw := &Network{
		n:    simnet.New(simnet.Config{Seed: seed, Start: time.Now()}),
		poke: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go nw.deliver()
	return nw
}

// Listen adds a node that is a member of group and returns its connection,
// for session.Config.Conn. Each node gets its own unicast address (see
// Conn.LocalAddr), from which it sends. Listen panics if group is not a
// multicast address.
func (nw *Network) Listen(group netip.AddrPort, node Node) *Conn {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.seq++
	id := nw.n.AddNode(fmt.Sprint("node", nw.seq), simnet.NodeConfig{Up: node.Up.sim(), Down: node.Down.sim(), Loopback: node.Loopback})
	nw.n.Join(id, group)
	q := node.Queue
	if q <= 0 {
		q = 4096
	}
	c := &Conn{nw: nw, id: id, group: group, addr: nw.n.Addr(id), max: q, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	c.timer = time.NewTimer(time.Hour)
	c.timer.Stop()
	nw.conns = append(nw.conns, c)
	return c
}

// Close stops the network's goroutine; packets in flight are dropped. Close
// the sessions first.
func (nw *Network) Close() {
	nw.mu.Lock()
	if nw.closed {
		nw.mu.Unlock()
		return
	}
	nw.closed = true
	nw.mu.Unlock()
	close(nw.quit)
	<-nw.done
}

// deliver hands packets to their connections when they arrive.
func (nw *Network) deliver() {
	defer close(nw.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		nw.mu.Lock()
		nw.n.DeliverUntil(time.Now(), nw.arrive)
		next, ok := nw.n.Next()
		nw.mu.Unlock()
		var tc <-chan time.Time
		if ok {
			timer.Reset(time.Until(next))
			tc = timer.C
		}
		select {
		case <-nw.poke:
		case <-tc:
		case <-nw.quit:
			return
		}
	}
}

// arrive queues a delivered packet at its connection. Called with nw.mu
// held.
func (nw *Network) arrive(p simnet.Packet) {
	c := nw.conns[p.To]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed || len(c.queue) >= c.max {
		c.dropped++
		return
	}
	var b []byte
	if k := len(c.free); k > 0 {
		b, c.free = c.free[k-1][:0], c.free[:k-1]
	}
	c.queue = append(c.queue, datagram{b: append(b, p.Payload...), from: nw.n.Addr(p.From)})
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Conn is one node's connection to a Network: a session.PacketConn.
type Conn struct {
	nw    *Network
	id    simnet.NodeID
	group netip.AddrPort
	addr  netip.AddrPort
	max   int
	timer *time.Timer // ReadBatch's deadline; used by the reader only

	notify chan struct{} // a datagram arrived or Wake was called
	closed chan struct{}

	mu       sync.Mutex
	queue    []datagram
	free     [][]byte
	dropped  uint64
	isClosed bool
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

var _ session.PacketConn = (*Conn)(nil)

// ReadBatch implements session.PacketConn. Received is left zero: the
// session takes the time it reads a datagram as its arrival.
func (c *Conn) ReadBatch(msgs []session.Message, deadline time.Time) (int, error) {
	for {
		c.mu.Lock()
		if c.isClosed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		n := 0
		for n < len(msgs) && n < len(c.queue) {
			d := c.queue[n]
			m := &msgs[n]
			m.N = copy(m.Buf, d.b)
			m.Addr, m.Received = d.from, time.Time{}
			c.free = append(c.free, d.b)
			n++
		}
		if n > 0 {
			k := copy(c.queue, c.queue[n:])
			clear(c.queue[k:])
			c.queue = c.queue[:k]
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
		var tc <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, nil
			}
			c.timer.Reset(d)
			tc = c.timer.C
		}
		select {
		case <-c.notify:
			c.timer.Stop()
			c.mu.Lock()
			woken := len(c.queue) == 0
			c.mu.Unlock()
			if woken {
				return 0, nil // Wake
			}
		case <-tc:
			return 0, nil
		case <-c.closed:
			c.timer.Stop()
			return 0, net.ErrClosed
		}
	}
}

// WriteBatch implements session.PacketConn: each datagram is sent to a
// group (its members) or a node's unicast address.
func (c *Conn) WriteBatch(msgs []session.Message) (int, error) {
	nw := c.nw
	nw.mu.Lock()
	if nw.closed {
		nw.mu.Unlock()
		return 0, errNetworkClosed
	}
	c.mu.Lock()
	closed := c.isClosed
	c.mu.Unlock()
	if closed {
		nw.mu.Unlock()
		return 0, net.ErrClosed
	}
	now := time.Now()
	for _, m := range msgs {
		nw.n.Send(now, c.id, m.Addr, m.Buf)
	}
	nw.mu.Unlock()
	select {
	case nw.poke <- struct{}{}:
	default:
	}
	return len(msgs), nil
}

var errNetworkClosed = errors.New("sessiontest: network closed")

// Wake implements session.PacketConn.
func (c *Conn) Wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// LocalAddr implements session.PacketConn: the node's unicast address.
func (c *Conn) LocalAddr() netip.AddrPort { return c.addr }

// Close implements session.PacketConn: the node leaves its group and drops
// what it had not read.
func (c *Conn) Close() error {
	c.nw.mu.Lock()
	defer c.nw.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return net.ErrClosed
	}
	c.isClosed = true
	c.queue = nil
	close(c.closed)
	c.nw.n.Leave(c.id, c.group)
	return nil
}

// Dropped returns how many datagrams arrived at a full queue (or after
// Close) and were dropped.
func (c *Conn) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}
