package nack

import "math"

// RecordLoss returns the per-symbol loss rate at which a block of symbols
// symbols, sent to group receivers, would have one receiver miss count or
// more of them: the loss a sender can read from the largest erasure count
// reported for a block when it knows only the group's size. Losses per
// receiver are taken as Poisson with mean symbols × loss, as BackoffGroup
// takes them. It returns 0 for a count of 0 or less and at most 1.
//
// Suppression shows a sender only the largest counts, so this is what it
// can learn from NACKs alone; a receiver's own loss rate is what it
// reports in EXT_CC only as a loss event rate, which says little about
// packets lost per block.
func RecordLoss(group float64, symbols, count int) float64 {
	if count <= 0 || symbols <= 0 {
		return 0
	}
	if !(group > 1) { // also catches NaN
		group = 1
	}
	// group·P(X >= count) grows with the mean: bisect for 1. At a mean of
	// count it is about group/2, so the root lies below count unless the
	// group is a single receiver.
	lo, hi := 0.0, float64(count)
	if group*poissonTail(hi, count) < 1 {
		return min(hi/float64(symbols), 1)
	}
	for range 40 {
		mid := (lo + hi) / 2
		if group*poissonTail(mid, count) < 1 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return min(hi/float64(symbols), 1)
}

// RepairMargin returns how many fresh parity symbols beyond count a sender
// adds when it answers a block's repair request, count being the largest
// number of symbols any one receiver asked for. The repair symbols are lost
// too, at loss per symbol, and a receiver that loses one it counted on asks
// again, which costs every receiver of that block a repair round more. The
// margin is the smallest, up to limit, that brings the expected number of
// receivers left short below target.
//
// group is how many receivers may need the block: the group size for a
// block's first repair, whose needs are spread as BackoffGroup assumes
// (Poisson with mean symbols × loss, one receiver at least needing count);
// 1 for a block repaired before, which only a few receivers still need.
// The larger the group, the more receivers need all or nearly all of the
// repairs, and the more a margin saves; for the same reason it adds
// nothing to a single receiver's repair at low loss.
func RepairMargin(group float64, symbols, count int, loss, target float64, limit int) int {
	if count <= 0 || limit <= 0 || !(loss > 0) || !(target > 0) {
		return 0
	}
	loss = min(loss, 0.5)
	if !(group > 1) {
		group = 1
	}
	mu := float64(symbols) * loss
	// Receivers needing d symbols, d = 1 … count.
	var need [maxMarginCount + 1]float64
	count = min(count, maxMarginCount)
	for d := 1; d < count; d++ {
		need[d] = group * poissonPoint(mu, d)
	}
	need[count] = max(1, group*poissonTail(mu, count))
	for m := 0; m < limit; m++ {
		n := count + m
		short := 0.0
		for d := 1; d <= count; d++ {
			// Short if more than n-d of the n repairs are lost.
			short += need[d] * binomialTail(n, loss, n-d+1)
		}
		if short <= target {
			return m
		}
	}
	return limit
}

// maxMarginCount bounds the counts RepairMargin models: past it a receiver
// that lost so much of a block is not one of a Poisson crowd, and the
// margin for the bound is as good as any.
const maxMarginCount = 64

// poissonPoint returns P(X = k) for X ~ Poisson(mu), mu > 0.
func poissonPoint(mu float64, k int) float64 {
	return math.Exp(-mu + float64(k)*math.Log(mu) - lgamma(k+1))
}

// poissonTail returns P(X >= k) for X ~ Poisson(mu), k >= 1.
func poissonTail(mu float64, k int) float64 {
	if !(mu > 0) {
		return 0
	}
	if float64(k) <= mu {
		// Below the mean: one minus the head, which is short.
		head, term := 0.0, math.Exp(-mu)
		for i := 0; i < k; i++ {
			head += term
			term *= mu / float64(i+1)
		}
		return max(1-head, 0)
	}
	term := poissonPoint(mu, k)
	tail := 0.0
	for i := k; i < k+256 && term > tail*1e-12; i++ {
		tail += term
		term *= mu / float64(i+1)
	}
	return min(tail, 1)
}

// binomialTail returns P(X >= k) for X ~ Binomial(n, p).
func binomialTail(n int, p float64, k int) float64 {
	if k <= 0 {
		return 1
	}
	if k > n {
		return 0
	}
	if !(p > 0) {
		return 0
	}
	if p >= 1 {
		return 1
	}
	// The first term from logarithms, the rest by the ratio of successive
	// terms: one Lgamma per call rather than three (and two Pows) per term,
	// since a sender asks this for every block a repair plan lists.
	term := math.Exp(lgamma(n+1) - lgamma(k+1) - lgamma(n-k+1) + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	ratio := p / (1 - p)
	tail := 0.0
	for j := k; j <= n; j++ {
		tail += term
		term *= float64(n-j) / float64(j+1) * ratio
	}
	return min(tail, 1)
}
