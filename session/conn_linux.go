//go:build linux

package session

import (
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
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

// writeGSO sends b, which holds equal-size datagrams of seg bytes (the last
// may be shorter), to dst in one system call; the kernel or NIC cuts it.
func (c *conn) writeGSO(b []byte, seg int, dst netip.AddrPort) error {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return err
	}
	var oob [unix.SizeofCmsghdr + 8]byte
	h := (*unix.Cmsghdr)(unsafePointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	putUint16Native(oob[unix.CmsgLen(0):], uint16(seg))
	var sa unix.Sockaddr
	if dst.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: dst.Addr().As16()}
	}
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b, oob[:unix.CmsgSpace(2)], sa, 0)
		return serr != unix.EAGAIN
	})
	if werr != nil {
		return werr
	}
	return serr
}
