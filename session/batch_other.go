//go:build !linux

package session

import (
	"net/netip"
	"sync/atomic"
)

// reader reads one datagram per system call where recvmmsg is not
// available.
type reader struct {
	c         *conn
	buf       []byte
	coalesced atomic.Uint64 // always 0: no UDP GRO here
}

func newReader(c *conn) (*reader, error) { return &reader{c: c, buf: make([]byte, 65536)}, nil }

// read returns the next datagram; receive timestamps are not read here
// (0: unknown).
func (r *reader) read() ([]byte, netip.AddrPort, int64, error) {
	n, from, err := r.c.uc.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		return nil, from, 0, err
	}
	return r.buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), 0, nil
}

func (r *reader) buffered() int { return 0 }
