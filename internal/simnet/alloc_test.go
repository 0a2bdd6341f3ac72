package simnet

import (
	"fmt"
	"testing"
	"time"
)

// impaired is a downlink with every impairment switched on.
var impaired = LinkConfig{
	Delay: 10 * ms, Jitter: 5 * ms, Duplicate: 0.01,
	Loss: GilbertElliott{PGoodToBad: 0.01, PBadToGood: 0.3, LossGood: 0.001, LossBad: 0.5},
	Rate: 200_000_000, QueueBytes: 64 << 10,
}

func fanoutNet(receivers int) (*Network, NodeID) {
	n := New(Config{Seed: 1})
	s := n.AddNode("sender", NodeConfig{Up: LinkConfig{Delay: ms, Jitter: 100 * time.Microsecond, Loss: Bernoulli{P: 0.001}}})
	for i := range receivers {
		n.Join(n.AddNode(fmt.Sprint("rx", i), NodeConfig{Down: impaired}), grp)
	}
	return n, s
}

func TestZeroAllocsPerSendAndDelivery(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	n, s := fanoutNet(100)
	payload := make([]byte, 1400)
	var delivered int
	deliver := func(p Packet) { delivered += len(p.Payload) / 1400 }
	now := n.Now()
	step := func() {
		now = now.Add(100 * time.Microsecond)
		n.Send(now, s, grp, payload)
		n.DeliverUntil(now, deliver)
	}
	for range 2000 { // fill the pipeline and grow the pools
		step()
	}
	before := delivered
	if a := testing.AllocsPerRun(5000, step); a != 0 {
		t.Errorf("%v allocations per send + its deliveries", a)
	}
	if delivered-before < 5000*90 {
		t.Errorf("only %d deliveries while measuring", delivered-before)
	}
}

func TestRunAllocatesPerCallNotPerEvent(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	n, s := fanoutNet(100)
	eps := make([]Endpoint, n.NumNodes())
	eps[s] = &ticker{n: n, id: s, period: 100 * time.Microsecond, count: -1}
	for i := 1; i < len(eps); i++ {
		eps[i] = nopEndpoint{}
	}
	var res Result
	run := func() { res = Run(n, eps, Limits{Until: n.Now().Add(100 * ms)}) }
	for range 5 {
		run()
	}
	if a := testing.AllocsPerRun(20, run); a > 10 {
		t.Errorf("%v allocations per Run of %d events", a, res.Events)
	}
	if res.Events < 100_000 {
		t.Errorf("only %d events per Run", res.Events)
	}
}

type nopEndpoint struct{}

func (nopEndpoint) Handle(Packet) time.Time  { return time.Time{} }
func (nopEndpoint) Poll(time.Time) time.Time { return time.Time{} }
