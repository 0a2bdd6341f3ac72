package simnet

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// LossModel is a recipe for random packet loss. One value may be shared by
// the configurations of many links: the network calls NewLoss once per link
// that uses it, so each link keeps its own state and draws only from its own
// random stream.
//
// A model of your own implements NewLoss; for example, a model that loses
// everything during an outage window can ignore rng and compare now with
// the window.
type LossModel interface {
	// NewLoss returns the loss process of one link. rng belongs to that
	// process alone, and using no other source of randomness is what keeps
	// a simulation reproducible.
	NewLoss(rng *rand.Rand) Loss
}

// Loss decides the fate of the packets crossing one link, one call per
// packet in the order they cross it.
type Loss interface {
	// Lost reports whether the packet of size bytes that goes onto the wire
	// at now (after any bottleneck queue) is lost.
	Lost(now time.Time, size int) bool
}

// Bernoulli loses each packet independently with probability P.
type Bernoulli struct {
	P float64
}

// NewLoss implements [LossModel].
func (b Bernoulli) NewLoss(rng *rand.Rand) Loss {
	checkProb("Bernoulli.P", b.P)
	return &bernoulli{p: b.P, rng: rng}
}

type bernoulli struct {
	p   float64
	rng *rand.Rand
}

func (b *bernoulli) Lost(time.Time, int) bool { return b.rng.Float64() < b.p }

// GilbertElliott is the two-state Markov model of bursty loss. The link is
// in a good or a bad state; each packet is lost with the loss probability of
// the current state, and then the state changes with the transition
// probability out of it. Every link starts in the good state.
//
// With LossGood 0 and LossBad 1, losses come in bursts whose mean length is
// 1/PBadToGood, and [GilbertElliott.MeanLoss] is the long-run loss rate.
type GilbertElliott struct {
	PGoodToBad float64 // chance of moving from good to bad after a packet
	PBadToGood float64 // chance of moving from bad to good after a packet
	LossGood   float64 // loss probability in the good state
	LossBad    float64 // loss probability in the bad state
}

// NewLoss implements [LossModel].
func (g GilbertElliott) NewLoss(rng *rand.Rand) Loss {
	checkProb("GilbertElliott.PGoodToBad", g.PGoodToBad)
	checkProb("GilbertElliott.PBadToGood", g.PBadToGood)
	checkProb("GilbertElliott.LossGood", g.LossGood)
	checkProb("GilbertElliott.LossBad", g.LossBad)
	return &gilbertElliott{m: g, rng: rng}
}

// MeanLoss is the stationary loss rate: the fraction of packets lost over a
// long run.
func (g GilbertElliott) MeanLoss() float64 {
	sum := g.PGoodToBad + g.PBadToGood
	if sum == 0 {
		return g.LossGood // never leaves the good state it starts in
	}
	bad := g.PGoodToBad / sum
	return (1-bad)*g.LossGood + bad*g.LossBad
}

// Bursty returns the Gilbert-Elliott model that loses packets in bursts of
// mean length burst (at least 1) at the long-run rate loss (in [0, 1)):
// everything in the bad state and nothing in the good one. Burst 1 gives
// independent losses only in the limit; use Bernoulli for those.
func Bursty(loss, burst float64) GilbertElliott {
	burst = max(burst, 1)
	r := 1 / burst
	var p float64
	if loss > 0 && loss < 1 {
		p = min(loss*r/(1-loss), 1) // loss = p / (p + r)
	}
	return GilbertElliott{PGoodToBad: p, PBadToGood: r, LossGood: 0, LossBad: 1}
}

type gilbertElliott struct {
	m   GilbertElliott
	bad bool
	rng *rand.Rand
}

func (g *gilbertElliott) Lost(time.Time, int) bool {
	var lost bool
	if g.bad {
		lost = g.rng.Float64() < g.m.LossBad
		g.bad = g.rng.Float64() >= g.m.PBadToGood
	} else {
		lost = g.rng.Float64() < g.m.LossGood
		g.bad = g.rng.Float64() < g.m.PGoodToBad
	}
	return lost
}

func checkProb(what string, p float64) {
	if !(p >= 0 && p <= 1) { // also rejects NaN
		panic(fmt.Sprintf("simnet: %s = %v is not a probability", what, p))
	}
}
