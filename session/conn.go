package session

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// conn is the session's UDP socket: bound to the group's port, joined to
// the group, sending to the group from the same port.
type conn struct {
	uc     *net.UDPConn
	p4     *ipv4.PacketConn
	p6     *ipv6.PacketConn
	group  netip.AddrPort
	ifi    *net.Interface
	source netip.Addr
	gso    gsoState
	rbuf   int // socket buffer sizes the kernel granted
	wbuf   int
	rd     *reader
	gw     *gsoWriter // Linux GSO writes, set up on first use
	batch  []outPacket
	msgs4  []ipv4.Message
	msgs6  []ipv6.Message
	addrs  []net.UDPAddr
	bufs   [][1][]byte
}

// outPacket is a datagram waiting in a send batch.
type outPacket struct {
	b   []byte
	dst netip.AddrPort
}

// sendBatch is how many datagrams one sendmmsg call may carry.
const sendBatch = 64

// writeBatch sends pkts with as few system calls as the platform allows
// (sendmmsg on Linux) and returns how many datagrams and bytes went out.
// The message structures are allocated once and reused.
func (c *conn) writeBatch(pkts []outPacket) (int, int, error) {
	if c.addrs == nil {
		c.addrs = make([]net.UDPAddr, sendBatch)
		c.bufs = make([][1][]byte, sendBatch)
		c.msgs4 = make([]ipv4.Message, sendBatch)
		c.msgs6 = make([]ipv6.Message, sendBatch)
		for i := range c.addrs {
			c.addrs[i].IP = make(net.IP, 16)
		}
	}
	for i, p := range pkts {
		a := &c.addrs[i]
		a.IP = a.IP[:16]
		if p.dst.Addr().Is4() {
			v := p.dst.Addr().As4()
			a.IP = a.IP[:4]
			copy(a.IP, v[:])
		} else {
			v := p.dst.Addr().As16()
			copy(a.IP, v[:])
		}
		a.Port = int(p.dst.Port())
		c.bufs[i][0] = p.b
		c.msgs4[i] = ipv4.Message{Buffers: c.bufs[i][:], Addr: a}
		c.msgs6[i] = ipv6.Message{Buffers: c.bufs[i][:], Addr: a}
	}
	sent, bytes := 0, 0
	for sent < len(pkts) {
		var n int
		var err error
		if c.p4 != nil {
			n, err = c.p4.WriteBatch(c.msgs4[sent:len(pkts)], 0)
		} else {
			n, err = c.p6.WriteBatch(c.msgs6[sent:len(pkts)], 0)
		}
		n = max(n, 0) // x/net reports -1 with an error
		for _, p := range pkts[sent : sent+n] {
			bytes += len(p.b)
		}
		sent += n
		if err != nil {
			return sent, bytes, err
		}
		if n == 0 {
			return sent, bytes, errors.New("session: sendmmsg sent nothing")
		}
	}
	return sent, bytes, nil
}

type gsoState struct {
	enabled bool // the kernel accepted UDP_SEGMENT and no send failed
}

// openConn creates and configures the socket.
func openConn(cfg *Config) (*conn, error) {
	g := netip.AddrPortFrom(cfg.Group.Addr().Unmap(), cfg.Group.Port())
	c := &conn{group: g, source: cfg.Source}
	if cfg.Interface != "" {
		ifi, err := net.InterfaceByName(cfg.Interface)
		if err != nil {
			return nil, fmt.Errorf("session: interface %q: %w", cfg.Interface, err)
		}
		c.ifi = ifi
	}
	lc := net.ListenConfig{Control: controlSocket}
	network := "udp4"
	if g.Addr().Is6() {
		network = "udp6"
	}
	pc, err := lc.ListenPacket(bgCtx, network, bindAddr(g, c.ifi))
	if err != nil {
		return nil, fmt.Errorf("session: listen on %v: %w", g, err)
	}
	c.uc = pc.(*net.UDPConn)
	if err := c.setup(cfg); err != nil {
		c.uc.Close()
		return nil, err
	}
	return c, nil
}

func (c *conn) setup(cfg *Config) error {
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = 1
	}
	grp := &net.UDPAddr{IP: c.group.Addr().AsSlice()}
	if c.group.Addr().Is4() {
		c.p4 = ipv4.NewPacketConn(c.uc)
		if c.source.IsValid() {
			if err := c.p4.JoinSourceSpecificGroup(c.ifi, grp, &net.UDPAddr{IP: c.source.AsSlice()}); err != nil {
				return fmt.Errorf("session: join (%v, %v): %w", c.source, c.group.Addr(), err)
			}
		} else if err := c.p4.JoinGroup(c.ifi, grp); err != nil {
			return fmt.Errorf("session: join %v: %w", c.group.Addr(), err)
		}
		if err := c.p4.SetMulticastTTL(ttl); err != nil {
			return fmt.Errorf("session: TTL: %w", err)
		}
		if err := c.p4.SetMulticastLoopback(!cfg.DisableLoopback); err != nil {
			return fmt.Errorf("session: multicast loopback: %w", err)
		}
		if c.ifi != nil {
			if err := c.p4.SetMulticastInterface(c.ifi); err != nil {
				return fmt.Errorf("session: multicast interface: %w", err)
			}
		}
	} else {
		c.p6 = ipv6.NewPacketConn(c.uc)
		if c.source.IsValid() {
			if err := c.p6.JoinSourceSpecificGroup(c.ifi, grp, &net.UDPAddr{IP: c.source.AsSlice()}); err != nil {
				return fmt.Errorf("session: join (%v, %v): %w", c.source, c.group.Addr(), err)
			}
		} else if err := c.p6.JoinGroup(c.ifi, grp); err != nil {
			return fmt.Errorf("session: join %v: %w", c.group.Addr(), err)
		}
		if err := c.p6.SetMulticastHopLimit(ttl); err != nil {
			return fmt.Errorf("session: hop limit: %w", err)
		}
		if err := c.p6.SetMulticastLoopback(!cfg.DisableLoopback); err != nil {
			return fmt.Errorf("session: multicast loopback: %w", err)
		}
		if c.ifi != nil {
			if err := c.p6.SetMulticastInterface(c.ifi); err != nil {
				return fmt.Errorf("session: multicast interface: %w", err)
			}
		}
	}
	rb, wb := cfg.ReadBuffer, cfg.WriteBuffer
	if rb == 0 {
		rb = 4 << 20
	}
	if wb == 0 {
		wb = 4 << 20
	}
	// Errors only mean the kernel capped the size; what it granted is
	// read back and reported in Stats.
	_ = c.uc.SetReadBuffer(rb)
	_ = c.uc.SetWriteBuffer(wb)
	c.rbuf, c.wbuf = socketBuffers(c.uc)
	c.gso.enabled = !cfg.DisableGSO && probeGSO(c.uc)
	c.batch = make([]outPacket, 0, sendBatch)
	rd, err := newReader(c)
	if err != nil {
		return err
	}
	c.rd = rd
	return nil
}

// read returns the next datagram (valid until the next call) and its
// kernel receive time (Unix nanoseconds, 0 if unknown), blocking
// until the socket's read deadline. Datagrams from other sources are
// dropped when the session is source-specific.
func (c *conn) read() ([]byte, netip.AddrPort, int64, error) {
	for {
		b, from, ts, err := c.rd.read()
		if err != nil {
			return nil, from, 0, err
		}
		if c.source.IsValid() && from.Addr() != c.source {
			continue // the kernel filters SSM joins; this covers stacks that don't
		}
		return b, from, ts, nil
	}
}

// readBuffered is read for the datagrams left of the batch the last read
// fetched: it never makes a system call, and returns ok false when none is
// left.
func (c *conn) readBuffered() ([]byte, netip.AddrPort, int64, bool) {
	for c.rd.buffered() > 0 {
		b, from, ts, err := c.rd.read()
		if err != nil {
			return nil, from, 0, false
		}
		if c.source.IsValid() && from.Addr() != c.source {
			continue
		}
		return b, from, ts, true
	}
	return nil, netip.AddrPort{}, 0, false
}

// kick makes a blocked read return at once.
func (c *conn) kick() { _ = c.uc.SetReadDeadline(time.Unix(1, 0)) }

// localAddr is the address the session sends from.
func (c *conn) localAddr() netip.AddrPort {
	a, _ := c.uc.LocalAddr().(*net.UDPAddr)
	if a == nil {
		return netip.AddrPort{}
	}
	return a.AddrPort()
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
