package congestion

import (
	"math"
	"time"
)

// Config configures a NORM-CC Controller. Rates are bytes per second of
// whole NORM packets.
type Config struct {
	// SegmentSize is the nominal packet size for the rate equation.
	// Required.
	SegmentSize int
	// StartRate is the rate before any feedback arrives. 0 means 1 Mbit/s:
	// with feedback every round trip, slow start doubles from there to a
	// gigabit in about ten round trips.
	StartRate float64
	// MinRate is the floor no feedback can push the rate below. 0 means ten
	// segments per second. A receiver reporting less is followed down to
	// MinRate (see SlowReceiverTimeout).
	MinRate float64
	// MaxRate bounds the rate; 0 means no bound beyond the network's.
	MaxRate float64
	// Candidates is how many potential limiting receivers (PLRs) besides
	// the current one (CLR) are listed in probes and answer them at once,
	// so that a hand-over needs no back-off. 0 means 4.
	Candidates int
	// SlowReceiverTimeout is the policy for a receiver that cannot keep up
	// with MinRate. 0 means follow it: the rate stays at MinRate for as
	// long as it is the slowest. A positive value drops a receiver whose
	// rate stayed below MinRate that long from the election, so that the
	// rest of the group can go faster; Feedback reports the drop once, and
	// the receiver's later feedback is ignored.
	SlowReceiverTimeout time.Duration
}

// Feedback is one receiver's congestion report (EXT_CC in a NORM_NACK or
// NORM_ACK), with what the sender measured from the same packet.
type Feedback struct {
	Node uint32
	// Rate is the rate the receiver reported. In slow start it is twice
	// its receive rate; after the first loss it is its TCP-friendly rate.
	Rate float64
	// Loss is the loss event rate the receiver reported.
	Loss float64
	// RTT is the round trip the sender measured from the packet's probe
	// echo; 0 if unknown.
	RTT time.Duration
	// Start says the receiver has seen no loss yet (CC_START).
	Start bool
	// HasRTT says the receiver computed Rate with the RTT this sender
	// measured for it and listed in a probe (CC_RTT); otherwise it used an
	// estimate of its own, and the sender recomputes the rate from Loss
	// with its own measurement.
	HasRTT bool
}

// Node is one entry of the node list a probe carries.
type Node struct {
	ID   uint32
	CLR  bool // the current limiting receiver; else a candidate (PLR)
	RTT  time.Duration
	Rate float64
}

type ccNode struct {
	id    uint32
	rate  float64
	loss  float64
	rtt   time.Duration
	start bool
	// pace: a slow-start report whose receive rate kept up with what the
	// sender sent while the receiver measured it. The report's own rate
	// lags the sender's by a round trip or two, so it says only that this
	// receiver does not limit the sender yet; in the election it ranks
	// above every rate (see key).
	pace  bool
	heard time.Time
	below time.Time // first report below MinRate in a row, zero if none
}

// key is what the election compares: the rate, or +Inf for a receiver in
// slow start that keeps pace. Comparing slow-start reports by their rates
// would elect whichever answered longest ago, since each is twice a
// receive rate measured a round trip or more back, while the rate doubles
// every round trip: slow start would crawl at the pace of the stalest
// report.
func (n *ccNode) key() float64 {
	if n.pace {
		return math.Inf(1)
	}
	return n.rate
}

// rateStep is a rate the controller set, from when.
type rateStep struct {
	at   time.Time
	rate float64
}

// histLen is how many rate changes the controller remembers: enough for
// the few round trips a slow-start report looks back, even when several
// receivers' reports change the rate within one.
const histLen = 32

// Controller is the sender side of NORM-CC (RFC 5740 §5.5): it elects the
// current limiting receiver (CLR) from feedback, keeps a few candidates,
// and sets the rate to the CLR's. Where RFC 5740 leaves room, it departs
// from the reference implementation:
//
//   - it starts at StartRate, not one segment per second, and in slow start
//     doubles the rate every round trip while every receiver's receive
//     rate keeps pace with what was sent, rather than wait for reports
//     that lag the rate by a round trip or two; probes go four times per
//     round trip then;
//   - slow start ends when a round trip grows by a queue's worth (HyStart's
//     idea), or at a loss: the rate drops to the lower of half its own and
//     the receive rate, follows the receive rate while the queue stands,
//     and grows by an eighth per round trip after;
//   - a silence of the CLR (lost feedback) halves the rate once, to half
//     the last rate the CLR confirmed, and holds it there, instead of
//     halving on every probe towards nothing;
//   - when the sender has little to send (flushing, waiting for
//     acknowledgements, a slow application) receive rates say nothing of
//     the network: they may not lower the rate then, only loss may, and
//     nothing raises it. The end of a transfer goes at the rate its data
//     went, and the next one starts there.
//
// It is deterministic and does not allocate after New (but for the list of
// dropped slow receivers, at most 4096 long).
type Controller struct {
	cfg        Config
	rate       float64
	nodes      []ccNode // nodes[0] is the CLR when clr is set
	clr        bool
	slowStart  bool
	confirmed  float64       // the rate last set from CLR feedback
	clrHeard   time.Time     // the CLR's last feedback
	held       bool          // the rate was lowered for CLR silence
	unanswered int           // probes since the CLR last reported
	clrSample  time.Duration // the CLR's latest RTT sample, unsmoothed
	// Slow start watches the queue it fills: minRTT is the least RTT
	// sampled, and capped is set once a CLR sample rose clearly above it.
	minRTT time.Duration
	capped bool
	// sqrtRTT is the smoothed square root of the CLR's RTT samples, in
	// seconds (RFC 5348 §4.5).
	sqrtRTT float64
	grtt    time.Duration // the group RTT at the last probe
	dropped map[uint32]bool
	// droppedFIFO holds the ids of dropped in the order dropped, as a ring
	// from droppedHead once full, so that the oldest can be forgotten.
	droppedFIFO []uint32
	droppedHead int
	// Smoothed RTTs of the receivers heard, listed or not: a receiver's
	// first report as a candidate must not rest on one sample taken while
	// the sender's own burst filled a queue.
	rtts map[uint32]time.Duration

	// Bytes sent over about one round trip, to tell an application- or
	// data-limited sender from a network-limited one.
	sent      float64
	sentSince time.Time
	// idle is set when the sender last found nothing to send though its
	// rate allowed a packet, and cleared by the next packet it sends.
	idle bool
	// allowed is the bytes the rate allowed since sentSince (up to
	// acct): the sent bytes are compared with it, not with the current
	// rate, which in slow start has doubled since the window began.
	allowed  float64
	acct     time.Time
	sentFrac float64 // sent / allowed over the last closed window

	// The rates set lately, a ring with hist[(histI-1)%histLen] newest:
	// a slow-start report is judged against what the sender sent while
	// the receiver measured.
	hist  [histLen]rateStep
	histN int
	histI int
	// raised is when slow start last doubled the rate.
	raised time.Time
}

// DefaultStartRate is Config.StartRate's default, in bytes per second
// (1 Mbit/s).
const DefaultStartRate = 125000

// NewController returns a controller at cfg.StartRate.
func NewController(cfg Config, now time.Time) *Controller {
	seg := float64(max(cfg.SegmentSize, 1))
	if cfg.StartRate <= 0 {
		cfg.StartRate = DefaultStartRate
	}
	if cfg.MinRate <= 0 {
		cfg.MinRate = 10 * seg
	}
	if cfg.MaxRate > 0 && cfg.MinRate > cfg.MaxRate {
		cfg.MinRate = cfg.MaxRate
	}
	if cfg.Candidates <= 0 {
		cfg.Candidates = 4
	}
	c := &Controller{cfg: cfg, slowStart: true, nodes: make([]ccNode, 0, cfg.Candidates+1), sentSince: now,
		rtts: map[uint32]time.Duration{}, acct: now, sentFrac: 1}
	c.rate = c.clamp(cfg.StartRate)
	c.record(now)
	c.confirmed = c.rate
	return c
}

// Rate returns the rate the sender should use now.
func (c *Controller) Rate() float64 { return c.rate }

// SlowStart reports whether the CLR (or, before any feedback, the
// controller) is still in slow start.
func (c *Controller) SlowStart() bool { return c.slowStart }

// CLR returns the current limiting receiver, if any.
func (c *Controller) CLR() (uint32, bool) {
	if !c.clr {
		return 0, false
	}
	return c.nodes[0].id, true
}

func (c *Controller) clamp(r float64) float64 {
	if c.cfg.MaxRate > 0 && r > c.cfg.MaxRate {
		r = c.cfg.MaxRate
	}
	if !(r >= c.cfg.MinRate) { // also NaN
		r = c.cfg.MinRate
	}
	return r
}

// Sent records n bytes sent. The controller uses it to notice a sender
// that is not using its rate.
func (c *Controller) Sent(n int) {
	c.sent += float64(n)
	c.idle = false
}

// Idle tells the controller that the sender had nothing to send although
// its rate allowed a packet: it is limited by its data, not the network.
// Until the next Sent, feedback may lower the rate but not raise it, as
// TCP does not grow a window it does not fill (RFC 7661): the receivers'
// reports then describe a queue the sender let drain, not spare capacity.
func (c *Controller) Idle() { c.idle = true }

// measureSent closes the sending-rate window when it is long enough.
func (c *Controller) measureSent(now time.Time, rtt time.Duration) {
	el := now.Sub(c.sentSince)
	if el < max(rtt, 10*time.Millisecond) {
		return
	}
	c.account(now)
	if c.allowed > 0 {
		c.sentFrac = c.sent / c.allowed
	}
	c.sent, c.sentSince, c.allowed = 0, now, 0
}

// account adds what the rate allowed up to now.
func (c *Controller) account(now time.Time) {
	if now.After(c.acct) {
		c.allowed += c.rate * now.Sub(c.acct).Seconds()
		c.acct = now
	}
}

// limited reports whether the sender is idle now or used less than half
// its rate lately.
func (c *Controller) limited() bool { return c.idle || c.sentFrac < 0.5 }

// setRate changes the rate at now, within the configured bounds.
func (c *Controller) setRate(now time.Time, r float64) {
	r = c.clamp(r)
	if r == c.rate {
		return
	}
	c.account(now)
	c.rate = r
	c.record(now)
}

func (c *Controller) record(now time.Time) {
	c.hist[c.histI] = rateStep{at: now, rate: c.rate}
	c.histI = (c.histI + 1) % histLen
	c.histN = min(c.histN+1, histLen)
}

// minRateOver returns the least rate in effect at any time in [from, to],
// and false if the history does not reach back to from.
func (c *Controller) minRateOver(from, to time.Time) (float64, bool) {
	lo := math.Inf(1)
	end := time.Time{} // when the step below ended; zero for the newest
	for k := 1; k <= c.histN; k++ {
		st := c.hist[(c.histI-k+histLen)%histLen]
		if st.at.Before(to) || st.at.Equal(to) {
			if end.IsZero() || end.After(from) {
				lo = min(lo, st.rate)
			}
		}
		if !st.at.After(from) {
			return lo, true
		}
		end = st.at
	}
	// The oldest step is the start rate: before it the sender did not
	// exist, let alone send.
	return lo, c.histN < histLen && !math.IsInf(lo, 1)
}

// Feedback processes one receiver's report at now. It reports whether the
// report made the receiver be dropped as too slow (see
// Config.SlowReceiverTimeout); that is reported once per receiver.
func (c *Controller) Feedback(now time.Time, f Feedback) (dropped bool) {
	if c.dropped[f.Node] {
		return false
	}
	// The RTT listed for a node is a smoothed one (TFRC's 0.9 weight):
	// single samples swing with the queue the sender itself fills.
	rtt, old := f.RTT, c.rtts[f.Node]
	isCLR := c.clr && c.nodes[0].id == f.Node
	switch {
	case rtt <= 0:
		rtt = old
	case old > 0:
		rtt = (9*old + rtt) / 10
	case c.clr && !isCLR && c.clrSample > c.nodes[0].rtt:
		// A first sample, taken while the CLR's samples run above its
		// smoothed RTT: both crossed the same queue, which the sender's
		// own rate filled, so scale the sample down as much. A receiver
		// that is farther away still shows it.
		rtt = time.Duration(float64(rtt) * float64(c.nodes[0].rtt) / float64(c.clrSample))
	}
	if isCLR && f.RTT > 0 {
		c.clrSample = f.RTT
	}
	if f.RTT > 0 && (c.minRTT == 0 || f.RTT < c.minRTT) {
		c.minRTT = f.RTT
	}
	if isCLR && f.RTT > 0 {
		if q := math.Sqrt(f.RTT.Seconds()); c.sqrtRTT == 0 {
			c.sqrtRTT = q
		} else {
			c.sqrtRTT = 0.9*c.sqrtRTT + 0.1*q
		}
	}
	if _, ok := c.rtts[f.Node]; ok || len(c.rtts) < maxRTTs {
		c.rtts[f.Node] = rtt
	}
	c.measureSent(now, rtt)
	rate := f.Rate
	if !f.Start && rtt > 0 && (!f.HasRTT || c.limited() || !(rate > 0)) {
		// A receiver that did not know its RTT guessed it; the sender's
		// measurement is better (RFC 5740 §5.5.3). And a Shoal receiver's
		// report is bounded by twice its receive rate, which says nothing
		// when the sender left its rate unused.
		rate = Equation(float64(c.cfg.SegmentSize), rtt, f.Loss)
	} else if !f.Start && rtt > 0 && f.Loss > 0 {
		// The receiver computed its rate with the RTT listed for it,
		// which the probe carries rounded up to the next step of 8 %
		// (RFC 5740's logarithmic quantizer): its rate runs up to 8 %
		// low, and a flow that holds itself that far under the path's
		// rate leaves the link that idle. Recompute with the unrounded
		// RTT, keeping the receiver's own bound (twice its receive rate)
		// where that set its report (it is then below the equation's
		// rate at the rounded RTT). Only upwards: a report above the
		// equation's rate was made with a shorter RTT listed earlier,
		// and is the receiver's word.
		if seg := float64(c.cfg.SegmentSize); rate >= 0.99*Equation(seg, time.Duration(float64(rtt)*rttStep), f.Loss) {
			rate = max(rate, min(Equation(seg, rtt, f.Loss), rate*rttStep))
		}
	}
	if !(rate > 0) {
		return false
	}
	n := ccNode{id: f.Node, rate: rate, loss: f.Loss, rtt: rtt, start: f.Start, heard: now,
		pace: f.Start && c.keptPace(now, f, rtt, old)}
	if i := c.find(f.Node); i >= 0 {
		n.below = c.nodes[i].below
	}
	if rate < c.cfg.MinRate && c.cfg.SlowReceiverTimeout > 0 {
		if n.below.IsZero() {
			n.below = now
		}
		if now.Sub(n.below) >= c.cfg.SlowReceiverTimeout {
			c.drop(f.Node)
			return true
		}
	} else {
		n.below = time.Time{}
	}

	i := c.find(f.Node)
	switch {
	case c.clr && i == 0:
		c.nodes[0] = n
		// A CLR whose rate rose above a candidate's hands over: candidates
		// answer every probe, so their rates are as fresh as its own.
		c.promote()
	case !c.clr || n.key() < c.nodes[0].key() || (n.key() < 1.1*c.nodes[0].key() && rtt > c.nodes[0].rtt):
		// A new CLR; the old one becomes a candidate.
		if i > 0 {
			c.remove(i)
		}
		if c.clr {
			old := c.nodes[0]
			c.nodes[0] = n
			c.candidate(old)
		} else {
			c.nodes = append(c.nodes, ccNode{})
			copy(c.nodes[1:], c.nodes)
			c.nodes[0] = n
			if len(c.nodes) > c.cfg.Candidates+1 {
				c.nodes = c.nodes[:c.cfg.Candidates+1]
			}
			c.clr = true
		}
	default:
		if i > 0 {
			c.nodes[i] = n
		} else {
			c.candidate(n)
		}
		return false
	}
	c.adjust(now, f.RTT)
	return false
}

// keptPace reports whether a slow-start report shows the receiver got
// what the sender sent: its receive rate (half the report) at least 85 %
// of the least rate the sender had while the receiver measured. The
// receiver measures over about its own RTT estimate (the one this sender
// listed for it, old, or else the group RTT) and at least eight packets,
// and its last closed window may end up to one window before it answered;
// those packets left here a round trip before the answer arrived.
func (c *Controller) keptPace(now time.Time, f Feedback, rtt, old time.Duration) bool {
	if rtt <= 0 {
		return false
	}
	w := c.grtt
	if f.HasRTT && old > 0 {
		w = old
	}
	w = min(max(w, 10*time.Millisecond), time.Second)
	to := now.Add(-rtt)
	lo, ok := c.minRateOver(to.Add(-2*w), to)
	if !ok {
		return false
	}
	if pkts := time.Duration(8 * float64(c.cfg.SegmentSize) / lo * float64(time.Second)); pkts > w {
		if lo, ok = c.minRateOver(to.Add(-2*pkts), to); !ok {
			return false
		}
	}
	return f.Rate/2 >= 0.85*lo
}

// adjust sets the rate from the CLR's latest report, whose RTT sample was
// sample (0 if none).
func (c *Controller) adjust(now time.Time, sample time.Duration) {
	clr := &c.nodes[0]
	c.slowStart = clr.start
	target := clr.rate
	switch {
	case clr.start && c.queueing(sample) && !c.limited():
		// The round trip grew: the rate is above the bottleneck and a
		// queue is filling. Doubling on would overflow it by up to a
		// whole bandwidth-delay product, all of which would need repair.
		// Go just under the rate that gets through (half the report) to
		// drain it, and follow that rate from here (HyStart's idea, for
		// NORM).
		//
		// A queue shows a round trip after it began to fill, when the
		// rate has doubled again, and the receive rate in the report was
		// measured over a round trip in which it still climbed: it is
		// below the bottleneck's, as the rate here is above it. Going too
		// low costs the link a round trip at worst; going too high fills
		// the queue on to loss, all of which must be repaired. So the
		// first cut takes the lower of the two, half the rate and the
		// receive rate; but at most a quarter, as one report from a
		// receiver that was briefly starved of CPU must not send the rate
		// to the floor.
		target = min(0.95*clr.rate/2, c.rate/2)
		if c.capped {
			// While the queue stands, the bottleneck is busy, so what
			// the receiver got is its rate: follow it, up or down.
			target = 0.95 * clr.rate / 2
		}
		c.capped = true
		target = max(target, c.rate/4)
		// Growth resumes from here once the queue is gone, not with
		// credit for the round trips it stood.
		c.raised = now
	case clr.start && clr.pace:
		// Every receiver heard kept pace: grow by a factor of two per
		// round trip, as TCP's slow start does (an eighth after the
		// queue showed), rather than wait for reports that lag the rate
		// by a round trip or two to catch up. Probes go four times per
		// round trip in slow start, and the rate grows in as many steps,
		// so that a queue shows before the rate is far past the
		// bottleneck.
		f := 2.0
		if c.capped {
			f = 1.125
		}
		target = c.rate * c.growth(now, clr, f)
	case clr.start && c.capped:
		// An eighth per round trip, however many reports it brings.
		target = max(min(target, c.rate*c.growth(now, clr, 1.125)), c.rate)
	case !clr.start:
		if sample > 0 && c.sqrtRTT > 0 {
			// RFC 5348 §4.5: scale by the square root of the smoothed
			// RTT over that of the latest sample, so that a filling queue
			// slows the sender before loss does and a draining one lets it
			// back up, damping the swing a single, coarse RTT estimate
			// causes (bounded to a factor of two either way).
			target *= min(max(c.sqrtRTT/math.Sqrt(sample.Seconds()), 0.5), 2)
		}
	case clr.start:
		// In slow start the report is twice the receive rate: it may
		// raise the rate, but a lower one only says that the sender sent
		// less (it started, or had little to send), not that the network
		// took less. Loss ends slow start, and then the equation rules.
		target = max(target, c.rate)
	}
	if target > c.rate {
		// At most double per report: an estimate from a few packets may
		// be far off, and the next round trip will tell. And a sender
		// that leaves its rate unused has not shown the network takes
		// more: after the data ends, the queue drains and the receivers'
		// rates rise, which must not carry the rate to the next transfer.
		target = min(target, 2*c.rate)
		if c.limited() {
			target = c.rate
		}
	}
	if c.clamp(target) != c.rate && clr.start || !clr.start {
		c.raised = now
	}
	c.setRate(now, target)
	c.confirmed = c.rate
	c.clrHeard = now
	c.held = false
	c.unanswered = 0
}

// growth is the factor by which slow start may raise the rate at now to
// grow by f per round trip of the CLR's: reports come several times per
// round trip, each raising by its share.
func (c *Controller) growth(now time.Time, clr *ccNode, f float64) float64 {
	rtt := clr.rtt.Seconds()
	if rtt <= 0 {
		return 1
	}
	return math.Pow(f, min(now.Sub(c.raised).Seconds()/rtt, 1))
}

// queueing reports whether an RTT sample shows a queue building: more
// than a 64th of the least RTT (at least 2 ms, at most 16 ms) above it,
// and more than the pacer's own bursts (up to 32 segments) queue at a slow
// bottleneck.
func (c *Controller) queueing(sample time.Duration) bool {
	if sample <= 0 || c.minRTT <= 0 {
		return false
	}
	return sample > c.minRTT+c.slack()
}

func (c *Controller) slack() time.Duration {
	th := min(max(c.minRTT/64, 2*time.Millisecond), 16*time.Millisecond)
	burst := time.Duration(32 * float64(c.cfg.SegmentSize) / c.rate * float64(time.Second))
	return max(th, burst)
}

// candidate files n among the candidates, replacing the fastest one if the
// list is full and n is slower.
func (c *Controller) candidate(n ccNode) {
	if len(c.nodes) < c.cfg.Candidates+1 {
		c.nodes = append(c.nodes, n)
		return
	}
	worst := 1
	for j := 2; j < len(c.nodes); j++ {
		if c.nodes[j].key() > c.nodes[worst].key() {
			worst = j
		}
	}
	if n.key() < c.nodes[worst].key() || (n.pace && c.nodes[worst].pace) {
		c.nodes[worst] = n
	}
}

func (c *Controller) find(id uint32) int {
	for i := range c.nodes {
		if c.nodes[i].id == id {
			return i
		}
	}
	return -1
}

func (c *Controller) remove(i int) {
	c.nodes = append(c.nodes[:i], c.nodes[i+1:]...)
	if i == 0 {
		c.promote()
	}
}

// promote makes the slowest candidate the CLR after the CLR left.
func (c *Controller) promote() {
	if len(c.nodes) == 0 {
		c.clr = false
		return
	}
	best := 0
	for j := 1; j < len(c.nodes); j++ {
		if c.nodes[j].key() < c.nodes[best].key() {
			best = j
		}
	}
	c.nodes[0], c.nodes[best] = c.nodes[best], c.nodes[0]
	c.clr = true
}

func (c *Controller) drop(id uint32) {
	if c.dropped == nil {
		c.dropped = map[uint32]bool{}
	}
	if !c.dropped[id] {
		// Any host can report under any node id, so the list is bounded:
		// past maxDropped, the oldest drop is forgotten. That receiver
		// may then be elected again, and is dropped again if it is still
		// too slow after SlowReceiverTimeout.
		if len(c.droppedFIFO) >= maxDropped {
			delete(c.dropped, c.droppedFIFO[c.droppedHead])
			c.droppedFIFO[c.droppedHead] = id
			c.droppedHead = (c.droppedHead + 1) % maxDropped
		} else {
			c.droppedFIFO = append(c.droppedFIFO, id)
		}
		c.dropped[id] = true
	}
	if i := c.find(id); i >= 0 {
		c.remove(i)
	}
}

// maxDropped bounds the list of receivers dropped as too slow.
const maxDropped = 4096

// rttStep is the ratio of two neighbouring values of the RTT quantizer
// (e^(1/13)) that NORM_CMD(CC) node lists use above 33 µs.
var rttStep = math.Exp(1.0 / 13)

// maxRTTs bounds the RTT table; receivers beyond it are judged on single
// samples.
const maxRTTs = 4096

// Probe is called as a probe goes out at now, with the group RTT estimate.
// It handles silence: a CLR that has not reported for several round trips
// halves the rate once (to half its last confirmed rate, never lower,
// however long the silence); one silent for much longer, and candidates
// likewise, leave the list, and the slowest remaining candidate takes
// over.
func (c *Controller) Probe(now time.Time, grtt time.Duration) {
	c.grtt = grtt
	base := max(grtt, 10*time.Millisecond)
	for i := len(c.nodes) - 1; i >= 0; i-- {
		n := &c.nodes[i]
		if now.Sub(n.heard) > 20*max(base, n.rtt) && now.Sub(n.heard) > time.Second {
			c.remove(i)
		}
	}
	if !c.clr {
		return
	}
	clr := &c.nodes[0]
	// Silence is counted in probes as well as time: a CLR cannot answer
	// probes that were not sent.
	if c.unanswered++; !c.held && c.unanswered > 4 && now.Sub(c.clrHeard) > 4*max(base, clr.rtt) {
		c.setRate(now, math.Min(c.rate, c.confirmed/2))
		c.held = true
	}
}

// ProbeInterval is how often probes should go: once per CLR round trip (at
// most the group RTT), so that slow start doubles every round trip.
func (c *Controller) ProbeInterval(grtt time.Duration) time.Duration {
	iv := grtt
	if c.clr && c.nodes[0].rtt > 0 && c.nodes[0].rtt < iv {
		iv = c.nodes[0].rtt
	}
	if c.slowStart {
		iv /= 4
	}
	return max(iv, 5*time.Millisecond)
}

// Nodes appends the probe's node list to dst: the CLR first, then the
// candidates.
func (c *Controller) Nodes(dst []Node) []Node {
	for i, n := range c.nodes {
		dst = append(dst, Node{ID: n.id, CLR: c.clr && i == 0, RTT: n.rtt, Rate: n.rate})
	}
	return dst
}
