//go:build !linux

package session

import "net/netip"

// reader reads one datagram per system call where recvmmsg is not
// available.
type reader struct {
	c   *conn
	buf []byte
}

func newReader(c *conn) (*reader, error) { return &reader{c: c, buf: make([]byte, 65536)}, nil }

func (r *reader) read() ([]byte, netip.AddrPort, error) {
	n, from, err := r.c.uc.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		return nil, from, err
	}
	return r.buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
}
