package nack

import (
	"math"
	"math/rand/v2"
	"testing"
)

// poissonAtLeast is P(X >= k) for X ~ Poisson(mu), summed directly.
func poissonAtLeast(mu float64, k int) float64 {
	head, term := 0.0, math.Exp(-mu)
	for i := 0; i < k; i++ {
		head += term
		term *= mu / float64(i+1)
	}
	return 1 - head
}

func TestRecordLoss(t *testing.T) {
	for _, group := range []float64{10, 1000, 10000} {
		prev := 0.0
		for count := 1; count <= 10; count++ {
			p := RecordLoss(group, 64, count)
			// The count is the record: about one receiver of the group
			// misses as many.
			if n := group * poissonAtLeast(64*p, count); math.Abs(n-1) > 1e-6 {
				t.Errorf("group %g count %d: loss %.5f gives %.6f receivers at the count, want 1", group, count, p, n)
			}
			if p <= prev {
				t.Errorf("group %g: loss %.5f for count %d, not above %.5f for one less", group, p, count, prev)
			}
			prev = p
			if bigger := RecordLoss(group*10, 64, count); bigger >= p {
				t.Errorf("count %d: a group ten times %g gives loss %.5f, not below %.5f", count, group, bigger, p)
			}
		}
	}
	if p := RecordLoss(1000, 64, 0); p != 0 {
		t.Errorf("count 0: loss %g, want 0", p)
	}
	if p := RecordLoss(1, 64, 3); math.Abs(p-3.0/64) > 1e-12 {
		t.Errorf("one receiver: loss %g, want its own count over the block, %g", p, 3.0/64)
	}
	if p := RecordLoss(1000, 4, 64); p != 1 {
		t.Errorf("a count past the block: loss %g, want 1", p)
	}
}

func TestRepairMarginEdges(t *testing.T) {
	for _, c := range []struct {
		group        float64
		count        int
		loss, target float64
		limit, want  int
	}{
		{1000, 0, 0.01, 0.1, 8, 0},  // nothing asked
		{1000, 4, 0, 0.1, 8, 0},     // no loss
		{1000, 4, 0.01, 0, 8, 0},    // no target: margins off
		{1000, 4, 0.01, 0.1, 0, 0},  // no parity left
		{1000, 3, 0.5, 0.1, 2, 2},   // capped by the parity left
		{1, 1, 0.01, 0.1, 8, 0},     // one receiver, one symbol: 1 % risk
		{1, 20, 0.01, 0.1, 8, 1},    // one receiver, 20 symbols: 18 % risk
		{1000, 3, 0.01, 0.1, 8, 1},  // many receivers need all three
		{10000, 4, 0.01, 0.1, 8, 1}, // at ten times the group, four too
	} {
		if got := RepairMargin(c.group, 64, c.count, c.loss, c.target, c.limit); got != c.want {
			t.Errorf("RepairMargin(%g, 64, %d, %g, %g, %d) = %d, want %d", c.group, c.count, c.loss, c.target, c.limit, got, c.want)
		}
	}
	for count := 1; count <= 10; count++ {
		a := RepairMargin(1000, 64, count, 0.01, 0.1, 16)
		b := RepairMargin(10000, 64, count, 0.01, 0.1, 16)
		if b < a {
			t.Errorf("count %d: margin %d for 10,000 receivers, below %d for 1,000", count, b, a)
		}
	}
}

// TestRepairMarginShort checks the margin against a simulation of what it
// guards against: each of a group's receivers misses some of a block's
// symbols, the sender answers the largest count plus the margin, and the
// repairs are lost at the same rate. The fraction of blocks that leave a
// receiver short (and cost another repair round) must stay near the
// target, where answering the count alone leaves many more short, for a
// symbol or so per block.
func TestRepairMarginShort(t *testing.T) {
	const (
		symbols = 64
		target  = 0.1
	)
	blocks := 2000
	if raceEnabled {
		blocks = 500 // the race detector makes each draw ten times slower
	}
	for _, c := range []struct {
		group int
		loss  float64
	}{{1000, 0.01}, {10000, 0.01}, {1000, 0.02}} {
		rng := rand.New(rand.NewPCG(1, uint64(c.group)))
		// Receivers' losses in a block by inversion of the binomial CDF.
		var cdf [symbols + 1]float64
		acc := 0.0
		for k := range cdf {
			acc += math.Exp(lgamma(symbols+1)-lgamma(k+1)-lgamma(symbols-k+1)) *
				math.Pow(c.loss, float64(k)) * math.Pow(1-c.loss, float64(symbols-k))
			cdf[k] = acc
		}
		draw := func() int {
			u := rng.Float64()
			k := 0
			for k < symbols && u > cdf[k] {
				k++
			}
			return k
		}
		needs := make([]int, c.group)
		shortPlain, shortMargin, extra := 0, 0, 0
		for range blocks {
			count := 0
			for i := range needs {
				needs[i] = draw()
				count = max(count, needs[i])
			}
			if count == 0 {
				continue
			}
			m := RepairMargin(float64(c.group), symbols, count, c.loss, target, 16)
			extra += m
			plain, withMargin := false, false
			for _, need := range needs {
				if need == 0 {
					continue
				}
				got, gotPlain := 0, 0
				for j := range count + m {
					if rng.Float64() >= c.loss {
						got++
						if j < count {
							gotPlain++
						}
					}
				}
				plain = plain || gotPlain < need
				withMargin = withMargin || got < need
			}
			if plain {
				shortPlain++
			}
			if withMargin {
				shortMargin++
			}
		}
		fp, fm, cost := float64(shortPlain)/float64(blocks), float64(shortMargin)/float64(blocks), float64(extra)/float64(blocks)
		t.Logf("group %d loss %g: short without margin %.3f, with %.3f; margin %.2f symbols per block", c.group, c.loss, fp, fm, cost)
		if fm > target {
			t.Errorf("group %d loss %g: %.3f of blocks left a receiver short, want about %g at most", c.group, c.loss, fm, target)
		}
		if fp < 2*fm {
			t.Errorf("group %d loss %g: %.3f short without the margin against %.3f with: the margin buys little", c.group, c.loss, fp, fm)
		}
		if cost > 1.5 {
			t.Errorf("group %d loss %g: margin %.2f symbols per block, want 1.5 at most", c.group, c.loss, cost)
		}
	}
}
