package session

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"golang.org/x/sys/unix"
)

// TestKernelTimestamps: datagrams read from a session's socket carry the
// kernel's receive time, which is what keeps a receiver's backlog out of
// the round trips the sender measures.
func TestKernelTimestamps(t *testing.T) {
	l := lab.New(t, 1)
	var c *udpConn
	err := l.Hosts[0].Do(func() (err error) {
		c, err = openConn(&Config{Group: netip.MustParseAddrPort("239.255.7.7:7007"), Interface: lab.Iface})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.uc.Close()
	warmTimestamps(t, c)
	sent := time.Now()
	if _, err := c.uc.WriteToUDPAddrPort([]byte("hello"), c.group); err != nil {
		t.Fatal(err)
	}
	// Loopback delivery of the datagram may itself wait for a busy CPU
	// (under CI's parallel tests it once took 20 ms), so wait until it is
	// in the socket, then let it wait there.
	queued, err := waitQueued(c, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the datagram waits in the socket
	msgs := []Message{{Buf: make([]byte, 100)}, {Buf: make([]byte, 100)}}
	n, err := c.ReadBatch(msgs, time.Now().Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if n != 1 || string(m.Buf[:m.N]) != "hello" || m.Received.IsZero() {
		t.Fatalf("read %d datagrams, %q with receive time %v, want hello with a kernel timestamp", n, m.Buf[:m.N], m.Received)
	}
	if m.Addr.Port() != c.group.Port() || !m.Addr.Addr().Is4() {
		t.Fatalf("source %v, want an IPv4 address and the group's port %d", m.Addr, c.group.Port())
	}
	now := time.Now()
	// It was in the socket by queued: the kernel's receive time is no
	// later (a millisecond of slack for the clocks' conversion).
	if wait := now.Sub(arrival(now, m.Received)); wait < now.Sub(queued)-time.Millisecond || wait > now.Sub(sent)+5*time.Millisecond {
		t.Fatalf("measured a wait of %v in the socket, want at least %v (since the datagram was seen queued) and at most %v (since it was sent)",
			wait, now.Sub(queued), now.Sub(sent))
	}
}

// warmTimestamps waits until datagrams reaching c are stamped as they
// arrive. The kernel turns receive timestamps on for the whole host from
// a work queue, after the first socket asks for them; a datagram that
// arrives before that work has run is stamped when it is read instead
// (under CI's parallel tests one waited 20 ms in the socket and showed
// 20 µs). It sends datagrams until one that waited shows the wait, for up
// to two seconds; the test's check then runs as before, and fails if
// timestamps never came.
func warmTimestamps(t *testing.T, c *udpConn) {
	t.Helper()
	msgs := []Message{{Buf: make([]byte, 100)}}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if _, err := c.uc.WriteToUDPAddrPort([]byte("warm"), c.group); err != nil {
			t.Fatal(err)
		}
		if _, err := waitQueued(c, time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		n, err := c.ReadBatch(msgs, time.Now().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if n == 1 && now.Sub(arrival(now, msgs[0].Received)) >= 4*time.Millisecond {
			return
		}
	}
}

// waitQueued polls c's socket until a datagram is queued in it (SIOCINQ)
// and returns when it saw it.
func waitQueued(c *udpConn, limit time.Duration) (time.Time, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return time.Time{}, err
	}
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(100 * time.Microsecond) {
		n := 0
		var ierr error
		if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
			return time.Time{}, err
		}
		if ierr != nil {
			return time.Time{}, ierr
		}
		if n > 0 {
			return time.Now(), nil
		}
	}
	return time.Time{}, fmt.Errorf("no datagram queued in the socket after %v", limit)
}

// TestUDPWake: Wake makes a blocked ReadBatch of the UDP connection return
// at once with nothing read, and a Wake that comes before ReadBatch is not
// lost to the deadline ReadBatch sets.
func TestUDPWake(t *testing.T) {
	l := lab.New(t, 1)
	var c *udpConn
	err := l.Hosts[0].Do(func() (err error) {
		c, err = openConn(&Config{Group: netip.MustParseAddrPort("239.255.7.8:7008"), Interface: lab.Iface})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := []Message{{Buf: make([]byte, 100)}}
	c.Wake()
	start := time.Now()
	if n, err := c.ReadBatch(msgs, time.Now().Add(10*time.Second)); n != 0 || err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("ReadBatch after Wake: %d, %v after %v", n, err, time.Since(start))
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.Wake()
	}()
	start = time.Now()
	if n, err := c.ReadBatch(msgs, time.Now().Add(10*time.Second)); n != 0 || err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("ReadBatch woken: %d, %v after %v", n, err, time.Since(start))
	}
	// Without a Wake it waits for its deadline.
	start = time.Now()
	if n, err := c.ReadBatch(msgs, time.Now().Add(100*time.Millisecond)); n != 0 || err != nil || time.Since(start) < 90*time.Millisecond {
		t.Fatalf("ReadBatch to its deadline: %d, %v after %v", n, err, time.Since(start))
	}
}
