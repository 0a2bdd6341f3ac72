package congestion

import (
	"math"
	"testing"
	"time"
)

func TestEquation(t *testing.T) {
	// At p = 1 % and 100 ms the TFRC equation gives about 1.2 packets per
	// RTT per 1/sqrt(p): 1000-byte packets, about 110 kB/s.
	got := Equation(1000, 100*time.Millisecond, 0.01)
	if got < 100e3 || got > 120e3 {
		t.Fatalf("Equation(1000, 100ms, 1%%) = %.0f B/s, want about 110 kB/s", got)
	}
	if !math.IsInf(Equation(1000, time.Second, 0), 1) || Equation(1000, 0, 0.1) != 0 {
		t.Fatal("Equation edge cases")
	}
	if Equation(1000, 20*time.Millisecond, 0.001) <= Equation(1000, 20*time.Millisecond, 0.01) {
		t.Fatal("Equation does not fall with loss")
	}
	for _, rate := range []float64{1e4, 1e6, 1e8} {
		p := LossForRate(1400, 30*time.Millisecond, rate)
		if back := Equation(1400, 30*time.Millisecond, p); math.Abs(back-rate)/rate > 1e-6 {
			t.Fatalf("LossForRate(%v) = %v, which gives %v", rate, p, back)
		}
	}
}

func feed(h *LossHistory, now *time.Time, seq *uint16, n int, lost int) {
	for range n {
		*now = now.Add(time.Millisecond)
		*seq += uint16(1 + lost)
		lost = 0
		h.Packet(*now, *seq, 10*time.Millisecond, nil)
	}
}

func TestLossHistory(t *testing.T) {
	var h LossHistory
	now, seq := time.Unix(0, 0), uint16(65000) // across the wrap
	feed(&h, &now, &seq, 1000, 0)
	if h.Rate() != 0 {
		t.Fatalf("no loss, rate %v", h.Rate())
	}
	// A loss every 100 packets, each a burst of three: one event each,
	// however many packets it took.
	for range 20 {
		feed(&h, &now, &seq, 1, 3)
		feed(&h, &now, &seq, 99, 0)
	}
	if p := h.Rate(); p < 0.009 || p > 0.011 {
		t.Fatalf("loss event rate %v, want 0.01", p)
	}
	if h.Events() != 20 {
		t.Fatalf("%d events, want 20", h.Events())
	}
	// Two losses within one RTT are one event.
	feed(&h, &now, &seq, 1, 1)
	feed(&h, &now, &seq, 2, 0)
	feed(&h, &now, &seq, 1, 1)
	if h.Events() != 21 {
		t.Fatalf("%d events after two losses 3 ms apart, want 21", h.Events())
	}
	// A long loss-free run lowers the rate through the open interval.
	p := h.Rate()
	feed(&h, &now, &seq, 5000, 0)
	if h.Rate() >= p/5 {
		t.Fatalf("rate %v after 5000 clean packets, was %v", h.Rate(), p)
	}
	// Duplicates and late packets change nothing.
	before := h
	h.Packet(now, seq, 10*time.Millisecond, nil)
	h.Packet(now, seq-5, 10*time.Millisecond, nil)
	if h != before {
		t.Fatal("a duplicate or late packet changed the history")
	}
}

func TestLossHistorySeed(t *testing.T) {
	var h LossHistory
	now, seq := time.Unix(0, 0), uint16(0)
	feed(&h, &now, &seq, 50, 0)
	now = now.Add(time.Millisecond)
	seq += 2
	h.Packet(now, seq, 10*time.Millisecond, func() float64 { return 1e-4 })
	if p := h.Rate(); p < 0.9e-4 || p > 1.1e-4 {
		t.Fatalf("seeded rate %v, want 1e-4 (not 1/50)", p)
	}
}

func TestLossHistoryTolerant(t *testing.T) {
	strict, tolerant := LossHistory{}, LossHistory{Tolerant: true}
	now, seq := time.Unix(0, 0), uint16(0)
	strict.Packet(now, seq, 10*time.Millisecond, nil)
	tolerant.Packet(now, seq, 10*time.Millisecond, nil)
	// Isolated single losses, 50 ms apart (RTT 10 ms): random loss.
	for range 100 {
		for _, h := range []*LossHistory{&strict, &tolerant} {
			n, s := now, seq
			feed(h, &n, &s, 1, 1)
			feed(h, &n, &s, 49, 0)
		}
		now, seq = now.Add(50*time.Millisecond), seq+51
	}
	if strict.Events() != 100 || tolerant.Events() != 0 {
		t.Fatalf("isolated losses: strict %d events, tolerant %d; want 100 and 0", strict.Events(), tolerant.Events())
	}
	// Two losses within an RTT (a queue overflowing) still count.
	feed(&tolerant, &now, &seq, 1, 1)
	feed(&tolerant, &now, &seq, 1, 1)
	if tolerant.Events() != 1 {
		t.Fatalf("tolerant: %d events after a double loss, want 1", tolerant.Events())
	}
}

func newCtl(cfg Config) (*Controller, time.Time) {
	now := time.Unix(100, 0)
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = 1000
	}
	return NewController(cfg, now), now
}

// sendFull tells the controller it used its rate for d.
func sendFull(c *Controller, now time.Time, d time.Duration) time.Time {
	c.Sent(int(c.Rate() * d.Seconds()))
	return now.Add(d)
}

func TestControllerSlowStartAndElection(t *testing.T) {
	c, now := newCtl(Config{StartRate: 1e5})
	rtt := 20 * time.Millisecond
	// Slow start: the CLR's doubled receive rate raises the rate, at most
	// twice per report.
	for i := range 5 {
		now = sendFull(c, now, rtt)
		c.Feedback(now, Feedback{Node: 1, Rate: 8 * c.Rate(), RTT: rtt, Start: true, HasRTT: i > 0})
	}
	if got := c.Rate(); got < 3.1e6 || got > 3.3e6 {
		t.Fatalf("after 5 reports the rate is %v, want 1e5·2^5", got)
	}
	if id, ok := c.CLR(); !ok || id != 1 || !c.SlowStart() {
		t.Fatalf("CLR %v %v slow start %v", id, ok, c.SlowStart())
	}
	// A receiver with loss reports a lower rate: it takes over, and the
	// rate follows it at once.
	now = sendFull(c, now, rtt)
	c.Feedback(now, Feedback{Node: 2, Rate: 1e6, Loss: 0.01, RTT: rtt, HasRTT: true})
	if id, _ := c.CLR(); id != 2 || c.Rate() != 1e6 || c.SlowStart() {
		t.Fatalf("after a lower report: CLR %x rate %v slow start %v", id, c.Rate(), c.SlowStart())
	}
	// The old CLR is a candidate and listed after the CLR.
	nodes := c.Nodes(nil)
	if len(nodes) != 2 || !nodes[0].CLR || nodes[0].ID != 2 || nodes[1].ID != 1 || nodes[1].CLR {
		t.Fatalf("nodes %+v", nodes)
	}
	// The CLR improves beyond the candidate: the candidate takes over.
	now = sendFull(c, now, rtt)
	c.Feedback(now, Feedback{Node: 1, Rate: 2e6, Loss: 0.005, RTT: rtt, HasRTT: true})
	now = sendFull(c, now, rtt)
	c.Feedback(now, Feedback{Node: 2, Rate: 5e6, Loss: 0.001, RTT: rtt, HasRTT: true})
	if id, _ := c.CLR(); id != 1 || c.Rate() != 2e6 {
		t.Fatalf("hand-over: CLR %x rate %v, want node 1 at 2e6", id, c.Rate())
	}
}

func TestControllerSilenceFloor(t *testing.T) {
	c, now := newCtl(Config{StartRate: 1e6})
	rtt := 20 * time.Millisecond
	now = sendFull(c, now, rtt)
	c.Feedback(now, Feedback{Node: 1, Rate: 4e6, Loss: 0.001, RTT: rtt, HasRTT: true})
	confirmed := c.Rate()
	// The CLR's feedback is lost for a while: the rate halves once, and
	// stays there however many probes go unanswered.
	for range 100 {
		now = sendFull(c, now, rtt)
		c.Probe(now, rtt)
	}
	if got := c.Rate(); got != confirmed/2 {
		t.Fatalf("after 100 silent probes the rate is %v, want %v (half of %v)", got, confirmed/2, confirmed)
	}
	// Feedback returns: the rate follows it again (doubling at most per
	// report).
	for range 2 {
		now = sendFull(c, now, rtt)
		c.Feedback(now, Feedback{Node: 3, Rate: 3e6, Loss: 0.002, RTT: rtt, HasRTT: true})
	}
	if c.Rate() != 3e6 {
		t.Fatalf("rate %v after feedback resumed, want 3e6", c.Rate())
	}
}

func TestControllerDataLimited(t *testing.T) {
	c, now := newCtl(Config{StartRate: 1e6})
	rtt := 20 * time.Millisecond
	now = sendFull(c, now, rtt)
	c.Feedback(now, Feedback{Node: 1, Rate: 4e6, RTT: rtt, Start: true, HasRTT: true})
	r := c.Rate()
	// The sender runs out of data (flushing): receive rates fall, which
	// must not drag the rate down.
	for range 20 {
		now = now.Add(rtt)
		c.Sent(100)
		c.Idle()
		c.Feedback(now, Feedback{Node: 1, Rate: 2e4, RTT: rtt, Start: true, HasRTT: true})
	}
	if c.Rate() != r {
		t.Fatalf("data-limited slow start: rate %v, want %v held", c.Rate(), r)
	}
	// Nor may reports raise it: in slow start the receivers' doubled
	// receive rates, after it the equation with a loss rate that decays
	// while nothing is lost because little is sent.
	c.Feedback(now.Add(rtt), Feedback{Node: 1, Rate: 4 * r, RTT: rtt, Start: true, HasRTT: true})
	if c.Rate() != r {
		t.Fatalf("idle sender, slow-start report of %v: rate %v, want %v held", 4*r, c.Rate(), r)
	}
	c.Feedback(now.Add(2*rtt), Feedback{Node: 1, Rate: 4 * r, Loss: 1e-6, RTT: rtt / 4, HasRTT: true})
	if c.Rate() != r {
		t.Fatalf("idle sender, report of %v: rate %v, want %v held", 4*r, c.Rate(), r)
	}
	// Loss still lowers it. A Shoal receiver past slow start bounds its
	// report by twice its receive rate, which says nothing with the
	// sender idle: the equation decides instead.
	now = now.Add(3 * rtt)
	c.Feedback(now, Feedback{Node: 1, Rate: 2e4, Loss: 0.01, RTT: rtt, HasRTT: true})
	// (Within the sqrt-RTT damping's few per cent.)
	if want := Equation(1000, rtt, 0.01); math.Abs(c.Rate()-want) > 0.05*want {
		t.Fatalf("data-limited rate %v after 1 %% loss, want the equation's %v", c.Rate(), want)
	}
	// Sending at the rate again lets reports raise it.
	r = c.Rate()
	for range 2 {
		now = sendFull(c, now, rtt)
		c.Feedback(now, Feedback{Node: 1, Rate: 1.5 * r, Loss: 0.005, RTT: rtt, HasRTT: true})
	}
	if c.Rate() <= r {
		t.Fatalf("busy again: rate %v, want above %v", c.Rate(), r)
	}
}

func TestControllerSlowReceiver(t *testing.T) {
	rtt := 20 * time.Millisecond
	// Default policy: follow down to MinRate.
	c, now := newCtl(Config{StartRate: 1e6, MinRate: 5e4})
	c.Feedback(now, Feedback{Node: 9, Rate: 1e3, Loss: 0.2, RTT: rtt, HasRTT: true})
	if c.Rate() != 5e4 {
		t.Fatalf("rate %v with a 1 kB/s receiver, want the 50 kB/s floor", c.Rate())
	}
	// With a timeout, the slow receiver is dropped once and ignored after.
	c, now = newCtl(Config{StartRate: 1e6, MinRate: 5e4, SlowReceiverTimeout: time.Second})
	drops := 0
	for range 100 {
		now = sendFull(c, now, rtt)
		if c.Feedback(now, Feedback{Node: 9, Rate: 1e3, Loss: 0.2, RTT: rtt, HasRTT: true}) {
			drops++
		}
		c.Feedback(now, Feedback{Node: 2, Rate: 8e5, Loss: 0.001, RTT: rtt, HasRTT: true})
	}
	if id, _ := c.CLR(); drops != 1 || id != 2 || c.Rate() != 8e5 {
		t.Fatalf("drops %d, CLR %x, rate %v; want 1 drop and node 2's 8e5", drops, id, c.Rate())
	}
}

func TestControllerBounds(t *testing.T) {
	c, now := newCtl(Config{StartRate: 1e6, MaxRate: 2e6})
	for range 10 {
		now = sendFull(c, now, 10*time.Millisecond)
		c.Feedback(now, Feedback{Node: 1, Rate: 1e9, RTT: 10 * time.Millisecond, Start: true})
	}
	if c.Rate() != 2e6 {
		t.Fatalf("rate %v above MaxRate", c.Rate())
	}
	// NaN and negative reports are ignored.
	c.Feedback(now, Feedback{Node: 1, Rate: math.NaN(), Start: true})
	c.Feedback(now, Feedback{Node: 1, Rate: -5, Start: true})
	if c.Rate() != 2e6 {
		t.Fatalf("rate %v after bad reports", c.Rate())
	}
}

// TestDroppedBounded: every node id dropped as too slow used to stay in
// the controller's list for ever, and any host can report under any id.
// The list keeps the latest maxDropped; a recent drop is still ignored.
func TestDroppedBounded(t *testing.T) {
	rtt := 20 * time.Millisecond
	c, now := newCtl(Config{StartRate: 1e6, MinRate: 5e4, SlowReceiverTimeout: time.Second})
	drops := 0
	const n = maxDropped + 1000
	for i := range uint32(n) {
		f := Feedback{Node: 1000 + i, Rate: 1e3, Loss: 0.2, RTT: rtt, HasRTT: true}
		c.Feedback(now, f)
		if c.Feedback(now.Add(time.Second), f) {
			drops++
		}
		now = now.Add(time.Millisecond)
	}
	if drops != n {
		t.Fatalf("%d of %d slow nodes dropped", drops, n)
	}
	if len(c.dropped) > maxDropped || len(c.droppedFIFO) > maxDropped {
		t.Fatalf("%d dropped nodes kept, %d listed; want at most %d", len(c.dropped), len(c.droppedFIFO), maxDropped)
	}
	last := Feedback{Node: 1000 + n - 1, Rate: 1e3, Loss: 0.2, RTT: rtt, HasRTT: true}
	if !c.dropped[last.Node] || c.dropped[1000] {
		t.Fatal("the newest drops must be kept, the oldest forgotten")
	}
	// The forgotten one is judged afresh: dropped again after the timeout.
	first := last
	first.Node = 1000
	c.Feedback(now, first)
	if !c.Feedback(now.Add(time.Second), first) {
		t.Fatal("a forgotten slow node was not dropped again")
	}
	if c.Feedback(now.Add(2*time.Second), last) {
		t.Fatal("a recently dropped node was dropped twice")
	}
}

func TestControllerSlowStartLaggingReports(t *testing.T) {
	c, now := newCtl(Config{StartRate: 1e5})
	rtt := 40 * time.Millisecond
	var past []float64 // the rate at each round trip
	for i := range 10 {
		past = append(past, c.Rate())
		lag := past[max(0, len(past)-3)]
		// Four probes per round trip; the CLR answers each, two
		// candidates every other one, later in the round trip, with the
		// same figure.
		for j := range 4 {
			now = sendFull(c, now, rtt/4)
			c.Feedback(now, Feedback{Node: 1, Rate: 2 * lag, RTT: rtt, Start: true, HasRTT: i > 0})
			if j%2 == 1 {
				c.Feedback(now, Feedback{Node: uint32(2 + j/2), Rate: 2 * lag, RTT: rtt, Start: true, HasRTT: i > 0})
			}
		}
	}
	if got := c.Rate(); got < 1e5*256 {
		t.Fatalf("after 10 round trips of slow start the rate is %v, want at least 2^8 times the start", got)
	}
	// A receiver whose receive rate falls short of what was sent limits
	// the sender: it takes over as the CLR and the rate stops growing.
	r := c.Rate()
	for range 4 {
		now = sendFull(c, now, rtt/4)
		c.Feedback(now, Feedback{Node: 9, Rate: 2 * r / 8, RTT: rtt, Start: true, HasRTT: true})
	}
	if id, _ := c.CLR(); id != 9 || c.Rate() > r {
		t.Fatalf("a receiver short of pace: CLR %x, rate %v (was %v); want node 9 and no growth", id, c.Rate(), r)
	}
}

// TestControllerSlowStartExit: the round trip grows in slow start, a round
// trip after the queue began, when the rate is past twice the bottleneck's
// and the report's receive rate lags below it. The first cut takes the
// lower of half the rate and the receive rate (at most a quarter off); while
// the queue stands, the rate follows the receive rate, which is then the
// bottleneck's; once it drained, it grows by no more than an eighth per
// round trip.
func TestControllerSlowStartExit(t *testing.T) {
	const link = 25e6 // bytes/s
	rtt := 80 * time.Millisecond
	c, now := newCtl(Config{StartRate: 1e6})
	for c.Rate() < 2.4*link {
		now = sendFull(c, now, rtt/4)
		c.Feedback(now, Feedback{Node: 1, Rate: 2 * c.Rate(), RTT: rtt, Start: true, HasRTT: true})
	}
	r := c.Rate()
	// The queue shows; the receive rate is 80 % of the link's.
	now = sendFull(c, now, rtt/4)
	c.Feedback(now, Feedback{Node: 1, Rate: 2 * 0.8 * link, RTT: rtt + 5*time.Millisecond, Start: true, HasRTT: true})
	if got, want := c.Rate(), 0.95*0.8*link; got != want {
		t.Fatalf("first cut from %v: rate %v, want %v (95 %% of the receive rate)", r, got, want)
	}
	// A receive rate near nothing (a receiver starved of CPU) cuts at
	// most to a quarter per report.
	c2, now2 := newCtl(Config{StartRate: 1e6})
	for c2.Rate() < 2*link {
		now2 = sendFull(c2, now2, rtt/4)
		c2.Feedback(now2, Feedback{Node: 1, Rate: 2 * c2.Rate(), RTT: rtt, Start: true, HasRTT: true})
	}
	r2 := c2.Rate()
	now2 = sendFull(c2, now2, rtt/4)
	c2.Feedback(now2, Feedback{Node: 1, Rate: 2e4, RTT: rtt + 5*time.Millisecond, Start: true, HasRTT: true})
	if got := c2.Rate(); got != r2/4 {
		t.Fatalf("a report of next to nothing cut %v to %v, want a quarter", r2, got)
	}
	// The queue stands: the receive rate is the link's, and the rate
	// follows it up.
	for range 4 {
		now = sendFull(c, now, rtt/4)
		c.Feedback(now, Feedback{Node: 1, Rate: 2 * link, RTT: rtt + 5*time.Millisecond, Start: true, HasRTT: true})
	}
	if got, want := c.Rate(), 0.95*link; got != want {
		t.Fatalf("standing queue: rate %v, want %v (95 %% of the link's)", got, want)
	}
	// The queue drained: growth is an eighth per round trip at most.
	r = c.Rate()
	for range 8 {
		now = sendFull(c, now, rtt/4)
		c.Feedback(now, Feedback{Node: 1, Rate: 2 * c.Rate(), RTT: rtt, Start: true, HasRTT: true})
	}
	if got := c.Rate(); got > r*1.125*1.125*1.001 || got <= r {
		t.Fatalf("after two round trips without a queue the rate went from %v to %v, want up to an eighth a round trip", r, got)
	}
}
