package simrun

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoalnet/shoal/receiver"
)

func logCC(t *testing.T, name string, res CCResult, b int64) {
	t.Helper()
	g := 0.0
	for _, x := range res.Goodput {
		g += x
	}
	t.Logf("%s: delivered %d/%d goodput %.1f of %.1f Mbit/s queue loss %.4f time to 90%% %v fairness %.3f linger %v",
		name, res.Delivered, res.Pairs, g/1e6, float64(b)/1e6, res.QueueLoss, res.TimeTo90, res.Fairness, res.Linger)
	for _, e := range res.Errors {
		t.Errorf("%s: %s", name, e)
	}
	if res.Delivered != res.Pairs {
		t.Fatalf("%s: %d of %d transfers complete", name, res.Delivered, res.Pairs)
	}
}

// TestCCBottleneck is the headline case: ten receivers behind
// 50 Mbit/s links with a 20 ms round trip.
func TestCCBottleneck(t *testing.T) {
	sc := CCScenario{Seed: 1, Receivers: 10, Size: 64 << 20, Bottleneck: 50e6, RTT: 20 * time.Millisecond}
	res, err := RunCC(sc)
	if err != nil {
		t.Fatal(err)
	}
	logCC(t, "50Mbit/20ms", res, sc.Bottleneck)
	if u := res.Goodput[0] / float64(sc.Bottleneck); u < 0.85 || u > 1 {
		t.Errorf("utilization %.3f, want 0.85..1", u)
	}
	if res.QueueLoss > 0.02 {
		t.Errorf("queue loss %.4f, want <= 2%%", res.QueueLoss)
	}
	if res.TimeTo90 < 0 || res.TimeTo90 > 2*time.Second {
		t.Errorf("time to 90%% of the bottleneck %v, want <= 2s", res.TimeTo90)
	}
	// The end does not drag: the sender flushes and closes at its rate.
	if l := res.Linger[0]; l < 0 || l > 2*time.Second {
		t.Errorf("the sender took %v after the last receiver was done, want <= 2s", l)
	}
	if r := res.Senders[0].Rate * 8; r < 0.5*float64(sc.Bottleneck) {
		t.Errorf("final rate %.1f Mbit/s: the rate decayed at the end", r/1e6)
	}
}

// TestCCRange runs two flows over a range of bottleneck rates and round
// trips, each run long enough (about eight seconds at the bottleneck rate)
// for the start-up to matter as it would for a real transfer. The bounds
// are looser than the headline case's: a long round trip makes slow start
// and the repair of its overshoot take longer.
func TestCCRange(t *testing.T) {
	for _, b := range []int64{10e6, 50e6, 200e6} {
		for _, rtt := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond} {
			if (testing.Short() || raceEnabled) && b > 50e6 {
				continue // minutes under the race detector; run without it
			}
			name := fmt.Sprintf("%dMbit/%v", b/1e6, rtt)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sc := CCScenario{Seed: 2, Flows: 2, Receivers: 3, Size: b / 2, Bottleneck: b, RTT: rtt}
				res, err := RunCC(sc)
				if err != nil {
					t.Fatal(err)
				}
				logCC(t, name, res, b)
				if u := float64(2*sc.Size*8) / res.Virtual.Seconds() / float64(b); u < 0.7 || u > 1 {
					t.Errorf("utilization %.3f, want 0.7..1", u)
				}
				if res.QueueLoss > 0.03 {
					t.Errorf("queue loss %.4f, want <= 3%%", res.QueueLoss)
				}
				// Short runs at the edges of the range share less evenly
				// than the headline case (TestCCFairness asks for 0.9).
				if res.Fairness < 0.85 {
					t.Errorf("Jain's index %.3f, want >= 0.85", res.Fairness)
				}
				// Slow start doubles per round trip or two from 1 Mbit/s.
				if limit := 500*time.Millisecond + 25*rtt; res.TimeTo90 < 0 || res.TimeTo90 > limit {
					t.Errorf("time to 90%% %v, want <= %v", res.TimeTo90, limit)
				}
			})
		}
	}
}

// TestCCFairness: two Shoal flows share the bottlenecks, starting together
// and two seconds apart, on several seeds: a flow that starts while the
// other keeps the queue nearly full loses packets in its first round trips,
// and whether it does depends on the seed.
func TestCCFairness(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	if testing.Short() || raceEnabled {
		seeds = []uint64{3} // the race detector makes each run ten seconds
	}
	for _, stagger := range []time.Duration{0, 2 * time.Second} {
		for _, seed := range seeds {
			name := fmt.Sprintf("stagger %v seed %d", stagger, seed)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sc := CCScenario{Seed: seed, Flows: 2, Stagger: stagger, Receivers: 5, Size: 32 << 20, Bottleneck: 50e6}
				res, err := RunCC(sc)
				if err != nil {
					t.Fatal(err)
				}
				logCC(t, "two flows, "+name, res, sc.Bottleneck)
				if res.Fairness < 0.9 {
					t.Errorf("Jain's index %.3f, want >= 0.9", res.Fairness)
				}
				if u := float64(2*sc.Size*8) / res.Virtual.Seconds() / float64(sc.Bottleneck); u < 0.8 {
					t.Errorf("utilization %.3f, want >= 0.8", u)
				}
				if res.QueueLoss > 0.02 {
					t.Errorf("queue loss %.4f, want <= 2%%", res.QueueLoss)
				}
			})
		}
	}
}

// TestCCFeedbackOutage: for one second no feedback reaches the sender. The
// rate halves once and holds, rather than sliding towards nothing, and
// recovers when feedback returns.
func TestCCFeedbackOutage(t *testing.T) {
	sc := CCScenario{Seed: 4, Receivers: 5, Size: 32 << 20, Bottleneck: 50e6,
		FeedbackOutageFrom: 2 * time.Second, FeedbackOutageTo: 3 * time.Second}
	res, err := RunCC(sc)
	if err != nil {
		t.Fatal(err)
	}
	logCC(t, "feedback outage", res, sc.Bottleneck)
	rates := res.RateTrace[0]
	// The rate just before the outage, averaged over half a second: the
	// square-root damping swings it around the bottleneck's, and the
	// halving starts from wherever the swing was.
	before := 0.0
	for _, r := range rates[15:20] {
		before += r / 5
	}
	low := before
	for _, r := range rates[20:30] {
		low = min(low, r)
	}
	if low < 0.45*before {
		t.Errorf("rate fell from %.1f to %.1f Mbit/s during the outage, want at least half", before/1e6, low/1e6)
	}
	after := 0.0
	for _, r := range rates[33:45] {
		after = max(after, r)
	}
	if after < 0.8*float64(sc.Bottleneck) {
		t.Errorf("rate after the outage peaked at %.1f Mbit/s, want near the %.0f bottleneck", after/1e6, float64(sc.Bottleneck)/1e6)
	}
}

// TestCCTolerateLoss: 1 % random loss after the bottleneck. Counting every
// loss as congestion holds the flow far below the link; tolerating isolated
// losses gets much more through.
func TestCCTolerateLoss(t *testing.T) {
	var g [2]float64
	for i, tol := range []bool{false, true} {
		sc := CCScenario{Seed: 5, Receivers: 3, Size: 16 << 20, Bottleneck: 50e6, Loss: 0.01,
			Receiver: receiver.Config{TolerateLoss: tol}}
		res, err := RunCC(sc)
		if err != nil {
			t.Fatal(err)
		}
		logCC(t, fmt.Sprintf("1%% random loss, tolerate %v", tol), res, sc.Bottleneck)
		g[i] = res.Goodput[0]
	}
	if g[1] < 2*g[0] {
		t.Errorf("tolerant goodput %.1f Mbit/s, strict %.1f: want at least twice", g[1]/1e6, g[0]/1e6)
	}
}

// TestCCHighBDP: 200 Mbit/s with an 80 ms round trip, a bandwidth-delay
// product of 2 MB. Slow start from 1 Mbit/s takes some eight round trips
// whatever the controller does, so the file lasts eight seconds at
// the bottleneck rate for that to weigh as little as it would in a long
// transfer.
func TestCCHighBDP(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("minutes under the race detector; run without it")
	}
	sc := CCScenario{Seed: 6, Receivers: 3, Size: 192 << 20, Bottleneck: 200e6, RTT: 80 * time.Millisecond}
	res, err := RunCC(sc)
	if err != nil {
		t.Fatal(err)
	}
	logCC(t, "200Mbit/80ms", res, sc.Bottleneck)
	if u := res.Goodput[0] / float64(sc.Bottleneck); u < 0.85 || u > 1 {
		t.Errorf("utilization %.3f, want 0.85..1", u)
	}
	if res.QueueLoss > 0.02 {
		t.Errorf("queue loss %.4f, want <= 2%%", res.QueueLoss)
	}
}

// TestCCHighBDPFairness: two flows start together on the same 200 Mbit/s,
// 80 ms path and share it. (Started a second apart they do not, yet: at
// this bandwidth-delay product a TCP-friendly flow sees a loss event only
// every several seconds, and it takes several for the later flow's loss
// rate to come down to the earlier one's. TestCCFairness covers staggered
// starts at 50 Mbit/s and 20 ms.)
func TestCCHighBDPFairness(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("minutes under the race detector; run without it")
	}
	sc := CCScenario{Seed: 7, Flows: 2, Receivers: 3, Size: 128 << 20, Bottleneck: 200e6, RTT: 80 * time.Millisecond}
	res, err := RunCC(sc)
	if err != nil {
		t.Fatal(err)
	}
	logCC(t, "two flows at 200Mbit/80ms", res, sc.Bottleneck)
	if res.Fairness < 0.9 {
		t.Errorf("Jain's index %.3f, want >= 0.9", res.Fairness)
	}
	if u := float64(2*sc.Size*8) / res.Virtual.Seconds() / float64(sc.Bottleneck); u < 0.85 || u > 1 {
		t.Errorf("utilization %.3f, want 0.85..1", u)
	}
}
