//go:build linux

package session

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg call may return.
const batchSize = 64

// mmsghdr is the kernel's struct mmsghdr: a msghdr followed by the
// unsigned int length, padded to the msghdr's alignment. Go lays the struct
// out the same way on every architecture (8-byte aligned with 4 bytes of
// tail padding on 64-bit ones, 4-byte aligned and unpadded on 32-bit ones),
// which the constants below check at compile time.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// kernelMmsghdrSize is sizeof(struct mmsghdr) as the kernel computes it:
// the msghdr, the length, rounded up to the alignment of a pointer (the
// largest member of msghdr on every Linux architecture).
const kernelMmsghdrSize = (unix.SizeofMsghdr + 4 + ptrSize - 1) / ptrSize * ptrSize

const ptrSize = unsafe.Sizeof(uintptr(0))

// Compile-time layout checks: each array length is a constant that is
// negative, and so fails to compile, if the layout differs from the
// kernel's.
var (
	_ [unsafe.Sizeof(mmsghdr{}) - kernelMmsghdrSize]struct{}
	_ [kernelMmsghdrSize - unsafe.Sizeof(mmsghdr{})]struct{}
	_ [unsafe.Sizeof(unix.Msghdr{}) - unix.SizeofMsghdr]struct{}
	_ [unix.SizeofMsghdr - unsafe.Sizeof(unix.Msghdr{})]struct{}
	_ [unsafe.Offsetof(mmsghdr{}.len) - unix.SizeofMsghdr]struct{}
	_ [unix.SizeofMsghdr - unsafe.Offsetof(mmsghdr{}.len)]struct{}
)

// reader reads datagrams in batches with recvmmsg: one system call for up
// to batchSize packets, into the caller's buffers.
type reader struct {
	rc    syscall.RawConn
	hdrs  [batchSize]mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrAny
	// ctrl receives each datagram's kernel receive timestamp
	// (SO_TIMESTAMPNS), when the socket has them turned on.
	ctrl  [batchSize][ctrlLen]byte
	want  int // datagrams asked for
	n     int // datagrams in the current batch
	errno syscall.Errno
	// recv is bound once: a closure made per call would cost an
	// allocation per read.
	recv func(fd uintptr) bool
}

func newReader(c *udpConn) (*reader, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &reader{rc: rc}
	r.recv = r.recvmmsg
	for i := range r.hdrs {
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

// info returns the kernel receive time of datagram i in Unix nanoseconds
// (0 if it carries none) and, for datagrams the kernel merged (UDP GRO),
// their size (else 0).
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

var errEmptyBuffer = errors.New("session: ReadBatch with an empty buffer")

// read reads up to batchSize datagrams into msgs with one recvmmsg, and
// their sources and kernel receive times. It blocks until the socket's
// read deadline.
func (r *reader) read(msgs []Message) (int, error) {
	k := min(len(msgs), batchSize)
	for i := range k {
		b := msgs[i].Buf
		if len(b) == 0 {
			return 0, errEmptyBuffer
		}
		r.iovs[i].Base = &b[0]
		r.iovs[i].SetLen(len(b))
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrAny
		r.hdrs[i].hdr.SetControllen(ctrlLen)
	}
	r.want, r.n = k, 0
	if err := r.rc.Read(r.recv); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	for i := range r.n {
		m := &msgs[i]
		m.N = int(r.hdrs[i].len)
		m.Addr = sockaddr(&r.names[i])
		m.Received = time.Time{}
		ts, seg := r.info(i)
		if ts != 0 {
			m.Received = time.Unix(0, ts)
		}
		m.Segment = seg
	}
	return r.n, nil
}

func (r *reader) recvmmsg(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.want), unix.MSG_DONTWAIT, 0, 0)
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
