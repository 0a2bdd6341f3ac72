package simrun

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

// CCScenario is a congestion control experiment: Flows senders, each
// sending one file of Size bytes under NORM-CC to the same Receivers, whose
// downlinks are bottlenecks of Bottleneck bits per second with a drop-tail
// queue. Every flow crosses every receiver's bottleneck, so the flows
// compete for it as TCP flows to the same site would.
type CCScenario struct {
	Seed       uint64
	Flows      int // 0 means 1
	Receivers  int
	Size       int64
	Bottleneck int64         // bits per second of each receiver's downlink
	RTT        time.Duration // base round trip; 0 means 20 ms
	// QueueBytes is the bottleneck queue; 0 means one bandwidth-delay
	// product (at least 32 KiB), the usual rule for router buffers.
	QueueBytes int
	// Loss is random loss on the receivers' downlinks, after the queue:
	// loss that is not congestion.
	Loss float64
	// Stagger starts flow i at i·Stagger.
	Stagger time.Duration
	// FeedbackOutageFrom..To: every receiver's uplink loses everything,
	// so the senders hear no feedback at all.
	FeedbackOutageFrom, FeedbackOutageTo time.Duration
	// Sender configures every flow; CC defaults to an empty
	// congestion.Config (NORM-CC on, default bounds).
	Sender   sender.Config
	Receiver receiver.Config
	// Limit bounds virtual time; 0 means 10 minutes.
	Limit time.Duration
}

// CCResult is what a CC run measured.
type CCResult struct {
	Delivered int // (flow, receiver) pairs that got the whole file intact
	Pairs     int
	// Goodput is each flow's file bits over the time from its start until
	// its last receiver had the file, bits per second.
	Goodput []float64
	// QueueLoss is the fraction of packets the bottleneck queues dropped.
	QueueLoss float64
	// TimeTo90 is how long after the start receiver 0's downlink first
	// carried 90 % of the bottleneck rate over a 100 ms window (-1: never).
	TimeTo90 time.Duration
	// Fairness is Jain's index of the flows' throughputs at receiver 0
	// while all of them were sending (1 for one flow).
	Fairness float64
	Virtual  time.Duration
	// Linger is how long after its last receiver had the file each
	// sender took to finish (EventClosed); -1 if it did not.
	Linger  []time.Duration
	Senders []sender.Stats
	Errors  []string
	// Trace is receiver 0's throughput per 100 ms window, bits per second,
	// per flow; RateTrace the senders' rates at the start of each window.
	Trace     [][]float64
	RateTrace [][]float64
}

const ccWindow = 100 * time.Millisecond

type ccState struct {
	sc       *CCScenario
	start    time.Time
	done     []int       // receivers done, per flow
	doneAt   []time.Time // when the last receiver of each flow finished
	closedAt []time.Time // when each sender reported EventClosed
	finished int
	closed   int
	// bytes[f][w]: payload bytes of flow f delivered to receiver 0 in
	// window w.
	bytes [][]float64
	rates [][]float64
	errs  []string
}

type ccTx struct {
	net    *simnet.Network
	id     simnet.NodeID
	flow   int
	s      *sender.Sender
	out    framing.Outbox
	at     time.Time // start
	queued bool
	st     *ccState
	size   int64
}

func (e *ccTx) Handle(p simnet.Packet) time.Time {
	if e.queued {
		_ = e.s.HandlePacket(p.At, e.net.Addr(p.From), p.Payload)
	}
	return e.Poll(p.At)
}

func (e *ccTx) Poll(now time.Time) time.Time {
	if now.Before(e.at) {
		return e.at
	}
	if !e.queued {
		e.queued = true
		if _, err := e.s.SendFile(patternReader{seed: e.st.sc.Seed, obj: e.flow, size: e.size}, e.size, []byte("cc.bin")); err != nil {
			panic(err)
		}
		e.s.Close()
	}
	e.out.Reset()
	wake := e.s.Poll(now, &e.out)
	transmit(e.net, e.id, now, &e.out, nil)
	for _, ev := range e.s.Events() {
		if ev.Kind == sender.EventClosed && e.st.closedAt[e.flow].IsZero() {
			e.st.closedAt[e.flow] = now
			e.st.closed++
		}
	}
	for w := int(now.Sub(e.st.start) / ccWindow); len(e.st.rates[e.flow]) <= w; {
		e.st.rates[e.flow] = append(e.st.rates[e.flow], e.s.Stats().Rate*8)
	}
	return wake
}

type ccRx struct {
	net   *simnet.Network
	id    simnet.NodeID
	idx   int
	r     *receiver.Receiver
	out   framing.Outbox
	st    *ccState
	sinks map[[2]uint32]*verifySink
	flows map[uint32]int // sender node id -> flow
	got   []bool
}

func (e *ccRx) Handle(p simnet.Packet) time.Time {
	if e.idx == 0 {
		if f, ok := e.flows[e.st.senderOf(p.Payload)]; ok {
			w := int(p.At.Sub(e.st.start) / ccWindow)
			for len(e.st.bytes[f]) <= w {
				e.st.bytes[f] = append(e.st.bytes[f], 0)
			}
			e.st.bytes[f][w] += float64(len(p.Payload))
		}
	}
	_ = e.r.HandlePacket(p.At, e.net.Addr(p.From), p.Payload)
	return e.Poll(p.At)
}

func (st *ccState) senderOf(b []byte) uint32 {
	h, _, err := framing.Peek(b)
	if err != nil {
		return 0
	}
	return h.SourceID
}

func (e *ccRx) Poll(now time.Time) time.Time {
	e.out.Reset()
	wake := e.r.Poll(now, &e.out)
	transmit(e.net, e.id, now, &e.out, nil)
	for _, ev := range e.r.Events() {
		if ev.Kind != receiver.EventCompleted && ev.Kind != receiver.EventAborted {
			continue
		}
		f, ok := e.flows[ev.Sender]
		if !ok || e.got[f] {
			continue
		}
		v := e.sinks[[2]uint32{ev.Sender, uint32(ev.Object)}]
		switch {
		case ev.Kind == receiver.EventAborted:
			e.st.errs = append(e.st.errs, fmt.Sprintf("rx %d flow %d: aborted: %v", e.idx, f, ev.Err))
		case v == nil || v.err != nil || v.written != v.size:
			e.st.errs = append(e.st.errs, fmt.Sprintf("rx %d flow %d: object incomplete or corrupt", e.idx, f))
		default:
			e.got[f] = true
			e.st.done[f]++
			if e.st.done[f] == e.st.sc.Receivers {
				e.st.doneAt[f] = now
				e.st.finished++
			}
		}
	}
	return wake
}

func ccSenderID(f int) uint32 { return 0x0a000001 + uint32(f) }

// RunCC runs a congestion control scenario.
func RunCC(sc CCScenario) (CCResult, error) {
	if sc.Flows == 0 {
		sc.Flows = 1
	}
	if sc.Receivers < 1 || sc.Size < 1 || sc.Bottleneck <= 0 {
		return CCResult{}, fmt.Errorf("simrun: a CC run needs receivers, a size and a bottleneck")
	}
	if sc.RTT == 0 {
		sc.RTT = 20 * time.Millisecond
	}
	if sc.Limit == 0 {
		sc.Limit = 10 * time.Minute
	}
	if sc.QueueBytes == 0 {
		sc.QueueBytes = max(int(float64(sc.Bottleneck)/8*sc.RTT.Seconds()), 32<<10)
	}
	net := simnet.New(simnet.Config{Seed: sc.Seed})
	st := &ccState{sc: &sc, start: net.Now(), done: make([]int, sc.Flows), doneAt: make([]time.Time, sc.Flows),
		closedAt: make([]time.Time, sc.Flows),
		bytes:    make([][]float64, sc.Flows), rates: make([][]float64, sc.Flows)}
	// A packet crosses four links per round trip (sender up, receiver
	// down, and back); each gets a quarter of the delay.
	link := simnet.LinkConfig{Delay: sc.RTT / 4}
	var eps []simnet.Endpoint
	var txs []*ccTx
	flows := map[uint32]int{}
	for f := range sc.Flows {
		id := net.AddNode(fmt.Sprintf("sender%d", f), simnet.NodeConfig{Up: link, Down: link})
		net.Join(id, Group)
		cfg := sc.Sender
		cfg.NodeID = ccSenderID(f)
		cfg.Rand = rand.New(rand.NewPCG(sc.Seed, 1000+uint64(f)))
		if cfg.CC == nil {
			cfg.CC = &congestion.Config{}
		}
		if cfg.GroupSize == 0 {
			cfg.GroupSize = float64(sc.Receivers)
		}
		s, err := sender.New(cfg, st.start)
		if err != nil {
			return CCResult{}, err
		}
		tx := &ccTx{net: net, id: id, flow: f, s: s, at: st.start.Add(time.Duration(f) * sc.Stagger), st: st, size: sc.Size}
		flows[cfg.NodeID] = f
		txs = append(txs, tx)
		eps = append(eps, tx)
	}
	var rxs []*ccRx
	for i := range sc.Receivers {
		down := link
		down.Rate, down.QueueBytes = sc.Bottleneck, sc.QueueBytes
		if sc.Loss > 0 {
			down.Loss = simnet.Bernoulli{P: sc.Loss}
		}
		up := link
		if sc.FeedbackOutageTo > sc.FeedbackOutageFrom {
			up.Loss = outage{from: st.start.Add(sc.FeedbackOutageFrom), to: st.start.Add(sc.FeedbackOutageTo)}
		}
		id := net.AddNode(fmt.Sprintf("rx%d", i), simnet.NodeConfig{Up: up, Down: down})
		net.Join(id, Group)
		e := &ccRx{net: net, id: id, idx: i, st: st, sinks: map[[2]uint32]*verifySink{}, flows: flows, got: make([]bool, sc.Flows)}
		rcfg := sc.Receiver
		rcfg.NodeID = rxNodeID(i)
		rcfg.Rand = rand.New(rand.NewPCG(sc.Seed, uint64(i)+2))
		rcfg.Sink = func(info receiver.ObjectInfo) (io.WriterAt, error) {
			f, ok := flows[info.Sender]
			if !ok {
				return nil, fmt.Errorf("simrun: unknown sender %08x", info.Sender)
			}
			v := &verifySink{seed: sc.Seed, obj: f, size: sc.Size}
			e.sinks[[2]uint32{info.Sender, uint32(info.Object)}] = v
			return v, nil
		}
		r, err := receiver.New(rcfg)
		if err != nil {
			return CCResult{}, err
		}
		e.r = r
		rxs = append(rxs, e)
		eps = append(eps, e)
	}
	// Run on until the senders have flushed and closed, to see how long
	// they linger.
	simnet.Run(net, eps, simnet.Limits{Until: st.start.Add(sc.Limit),
		Done: func() bool { return st.finished == sc.Flows && st.closed == sc.Flows }})
	out := CCResult{Pairs: sc.Flows * sc.Receivers, Errors: st.errs, TimeTo90: -1}
	for _, e := range rxs {
		for _, g := range e.got {
			if g {
				out.Delivered++
			}
		}
		d := net.NodeStats(e.id).Down
		if d.Sent > 0 {
			out.QueueLoss += float64(d.QueueDropped) / float64(d.Sent) / float64(len(rxs))
		}
	}
	last := time.Time{}
	for f, tx := range txs {
		out.Senders = append(out.Senders, tx.s.Stats())
		g := 0.0
		if !st.doneAt[f].IsZero() {
			g = float64(sc.Size*8) / st.doneAt[f].Sub(tx.at).Seconds()
			if st.doneAt[f].After(last) {
				last = st.doneAt[f]
			}
		}
		out.Goodput = append(out.Goodput, g)
		linger := time.Duration(-1)
		if !st.closedAt[f].IsZero() && !st.doneAt[f].IsZero() {
			linger = st.closedAt[f].Sub(st.doneAt[f])
		}
		out.Linger = append(out.Linger, linger)
	}
	out.Virtual = last.Sub(st.start)
	// Receiver 0's throughput trace: time to 90 %, and fairness over the
	// windows in which every flow had started and none had finished.
	windows := 0
	for _, b := range st.bytes {
		windows = max(windows, len(b))
	}
	sum := make([]float64, sc.Flows)
	n := 0
	firstAll := int((time.Duration(sc.Flows-1)*sc.Stagger + ccWindow - 1) / ccWindow)
	lastAll := windows
	for f := range sc.Flows {
		if !st.doneAt[f].IsZero() {
			lastAll = min(lastAll, int(st.doneAt[f].Sub(st.start)/ccWindow))
		}
	}
	out.Trace = make([][]float64, sc.Flows)
	for w := range windows {
		total := 0.0
		for f := range sc.Flows {
			v := 0.0
			if w < len(st.bytes[f]) {
				v = st.bytes[f][w] * 8 / ccWindow.Seconds()
			}
			out.Trace[f] = append(out.Trace[f], v)
			total += v
			if w >= firstAll && w < lastAll {
				sum[f] += v
			}
		}
		if w >= firstAll && w < lastAll {
			n++
		}
		if out.TimeTo90 < 0 && total >= 0.9*float64(sc.Bottleneck) {
			out.TimeTo90 = time.Duration(w+1) * ccWindow
		}
	}
	out.Fairness = Jain(sum)
	out.RateTrace = st.rates
	return out, nil
}

// Jain is Jain's fairness index of xs: 1 when all are equal, 1/len(xs)
// when one takes everything.
func Jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (float64(len(xs)) * s2)
}
