package simrun

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/sender"
)

// TestSlowReceiverPace: a fixed-rate sender at 200 Mbit/s and a receiver
// whose CPU handles only 60 Mbit/s. The receiver's pace reports hold the
// sender near that pace, so its socket never overflows and the transfer
// takes about as long as the slow receiver needs, instead of losing most
// of the data in the socket and repairing it round after round.
func TestSlowReceiverPace(t *testing.T) {
	const size = 16 << 20
	const slow = 60e6 / 8
	res := run(t, Scenario{
		Seed: 1, Receivers: 2, Objects: []Object{{Size: size, File: true}},
		Delay:  500 * time.Microsecond,
		Sender: sender.Config{Rate: 200e6 / 8, Parity: 16, GRTT: 10 * time.Millisecond},
		SlowRx: 1, SlowRxRate: slow,
	})
	ideal := time.Duration(float64(size) * 1.05 / slow * float64(time.Second)) // with headers
	t.Logf("virtual %v (slow receiver alone: %v), socket drops %d, longest wait %v, repairs %d, pace cuts %d",
		res.Virtual, ideal, res.SocketDrops, res.MaxBacklog, res.RepairSymbols, res.Sender.PaceCuts)
	if res.SocketDrops > 0 {
		t.Errorf("%d packets overflowed the slow receiver's socket", res.SocketDrops)
	}
	if res.MaxBacklog > 100*time.Millisecond {
		t.Errorf("packets waited up to %v in the slow receiver's socket, want at most 100 ms", res.MaxBacklog)
	}
	if res.Virtual > ideal*13/10 {
		t.Errorf("transfer took %v, want at most 1.3 × the slow receiver's own %v", res.Virtual, ideal)
	}
	if res.Sender.PaceCuts == 0 {
		t.Error("the sender never slowed down for the slow receiver")
	}
}
