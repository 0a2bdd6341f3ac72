package simrun

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/sender"
)

// TestStreamGoodput: a flow-controlled stream at 1 Gbit/s through 5 %
// loss to two receivers on a LAN, in virtual time, with the default 4 MiB
// ring, against the same bytes sent as a file. The stream's writer waits
// for receivers to confirm what they hold, but it must still reach at
// least 0.8 of the file's goodput (issue 16's target). A session's first
// watermark requests go out under the initial GRTT guess of 500 ms; when
// the requests and the receivers' answers kept to that guess until the
// next probe, the stream idled for its first second and made a third of
// the file's goodput.
func TestStreamGoodput(t *testing.T) {
	if raceEnabled {
		t.Skip("64 MiB in virtual time takes minutes under the race detector")
	}
	const size = 64 << 20
	sc := Scenario{Seed: 3, Receivers: 2, Loss: 0.05, Delay: 100 * time.Microsecond,
		Stream: &Stream{Messages: size / 8000, MaxLen: 16000, Mode: sender.FlushNone, Buffer: 4 << 20},
		Sender: sender.Config{Rate: 125e6, Parity: 16}}
	res := run(t, sc)
	streamBytes := float64(res.Sender.DataSymbols) * 1400
	stream := streamBytes * 8 / res.Virtual.Seconds() / 1e6
	t.Logf("stream: %.1f MiB in %v, %.0f Mbit/s; writer held back %v, %d watermark requests", streamBytes/(1<<20), res.Virtual, stream, res.Sender.FlowBlocked, res.Sender.FlowRequests)
	if res.Sender.FlowBlocked == 0 {
		t.Fatal("the writer was never held back: the ring did not limit the stream, and the test lost its point")
	}
	sc.Stream, sc.Objects = nil, []Object{{Size: int64(streamBytes), File: true}}
	res = run(t, sc)
	file := streamBytes * 8 / res.Virtual.Seconds() / 1e6
	t.Logf("file: %v, %.0f Mbit/s; stream/file %.2f", res.Virtual, file, stream/file)
	if stream < 0.8*file {
		t.Errorf("stream goodput %.0f Mbit/s is %.2f of the file's %.0f, want at least 0.8", stream, stream/file, file)
	}
}

// TestStreamStallBurst: a flow-controlled stream to three receivers
// through 30 % loss that comes in bursts (Gilbert-Elliott, about four
// packets a burst), with jitter that reorders packets, while receiver 0's
// process stalls for 2 s mid-stream: it handles nothing and answers
// nothing, and what reaches it waits in its socket buffer or is dropped.
//   - Waiting (the default policy with StreamTimeout above the stall): no
//     byte is lost at any receiver, and the writer waits out the stall.
//   - With StreamTimeout 1 s: the sender drops the stalled receiver
//     with an EventSlowReceiver naming it, and the others finish no later
//     than in a run without the stall plus the timeout and a margin: they
//     go on at full rate. The stalled receiver gets a gap, never wrong
//     bytes.
func TestStreamStallBurst(t *testing.T) {
	if raceEnabled {
		t.Skip("three long simulations; minutes under the race detector")
	}
	ge := simnet.GilbertElliott{PGoodToBad: 0.1, PBadToGood: 0.25, LossGood: 0.1, LossBad: 0.8}
	if m := ge.MeanLoss(); m < 0.29 || m > 0.31 {
		t.Fatalf("burst model loses %.3f on average, want 0.30", m)
	}
	base := Scenario{Seed: 7, Receivers: 3, Burst: &ge, Delay: time.Millisecond, Jitter: time.Millisecond,
		Stream: &Stream{Messages: 4000, MaxLen: 8000, Mode: sender.FlushNone, Buffer: 4 << 20},
		Sender: sender.Config{Rate: 25e6, Parity: 16, GRTT: 10 * time.Millisecond, StreamTimeout: 30 * time.Second},
		Limit:  2 * time.Minute}

	clean := run(t, base)
	t.Logf("no stall: done at %v %v, writer held back %v", clean.Virtual, clean.Finished, clean.Sender.FlowBlocked)
	if clean.StreamGaps != 0 {
		t.Fatalf("%d gaps without a stall", clean.StreamGaps)
	}

	stalled := base
	stalled.StallFrom, stalled.StallTo = 500*time.Millisecond, 2500*time.Millisecond
	res := run(t, stalled)
	t.Logf("stall, waiting: done at %v %v, writer held back %v, socket drops %d", res.Virtual, res.Finished, res.Sender.FlowBlocked, res.SocketDrops)
	if res.StreamGaps != 0 {
		t.Fatalf("%d stream gaps with flow control and every receiver alive", res.StreamGaps)
	}
	if res.Finished[1] < clean.Finished[1]+time.Second {
		t.Fatalf("receiver 1 finished at %v, %v without the stall: the stall missed the stream", res.Finished[1], clean.Finished[1])
	}

	stalled.Sender.StreamTimeout = time.Second
	res = run(t, stalled)
	t.Logf("stall, 1 s timeout: done at %v %v, writer held back %v, %d gaps", res.Virtual, res.Finished, res.Sender.FlowBlocked, res.StreamGaps)
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
	// The margin: once its stall ends, the dropped receiver NACKs what
	// it missed, and those repairs go to the group at the rate the others
	// share, so when the others finish depends on how much of that falls
	// before their end. Over seeds 1-12 they finished from 0.3 s before to
	// 0.47 s after the clean run plus the timeout (0.02 s after on
	// average); seed 7 is 0.39 s after since the sender sends watermark
	// requests ahead of a backlog of repairs (which moved the whole run's
	// random draws: with them the average over the seeds went down from
	// 0.19 s). A receiver held back for the whole stall finishes about
	// 1.7 s after the clean run, which the margin still catches.
	const margin = 600 * time.Millisecond
	for i := 1; i < 3; i++ {
		if limit := clean.Finished[i] + stalled.Sender.StreamTimeout + margin; res.Finished[i] > limit {
			t.Errorf("receiver %d finished at %v, %v without the stall: held back by the stalled one past the timeout", i, res.Finished[i], clean.Finished[i])
		}
	}
}

// TestStallBacklogBytes: the stalled receiver of TestStreamStallBurst,
// seed 9 without parity, handles 2 s of packets from its socket in a row
// when the stall ends; every byte it hands over must be the stream's. The
// simulation once fed it the whole backlog before looking at its events,
// whose data is valid only until the next call into the engine: stream
// blocks freed and reused meanwhile showed as wrong bytes at offset 25200
// (and at seeds 2 and 3 with parity).
func TestStallBacklogBytes(t *testing.T) {
	if raceEnabled {
		t.Skip("a long simulation; minutes under the race detector")
	}
	ge := simnet.GilbertElliott{PGoodToBad: 0.1, PBadToGood: 0.25, LossGood: 0.1, LossBad: 0.8}
	sc := Scenario{Seed: 9, Receivers: 3, Burst: &ge, Delay: time.Millisecond, Jitter: time.Millisecond,
		Stream:    &Stream{Messages: 4000, MaxLen: 8000, Mode: sender.FlushNone, Buffer: 4 << 20},
		Sender:    sender.Config{Rate: 25e6, GRTT: 10 * time.Millisecond, StreamTimeout: time.Second},
		StallFrom: 500 * time.Millisecond, StallTo: 2500 * time.Millisecond, Limit: 2 * time.Minute}
	res := run(t, sc) // fails on any byte that differs
	if res.StreamGaps == 0 {
		t.Fatal("no gap: the stalled receiver was not dropped, and the test lost its point")
	}
}

// TestObjectFlowStall: 1,500 small objects (0–8 KB, some empty) to two
// receivers that acknowledge (the sender lists them), through 5 % loss,
// with a transmit cache of 128 objects, while receiver 0's process
// stalls for a second. The sender must not purge an object a receiver
// has not confirmed: it holds queueing back instead, and every object
// arrives at both. With ObjectPartial (no object flow control) the same
// run purges objects the stalled receiver still needs, and it loses them:
// the test would otherwise prove nothing.
func TestObjectFlowStall(t *testing.T) {
	if raceEnabled {
		t.Skip("two long simulations; minutes under the race detector")
	}
	sc := Scenario{Seed: 9, Receivers: 2, Loss: 0.05, Watermark: true, WaitSender: true,
		StallFrom: 300 * time.Millisecond, StallTo: 1300 * time.Millisecond,
		Sender: sender.Config{Rate: 10e6, Parity: 16, GRTT: 10 * time.Millisecond, CacheObjects: 128},
		Limit:  2 * time.Minute}
	for i := range 1500 {
		size := int64(i * 7919 % 8193)
		if i%50 == 0 {
			size = 0
		}
		sc.Objects = append(sc.Objects, Object{Size: size, File: i%2 == 0})
	}
	res := run(t, sc)
	acked := 0
	for _, e := range res.SenderEvts {
		switch e.Kind {
		case sender.EventAck:
			acked++
		case sender.EventSlowReceiver:
			t.Errorf("receiver %x dropped from flow control", e.Node)
		}
	}
	t.Logf("flow control: done at %v %v, queueing held back %v, %d requests, %d squelches, %d acks",
		res.Virtual, res.Finished, res.Sender.FlowBlocked, res.Sender.FlowRequests, res.Sender.Squelches, acked)
	if res.Aborted != 0 || acked != 2 {
		t.Fatalf("%d objects aborted, %d of 2 receivers acknowledged", res.Aborted, acked)
	}
	if res.Sender.FlowBlocked < 500*time.Millisecond {
		t.Fatalf("queueing held back only %v by a 1 s stall: the stall missed the transfer", res.Sender.FlowBlocked)
	}

	sc.Sender.ObjectPartial = true
	res, err := Run(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("without: delivered to %d, %d objects aborted, %d squelches", res.Delivered, res.Aborted, res.Sender.Squelches)
	if res.Aborted == 0 {
		t.Fatal("without object flow control nothing was lost: the test lost its point")
	}
}
