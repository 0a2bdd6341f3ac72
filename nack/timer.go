package nack

import (
	"math"
	"time"
)

// BackoffDelay returns how long a receiver waits before sending a NACK: a
// draw from the truncated exponential distribution of RFC 5401 §2.1
// ("RandomBackoff"), which RFC 5740 §5.3 prescribes with maxDelay =
// K_sender × GRTT_sender and the sender's advertised group size.
//
// u is a uniform draw from [0, 1) supplied by the caller's seeded random
// source, which keeps the engines deterministic. maxDelay is the backoff
// factor times the GRTT; zero or negative gives 0 (the reference
// implementation sends at once when the backoff factor is 0 or the session
// is unicast). groupSize is the sender's group size estimate; values below 1
// count as 1.
//
// The delay has density proportional to exp(λt/T) on [0, T], T = maxDelay,
// λ = ln(groupSize) + 1, so late delays are the likely ones and only a few
// of many receivers fire early enough to suppress the rest. Its CDF is
// F(t) = (exp(λt/T) - 1) / (exp(λ) - 1), and the result is F⁻¹(u).
func BackoffDelay(u float64, maxDelay time.Duration, groupSize float64) time.Duration {
	if maxDelay <= 0 {
		return 0
	}
	t := time.Duration(BackoffFraction(u, groupSize) * float64(maxDelay))
	return min(max(t, 0), maxDelay)
}

// BackoffFraction is BackoffDelay as a fraction of maxDelay, in [0, 1]: for
// a receiver that keeps its draw u and times its back-off again when the
// group it competes with changes (see BackoffGroup). For a given u it
// grows with groupSize.
func BackoffFraction(u, groupSize float64) float64 {
	if !(u > 0) { // also catches NaN
		return 0
	}
	if u >= 1 {
		return 1
	}
	if !(groupSize > 1) { // also catches NaN
		groupSize = 1
	}
	lambda := math.Log(groupSize) + 1
	// F⁻¹(u) = T/λ · ln(1 + u(e^λ - 1)) overflows for large groups; taking
	// e^λ out of the logarithm gives T + T/λ · ln(u + (1-u)e^-λ), which
	// does not.
	x := 1 + math.Log(u+(1-u)*math.Exp(-lambda))/lambda
	return min(max(x, 0), 1)
}

// BackoffGroup returns the group size a receiver times its NACK back-off
// for (BackoffDelay), when the sender advertises group and the receiver's
// worst block still lacks erasures of its symbols, at its loss rate loss:
// about how many receivers of the group lack as many in a block.
//
// A NACK is of use only if it asks for something no other receiver has
// asked for, and with FEC what one receiver asks for a block (a number of
// parity symbols) covers every receiver that lacks as many or fewer. So
// when many blocks are in play, the receivers whose NACKs nobody else's
// can stand in for are those with the most erasures in some block, and
// they are few: timing each receiver as one of the many that lack as much
// as it does lets those few speak first, and their NACKs suppress the
// rest. Timed as one of the whole group, every receiver waits for the end
// of the window, where the few are as late as everyone else and a record
// count in any one block makes a receiver NACK.
//
// The count is taken as Poisson with mean symbols × loss. A count that
// fewer than one receiver in the group should see by chance (symbols lost
// on the way to everyone, a whole block missed) is more likely shared by
// many, and the rarer it is the more: the group returned is then the
// inverse of the expected number, up to group, rather than 1, which would
// make every receiver that lost it NACK at once.
func BackoffGroup(group float64, symbols int, loss float64, erasures int) float64 {
	if !(group > 1) {
		return 1
	}
	mu := float64(symbols) * loss
	if erasures <= 0 || !(mu > 0) || float64(erasures) <= mu {
		return group
	}
	// P(X >= erasures) for X ~ Poisson(mu), summed upward from the first
	// term; past the mean the terms shrink at least geometrically.
	term := math.Exp(-mu + float64(erasures)*math.Log(mu) - lgamma(erasures+1))
	tail := 0.0
	for i := erasures; i < erasures+256 && term > tail*1e-9; i++ {
		tail += term
		term *= mu / float64(i+1)
	}
	g := group * tail
	if g < 1 {
		if g <= 1/group {
			return group
		}
		g = 1 / g
	}
	return min(max(g, 1), group)
}

func lgamma(n int) float64 {
	v, _ := math.Lgamma(float64(n))
	return v
}

// NackHoldoff returns how long a receiver waits after its NACK back-off
// ends (whether it sent the NACK or was suppressed) before it starts a new
// repair cycle for the same sender: (backoff + 2) × grtt, RFC 5740 §5.3.
// That is the longest other receivers may still be backing off
// (backoff × GRTT), one GRTT for the NACK to reach the sender and the
// sender's aggregation to end, and one for the repairs to arrive; NACKing
// earlier would ask again for repairs already on their way. The reference
// implementation uses the same interval for multicast sessions (for unicast
// it uses GRTT plus one packet interval). A negative backoff counts as 0.
func NackHoldoff(grtt time.Duration, backoff float64) time.Duration {
	return scale(grtt, max(backoff, 0)+2)
}

// AggregationWindow returns how long a sender collects NACKs after the
// first one of a repair cycle before it starts to send repairs:
// (backoff + 1) × grtt, RFC 5740 §5.4. Receivers' back-off timers spread
// their NACKs over backoff × GRTT and the NACKs take up to one more GRTT to
// arrive, so a sender that waits this long answers every receiver of the
// cycle with one set of repairs. The reference implementation uses the same
// window for multicast sessions and none for unicast. A negative backoff
// counts as 0.
func AggregationWindow(grtt time.Duration, backoff float64) time.Duration {
	return scale(grtt, max(backoff, 0)+1)
}

func scale(d time.Duration, f float64) time.Duration {
	if d <= 0 {
		return 0
	}
	x := float64(d) * f
	if x >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(x)
}
