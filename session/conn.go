package session

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpConn is the session's UDP socket: bound to the group's port, joined
// to the group, sending to the group from the same port. It implements
// PacketConn; gsoConn adds GSOWriter where the kernel supports it.
type udpConn struct {
	uc     *net.UDPConn
	p4     *ipv4.PacketConn
	p6     *ipv6.PacketConn
	group  netip.AddrPort
	ifi    *net.Interface
	source netip.Addr
	gsoOK  bool // the kernel accepted UDP_SEGMENT and GSO was not disabled
	rbuf   int  // socket buffer sizes the kernel granted
	wbuf   int
	rd     *reader
	gw     *gsoWriter // Linux GSO writes, set up on first use
	woken  atomic.Bool
	msgs4  []ipv4.Message
	msgs6  []ipv6.Message
	addrs  []net.UDPAddr
	bufs   [][1][]byte
}

// gsoConn is a udpConn whose kernel takes GSO writes.
type gsoConn struct{ *udpConn }

// WriteGSO implements GSOWriter.
func (c gsoConn) WriteGSO(b []byte, seg int, dst netip.AddrPort) error {
	return c.writeGSO(b, seg, dst)
}

// sendBatch is how many datagrams one sendmmsg call may carry.
const sendBatch = 64

// WriteBatch sends msgs with as few system calls as the platform allows
// (sendmmsg on Linux). The message structures are allocated once and
// reused.
func (c *udpConn) WriteBatch(msgs []Message) (int, error) {
	if c.addrs == nil {
		c.addrs = make([]net.UDPAddr, sendBatch)
		c.bufs = make([][1][]byte, sendBatch)
		c.msgs4 = make([]ipv4.Message, sendBatch)
		c.msgs6 = make([]ipv6.Message, sendBatch)
		for i := range c.addrs {
			c.addrs[i].IP = make(net.IP, 16)
		}
	}
	sent := 0
	for sent < len(msgs) {
		k := min(len(msgs)-sent, sendBatch)
		for i, p := range msgs[sent : sent+k] {
			a := &c.addrs[i]
			a.IP = a.IP[:16]
			if p.Addr.Addr().Is4() {
				v := p.Addr.Addr().As4()
				a.IP = a.IP[:4]
				copy(a.IP, v[:])
			} else {
				v := p.Addr.Addr().As16()
				copy(a.IP, v[:])
			}
			a.Port = int(p.Addr.Port())
			c.bufs[i][0] = p.Buf
			c.msgs4[i] = ipv4.Message{Buffers: c.bufs[i][:], Addr: a}
			c.msgs6[i] = ipv6.Message{Buffers: c.bufs[i][:], Addr: a}
		}
		for done := 0; done < k; {
			var n int
			var err error
			if c.p4 != nil {
				n, err = c.p4.WriteBatch(c.msgs4[done:k], 0)
			} else {
				n, err = c.p6.WriteBatch(c.msgs6[done:k], 0)
			}
			done += n
			if err != nil {
				return sent + done, err
			}
			if n == 0 {
				return sent + done, errors.New("session: sendmmsg sent nothing")
			}
		}
		sent += k
	}
	return sent, nil
}

// openConn creates and configures the socket.
func openConn(cfg *Config) (*udpConn, error) {
	g := netip.AddrPortFrom(cfg.Group.Addr().Unmap(), cfg.Group.Port())
	c := &udpConn{group: g, source: cfg.Source}
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

func (c *udpConn) setup(cfg *Config) error {
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
	c.gsoOK = !cfg.DisableGSO && probeGSO(c.uc)
	if cfg.SendOnly && cfg.Security == nil {
		// Best effort: without the filter the session drops the same
		// packets itself (Session.handle).
		_ = feedbackOnly(c.uc, uint32(cfg.NodeID))
	}
	rd, err := newReader(c)
	if err != nil {
		return err
	}
	c.rd = rd
	return nil
}

// ReadBatch reads datagrams into msgs (recvmmsg on Linux), waiting until
// deadline or Wake.
func (c *udpConn) ReadBatch(msgs []Message, deadline time.Time) (int, error) {
	if err := c.uc.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	// A Wake between the last read and the deadline just set was undone
	// by it: the flag remembers it.
	if c.woken.Swap(false) {
		return 0, nil
	}
	n, err := c.rd.read(msgs)
	// A Wake that ended this read, or came while it returned, has done
	// its work: the session polls the engines after every ReadBatch.
	c.woken.Store(false)
	if isTimeout(err) {
		return 0, nil
	}
	return n, err
}

// Wake makes a blocked ReadBatch return at once.
func (c *udpConn) Wake() {
	c.woken.Store(true)
	_ = c.uc.SetReadDeadline(time.Unix(1, 0))
}

// Close closes the socket.
func (c *udpConn) Close() error { return c.uc.Close() }

func (c *udpConn) socketBuffers() (r, w int) { return c.rbuf, c.wbuf }

// LocalAddr is the address the session sends from.
func (c *udpConn) LocalAddr() netip.AddrPort {
	a, _ := c.uc.LocalAddr().(*net.UDPAddr)
	if a == nil {
		return netip.AddrPort{}
	}
	return a.AddrPort()
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
