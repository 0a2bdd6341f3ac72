//go:build !linux

package session

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// bindAddr binds the wildcard address: not every stack accepts binding a
// multicast address.
func bindAddr(g netip.AddrPort, _ *net.Interface) string {
	if g.Addr().Is4() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), g.Port()).String()
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), g.Port()).String()
}

func controlSocket(network, address string, rc syscall.RawConn) error {
	return controlReuse(rc)
}

func socketBuffers(uc *net.UDPConn) (r, w int) { return 0, 0 }

func probeGSO(*net.UDPConn) bool { return false }

// feedbackOnly is Linux-only: elsewhere the session drops what it does not
// want itself.
func feedbackOnly(*net.UDPConn, uint32) error {
	return errors.New("session: socket filters are Linux-only")
}

type gsoWriter struct{}

func (c *udpConn) writeGSO([]byte, int, netip.AddrPort) error {
	return errors.New("session: GSO is Linux-only")
}
