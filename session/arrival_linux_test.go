package session

import (
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
)

// TestKernelTimestamps: datagrams read from a session's socket carry the
// kernel's receive time, which is what keeps a receiver's backlog out of
// the round trips the sender measures.
func TestKernelTimestamps(t *testing.T) {
	l := lab.New(t, 1)
	var c *conn
	err := l.Hosts[0].Do(func() (err error) {
		c, err = openConn(&Config{Group: netip.MustParseAddrPort("239.255.7.7:7007"), Interface: lab.Iface})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.uc.Close()
	sent := time.Now()
	if _, err := c.uc.WriteToUDPAddrPort([]byte("hello"), c.group); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the datagram waits in the socket
	_ = c.uc.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _, ts, err := c.read()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "hello" || ts == 0 {
		t.Fatalf("read %q with timestamp %d, want hello with a kernel timestamp", b, ts)
	}
	now := time.Now()
	if wait := now.Sub(arrival(now, ts)); wait < 15*time.Millisecond || wait > now.Sub(sent)+5*time.Millisecond {
		t.Fatalf("measured a wait of %v in the socket, want about 20 ms", wait)
	}
}
