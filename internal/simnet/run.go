package simnet

import (
	"fmt"
	"math"
	"time"
)

// Endpoint is a protocol participant that Run drives, typically a thin
// wrapper around a sender or receiver engine. It sends by calling
// Network.Send with the time it was given. Both methods return the next time
// the endpoint wants Poll to be called; the zero Time means it has nothing
// scheduled, and a time already past means as soon as possible.
type Endpoint interface {
	// Handle receives one packet addressed to the endpoint's node, at p.At.
	// p.Payload is valid only until Handle returns.
	Handle(p Packet) (wake time.Time)
	// Poll lets the endpoint fire the timers due at now. Run calls it when
	// the wake time the endpoint last returned has come, and also once for
	// every endpoint when Run starts, which may be early: Poll must then
	// do only what is due, and return its wake time again.
	Poll(now time.Time) (wake time.Time)
}

// DefaultMaxEvents is the step budget of Run when Limits.MaxEvents is zero:
// comfortably more than a 16 MiB transfer to a thousand receivers needs, and
// small enough that a livelocked simulation ends within minutes.
const DefaultMaxEvents = 100_000_000

// Limits bound a Run, which stops at whichever comes first.
type Limits struct {
	// Until is the last virtual time Run processes; events after it stay
	// scheduled. The zero value means no time limit.
	Until time.Time
	// MaxEvents bounds the steps: network events (packets reaching the
	// switch or a node) plus endpoint polls. Zero means DefaultMaxEvents.
	// It is what stops endpoints that keep answering each other with no
	// delay, without virtual time ever advancing.
	MaxEvents int64
	// Done, if not nil, is checked before every step, and Run stops as soon
	// as it returns true: for example once every receiver holds the file.
	Done func() bool
}

// StopReason says why Run returned.
type StopReason int

// The reasons Run stops.
const (
	// StopIdle means nothing was in flight and no endpoint asked to be
	// woken.
	StopIdle StopReason = iota + 1
	// StopUntil means the next event lies after Limits.Until; the clock
	// has been advanced to Until.
	StopUntil
	// StopMaxEvents means the step budget ran out.
	StopMaxEvents
	// StopDone means Limits.Done returned true.
	StopDone
)

func (r StopReason) String() string {
	switch r {
	case StopIdle:
		return "idle"
	case StopUntil:
		return "until"
	case StopMaxEvents:
		return "max-events"
	case StopDone:
		return "done"
	}
	return fmt.Sprintf("StopReason(%d)", int(r))
}

// Result reports how a Run ended.
type Result struct {
	Reason StopReason
	Now    time.Time // the network's clock when Run returned
	Events int64     // steps taken
}

// Run drives the network and its endpoints in virtual time. eps[i] is the
// endpoint of NodeID i (nil for a node without one, whose packets are
// counted and discarded; eps may be shorter than the node list).
//
// Run first polls every endpoint at Now, in NodeID order. Then, repeatedly,
// it takes the earliest of the next network event and the earliest wake-up:
// network events go first on a tie, so a packet due at t is handled before a
// timer due at t, and endpoints due at the same time are polled in NodeID
// order. Every choice depends only on times and ids, so a Run is exactly
// reproducible. Calling Run again continues where the last one stopped,
// after polling every endpoint once more.
func Run(n *Network, eps []Endpoint, lim Limits) Result {
	if len(eps) > len(n.nodes) {
		panic(fmt.Sprintf("simnet: Run: %d endpoints for %d nodes", len(eps), len(n.nodes)))
	}
	if n.delivering {
		panic("simnet: Run called from a delivery callback")
	}
	n.delivering = true
	defer func() { n.delivering = false }()

	maxEvents := lim.MaxEvents
	if maxEvents <= 0 {
		maxEvents = DefaultMaxEvents
	}
	until := int64(math.MaxInt64)
	if !lim.Until.IsZero() {
		until = int64(lim.Until.Sub(n.start))
	}
	w := newWakeHeap(len(eps))
	wake := func(id NodeID, t time.Time) {
		if t.IsZero() {
			w.remove(id)
			return
		}
		w.set(id, n.tick(t))
	}
	handle := func(p Packet) {
		if int(p.To) < len(eps) && eps[p.To] != nil {
			wake(p.To, eps[p.To].Handle(p))
		}
	}

	var events int64
	for id, ep := range eps {
		if ep != nil {
			events++
			wake(NodeID(id), ep.Poll(n.Now()))
		}
	}
	var reason StopReason
	for {
		if lim.Done != nil && lim.Done() {
			reason = StopDone
			break
		}
		if events >= maxEvents {
			reason = StopMaxEvents
			break
		}
		evAt, haveEvent := n.nextAt()
		haveWake := len(w.h) > 0
		if !haveEvent && !haveWake {
			reason = StopIdle
			break
		}
		if haveEvent && (!haveWake || evAt <= w.h[0].at) {
			if evAt > until {
				reason = StopUntil
				break
			}
			events++
			n.step(handle)
			continue
		}
		top := w.h[0]
		if top.at > until {
			reason = StopUntil
			break
		}
		if top.at > n.now {
			n.now = top.at
		}
		events++
		wake(top.id, eps[top.id].Poll(n.Now()))
	}
	if reason == StopUntil && until > n.now {
		n.now = until
	}
	return Result{Reason: reason, Now: n.Now(), Events: events}
}

// wakeHeap is a min-heap of endpoint wake-up times, ordered by (time, id),
// that can move or remove any endpoint's entry in O(log n). Run needs it
// because with a thousand receivers, scanning every endpoint for the
// earliest timer on every step would dominate the simulation.
type wakeHeap struct {
	h   []wakeup
	pos []int32 // index in h of each endpoint's entry, or -1
}

type wakeup struct {
	at int64
	id NodeID
}

func (a wakeup) before(b wakeup) bool { return a.at < b.at || a.at == b.at && a.id < b.id }

func newWakeHeap(n int) *wakeHeap {
	w := &wakeHeap{h: make([]wakeup, 0, n), pos: make([]int32, n)}
	for i := range w.pos {
		w.pos[i] = -1
	}
	return w
}

func (w *wakeHeap) set(id NodeID, at int64) {
	i := w.pos[id]
	if i < 0 {
		i = int32(len(w.h))
		w.h = append(w.h, wakeup{at: at, id: id})
		w.pos[id] = i
		w.up(i)
		return
	}
	old := w.h[i].at
	w.h[i].at = at
	if at < old {
		w.up(i)
	} else {
		w.down(i)
	}
}

func (w *wakeHeap) remove(id NodeID) {
	i := w.pos[id]
	if i < 0 {
		return
	}
	w.pos[id] = -1
	last := int32(len(w.h) - 1)
	if i != last {
		w.h[i] = w.h[last]
		w.pos[w.h[i].id] = i
	}
	w.h = w.h[:last]
	if i != last {
		w.up(i)
		w.down(i)
	}
}

func (w *wakeHeap) up(i int32) {
	for i > 0 {
		p := (i - 1) / 2
		if !w.h[i].before(w.h[p]) {
			return
		}
		w.swap(i, p)
		i = p
	}
}

func (w *wakeHeap) down(i int32) {
	n := int32(len(w.h))
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && w.h[r].before(w.h[c]) {
			c = r
		}
		if !w.h[c].before(w.h[i]) {
			return
		}
		w.swap(i, c)
		i = c
	}
}

func (w *wakeHeap) swap(i, j int32) {
	w.h[i], w.h[j] = w.h[j], w.h[i]
	w.pos[w.h[i].id] = i
	w.pos[w.h[j].id] = j
}
