//go:build !linux

package session

import (
	"errors"
	"net/netip"
)

// reader reads one datagram per system call where recvmmsg is not
// available.
type reader struct {
	c *udpConn
}

func newReader(c *udpConn) (*reader, error) { return &reader{c: c}, nil }

// read reads one datagram into msgs[0]; receive timestamps are not read
// here (zero: unknown).
func (r *reader) read(msgs []Message) (int, error) {
	if len(msgs) == 0 || len(msgs[0].Buf) == 0 {
		return 0, errors.New("session: ReadBatch with an empty buffer")
	}
	n, from, err := r.c.uc.ReadFromUDPAddrPort(msgs[0].Buf)
	if err != nil {
		return 0, err
	}
	m := &msgs[0]
	m.N, m.Addr = n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return 1, nil
}
