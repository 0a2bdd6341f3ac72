package simnet

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// ticker multicasts a numbered packet every period until it has sent count
// (count < 0: forever).
type ticker struct {
	n      *Network
	id     NodeID
	period time.Duration
	count  int
	sent   int
	due    time.Time
	buf    [8]byte
}

func (tk *ticker) Handle(Packet) time.Time { return time.Time{} }

func (tk *ticker) Poll(now time.Time) time.Time {
	if tk.count >= 0 && tk.sent >= tk.count {
		return time.Time{}
	}
	if now.Before(tk.due) { // an early poll, as when Run starts again
		return tk.due
	}
	tk.n.Send(now, tk.id, grp, seqPayload(tk.buf[:], uint64(tk.sent)))
	tk.sent++
	tk.due = now.Add(tk.period)
	return tk.due
}

// recorder keeps what it receives and whether it was polled.
type recorder struct {
	got   []rx
	polls []time.Time
}

func (r *recorder) Handle(p Packet) time.Time {
	r.got = append(r.got, rx{At: p.At.Sub(t0), From: p.From, To: p.To, Dst: p.Dst, Seq: binary.BigEndian.Uint64(p.Payload), Len: len(p.Payload)})
	return time.Time{}
}

func (r *recorder) Poll(now time.Time) time.Time {
	r.polls = append(r.polls, now)
	return time.Time{}
}

func TestRunUntilIdle(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{})
	rec := &recorder{}
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Delay: 25 * ms}})
	n.Join(r, grp)
	res := Run(n, []Endpoint{&ticker{n: n, id: s, period: 10 * ms, count: 100}, rec}, Limits{})
	if res.Reason != StopIdle || !res.Now.Equal(t0.Add(1015*ms)) {
		t.Errorf("Run = %+v, want idle at 1.015s", res)
	}
	if len(rec.got) != 100 {
		t.Fatalf("%d packets received, want 100", len(rec.got))
	}
	for i, p := range rec.got {
		if p.Seq != uint64(i) || p.At != time.Duration(i)*10*ms+25*ms {
			t.Fatalf("packet %d: %+v", i, p)
		}
	}
	// 2 initial polls, 99 more ticker polls plus the one that stops it, 100 hops, 100 deliveries.
	if res.Events != 2+100+100+100 {
		t.Errorf("%d events", res.Events)
	}
}

func TestRunStopsAtUntil(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{})
	r := n.AddNode("r", NodeConfig{Down: LinkConfig{Delay: 5 * ms}})
	n.Join(r, grp)
	tk := &ticker{n: n, id: s, period: 10 * ms, count: -1}
	rec := &recorder{}
	res := Run(n, []Endpoint{tk, rec}, Limits{Until: t0.Add(time.Second)})
	if res.Reason != StopUntil || !res.Now.Equal(t0.Add(time.Second)) || !n.Now().Equal(res.Now) {
		t.Errorf("Run = %+v, want until at 1s", res)
	}
	if tk.sent != 101 || len(rec.got) != 100 {
		t.Errorf("sent %d (want 101, 0..1000ms inclusive), received %d (want 100)", tk.sent, len(rec.got))
	}
	// Continuing delivers the packet sent at exactly 1s.
	res = Run(n, []Endpoint{tk, rec}, Limits{Until: t0.Add(1005 * ms)})
	if res.Reason != StopUntil || len(rec.got) != 101 || rec.got[100].Seq != 100 {
		t.Errorf("second Run = %+v, received %d", res, len(rec.got))
	}
}

func TestRunDone(t *testing.T) {
	n := New(Config{Seed: 1})
	s := n.AddNode("s", NodeConfig{})
	r := n.AddNode("r", NodeConfig{})
	n.Join(r, grp)
	rec := &recorder{}
	res := Run(n, []Endpoint{&ticker{n: n, id: s, period: ms, count: -1}, rec}, Limits{Done: func() bool { return len(rec.got) == 50 }})
	if res.Reason != StopDone || len(rec.got) != 50 || !res.Now.Equal(t0.Add(49*ms)) {
		t.Errorf("Run = %+v with %d received", res, len(rec.got))
	}
}

// echo answers every packet with one to the other node, at once.
type echo struct {
	n    *Network
	id   NodeID
	peer netip.AddrPort
	got  int
}

func (e *echo) Handle(p Packet) time.Time {
	e.got++
	e.n.Send(p.At, e.id, e.peer, p.Payload)
	return time.Time{}
}

func (e *echo) Poll(now time.Time) time.Time {
	if e.id == 0 {
		e.n.Send(now, e.id, e.peer, []byte("ping"))
	}
	return time.Time{}
}

func TestRunMaxEventsStopsZeroDelayLivelock(t *testing.T) {
	n := New(Config{Seed: 1})
	a := n.AddNode("a", NodeConfig{})
	b := n.AddNode("b", NodeConfig{})
	ea := &echo{n: n, id: a, peer: n.Addr(b)}
	eb := &echo{n: n, id: b, peer: n.Addr(a)}
	res := Run(n, []Endpoint{ea, eb}, Limits{MaxEvents: 10_000, Until: t0.Add(time.Second)})
	if res.Reason != StopMaxEvents || res.Events != 10_000 || !res.Now.Equal(t0) {
		t.Errorf("Run = %+v, want max-events at t0", res)
	}
	if ea.got+eb.got < 4000 {
		t.Errorf("only %d echoes", ea.got+eb.got)
	}
}

// order records the sequence of Handle and Poll calls across endpoints.
type order struct {
	id   NodeID
	log  *[]string
	wake time.Time
}

func (o *order) Handle(p Packet) time.Time {
	*o.log = append(*o.log, fmt.Sprintf("%v handle %d", p.At.Sub(t0), o.id))
	return o.wake
}

func (o *order) Poll(now time.Time) time.Time {
	*o.log = append(*o.log, fmt.Sprintf("%v poll %d", now.Sub(t0), o.id))
	if o.wake.IsZero() || now.Before(o.wake) {
		return o.wake
	}
	return time.Time{}
}

func TestRunOrdersDeliveriesBeforeTimersAndTiesByID(t *testing.T) {
	n := New(Config{Seed: 1})
	var log []string
	eps := make([]Endpoint, 3)
	for i := range 3 {
		id := n.AddNode(fmt.Sprint("n", i), NodeConfig{Down: LinkConfig{Delay: 5 * ms}})
		n.Join(id, grp)
		eps[i] = &order{id: id, log: &log}
	}
	// Node 2 and node 0 want waking at 5 ms, exactly when a packet from
	// node 1 arrives at both.
	eps[2].(*order).wake = t0.Add(5 * ms)
	eps[0].(*order).wake = t0.Add(5 * ms)
	n.Send(t0, 1, grp, []byte("x"))
	Run(n, eps, Limits{})
	want := []string{
		"0s poll 0", "0s poll 1", "0s poll 2",
		"5ms handle 0", "5ms handle 2",
		"5ms poll 0", "5ms poll 2",
	}
	if !slices.Equal(log, want) {
		t.Errorf("got %q\nwant %q", log, want)
	}
}

// The repair test runs a toy NACK protocol: the sender multicasts count
// packets and then repairs whatever receivers ask for by unicast.

type toySender struct {
	n      *Network
	id     NodeID
	count  int
	next   int
	repair []uint64
	buf    [1000]byte
}

func (s *toySender) Handle(p Packet) time.Time {
	for b := p.Payload; len(b) >= 8; b = b[8:] {
		s.repair = append(s.repair, binary.BigEndian.Uint64(b))
	}
	return p.At
}

func (s *toySender) Poll(now time.Time) time.Time {
	switch {
	case len(s.repair) > 0:
		s.n.Send(now, s.id, grp, seqPayload(s.buf[:], s.repair[0]))
		s.repair = s.repair[1:]
	case s.next < s.count:
		s.n.Send(now, s.id, grp, seqPayload(s.buf[:], uint64(s.next)))
		s.next++
	default:
		return time.Time{}
	}
	return now.Add(100 * time.Microsecond)
}

type toyReceiver struct {
	n      *Network
	id     NodeID
	sender netip.AddrPort
	have   []bool
	missed int
	nack   []byte
}

func (r *toyReceiver) done() bool { return r.missed == 0 }

func (r *toyReceiver) Handle(p Packet) time.Time {
	if seq := binary.BigEndian.Uint64(p.Payload); !r.have[seq] {
		r.have[seq] = true
		r.missed--
	}
	if r.done() {
		return time.Time{}
	}
	return p.At.Add(30 * time.Millisecond)
}

func (r *toyReceiver) Poll(now time.Time) time.Time {
	if r.done() {
		return time.Time{}
	}
	r.nack = r.nack[:0]
	for seq, ok := range r.have {
		if !ok && len(r.nack) < 8*50 {
			r.nack = binary.BigEndian.AppendUint64(r.nack, uint64(seq))
		}
	}
	r.n.Send(now, r.id, r.sender, r.nack)
	return now.Add(30 * time.Millisecond)
}

func runRepair(seed uint64) (Result, Stats, bool) {
	const receivers, count = 50, 500
	n := New(Config{Seed: seed})
	s := n.AddNode("sender", NodeConfig{Up: LinkConfig{Delay: 2 * ms, Loss: Bernoulli{P: 0.02}}})
	snd := &toySender{n: n, id: s, count: count}
	eps := []Endpoint{snd}
	var rxs []*toyReceiver
	for i := range receivers {
		id := n.AddNode(fmt.Sprint("rx", i), NodeConfig{
			Down: LinkConfig{Delay: 10 * ms, Jitter: 2 * ms, Duplicate: 0.01,
				Loss: GilbertElliott{PGoodToBad: 0.01, PBadToGood: 0.3, LossBad: 0.9}},
			Up: LinkConfig{Delay: 10 * ms, Loss: Bernoulli{P: 0.05}},
		})
		n.Join(id, grp)
		r := &toyReceiver{n: n, id: id, sender: n.Addr(s), have: make([]bool, count), missed: count}
		rxs = append(rxs, r)
		eps = append(eps, r)
	}
	res := Run(n, eps, Limits{Until: t0.Add(time.Minute)})
	all := true
	for _, r := range rxs {
		all = all && r.done()
	}
	return res, n.Stats(), all
}

func TestRunRepairsToCompletionDeterministically(t *testing.T) {
	res, st, ok := runRepair(1)
	if !ok || res.Reason != StopIdle {
		t.Fatalf("Run = %+v; all receivers complete: %v", res, ok)
	}
	if st.Down.Lost == 0 || st.Up.Lost == 0 || st.Down.Duplicated == 0 {
		t.Errorf("impairments had no effect: %+v", st.Down)
	}
	t.Logf("%v: %d events, %d deliveries, %d lost on downlinks", res.Now.Sub(t0), res.Events, st.Received, st.Down.Lost)
	res2, st2, _ := runRepair(1)
	if res2 != res || !slices.Equal(st.Nodes, st2.Nodes) {
		t.Errorf("second run differs: %+v vs %+v", res2, res)
	}
	res3, _, _ := runRepair(2)
	if res3 == res {
		t.Errorf("seed 2 gives the same run as seed 1: %+v", res3)
	}
}

func TestWakeHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const ids = 40
	w := newWakeHeap(ids)
	model := map[NodeID]int64{}
	for range 20_000 {
		id := NodeID(rng.IntN(ids))
		switch rng.IntN(3) {
		case 0, 1:
			at := rng.Int64N(100)
			w.set(id, at)
			model[id] = at
		case 2:
			w.remove(id)
			delete(model, id)
		}
		if len(w.h) != len(model) {
			t.Fatalf("heap holds %d, model %d", len(w.h), len(model))
		}
		if len(model) == 0 {
			continue
		}
		best := wakeup{at: 1 << 62}
		for id, at := range model {
			if c := (wakeup{at: at, id: id}); c.before(best) {
				best = c
			}
		}
		if w.h[0] != best {
			t.Fatalf("top %+v, want %+v", w.h[0], best)
		}
	}
}
