//go:build linux

package session

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg call may return.
const batchSize = 64

// mmsghdr is the kernel's struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// reader reads datagrams in batches with recvmmsg: one system call for up
// to batchSize packets, into buffers allocated once.
type reader struct {
	rc    syscall.RawConn
	hdrs  [batchSize]mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrAny
	bufs  [batchSize][]byte
	// ctrl receives each datagram's kernel receive timestamp
	// (SO_TIMESTAMPNS), when the socket has them turned on.
	ctrl [batchSize][ctrlLen]byte
	n    int // datagrams in the current batch
	next int // next one to hand out
	// rest is what is left of a coalesced (UDP GRO) datagram: segments of
	// seg bytes (the last may be shorter) from restFrom, received at
	// restStamp.
	rest      []byte
	seg       int
	restFrom  netip.AddrPort
	restStamp int64
	coalesced atomic.Uint64 // datagrams that came in a coalesced run (Stats reads it from another goroutine)
	errno     syscall.Errno
	// recv is bound once: a closure made per call would cost an
	// allocation per read.
	recv func(fd uintptr) bool
}

func newReader(c *conn) (*reader, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &reader{rc: rc}
	r.recv = r.recvmmsg
	for i := range r.bufs {
		r.bufs[i] = make([]byte, 65536)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(len(r.bufs[i]))
		h := &r.hdrs[i].hdr
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Control = &r.ctrl[i][0]
	}
	return r, nil
}

// ctrlLen holds an SCM_TIMESTAMPNS and a UDP_GRO message, with room to
// spare for another the kernel may add.
const ctrlLen = 96

// buffered is how many datagrams of the current batch are still to be
// handed out: read returns them without a system call.
func (r *reader) buffered() int {
	if len(r.rest) > 0 {
		return r.n - r.next + 1
	}
	return r.n - r.next
}

// info returns the kernel receive time of datagram i in Unix nanoseconds
// (0 if it carries none) and, for a datagram the kernel coalesced from
// several (UDP GRO), their size (else 0).
func (r *reader) info(i int) (stamp int64, seg int) {
	h := &r.hdrs[i].hdr
	ctrl := r.ctrl[i][:min(int(h.Controllen), ctrlLen)]
	for len(ctrl) >= unix.SizeofCmsghdr {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		l := int(c.Len)
		if l < unix.SizeofCmsghdr || l > len(ctrl) {
			return stamp, seg
		}
		switch {
		case c.Level == unix.SOL_SOCKET && c.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))):
			ts := (*unix.Timespec)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
			stamp = ts.Nano()
		case c.Level == unix.SOL_UDP && c.Type == unix.UDP_GRO && l >= unix.CmsgLen(4):
			seg = int(*(*int32)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)])))
		}
		ctrl = ctrl[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(ctrl)):]
	}
	return stamp, seg
}

// read returns the next datagram and its kernel receive time (Unix
// nanoseconds, 0 if unknown), reading a new batch when the current one is
// used up. The bytes are valid until the next call. It blocks until the
// socket's read deadline.
func (r *reader) read() ([]byte, netip.AddrPort, int64, error) {
	if len(r.rest) > 0 {
		n := min(r.seg, len(r.rest))
		b := r.rest[:n]
		r.rest = r.rest[n:]
		return b, r.restFrom, r.restStamp, nil
	}
	if r.next >= r.n {
		r.n, r.next = 0, 0
		for i := range r.hdrs {
			r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrAny
			r.hdrs[i].hdr.SetControllen(ctrlLen)
		}
		if err := r.rc.Read(r.recv); err != nil {
			return nil, netip.AddrPort{}, 0, err
		}
		if r.errno != 0 {
			return nil, netip.AddrPort{}, 0, r.errno
		}
	}
	i := r.next
	r.next++
	b, from := r.bufs[i][:r.hdrs[i].len], sockaddr(&r.names[i])
	stamp, seg := r.info(i)
	if seg > 0 && len(b) > seg {
		// Several datagrams of one flow, coalesced by the kernel: they are
		// handed out one by one, as if read apart.
		r.rest, r.seg, r.restFrom, r.restStamp = b[seg:], seg, from, stamp
		r.coalesced.Add(uint64((len(b) + seg - 1) / seg))
		b = b[:seg]
	}
	return b, from, stamp, nil
}

func (r *reader) recvmmsg(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		return false
	}
	r.n, r.errno = int(n), e
	if e != 0 {
		r.n = 0
	}
	return true
}

func sockaddr(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), port(a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), port(a.Port))
	}
	return netip.AddrPort{}
}

// port converts a port in network byte order as the kernel stores it.
func port(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}
