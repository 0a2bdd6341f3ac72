package session_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// TestLabCoalescedReceive: with UDP GRO, runs of the sender's datagrams
// reach the receiving session merged; it splits them again and the object
// arrives intact. Without loss a GSO batch crosses whole; with loss on the
// lab's bridge (per datagram) the receiving host's GRO merges what is left.
func TestLabCoalescedReceive(t *testing.T) {
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("ethtool is not installed: the lab's veths keep GRO off")
	}
	for _, loss := range []int{0, 3} {
		t.Run(fmt.Sprintf("loss%d", loss), func(t *testing.T) { coalescedReceive(t, loss) })
	}
}

func coalescedReceive(t *testing.T, loss int) {
	{
		l := lab.New(t, 2)
		if err := l.Hosts[1].SetLoss(loss); err != nil {
			t.Fatal(err)
		}
		group := netip.MustParseAddrPort("239.255.7.3:6930")
		rx := open(t, l.Hosts[1], session.Config{Group: group, Seed: 1})
		tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 2, DisableLoopback: true,
			Sender: sender.Config{Rate: 50e6, Parity: 8, GRTT: 5 * time.Millisecond}})
		data := pattern(8<<20, 9)
		if _, err := tx.SendBytes(context.Background(), data, []byte("gro")); err != nil {
			t.Fatal(err)
		}
		if o := gotObject(rx, 30*time.Second); o == nil || !bytes.Equal(o.Bytes(), data) {
			t.Fatalf("loss %d%%: object not intact", loss)
		}
		rs, ts := rx.Stats(), tx.Stats()
		t.Logf("loss %d%%: %d of %d datagrams coalesced, GSO %v, %d repairs", loss, rs.Coalesced, rs.PacketsReceived, ts.GSO, ts.RepairsSent)
		if ts.GSO && rs.Coalesced == 0 {
			t.Errorf("loss %d%%: the sender used GSO but no datagram arrived coalesced", loss)
		}
		if loss > 0 && ts.RepairsSent == 0 && rs.FECRecovered == 0 {
			t.Errorf("loss %d%%: nothing was lost", loss)
		}
	}
}
