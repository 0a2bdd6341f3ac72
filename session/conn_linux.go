//go:build linux

package session

import (
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/shoalnet/shoal/framing"
)

// bindAddr binds the group address itself on Linux, so the socket gets
// only datagrams sent to this group, not to every group joined on the port.
func bindAddr(g netip.AddrPort, _ *net.Interface) string { return g.String() }

// controlSocket lets several sessions share the port (several receivers on
// one host) and turns off IP_MULTICAST_ALL, without which Linux delivers
// every group joined by any socket on the host to every socket bound to the
// port.
func controlSocket(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		// SO_REUSEADDR, not SO_REUSEPORT: with SO_REUSEPORT the kernel
		// balances each datagram to one socket of the port, ignoring
		// which group a socket is bound to (seen in the lab: traffic for
		// one group delivered to the other group's socket only), whereas
		// with SO_REUSEADDR every matching socket gets its copy.
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		if network == "udp6" {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
		}
		// Kernel receive timestamps tell how long a datagram waited in the
		// socket before the session read it: that wait is this host's
		// backlog, which round-trip measurements must leave out. Without
		// them (an old kernel) the session times packets when it reads them.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		// UDP GRO: the kernel may hand over a run of datagrams of one flow
		// in one buffer (the reader splits them again), so that a GSO batch
		// from a sender on this host or across a veth, or a run that a
		// NIC's GRO merged, costs one trip through the stack and one read
		// instead of one per datagram. Where the kernel lacks it, nothing
		// changes.
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// feedbackOnly attaches a socket filter that keeps only NORM_NACK and
// NORM_ACK datagrams, and with node set only those to node (their
// server_id), for Config.SendOnly. The filter sees the UDP header (8
// bytes) first: the message type is the low nibble of the payload's first
// byte, and a NACK's or ACK's server_id is its payload's third word. UDP
// GRO is turned off: the filter would judge a merged run of datagrams by
// the first one.
func feedbackOnly(uc *net.UDPConn, node uint32) error {
	rc, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	const drop, keep = 0, 0xffffffff
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 8},
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x0f},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(framing.TypeNack), Jt: 1},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(framing.TypeAck), Jf: 2},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 8 + 8},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: node, Jt: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: drop},
		{Code: unix.BPF_RET | unix.BPF_K, K: keep},
	}
	if node == 0 {
		// Any server_id: a NACK or ACK goes straight to keep.
		prog[4] = unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: 2}
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 0); serr != nil {
			return
		}
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	})
	if err != nil {
		return err
	}
	return serr
}

func socketBuffers(uc *net.UDPConn) (r, w int) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = rc.Control(func(fd uintptr) {
		r, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		w, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	return r, w
}

// probeGSO reports whether the kernel supports UDP generic segmentation
// offload on this socket: setting UDP_SEGMENT to 0 is harmless and fails
// where it is unknown.
func probeGSO(uc *net.UDPConn) bool {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		ok = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, 0) == nil
	})
	return ok
}

// gsoWriter holds what a GSO write needs, built once: the control message
// and socket address are reused, and the send function is bound once, so a
// write costs no allocation.
type gsoWriter struct {
	rc   syscall.RawConn
	oob  [unix.SizeofCmsghdr + 8]byte
	sa4  unix.SockaddrInet4
	sa6  unix.SockaddrInet6
	sa   unix.Sockaddr
	buf  []byte
	oobn int
	err  error
	send func(fd uintptr) bool
}

// writeGSO sends b, which holds equal-size datagrams of seg bytes (the last
// may be shorter), to dst in one system call; the kernel or NIC cuts it.
func (c *udpConn) writeGSO(b []byte, seg int, dst netip.AddrPort) error {
	w := c.gw
	if w == nil {
		rc, err := c.uc.SyscallConn()
		if err != nil {
			return err
		}
		w = &gsoWriter{rc: rc}
		w.send = w.sendmsg
		h := (*unix.Cmsghdr)(unsafePointer(&w.oob[0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		w.oobn = unix.CmsgSpace(2)
		c.gw = w
	}
	putUint16Native(w.oob[unix.CmsgLen(0):], uint16(seg))
	if dst.Addr().Is4() {
		w.sa4.Port, w.sa4.Addr = int(dst.Port()), dst.Addr().As4()
		w.sa = &w.sa4
	} else {
		w.sa6.Port, w.sa6.Addr = int(dst.Port()), dst.Addr().As16()
		w.sa = &w.sa6
	}
	w.buf, w.err = b, nil
	if err := w.rc.Write(w.send); err != nil {
		return err
	}
	return w.err
}

func (w *gsoWriter) sendmsg(fd uintptr) bool {
	w.err = unix.Sendmsg(int(fd), w.buf, w.oob[:w.oobn], w.sa, 0)
	return w.err != unix.EAGAIN
}
