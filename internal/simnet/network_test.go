package simnet

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestDeliveryOrderAndDelay(t *testing.T) {
	n := New(Config{Seed: 1})
	if !n.Now().Equal(t0) {
		t.Fatalf("clock starts at %v, want %v", n.Now(), t0)
	}
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Delay: 3 * ms}})
	a := n.AddNode("a", NodeConfig{Down: LinkConfig{Delay: 5 * ms}})
	b := n.AddNode("b", NodeConfig{Down: LinkConfig{Delay: 7 * ms}})
	n.Join(a, grp)
	n.Join(b, grp)
	n.Join(s, grp)
	sendSeq(n, s, grp, 3, ms, 100)

	if at, ok := n.Next(); !ok || !at.Equal(t0.Add(3*ms)) {
		t.Fatalf("Next = %v, %v; want the first hop at 3ms", at, ok)
	}
	n.DeliverUntil(t0.Add(7*ms), func(p Packet) { t.Errorf("early delivery %+v", p) })
	if !n.Now().Equal(t0.Add(7 * ms)) {
		t.Errorf("Now = %v after DeliverUntil(7ms)", n.Now())
	}
	got := drain(n)
	want := []rx{
		{8 * ms, s, a, grp, 0, 100},
		{9 * ms, s, a, grp, 1, 100},
		{10 * ms, s, b, grp, 0, 100},
		{10 * ms, s, a, grp, 2, 100},
		{11 * ms, s, b, grp, 1, 100},
		{12 * ms, s, b, grp, 2, 100},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%v\nwant\n%v", got, want)
	}
	if _, ok := n.Next(); ok {
		t.Error("Next reports events after everything was delivered")
	}
}

func TestSameTimeTiesFollowSendOrder(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{})
	rs := make([]NodeID, 5)
	for i := range rs {
		rs[len(rs)-1-i] = n.AddNode(fmt.Sprint("r", i), NodeConfig{})
	}
	for _, r := range rs { // join in descending id order
		n.Join(r, grp)
	}
	sendSeq(n, s, grp, 3, 0, 8)
	got := drain(n)
	var i int
	for seq := range uint64(3) {
		for to := NodeID(1); to <= 5; to++ { // fan-out in id order, packets in send order
			if got[i].Seq != seq || got[i].To != to || got[i].At != 0 {
				t.Fatalf("delivery %d = %+v, want seq %d to %d at 0", i, got[i], seq, to)
			}
			i++
		}
	}
}

func TestJitterReordersButAllArrive(t *testing.T) {
	n := New(Config{Seed: 7})
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Delay: 2 * ms, Jitter: 3 * ms}})
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Delay: 10 * ms, Jitter: 20 * ms}})
	n.Join(r, grp)
	const count = 2000
	sendSeq(n, s, grp, count, ms, 64)
	got := drain(n)
	if len(got) != count {
		t.Fatalf("%d deliveries, want %d", len(got), count)
	}
	seen := make([]bool, count)
	inversions := 0
	var maxExtra time.Duration
	for i, p := range got {
		if seen[p.Seq] {
			t.Fatalf("seq %d delivered twice", p.Seq)
		}
		seen[p.Seq] = true
		lat := p.At - time.Duration(p.Seq)*ms
		if lat < 12*ms || lat > 35*ms {
			t.Errorf("seq %d latency %v outside [12ms, 35ms]", p.Seq, lat)
		}
		maxExtra = max(maxExtra, lat-12*ms)
		if i > 0 && p.Seq < got[i-1].Seq {
			inversions++
		}
		if i > 0 && p.At < got[i-1].At {
			t.Fatalf("delivery %d at %v before previous at %v", i, p.At, got[i-1].At)
		}
	}
	// With 23 ms of jitter against 1 ms spacing most neighbours swap.
	if inversions < count/4 {
		t.Errorf("only %d inversions among %d packets", inversions, count)
	}
	// The jitter draws should use their whole range.
	if maxExtra < 20*ms {
		t.Errorf("largest extra delay %v; jitter seems not uniform over [0, 23ms]", maxExtra)
	}
	t.Logf("%d inversions, largest extra delay %v", inversions, maxExtra)
}

func TestBernoulliLossRate(t *testing.T) {
	for _, p := range []float64{0.01, 0.1, 0.5} {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			n := New(Config{Seed: 42})
			s := n.AddNode("s", NodeConfig{})
			r := n.AddNode("r", NodeConfig{Down: LinkConfig{Loss: Bernoulli{P: p}}})
			n.Join(r, grp)
			const count = 100_000
			sendSeq(n, s, grp, count, time.Microsecond, 8)
			got := drain(n)
			lost := count - len(got)
			// Five standard deviations of the binomial proportion.
			within(t, "loss rate", float64(lost)/count, p, 5*math.Sqrt(p*(1-p)/count))
			st := n.NodeStats(r).Down
			if st.Lost != uint64(lost) || st.Delivered != uint64(len(got)) || st.Sent != count {
				t.Errorf("downlink stats %+v, want Sent %d Lost %d Delivered %d", st, count, lost, len(got))
			}
		})
	}
}

// bursts returns the lengths of the runs of lost packets.
func bursts(got []bool) []int {
	var out []int
	run := 0
	for _, ok := range got {
		if !ok {
			run++
		} else if run > 0 {
			out = append(out, run)
			run = 0
		}
	}
	if run > 0 {
		out = append(out, run)
	}
	return out
}

func TestGilbertElliottBursts(t *testing.T) {
	ge := GilbertElliott{PGoodToBad: 0.01, PBadToGood: 0.25, LossGood: 0, LossBad: 1}
	n := New(Config{Seed: 3})
	s := n.AddNode("s", NodeConfig{})
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Loss: ge}})
	n.Join(r, grp)
	const count = 400_000
	sendSeq(n, s, grp, count, time.Microsecond, 8)
	got := received(drain(n), 2, count)[r]
	lost := 0
	for _, ok := range got {
		if !ok {
			lost++
		}
	}
	bs := bursts(got)
	total := 0
	for _, b := range bs {
		total += b
	}
	mean := float64(total) / float64(len(bs))
	// Burst lengths are geometric with mean 4 and standard deviation
	// sqrt(12); about 6,000 bursts put the standard error near 0.045.
	within(t, "mean burst length", mean, 1/ge.PBadToGood, 0.3)
	// Losses are correlated, so the loss rate converges more slowly than a
	// binomial one; 10% is about four standard errors here.
	within(t, "loss rate", float64(lost)/count, ge.MeanLoss(), 0.1*ge.MeanLoss())

	// The same average loss without memory has bursts of about 1.04.
	n2 := New(Config{Seed: 3})
	s2 := n2.AddNode("s", NodeConfig{})
	r2 := n2.AddNode("r", NodeConfig{Down: LinkConfig{Loss: Bernoulli{P: ge.MeanLoss()}}})
	n2.Join(r2, grp)
	sendSeq(n2, s2, grp, count, time.Microsecond, 8)
	bs2 := bursts(received(drain(n2), 2, count)[r2])
	total2 := 0
	for _, b := range bs2 {
		total2 += b
	}
	if m2 := float64(total2) / float64(len(bs2)); m2 > 1.1 {
		t.Errorf("Bernoulli mean burst %v, want about 1.04", m2)
	}
}

func TestGilbertElliottMeanLoss(t *testing.T) {
	for _, c := range []struct {
		g    GilbertElliott
		want float64
	}{
		{GilbertElliott{PGoodToBad: 0.01, PBadToGood: 0.25, LossBad: 1}, 0.01 / 0.26},
		{GilbertElliott{PGoodToBad: 0.1, PBadToGood: 0.1, LossGood: 0.02, LossBad: 0.5}, 0.26},
		{GilbertElliott{LossGood: 0.03, LossBad: 1}, 0.03},
	} {
		if got := c.g.MeanLoss(); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%+v.MeanLoss() = %v, want %v", c.g, got, c.want)
		}
	}
}

func TestSharedUplinkLossIsCommonDownlinkLossIndependent(t *testing.T) {
	const receivers, count, p = 8, 20_000, 0.2
	run := func(up, down LinkConfig) [][]bool {
		n := New(Config{Seed: 11})
		s := n.AddNode("s", NodeConfig{Up: up})
		for i := range receivers {
			n.Join(n.AddNode(fmt.Sprint("r", i), NodeConfig{Down: down}), grp)
		}
		sendSeq(n, s, grp, count, time.Microsecond, 8)
		return received(drain(n), receivers+1, count)[1:]
	}
	lossRate := func(g []bool) float64 {
		lost := 0
		for _, ok := range g {
			if !ok {
				lost++
			}
		}
		return float64(lost) / count
	}
	bothLost := func(a, b []bool) float64 {
		k := 0
		for i := range a {
			if !a[i] && !b[i] {
				k++
			}
		}
		return float64(k) / count
	}
	tol := 5 * math.Sqrt(p*(1-p)/count)

	shared := run(LinkConfig{Loss: Bernoulli{P: p}}, LinkConfig{})
	within(t, "shared loss rate", lossRate(shared[0]), p, tol)
	for i := 1; i < receivers; i++ {
		if !slices.Equal(shared[i], shared[0]) {
			t.Fatalf("receiver %d lost different packets than receiver 0 under uplink loss", i)
		}
	}

	indep := run(LinkConfig{}, LinkConfig{Loss: Bernoulli{P: p}})
	for i := range receivers {
		within(t, fmt.Sprint("downlink loss rate ", i), lossRate(indep[i]), p, tol)
	}
	for i := 1; i < receivers; i++ {
		// Independent links lose the same packet with probability p².
		within(t, fmt.Sprint("joint loss 0,", i), bothLost(indep[0], indep[i]), p*p, 5*math.Sqrt(p*p*(1-p*p)/count))
	}
}

func TestDuplication(t *testing.T) {
	const count, p = 20_000, 0.3
	n := New(Config{Seed: 5})
	s := n.AddNode("s", NodeConfig{})
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Duplicate: p, Delay: ms, Jitter: ms}})
	n.Join(r, grp)
	sendSeq(n, s, grp, count, ms, 8)
	got := drain(n)
	copies := make([]int, count)
	for _, x := range got {
		copies[x.Seq]++
	}
	for seq, c := range copies {
		if c < 1 || c > 2 {
			t.Fatalf("seq %d arrived %d times", seq, c)
		}
	}
	dups := len(got) - count
	within(t, "duplication rate", float64(dups)/count, p, 5*math.Sqrt(p*(1-p)/count))
	st := n.NodeStats(r).Down
	if st.Duplicated != uint64(dups) || st.Delivered != uint64(len(got)) {
		t.Errorf("stats %+v, want Duplicated %d Delivered %d", st, dups, len(got))
	}
}

func TestUplinkDuplicateReachesEveryone(t *testing.T) {
	n := New(Config{Seed: 5})
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Duplicate: 1}})
	a := n.AddNode("a", NodeConfig{})
	b := n.AddNode("b", NodeConfig{})
	n.Join(a, grp)
	n.Join(b, grp)
	sendSeq(n, s, grp, 1, 0, 8)
	if got := drain(n); len(got) != 4 {
		t.Errorf("got %d deliveries of one packet duplicated upstream to two receivers, want 4", len(got))
	}
}

func TestBottleneckBurstFillsQueueExactly(t *testing.T) {
	// 8 Mbit/s serializes a 1000-byte packet in 1 ms; the queue holds ten.
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Rate: 8_000_000, QueueBytes: 10_000, Delay: 5 * ms}})
	r := n.AddNode("r", NodeConfig{})
	n.Join(r, grp)
	sendSeq(n, s, grp, 25, 0, 1000)
	got := drain(n)
	if len(got) != 10 {
		t.Fatalf("%d of a 25-packet burst got through a 10-packet queue", len(got))
	}
	for i, p := range got {
		if p.Seq != uint64(i) || p.At != time.Duration(i+1)*ms+5*ms {
			t.Errorf("delivery %d = seq %d at %v, want seq %d at %v", i, p.Seq, p.At, i, time.Duration(i+1)*ms+5*ms)
		}
	}
	if st := n.NodeStats(s).Up; st.QueueDropped != 15 || st.Sent != 25 {
		t.Errorf("uplink stats %+v, want 15 queue drops of 25", st)
	}
	// Once the queue has drained it accepts a full burst again.
	n.Send(t0.Add(100*ms), s, grp, make([]byte, 10_000))
	n.Send(t0.Add(100*ms), s, grp, make([]byte, 1))
	if got := drain(n); len(got) != 1 || got[0].Len != 10_000 || got[0].At != 115*ms {
		t.Errorf("after draining: %+v, want only the 10000-byte packet at 115ms", got)
	}
}

func TestBottleneckThroughputAndQueueingDelay(t *testing.T) {
	const (
		rate  = 10_000_000 // bits/s
		size  = 1250       // bytes: 1 ms at rate
		queue = 50 * size  // 50 ms of queue
		count = 4000
	)
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{})
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Rate: rate, QueueBytes: queue, Delay: 20 * ms}})
	n.Join(r, grp)
	// Offer twice the rate for 2 seconds.
	sendSeq(n, s, grp, count, 500*time.Microsecond, size)
	got := drain(n)
	st := n.NodeStats(r).Down
	if st.QueueDropped == 0 || st.QueueDropped+uint64(len(got)) != count {
		t.Errorf("stats %+v with %d delivered of %d", st, len(got), count)
	}
	span := got[len(got)-1].At - got[0].At
	throughput := float64(len(got)-1) * size * 8 / span.Seconds()
	within(t, "throughput (Mbit/s)", throughput/1e6, rate/1e6, 0.01*rate/1e6)
	var maxQueueing time.Duration
	for _, p := range got {
		q := p.At - time.Duration(p.Seq)*500*time.Microsecond - 20*ms
		maxQueueing = max(maxQueueing, q)
	}
	bound := time.Duration(queue * 8 * int64(time.Second) / rate)
	if maxQueueing > bound {
		t.Errorf("queueing delay reached %v, above queue/rate = %v", maxQueueing, bound)
	}
	if maxQueueing < bound-2*ms {
		t.Errorf("queueing delay only reached %v; the queue never filled (bound %v)", maxQueueing, bound)
	}
	t.Logf("delivered %d, dropped %d, max queueing delay %v (bound %v)", len(got), st.QueueDropped, maxQueueing, bound)
}

// trace runs a busy scenario with every impairment and returns every
// delivery.
func trace(seed uint64, extraFirst bool) []rx {
	n := New(Config{Seed: seed})
	if extraFirst {
		x := n.AddNode("extra", NodeConfig{Down: LinkConfig{Loss: Bernoulli{P: 0.5}}})
		n.Join(x, grp)
	}
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Delay: ms, Jitter: ms, Loss: Bernoulli{P: 0.05}, Rate: 50_000_000, QueueBytes: 20_000}})
	down := LinkConfig{
		Delay: 10 * ms, Jitter: 5 * ms, Duplicate: 0.02,
		Loss: GilbertElliott{PGoodToBad: 0.02, PBadToGood: 0.3, LossGood: 0.01, LossBad: 0.8},
		Rate: 20_000_000, QueueBytes: 30_000,
	}
	for i := range 6 {
		r := n.AddNode(fmt.Sprint("r", i), NodeConfig{Down: down, Up: LinkConfig{Delay: 2 * ms, Jitter: ms}})
		n.Join(r, grp)
	}
	buf := make([]byte, 1200)
	var out []rx
	for i := range 3000 {
		now := t0.Add(time.Duration(i) * 200 * time.Microsecond)
		n.DeliverUntil(now, func(p Packet) {
			out = append(out, rx{At: p.At.Sub(t0), From: p.From, To: p.To, Dst: p.Dst, Seq: uint64(p.Payload[0])<<8 | uint64(p.Payload[1]), Len: len(p.Payload)})
			if p.From == s && p.Payload[2]%7 == 0 {
				// Receivers answer some packets by unicast, from inside the callback.
				n.Send(p.At, p.To, n.Addr(s), p.Payload[:20])
			}
		})
		buf[0], buf[1], buf[2] = byte(i>>8), byte(i), byte(i)
		n.Send(now, s, grp, buf)
	}
	drainAll := func(p Packet) {
		out = append(out, rx{At: p.At.Sub(t0), From: p.From, To: p.To, Dst: p.Dst, Seq: uint64(p.Payload[0])<<8 | uint64(p.Payload[1]), Len: len(p.Payload)})
	}
	n.DeliverUntil(t0.Add(time.Hour), drainAll)
	if extraFirst {
		// Renumber so traces with and without the extra node compare.
		var kept []rx
		for _, p := range out {
			if p.To == 0 || p.From == 0 {
				continue
			}
			p.To--
			p.From--
			kept = append(kept, p)
		}
		out = kept
	}
	return out
}

func TestDeterminism(t *testing.T) {
	a, b := trace(99, false), trace(99, false)
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Fatalf("two runs with seed 99 differ (%d vs %d deliveries)", len(a), len(b))
	}
	c := trace(100, false)
	if slices.Equal(a, c) {
		t.Fatal("seeds 99 and 100 give identical traces")
	}
	t.Logf("%d deliveries per run", len(a))
}

func TestAddingANodeKeepsOtherLinksDraws(t *testing.T) {
	// The sender's uplink and the receivers' links draw the same numbers
	// whether or not another node was added first; only the reply unicasts'
	// addresses differ, and those are renumbered away.
	a, b := trace(5, false), trace(5, true)
	if !slices.EqualFunc(a, b, func(x, y rx) bool {
		return x.At == y.At && x.From == y.From && x.To == y.To && x.Seq == y.Seq && x.Len == y.Len
	}) {
		t.Fatalf("adding a node changed the other nodes' traffic (%d vs %d deliveries)", len(a), len(b))
	}
}

func TestOwnMulticastOnlyWithLoopback(t *testing.T) {
	n := New(Config{Seed: 1})
	quiet := n.AddNode("quiet", NodeConfig{Up: LinkConfig{Delay: ms}})
	loud := n.AddNode("loud", NodeConfig{Up: LinkConfig{Delay: ms, Loss: Bernoulli{P: 1}}, Loopback: true})
	n.Join(quiet, grp)
	n.Join(loud, grp)
	n.Send(t0.Add(ms), quiet, grp, seqPayload(make([]byte, 8), 1))
	n.Send(t0.Add(2*ms), loud, grp, seqPayload(make([]byte, 8), 2))
	got := drain(n)
	want := []rx{
		// The loopback copy is local: at once, despite the uplink losing everything.
		{2 * ms, loud, loud, grp, 2, 8},
		{2 * ms, quiet, loud, grp, 1, 8},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// Loopback needs membership, as with IP_MULTICAST_LOOP.
	n.Leave(loud, grp)
	n.Send(n.Now(), loud, grp, seqPayload(make([]byte, 8), 3))
	if got := drain(n); len(got) != 0 {
		t.Errorf("non-member got its own multicast: %+v", got)
	}
}

func TestUnicast(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Delay: ms}})
	a := n.AddNode("a", NodeConfig{Down: LinkConfig{Delay: 2 * ms}})
	b := n.AddNode("b", NodeConfig{Addr: netip.MustParseAddrPort("192.0.2.7:9000")})
	n.Join(a, grp)
	n.Join(b, grp)
	n.Send(t0, s, n.Addr(a), seqPayload(make([]byte, 8), 1))
	n.Send(t0, s, netip.MustParseAddrPort("192.0.2.7:9000"), seqPayload(make([]byte, 8), 2))
	n.Send(t0, s, n.Addr(s), seqPayload(make([]byte, 8), 3))
	n.Send(t0, s, netip.MustParseAddrPort("192.0.2.8:9000"), seqPayload(make([]byte, 8), 4))
	got := drain(n)
	want := []rx{
		{0, s, s, n.Addr(s), 3, 8},
		{ms, s, b, n.Addr(b), 2, 8},
		{3 * ms, s, a, n.Addr(a), 1, 8},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if st := n.NodeStats(s); st.Unroutable != 1 || st.Up.Sent != 2 || st.Received != 1 {
		t.Errorf("sender stats %+v, want 1 unroutable, 2 through the uplink, 1 received locally", st)
	}
	if id, ok := n.ByAddr(netip.MustParseAddrPort("192.0.2.7:9000")); !ok || id != b {
		t.Errorf("ByAddr = %v, %v", id, ok)
	}
	if id, ok := n.Lookup("a"); !ok || id != a || n.Name(a) != "a" {
		t.Errorf("Lookup(a) = %v, %v", id, ok)
	}
	if got := n.Addr(a).String(); got != "10.0.0.2:6003" {
		t.Errorf("automatic address %s", got)
	}
}

func TestLeaveStopsDeliveryAndJoinStartsIt(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Delay: 10 * ms}})
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Delay: 10 * ms}})
	n.Join(r, grp)
	n.Join(r, grp) // twice is once
	sendSeq(n, s, grp, 100, ms, 8)
	var got []uint64
	deliver := func(p Packet) { got = append(got, uint64(p.Payload[7])) }
	// Packet i reaches the switch at i+10 ms, so leaving at 30 ms and
	// joining again at 60 ms misses 21 to 50.
	n.DeliverUntil(t0.Add(30*ms), deliver)
	n.Leave(r, grp)
	n.DeliverUntil(t0.Add(60*ms), deliver)
	n.Join(r, grp)
	n.DeliverUntil(t0.Add(time.Hour), deliver)
	var want []uint64
	for i := range uint64(100) {
		if i <= 20 || i >= 51 {
			want = append(want, i)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestSendCopiesPayloadAndClampsToNow(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{})
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Delay: ms}})
	n.Join(r, grp)
	n.DeliverUntil(t0.Add(10*ms), nil)
	buf := []byte{1, 2, 3}
	n.Send(t0, s, grp, buf) // in the past: sent at Now = 10ms
	buf[0] = 9
	n.DeliverUntil(t0.Add(time.Hour), func(p Packet) {
		if p.At != t0.Add(11*ms) || !slices.Equal(p.Payload, []byte{1, 2, 3}) {
			t.Errorf("got %v at %v, want [1 2 3] at 11ms", p.Payload, p.At.Sub(t0))
		}
	})
}

func TestStatsSnapshot(t *testing.T) {
	n := New(Config{Seed: 8})
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Loss: Bernoulli{P: 0.1}}})
	for i := range 4 {
		n.Join(n.AddNode(fmt.Sprint("r", i), NodeConfig{Down: LinkConfig{Loss: Bernoulli{P: 0.1}, Duplicate: 0.1}}), grp)
	}
	sendSeq(n, s, grp, 1000, ms, 100)
	mid := n.Stats()
	if mid.InFlight == 0 || mid.Up.Sent != 1000 {
		t.Errorf("before delivery: %+v", mid)
	}
	got := drain(n)
	st := n.Stats()
	up := st.Nodes[s].Up
	if st.InFlight != 0 || up.Sent != 1000 || up.Lost+up.Delivered != 1000 {
		t.Errorf("uplink %+v", up)
	}
	if st.Down.Sent != 4*up.Delivered {
		t.Errorf("downlinks saw %d packets, want 4 × %d", st.Down.Sent, up.Delivered)
	}
	if st.Down.Delivered != uint64(len(got)) || st.Received != uint64(len(got)) ||
		st.Down.Sent-st.Down.Lost+st.Down.Duplicated != st.Down.Delivered ||
		st.Down.DeliveredBytes != 100*st.Down.Delivered {
		t.Errorf("downlink totals %+v, received %d, delivered %d", st.Down, st.Received, len(got))
	}
	if st.Nodes[2].Name != "r1" || st.Nodes[2].ID != 2 {
		t.Errorf("node 2 is %+v", st.Nodes[2])
	}
}

func TestMisusePanics(t *testing.T) {
	for name, f := range map[string]func(n *Network){
		"duplicate name":      func(n *Network) { n.AddNode("a", NodeConfig{}); n.AddNode("a", NodeConfig{}) },
		"duplicate address":   func(n *Network) { n.AddNode("b", NodeConfig{Addr: n.Addr(n.AddNode("a", NodeConfig{}))}) },
		"multicast address":   func(n *Network) { n.AddNode("a", NodeConfig{Addr: grp}) },
		"bad probability":     func(n *Network) { n.AddNode("a", NodeConfig{Down: LinkConfig{Loss: Bernoulli{P: 1.5}}}) },
		"negative delay":      func(n *Network) { n.AddNode("a", NodeConfig{Up: LinkConfig{Delay: -1}}) },
		"join unicast":        func(n *Network) { n.Join(n.AddNode("a", NodeConfig{}), n.Addr(0)) },
		"unknown node":        func(n *Network) { n.Send(t0, 3, grp, nil) },
		"nested DeliverUntil": func(n *Network) { selfNested(n) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f(New(Config{}))
		}()
	}
}

func selfNested(n *Network) {
	a := n.AddNode("a", NodeConfig{})
	n.Send(t0, a, n.Addr(a), nil)
	n.DeliverUntil(t0, func(Packet) { n.DeliverUntil(t0, nil) })
}

func TestFarFutureDoesNotWrap(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{Up: LinkConfig{Delay: time.Hour, Rate: 1}})
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Delay: time.Hour, Jitter: time.Hour}})
	n.Join(r, grp)
	n.DeliverUntil(time.Unix(1<<40, 0), nil) // beyond what a Duration can hold
	n.Send(n.Now(), s, grp, make([]byte, 8))
	got := drain(n)
	if len(got) != 1 || got[0].At < 0 {
		t.Fatalf("got %+v", got)
	}
}

// TestKeepPayloads: with KeepPayloads, a payload kept after its delivery
// still holds what was sent once many later packets have gone through, and
// both receivers of a multicast share the same bytes.
func TestKeepPayloads(t *testing.T) {
	n := New(Config{Seed: 1, KeepPayloads: true})
	s := n.AddNode("s", NodeConfig{})
	a := n.AddNode("a", NodeConfig{Down: LinkConfig{Delay: ms}})
	b := n.AddNode("b", NodeConfig{Down: LinkConfig{Delay: ms}})
	n.Join(a, grp)
	n.Join(b, grp)
	var kept [2][][]byte
	buf := make([]byte, 1000)
	for i := range 600 { // more than a slab
		for j := range buf {
			buf[j] = byte(i + j)
		}
		n.Send(n.Now(), s, grp, buf)
		n.DeliverUntil(n.Now().Add(2*ms), func(p Packet) { kept[p.To-a] = append(kept[p.To-a], p.Payload) })
	}
	for i := range 600 {
		pa, pb := kept[0][i], kept[1][i]
		if len(pa) != 1000 || pa[0] != byte(i) || pa[999] != byte(i+999) || &pa[0] != &pb[0] {
			t.Fatalf("packet %d: kept payload changed or not shared", i)
		}
	}
}

// TestFanInFlight: copies of one multicast that arrive together are held
// as one fan, yet counted, delivered and stopped between one by one.
func TestFanInFlight(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{})
	for i := range 5 {
		n.Join(n.AddNode(fmt.Sprint("r", i), NodeConfig{Down: LinkConfig{Delay: ms}}), grp)
	}
	n.Send(n.Now(), s, grp, make([]byte, 10))
	n.DeliverUntil(n.Now(), nil) // the hop: five copies onto their links
	if got := n.Stats().InFlight; got != 5 {
		t.Fatalf("InFlight = %d after the hop, want 5", got)
	}
	var eps []Endpoint
	got := 0
	for range 6 {
		eps = append(eps, countEP{&got})
	}
	res := Run(n, eps, Limits{Done: func() bool { return got == 3 }})
	if res.Reason != StopDone || n.Stats().InFlight != 2 {
		t.Fatalf("stopped %v with %d in flight, want done with 2", res.Reason, n.Stats().InFlight)
	}
	Run(n, eps, Limits{})
	if got != 5 || n.Stats().InFlight != 0 {
		t.Fatalf("%d delivered, %d in flight; want 5 and 0", got, n.Stats().InFlight)
	}
}

type countEP struct{ n *int }

func (c countEP) Handle(Packet) time.Time  { *c.n++; return time.Time{} }
func (c countEP) Poll(time.Time) time.Time { return time.Time{} }

// TestBursty: the model Bursty builds loses the fraction asked for, in
// bursts of the mean length asked for.
func TestBursty(t *testing.T) {
	m := Bursty(0.05, 4)
	if math.Abs(m.MeanLoss()-0.05) > 1e-12 || m.PBadToGood != 0.25 {
		t.Fatalf("Bursty(5%%, 4) = %+v, mean loss %v", m, m.MeanLoss())
	}
	l := m.NewLoss(linkRNG(1, "x", dirDown, streamLoss))
	const n = 200_000
	lost, bursts, prev := 0, 0, false
	for range n {
		x := l.Lost(t0, 100)
		if x {
			lost++
			if !prev {
				bursts++
			}
		}
		prev = x
	}
	rate, mean := float64(lost)/n, float64(lost)/float64(bursts)
	if rate < 0.045 || rate > 0.055 || mean < 3.7 || mean > 4.3 {
		t.Errorf("loss %.4f in bursts of mean %.2f, want 0.05 and 4", rate, mean)
	}
	if b := Bursty(0.05, 0.5); b.PBadToGood != 1 {
		t.Errorf("a burst under one packet is not clamped to 1: %+v", b)
	}
}

// TestArena: every byte of a kept payload has a position in the network's
// arena that gives back the same bytes, a part of a payload is found at
// its offset, and memory outside the arena is not found.
func TestArena(t *testing.T) {
	if New(Config{Seed: 1}).Arena() != nil {
		t.Fatal("an arena without KeepPayloads")
	}
	n := New(Config{Seed: 1, KeepPayloads: true})
	s := n.AddNode("s", NodeConfig{})
	a := n.AddNode("a", NodeConfig{Down: LinkConfig{Delay: ms}})
	n.Join(a, grp)
	var kept [][]byte
	for i := range 1000 { // several slabs
		buf := make([]byte, 700+i%600)
		for j := range buf {
			buf[j] = byte(i * j)
		}
		n.Send(n.Now(), s, grp, buf)
		n.DeliverUntil(n.Now().Add(2*ms), func(p Packet) { kept = append(kept, p.Payload) })
	}
	ar := n.Arena()
	var last uint32
	for _, i := range []int{0, 999, 1, 500, 998, 2, 250} { // out of order: not only the hint
		p := kept[i]
		pos, ok := ar.Find(p)
		if !ok {
			t.Fatalf("payload %d not found", i)
		}
		if got := ar.At(pos, len(p)); &got[0] != &p[0] || len(got) != len(p) {
			t.Fatalf("payload %d: At(Find) is not the payload", i)
		}
		if tail, ok := ar.Find(p[100:]); !ok || tail != pos+100 {
			t.Fatalf("payload %d: tail at %d, %v, want %d", i, tail, ok, pos+100)
		}
		if i == 999 && pos <= last {
			t.Fatalf("later payload at %d, not after %d", pos, last)
		}
		last = pos
	}
	if _, ok := ar.Find(make([]byte, 10)); ok {
		t.Fatal("found memory outside the arena")
	}
	if _, ok := ar.Find(nil); ok {
		t.Fatal("found an empty slice")
	}
}

// TestArenaBound: payloads past ArenaBytes are not covered, and neither
// kept by the arena nor found.
func TestArenaBound(t *testing.T) {
	var a Arena
	in, past := make([]byte, 100), make([]byte, 100)
	a.add(in)
	a.next = ArenaBytes - 50
	a.add(past)
	if _, ok := a.Find(in[10:20]); !ok {
		t.Fatal("a covered slab not found")
	}
	if _, ok := a.Find(past); ok || len(a.slabs) != 1 {
		t.Fatalf("a slab past ArenaBytes found or kept (%d slabs)", len(a.slabs))
	}
}
