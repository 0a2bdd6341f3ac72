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

// TestStreamSurvivesStall: a flow-controlled stream through 30 % loss
// with jitter (reordering), to three receivers, one of which hears nothing
// for 3 s mid-stream. No byte is lost: the writer waits for the stalled
// receiver. With a StreamTimeout of 1 s the sender instead drops it from
// flow control with an EventSlowReceiver and the writer goes on, held back
// only by the loss; the dropped receiver gets a gap, not wrong data.
func TestStreamSurvivesStall(t *testing.T) {
	sc := Scenario{Seed: 5, Receivers: 3, Loss: 0.3, Jitter: time.Millisecond, Delay: time.Millisecond,
		OutageFrom: 100 * time.Millisecond, OutageTo: 3100 * time.Millisecond,
		Stream: &Stream{Messages: 3000, MaxLen: 4000, Mode: sender.FlushNone, Buffer: 1 << 20},
		Sender: sender.Config{Rate: 25e6, Parity: 16, GRTT: 10 * time.Millisecond}, Limit: 60 * time.Second}
	res := run(t, sc)
	t.Logf("waiting: done at %v, writer held back %v, %d gaps, %d watermark requests", res.Virtual, res.Sender.FlowBlocked, res.StreamGaps, res.Sender.FlowRequests)
	if res.StreamGaps != 0 {
		t.Fatalf("%d stream gaps with flow control and every receiver alive", res.StreamGaps)
	}
	if res.Sender.FlowBlocked < 2*time.Second {
		t.Fatalf("the writer was held back only %v by a 3 s stall: the stall missed the stream", res.Sender.FlowBlocked)
	}
	waited := res.Sender.FlowBlocked
	sc.Sender.StreamTimeout = time.Second
	res = run(t, sc)
	t.Logf("timeout: done at %v, writer held back %v, %d gaps", res.Virtual, res.Sender.FlowBlocked, res.StreamGaps)
	dropped := 0
	for _, e := range res.SenderEvts {
		if e.Kind == sender.EventSlowReceiver {
			dropped++
			if e.Node != rxNodeID(0) {
				t.Errorf("dropped node %x, want the stalled receiver %x", e.Node, rxNodeID(0))
			}
		}
	}
	if dropped == 0 {
		t.Fatal("no EventSlowReceiver for the stalled receiver")
	}
	if res.Sender.FlowBlocked > waited-1500*time.Millisecond {
		t.Fatalf("writer held back %v with a 1 s StreamTimeout, %v without: the stall still held it", res.Sender.FlowBlocked, waited)
	}
}
