package simnet_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/internal/simnet"
)

// A test can drive the network by hand: send, then deliver up to a time.
func Example() {
	group := netip.MustParseAddrPort("239.0.0.1:6003")
	n := simnet.New(simnet.Config{Seed: 1})
	sender := n.AddNode("sender", simnet.NodeConfig{Up: simnet.LinkConfig{Delay: 5 * time.Millisecond}})
	for _, name := range []string{"near", "far"} {
		delay := 10 * time.Millisecond
		if name == "far" {
			delay = 40 * time.Millisecond
		}
		n.Join(n.AddNode(name, simnet.NodeConfig{Down: simnet.LinkConfig{Delay: delay}}), group)
	}
	start := n.Now()
	n.Send(start, sender, group, []byte("hello"))
	n.Send(start.Add(time.Millisecond), sender, group, []byte("world"))

	n.DeliverUntil(start.Add(time.Second), func(p simnet.Packet) {
		fmt.Printf("%v %s got %q from %s\n", p.At.Sub(start), n.Name(p.To), p.Payload, n.Name(p.From))
	})
	// Output:
	// 15ms near got "hello" from sender
	// 16ms near got "world" from sender
	// 45ms far got "hello" from sender
	// 46ms far got "world" from sender
}

// pinger sends one unicast ping when Run starts and counts the echoes.
type pinger struct {
	n    *simnet.Network
	id   simnet.NodeID
	peer netip.AddrPort
	sent bool
}

func (p *pinger) Poll(now time.Time) time.Time {
	if !p.sent {
		p.n.Send(now, p.id, p.peer, []byte("ping"))
		p.sent = true
	}
	return time.Time{}
}

func (p *pinger) Handle(pkt simnet.Packet) time.Time {
	fmt.Printf("%v: %s\n", pkt.At.Sub(time.Unix(0, 0)), pkt.Payload)
	return time.Time{}
}

// ponger answers every packet after a 3 ms processing delay, using a timer.
type ponger struct {
	n       *simnet.Network
	id      simnet.NodeID
	replyTo netip.AddrPort
	due     time.Time
}

func (p *ponger) Handle(pkt simnet.Packet) time.Time {
	p.replyTo = p.n.Addr(pkt.From)
	p.due = pkt.At.Add(3 * time.Millisecond)
	return p.due
}

func (p *ponger) Poll(now time.Time) time.Time {
	if p.due.IsZero() || now.Before(p.due) {
		return p.due // nothing due yet, as on Run's first poll
	}
	p.n.Send(now, p.id, p.replyTo, []byte("pong"))
	p.due = time.Time{}
	return time.Time{}
}

// Run drives endpoints: each handles packets and timers and sends through
// the network; eps[i] belongs to NodeID i.
func ExampleRun() {
	n := simnet.New(simnet.Config{Seed: 1})
	link := simnet.NodeConfig{Up: simnet.LinkConfig{Delay: 10 * time.Millisecond}}
	a := n.AddNode("a", link)
	b := n.AddNode("b", link)
	eps := []simnet.Endpoint{
		&pinger{n: n, id: a, peer: n.Addr(b)},
		&ponger{n: n, id: b},
	}
	res := simnet.Run(n, eps, simnet.Limits{Until: n.Now().Add(time.Second)})
	fmt.Println(res.Reason, res.Now.Sub(time.Unix(0, 0)), res.Events)
	// Output:
	// 23ms: pong
	// idle 23ms 7
}
